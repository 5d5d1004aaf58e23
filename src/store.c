/*
 * DESIGN
 *
 * The job store keeps jobs and the state of their items in SQLite so that a
 * restarted daemon can carry on where it stopped. The database is
 * DIR/imgfetchd.db in WAL mode with synchronous=NORMAL: a commit survives a
 * kill -9 of the process (not a power cut before the next checkpoint), and
 * fsync is paid only at checkpoints. It is opened through sqlvfs.c, which
 * hands each transaction's WAL frames to the kernel in one write.
 * DIR/imgfetchd.lock carries an exclusive flock for as long as the store is
 * open, so a second daemon on the same directory fails at start-up instead
 * of corrupting the first one's view of the jobs.
 *
 * Schema (PRAGMA user_version = STORE_SCHEMA_VERSION):
 *   jobs(id, created, finished, state, dir, name, headers)
 *   jobs(..., options): options is a JSON object of the job's own
 *         settings (if_changed, dedup, ...), NULL for none
 *   jobs(..., owner_uid, owner_user): who submitted the job (the API
 *         client's uid and its user name then); NULL for jobs stored
 *         before version 4, which have no owner
 *   items(job -> jobs.id ON DELETE CASCADE, n, url, state, path, part,
 *         validator, error, http_status, bytes, attempts, retry_at, extra),
 *         key (job, n); extra is a JSON object of what only some items
 *         have (kind, page, images, unchanged, duplicate_of, sha256)
 *   cache(url, etag, last_modified, size, sha256, path, images, used),
 *         key url: what the last successful fetch of a URL gave, for
 *         conditional requests and dedup; pruned oldest used first
 *   jobs(..., queue_id): the shared queue's stream entry the job came from
 *         (queue.c acknowledges it when the job ends), NULL for a local job
 *   jobs(..., owner_uid, owner_user): who submitted the job (NULL: a job
 *         stored before owners were kept)
 * Version 1 had no retry_at, version 2 no options, extra or cache, version
 * 3 no queue_id, version 4 no owner_uid or owner_user; opening such a store
 * adds them (one step per version).
 * Times are seconds since the epoch; finished is 0 while a job runs. The
 * header list is stored newline-joined in jobs.headers ("" for none):
 * headers are checked to hold no CR or LF before they reach a job, and
 * store_add_job refuses a job whose headers do.
 *
 * What runs where, and who owns what:
 * - store_open and store_load run on the main thread before the loop; the
 *   connection is guarded by store->dblock, which the store thread holds
 *   while it runs a batch, so a load never sees half a batch.
 * - store_add_job and friends run on the loop thread. They copy everything
 *   into a struct sop and append it to store->queue under store->lock;
 *   from then on the op belongs to the store. They never call back.
 * - The loop thread wakes the store thread through a "kick" event it
 *   activates on itself, so every operation queued during one pass of the
 *   loop is in the queue before the thread looks: back-to-back calls
 *   become one transaction whatever the timing. The thread takes the
 *   queue only when kicked, or when closing.
 * - The store thread takes the whole queue under the lock, runs it with the
 *   lock released in one transaction (BEGIN IMMEDIATE ... COMMIT), each
 *   operation inside a savepoint so that one bad operation (an update of an
 *   unknown item) fails alone. If the transaction itself fails, it is
 *   rolled back and every operation in it fails.
 * - Before it runs a batch, the thread marks each item update that a later
 *   update of the same item in the batch replaces (store_coalesce): an
 *   update writes every column, so only the last one is run, as long as
 *   nothing in between could change whether the item is there (an
 *   operation on its job, a prune). A replaced update is not run and takes
 *   the result of the one that replaced it once the transaction is over:
 *   0 only if that one succeeded and the transaction committed.
 * - Operations with a callback then go, in order, onto store->done and the
 *   thread activates done_ev; the loop thread drains that list, calls the
 *   callbacks and frees the ops. Operations without one are freed by the
 *   store thread. The thread touches SQLite, the ops and the two lists
 *   only: never job state, and libevent only through event_active.
 * - store_close stops the thread once the queue is empty: everything queued
 *   is committed, but callbacks not yet delivered are dropped, since the
 *   loop may no longer run. A callback must not call store_close.
 * - The thread times each transaction (BEGIN to COMMIT, monotonic clock)
 *   and adds it to store->times under store->lock, where it counts
 *   commits; store_commit_times copies them out under the same lock for
 *   the metrics, so the loop thread never sees a histogram half updated.
 * The store thread blocks all signals, so only the main thread sees them.
 */
#include <sys/file.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "defs.h"
#include "log.h"
#include "sqlvfs.h"
#include "store.h"
#include "xmalloc.h"

#define STORE_SCHEMA_VERSION 5
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_DB_NAME "imgfetchd.db"
#define STORE_LOCK_NAME "imgfetchd.lock"

#define STORE_CACHE_SCHEMA \
	"CREATE TABLE cache (" \
	" url TEXT PRIMARY KEY," \
	" etag TEXT," \
	" last_modified TEXT," \
	" size INTEGER NOT NULL DEFAULT -1," \
	" sha256 TEXT," \
	" path TEXT," \
	" images TEXT," \
	" used INTEGER NOT NULL) WITHOUT ROWID;" \
	"CREATE INDEX cache_used ON cache (used);"

static const char store_schema[] =
    "CREATE TABLE jobs ("
    " id INTEGER PRIMARY KEY,"
    " created INTEGER NOT NULL,"
    " finished INTEGER NOT NULL DEFAULT 0,"
    " state INTEGER NOT NULL,"
    " dir TEXT,"
    " name TEXT,"
    " headers TEXT NOT NULL DEFAULT '',"
    " options TEXT,"
    " queue_id TEXT,"
    " owner_uid INTEGER,"
    " owner_user TEXT);"
    "CREATE INDEX jobs_finished ON jobs (finished) WHERE finished != 0;"
    "CREATE TABLE items ("
    " job INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    " n INTEGER NOT NULL,"
    " url TEXT,"
    " state INTEGER NOT NULL,"
    " path TEXT,"
    " part TEXT,"
    " validator TEXT,"
    " error TEXT,"
    " http_status INTEGER NOT NULL DEFAULT 0,"
    " bytes INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " retry_at INTEGER NOT NULL DEFAULT 0,"
    " extra TEXT,"
    " PRIMARY KEY (job, n)) WITHOUT ROWID;"
    STORE_CACHE_SCHEMA;

/* From schema version 3 to 4: the stream entry a queue job came from. */
static const char store_migrate_3[] =
    "ALTER TABLE jobs ADD COLUMN queue_id TEXT;";

/* From schema version 4 to 5: job owners (NULL: stored before owners). */
static const char store_migrate_4[] =
    "ALTER TABLE jobs ADD COLUMN owner_uid INTEGER;"
    "ALTER TABLE jobs ADD COLUMN owner_user TEXT;";

/* From schema version 2 to 3. */
static const char store_migrate_2[] =
    "ALTER TABLE jobs ADD COLUMN options TEXT;"
    "ALTER TABLE items ADD COLUMN extra TEXT;" STORE_CACHE_SCHEMA;

/* From schema version 1 to 2. */
static const char store_migrate_1[] =
    "ALTER TABLE items ADD COLUMN retry_at INTEGER NOT NULL DEFAULT 0;";

enum store_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_INSERT_JOB,
	ST_INSERT_ITEM,
	ST_UPDATE_JOB,
	ST_UPDATE_ITEM,
	ST_PRUNE,
	ST_SELECT_JOBS,
	ST_SELECT_ITEMS,
	ST_PUT_CACHE,
	ST_PRUNE_CACHE,
	ST_SELECT_CACHE,
	ST_COUNT
};

/* Items bind ?1 job, ?2 n, ?3..?11 and ?13 the mutable columns, ?12 url. */
static const char *const store_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT op",
	[ST_RELEASE] = "RELEASE op",
	[ST_ROLLBACK_TO] = "ROLLBACK TO op",
	[ST_INSERT_JOB] = "INSERT INTO jobs (id, created, finished, state, dir,"
			  " name, headers, options, queue_id, owner_uid,"
			  " owner_user)"
			  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[ST_INSERT_ITEM] =
	    "INSERT INTO items (job, n, state, path, part,"
	    " validator, error, http_status, bytes, attempts, retry_at, url,"
	    " extra)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[ST_UPDATE_JOB] = "UPDATE jobs SET state = ?2, finished = ?3"
			  " WHERE id = ?1",
	[ST_UPDATE_ITEM] =
	    "UPDATE items SET state = ?3, path = ?4, part = ?5,"
	    " validator = ?6, error = ?7, http_status = ?8, bytes = ?9,"
	    " attempts = ?10, retry_at = ?11, extra = ?13"
	    " WHERE job = ?1 AND n = ?2",
	[ST_PRUNE] = "DELETE FROM jobs WHERE finished != 0 AND finished < ?1",
	[ST_SELECT_JOBS] = "SELECT id, created, finished, state, dir, name,"
			   " headers, options, queue_id, owner_uid, owner_user"
			   " FROM jobs ORDER BY id",
	[ST_SELECT_ITEMS] =
	    "SELECT n, url, state, path, part, validator,"
	    " error, http_status, bytes, attempts, retry_at, extra FROM items"
	    " WHERE job = ?1"
	    " ORDER BY n",
	[ST_PUT_CACHE] = "INSERT OR REPLACE INTO cache (url, etag,"
			 " last_modified, size, sha256, path, images, used)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_PRUNE_CACHE] = "DELETE FROM cache WHERE url IN (SELECT url FROM"
			   " cache ORDER BY used DESC LIMIT -1 OFFSET ?1)",
	[ST_SELECT_CACHE] = "SELECT url, etag, last_modified, size, sha256,"
			    " path, images, used FROM cache ORDER BY used",
};

enum sop_type {
	SOP_ADD_JOB,
	SOP_UPDATE_JOB,
	SOP_UPDATE_ITEM,
	SOP_PRUNE,
	SOP_ADD_ITEMS,
	SOP_PUT_CACHE,
	SOP_PRUNE_CACHE
};

/* One queued operation, with its own copy of every string. */
struct sop {
	enum sop_type type;
	store_cb cb;
	void *arg;
	int ok;

	unsigned long long id; /* job */
	int state;
	time_t time; /* created, finished or the prune limit */
	time_t finished;
	const char *dir;
	const char *name;
	const char *headers; /* newline-joined */
	const char *options;
	const char *queue_id;
	long long owner_uid; /* -1: none */
	const char *owner_user;
	int bad_headers;
	struct store_cache cache; /* SOP_PUT_CACHE */
	size_t keep; /* SOP_PRUNE_CACHE */
	struct store_item *items;
	size_t nitems;
	char *strings; /* every string above points in here */
	struct sop *by; /* the later update in the batch that replaces it */

	TAILQ_ENTRY(sop) entry;
};
TAILQ_HEAD(sop_list, sop);

/* An operation on a job, as store_coalesce sorts them. */
struct sop_key {
	unsigned long long job;
	unsigned long n; /* item updates */
	size_t barriers; /* prunes and operations on the job before it */
	size_t seq; /* place in the batch */
	struct sop *op;
};

struct store {
	char *dir;
	int lockfd;
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	char err[256]; /* last SQLite error, under dblock */
	pthread_mutex_t dblock;

	pthread_t thread;
	int started;
	struct event *kick_ev;
	struct event *done_ev;
	int kicked; /* loop thread only */

	/* Shared, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct sop_list queue;
	struct sop_list done;
	int wake; /* kicked: take the queue */
	int stopping;
	size_t commits;
	size_t item_updates;
	struct store_times times; /* how long each transaction took */
};

static void *store_main(void *);
static int store_apply_items(struct store *, struct sop *);
static void store_kick_cb(int, short, void *);
static void store_done_cb(int, short, void *);

/* Free an operation and its copies. */
static void
sop_free(struct sop *op)
{
	free(op->items);
	free(op->strings);
	free(op);
}

/* Bytes needed to copy a string that may be NULL. */
static size_t
str_size(const char *s)
{
	return s == NULL ? 0 : strlen(s) + 1;
}

/* Copy a string that may be NULL to *p and advance *p. */
static const char *
str_put(char **p, const char *s)
{
	char *start = *p;
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	memcpy(start, s, n);
	*p += n;
	return start;
}

/* Bytes needed to copy an item's strings. */
static size_t
item_size(const struct store_item *it, int with_url)
{
	return (with_url ? str_size(it->url) : 0) + str_size(it->path) +
	    str_size(it->part) + str_size(it->validator) + str_size(it->error) +
	    str_size(it->extra);
}

/* Copy an item, its strings to *p. */
static void
item_copy(struct store_item *dst, const struct store_item *src, char **p,
    int with_url)
{
	*dst = *src;
	dst->url = with_url ? str_put(p, src->url) : NULL;
	dst->path = str_put(p, src->path);
	dst->part = str_put(p, src->part);
	dst->validator = str_put(p, src->validator);
	dst->error = str_put(p, src->error);
	dst->extra = str_put(p, src->extra);
}

/* Fail with a cause naming the store directory. */
static void __attribute__((format(printf, 3, 4)))
store_cause(char **cause, const char *dir, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatal("store_open: vasprintf");
	va_end(ap);
	xasprintf(cause, "store %s: %s", dir, msg);
	free(msg);
}

/* Take the directory's lock file; -1 with *cause if it is held. */
static int
store_lock(struct store *s, char **cause)
{
	char *path;
	int fd;

	xasprintf(&path, "%s/%s", s->dir, STORE_LOCK_NAME);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		store_cause(cause, s->dir, "%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			xasprintf(cause,
			    "state directory %s is in use by "
			    "another imgfetchd",
			    s->dir);
		else
			store_cause(cause, s->dir, "lock: %s", strerror(errno));
		close(fd);
		return -1;
	}
	s->lockfd = fd;
	return 0;
}

/* Read one integer from a constant query; -1 with *cause on error. */
static int
store_query_int(struct store *s, const char *sql, long long *v, char **cause)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		store_cause(cause, s->dir, "%s", sqlite3_errmsg(s->db));
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store_cause(cause, s->dir, "%s", sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return -1;
	}
	*v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* Run constant SQL; -1 with *cause on error. */
static int
store_exec_sql(struct store *s, const char *sql, char **cause)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		store_cause(cause, s->dir, "%s",
		    msg != NULL ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Open the database, set it up and create or check the schema. */
static int
store_open_db(struct store *s, char **cause)
{
	const char *mode;
	sqlite3_stmt *st;
	long long version;
	char *path;
	int flags, rc, i;

	flags =
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
#ifdef SQLITE_OPEN_NOFOLLOW
	flags |= SQLITE_OPEN_NOFOLLOW;
#endif
	xasprintf(&path, "%s/%s", s->dir, STORE_DB_NAME);
	/* sqlvfs gathers the WAL's writes; without it, the default VFS. */
	rc = sqlite3_open_v2(path, &s->db, flags, sqlvfs_name());
	if (rc != SQLITE_OK) {
		store_cause(cause, s->dir, "%s: %s", path,
		    s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		free(path);
		return -1;
	}
	free(path);
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

	/* journal_mode answers with the mode it ended up in. */
	if (sqlite3_prepare_v2(
		s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK) {
		store_cause(cause, s->dir, "%s", sqlite3_errmsg(s->db));
		return -1;
	}
	rc = sqlite3_step(st);
	mode =
	    rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		store_cause(cause, s->dir, "cannot use WAL mode: %s",
		    mode != NULL ? mode : sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (store_exec_sql(s, "PRAGMA synchronous=NORMAL", cause) != 0 ||
	    store_exec_sql(s, "PRAGMA foreign_keys=ON", cause) != 0)
		return -1;

	if (store_query_int(s, "PRAGMA user_version", &version, cause) != 0)
		return -1;
	if (version == 0) {
		if (store_exec_sql(s, "BEGIN IMMEDIATE", cause) != 0)
			return -1;
		if (store_exec_sql(s, store_schema, cause) != 0 ||
		    store_exec_sql(s, "PRAGMA user_version = 5", cause) != 0 ||
		    store_exec_sql(s, "COMMIT", cause) != 0) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		log_debug("store: created %s/%s", s->dir, STORE_DB_NAME);
	} else if (version >= 1 && version <= 4) {
		if (store_exec_sql(s, "BEGIN IMMEDIATE", cause) != 0)
			return -1;
		if ((version == 1 &&
			store_exec_sql(s, store_migrate_1, cause) != 0) ||
		    (version <= 2 &&
			store_exec_sql(s, store_migrate_2, cause) != 0) ||
		    (version <= 3 &&
			store_exec_sql(s, store_migrate_3, cause) != 0) ||
		    store_exec_sql(s, store_migrate_4, cause) != 0 ||
		    store_exec_sql(s, "PRAGMA user_version = 5", cause) != 0 ||
		    store_exec_sql(s, "COMMIT", cause) != 0) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		log_info("store: %s/%s upgraded from schema version %lld to 5",
		    s->dir, STORE_DB_NAME, version);
	} else if (version != STORE_SCHEMA_VERSION) {
		store_cause(cause, s->dir,
		    "schema version %lld, this imgfetchd "
		    "knows version %d",
		    version, STORE_SCHEMA_VERSION);
		return -1;
	}

	for (i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, store_sql[i], -1,
			SQLITE_PREPARE_PERSISTENT, &s->st[i],
			NULL) != SQLITE_OK) {
			store_cause(cause, s->dir, "%s", sqlite3_errmsg(s->db));
			return -1;
		}
	}
	return 0;
}

/* Close the database and the lock file. */
static void
store_close_db(struct store *s)
{
	int i, rc;

	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db != NULL && (rc = sqlite3_close(s->db)) != SQLITE_OK)
		log_warnx("store_close: %s", sqlite3_errstr(rc));
	if (s->lockfd != -1)
		close(s->lockfd);
}

/* Open (creating) the store and start its thread. */
struct store *
store_open(struct event_base *base, const char *dir, char **cause)
{
	struct store *s;
	sigset_t all, old;
	int error;

	s = xcalloc(1, sizeof *s);
	s->dir = xstrdup(dir);
	s->lockfd = -1;
	TAILQ_INIT(&s->queue);
	TAILQ_INIT(&s->done);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->dblock, NULL);
	pthread_cond_init(&s->cond, NULL);

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		store_cause(cause, dir, "mkdir: %s", strerror(errno));
		goto fail;
	}
	if (store_lock(s, cause) != 0 || store_open_db(s, cause) != 0)
		goto fail;

	s->kick_ev = event_new(base, -1, 0, store_kick_cb, s);
	s->done_ev = event_new(base, -1, 0, store_done_cb, s);
	if (s->kick_ev == NULL || s->done_ev == NULL) {
		store_cause(cause, dir, "event_new failed");
		goto fail;
	}
	event_priority_set(s->kick_ev, EV_PRIO_BULK);
	event_priority_set(s->done_ev, EV_PRIO_BULK);

	/* The thread inherits a full signal mask. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	error = pthread_create(&s->thread, NULL, store_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (error != 0) {
		store_cause(cause, dir, "pthread_create: %s", strerror(error));
		goto fail;
	}
	s->started = 1;
	pthread_setname_np(s->thread, "store");
	log_debug("store: opened %s/%s", dir, STORE_DB_NAME);
	return s;

fail:
	store_close(s);
	return NULL;
}

/* Commit everything queued, stop the thread and close the database. */
void
store_close(struct store *s)
{
	struct sop *op;
	size_t dropped = 0;

	if (s == NULL)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stopping = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	/* The thread is gone: the lists are ours. */
	while ((op = TAILQ_FIRST(&s->done)) != NULL) {
		TAILQ_REMOVE(&s->done, op, entry);
		sop_free(op);
		dropped++;
	}
	while ((op = TAILQ_FIRST(&s->queue)) != NULL) {
		TAILQ_REMOVE(&s->queue, op, entry);
		sop_free(op);
	}
	if (dropped != 0)
		log_debug("store_close: %zu callbacks dropped", dropped);
	if (s->kick_ev != NULL)
		event_free(s->kick_ev);
	if (s->done_ev != NULL)
		event_free(s->done_ev);
	store_close_db(s);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->dblock);
	pthread_cond_destroy(&s->cond);
	free(s->dir);
	free(s);
}

/* Transactions committed so far. */
size_t
store_commits(struct store *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->commits;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Upper bounds, in seconds, of the commit time histogram's buckets. */
const double store_time_bounds[STORE_TIME_NBUCKETS] = { 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };

/* How long the transactions took so far. */
void
store_commit_times(struct store *s, struct store_times *t)
{
	pthread_mutex_lock(&s->lock);
	*t = s->times;
	pthread_mutex_unlock(&s->lock);
}

/* Store thread, under the lock: count one transaction's time. */
static void
store_time_add(struct store_times *t, double seconds)
{
	size_t i;

	for (i = 0; i < STORE_TIME_NBUCKETS; i++) {
		if (seconds <= store_time_bounds[i])
			break;
	}
	t->buckets[i]++;
	t->count++;
	t->sum += seconds;
}

/* Item UPDATE statements run so far. */
size_t
store_item_updates(struct store *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->item_updates;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* A block of strings copied out of a query, freed all at once. */
struct store_block {
	struct store_block *next;
	size_t used;
	size_t size;
	char data[];
};

/* Copy len bytes and a NUL into the blocks. */
static char *
store_block_copy(struct store_block **head, const void *src, size_t len)
{
	struct store_block *b = *head;
	size_t size;
	char *p;

	if (b == NULL || b->size - b->used < len + 1) {
		size = len + 1 > 65536 ? len + 1 : 65536;
		b = xmalloc(sizeof *b + size);
		b->next = *head;
		b->used = 0;
		b->size = size;
		*head = b;
	}
	p = b->data + b->used;
	memcpy(p, src, len);
	p[len] = '\0';
	b->used += len + 1;
	return p;
}

/* Free all blocks. */
static void
store_blocks_free(struct store_block **head)
{
	struct store_block *b;

	while ((b = *head) != NULL) {
		*head = b->next;
		free(b);
	}
}

/* Copy a text column; NULL stays NULL. */
static char *
store_column(struct store_block **head, sqlite3_stmt *st, int col)
{
	const unsigned char *t;

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	if ((t = sqlite3_column_text(st, col)) == NULL)
		fatalx("store_load: out of memory");
	return store_block_copy(head, t, (size_t)sqlite3_column_bytes(st, col));
}

/* Split a newline-joined header list (in the blocks) into an array. */
static char **
store_split_headers(char *joined, size_t *n)
{
	char **headers, *p;
	size_t i;

	*n = 0;
	if (joined == NULL || *joined == '\0')
		return NULL;
	*n = 1;
	for (p = joined; *p != '\0'; p++) {
		if (*p == '\n')
			(*n)++;
	}
	headers = xcalloc(*n, sizeof *headers);
	for (i = 0; i < *n; i++)
		headers[i] = strsep(&joined, "\n");
	return headers;
}

/* Read one job's items into *items (grown as needed). */
static int
store_load_items(struct store *s, unsigned long long id,
    struct store_block **blocks, struct store_item **items, size_t *cap,
    size_t *n)
{
	sqlite3_stmt *st = s->st[ST_SELECT_ITEMS];
	struct store_item *it;
	int rc;

	*n = 0;
	if (sqlite3_bind_int64(st, 1, (sqlite3_int64)id) != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == *cap) {
			*cap = *cap == 0 ? 64 : *cap * 2;
			*items = xreallocarray(*items, *cap, sizeof **items);
		}
		it = &(*items)[(*n)++];
		it->n = (unsigned long)sqlite3_column_int64(st, 0);
		it->url = store_column(blocks, st, 1);
		it->state = sqlite3_column_int(st, 2);
		it->path = store_column(blocks, st, 3);
		it->part = store_column(blocks, st, 4);
		it->validator = store_column(blocks, st, 5);
		it->error = store_column(blocks, st, 6);
		it->http_status = (long)sqlite3_column_int64(st, 7);
		it->bytes = (unsigned long long)sqlite3_column_int64(st, 8);
		it->attempts = sqlite3_column_int(st, 9);
		it->retry_at = (long long)sqlite3_column_int64(st, 10);
		it->extra = store_column(blocks, st, 11);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(st);
	return 0;
fail:
	log_warnx("store_load: job %llu items: %s", id, sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	return -1;
}

/* Read every job with its items, oldest first. */
int
store_load(struct store *s, store_load_cb cb, void *arg)
{
	sqlite3_stmt *st = s->st[ST_SELECT_JOBS];
	struct store_block *blocks = NULL;
	struct store_item *items = NULL;
	struct store_job job;
	char **headers;
	size_t cap = 0, njobs = 0;
	int rc, ret = -1;

	pthread_mutex_lock(&s->dblock);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&job, 0, sizeof job);
		job.id = (unsigned long long)sqlite3_column_int64(st, 0);
		job.created = (time_t)sqlite3_column_int64(st, 1);
		job.finished = (time_t)sqlite3_column_int64(st, 2);
		job.state = sqlite3_column_int(st, 3);
		job.dir = store_column(&blocks, st, 4);
		job.name = store_column(&blocks, st, 5);
		headers = store_split_headers(
		    store_column(&blocks, st, 6), &job.nheaders);
		job.headers = headers;
		job.options = store_column(&blocks, st, 7);
		job.queue_id = store_column(&blocks, st, 8);
		job.owned = sqlite3_column_type(st, 9) != SQLITE_NULL;
		job.owner_uid = (unsigned long)sqlite3_column_int64(st, 9);
		job.owner_user = store_column(&blocks, st, 10);
		if (store_load_items(
			s, job.id, &blocks, &items, &cap, &job.nitems) != 0) {
			free(headers);
			goto out;
		}
		job.items = items;
		cb(arg, &job);
		free(headers);
		store_blocks_free(&blocks);
		njobs++;
	}
	if (rc != SQLITE_DONE) {
		log_warnx("store_load: %s", sqlite3_errmsg(s->db));
		goto out;
	}
	log_debug("store: loaded %zu jobs", njobs);
	ret = 0;
out:
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->dblock);
	store_blocks_free(&blocks);
	free(items);
	return ret;
}

/* Loop thread: queue an operation; the thread looks once this pass ends. */
static void
store_push(struct store *s, struct sop *op)
{
	op->ok = -1;
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		log_warnx("store: operation after store_close dropped");
		sop_free(op);
		return;
	}
	TAILQ_INSERT_TAIL(&s->queue, op, entry);
	pthread_mutex_unlock(&s->lock);
	if (!s->kicked) {
		s->kicked = 1;
		event_active(s->kick_ev, 0, 0);
	}
}

/* Queue a new job with all its items. */
void
store_add_job(
    struct store *s, const struct store_job *job, store_cb cb, void *arg)
{
	struct sop *op;
	size_t size, i;
	char *p;

	op = xcalloc(1, sizeof *op);
	op->type = SOP_ADD_JOB;
	op->cb = cb;
	op->arg = arg;
	op->id = job->id;
	op->time = job->created;
	op->finished = job->finished;
	op->state = job->state;

	size = str_size(job->dir) + str_size(job->name) +
	    str_size(job->options) + str_size(job->queue_id) +
	    str_size(job->owner_user) + 1;
	for (i = 0; i < job->nheaders; i++) {
		size += strlen(job->headers[i]) + 1;
		if (strpbrk(job->headers[i], "\r\n") != NULL)
			op->bad_headers = 1;
	}
	for (i = 0; i < job->nitems; i++)
		size += item_size(&job->items[i], 1);
	op->strings = p = xmalloc(size);

	op->dir = str_put(&p, job->dir);
	op->name = str_put(&p, job->name);
	op->options = str_put(&p, job->options);
	op->queue_id = str_put(&p, job->queue_id);
	op->owner_uid = job->owned ? (long long)job->owner_uid : -1;
	op->owner_user = str_put(&p, job->owner_user);
	op->headers = p;
	for (i = 0; i < job->nheaders; i++) {
		if (i > 0)
			*p++ = '\n';
		size = strlen(job->headers[i]);
		memcpy(p, job->headers[i], size);
		p += size;
	}
	*p++ = '\0';
	op->items = xcalloc(job->nitems, sizeof *op->items);
	op->nitems = job->nitems;
	for (i = 0; i < job->nitems; i++)
		item_copy(&op->items[i], &job->items[i], &p, 1);
	store_push(s, op);
}

/* Queue a job's new state and end time. */
void
store_update_job(struct store *s, unsigned long long id, int state,
    time_t finished, store_cb cb, void *arg)
{
	struct sop *op;

	op = xcalloc(1, sizeof *op);
	op->type = SOP_UPDATE_JOB;
	op->cb = cb;
	op->arg = arg;
	op->id = id;
	op->state = state;
	op->finished = finished;
	store_push(s, op);
}

/* Queue an item's new state (every column but the URL). */
void
store_update_item(struct store *s, unsigned long long job,
    const struct store_item *item, store_cb cb, void *arg)
{
	struct sop *op;
	char *p;

	op = xcalloc(1, sizeof *op);
	op->type = SOP_UPDATE_ITEM;
	op->cb = cb;
	op->arg = arg;
	op->id = job;
	op->items = xcalloc(1, sizeof *op->items);
	op->nitems = 1;
	op->strings = p = xmalloc(item_size(item, 0));
	item_copy(op->items, item, &p, 0);
	store_push(s, op);
}

/* Queue the removal of jobs that ended before a time. */
void
store_prune(struct store *s, time_t before, store_cb cb, void *arg)
{
	struct sop *op;

	op = xcalloc(1, sizeof *op);
	op->type = SOP_PRUNE;
	op->cb = cb;
	op->arg = arg;
	op->time = before;
	store_push(s, op);
}

/* Queue new items of an existing job. */
void
store_add_items(struct store *s, unsigned long long job,
    const struct store_item *items, size_t nitems, store_cb cb, void *arg)
{
	struct sop *op;
	size_t size = 0, i;
	char *p;

	op = xcalloc(1, sizeof *op);
	op->type = SOP_ADD_ITEMS;
	op->cb = cb;
	op->arg = arg;
	op->id = job;
	for (i = 0; i < nitems; i++)
		size += item_size(&items[i], 1);
	op->strings = p = xmalloc(size + 1);
	op->items = xcalloc(nitems, sizeof *op->items);
	op->nitems = nitems;
	for (i = 0; i < nitems; i++)
		item_copy(&op->items[i], &items[i], &p, 1);
	store_push(s, op);
}

/* Queue a URL's cache entry (replacing the one before). */
void
store_put_cache(struct store *s, const struct store_cache *c)
{
	struct sop *op;
	char *p;

	op = xcalloc(1, sizeof *op);
	op->type = SOP_PUT_CACHE;
	op->strings = p = xmalloc(str_size(c->url) + str_size(c->etag) +
	    str_size(c->last_modified) + str_size(c->sha256) +
	    str_size(c->path) + str_size(c->images) + 1);
	op->cache = *c;
	op->cache.url = str_put(&p, c->url);
	op->cache.etag = str_put(&p, c->etag);
	op->cache.last_modified = str_put(&p, c->last_modified);
	op->cache.sha256 = str_put(&p, c->sha256);
	op->cache.path = str_put(&p, c->path);
	op->cache.images = str_put(&p, c->images);
	store_push(s, op);
}

/* Queue the removal of all but the keep most recently used entries. */
void
store_prune_cache(struct store *s, size_t keep)
{
	struct sop *op;

	op = xcalloc(1, sizeof *op);
	op->type = SOP_PRUNE_CACHE;
	op->keep = keep;
	store_push(s, op);
}

/* Read the cache, least recently used first (start-up, before the loop). */
int
store_load_cache(struct store *s, store_cache_cb cb, void *arg)
{
	sqlite3_stmt *st = s->st[ST_SELECT_CACHE];
	struct store_cache c;
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&s->dblock);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		c.url = (const char *)sqlite3_column_text(st, 0);
		c.etag = (const char *)sqlite3_column_text(st, 1);
		c.last_modified = (const char *)sqlite3_column_text(st, 2);
		c.size = (long long)sqlite3_column_int64(st, 3);
		c.sha256 = (const char *)sqlite3_column_text(st, 4);
		c.path = (const char *)sqlite3_column_text(st, 5);
		c.images = (const char *)sqlite3_column_text(st, 6);
		c.used = (time_t)sqlite3_column_int64(st, 7);
		if (c.url != NULL) {
			cb(arg, &c);
			n++;
		}
	}
	if (rc != SQLITE_DONE)
		log_warnx("store_load_cache: %s", sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->dblock);
	log_debug("store: loaded %zu cache entries", n);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Loop thread: wake the store thread for what this pass queued. */
static void
store_kick_cb(int fd, short what, void *arg)
{
	struct store *s = arg;

	s->kicked = 0;
	pthread_mutex_lock(&s->lock);
	s->wake = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Loop thread: deliver the results of committed batches, in order. */
static void
store_done_cb(int fd, short what, void *arg)
{
	struct store *s = arg;
	struct sop_list list;
	struct sop *op;

	TAILQ_INIT(&list);
	pthread_mutex_lock(&s->lock);
	TAILQ_CONCAT(&list, &s->done, entry);
	pthread_mutex_unlock(&s->lock);

	while ((op = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, op, entry);
		op->cb(op->arg, op->ok);
		sop_free(op);
	}
}

/* Store thread: step a statement that returns no rows, then reset it. */
static int
store_step(struct store *s, sqlite3_stmt *st)
{
	int rc;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		snprintf(s->err, sizeof s->err, "%s", sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Store thread: note a failed bind. */
static int
store_bind_failed(struct store *s, sqlite3_stmt *st, int rc)
{
	snprintf(s->err, sizeof s->err, "bind: %s", sqlite3_errstr(rc));
	sqlite3_clear_bindings(st);
	return -1;
}

/* Store thread: bind an item's columns. */
static int
store_bind_item(struct store *s, sqlite3_stmt *st, unsigned long long job,
    const struct store_item *it, int with_url)
{
	int rc;

	rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)job);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)it->n);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 3, it->state);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 4, it->path, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 5, it->part, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 6, it->validator, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 7, it->error, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 8, it->http_status);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 9, (sqlite3_int64)it->bytes);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 10, it->attempts);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 11, (sqlite3_int64)it->retry_at);
	if (rc == SQLITE_OK && with_url)
		rc = sqlite3_bind_text(st, 12, it->url, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 13, it->extra, -1, SQLITE_STATIC);
	if (rc != SQLITE_OK)
		return store_bind_failed(s, st, rc);
	return 0;
}

/* Store thread: insert a job and its items. */
static int
store_apply_add(struct store *s, struct sop *op)
{
	sqlite3_stmt *st = s->st[ST_INSERT_JOB];
	int rc;

	if (op->bad_headers) {
		log_warnx(
		    "store_add_job: job %llu: a header holds CR or LF", op->id);
		return -1;
	}
	rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)op->id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)op->time);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)op->finished);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 4, op->state);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 5, op->dir, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 6, op->name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 7, op->headers, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 8, op->options, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 9, op->queue_id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && op->owner_uid >= 0)
		rc = sqlite3_bind_int64(st, 10, (sqlite3_int64)op->owner_uid);
	else if (rc == SQLITE_OK)
		rc = sqlite3_bind_null(st, 10);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(
		    st, 11, op->owner_user, -1, SQLITE_STATIC);
	if ((rc != SQLITE_OK && store_bind_failed(s, st, rc) != 0) ||
	    store_step(s, st) != 0)
		goto fail;

	return store_apply_items(s, op);
fail:
	log_warnx("store_add_job: job %llu: %s", op->id, s->err);
	return -1;
}

/* Store thread: insert items of an existing job. */
static int
store_apply_items(struct store *s, struct sop *op)
{
	sqlite3_stmt *st = s->st[ST_INSERT_ITEM];
	size_t i;

	for (i = 0; i < op->nitems; i++) {
		if (store_bind_item(s, st, op->id, &op->items[i], 1) != 0 ||
		    store_step(s, st) != 0) {
			log_warnx("store_add_job: job %llu item %lu: %s",
			    op->id, op->items[i].n, s->err);
			return -1;
		}
	}
	return 0;
}

/* Store thread: record a URL's last fetch, then keep the newest entries. */
static int
store_apply_cache(struct store *s, struct sop *op)
{
	const struct store_cache *c = &op->cache;
	sqlite3_stmt *st = s->st[ST_PUT_CACHE];
	int rc;

	if (op->type == SOP_PRUNE_CACHE) {
		st = s->st[ST_PRUNE_CACHE];
		rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)op->keep);
		if ((rc != SQLITE_OK && store_bind_failed(s, st, rc) != 0) ||
		    store_step(s, st) != 0) {
			log_warnx("store_prune_cache: %s", s->err);
			return -1;
		}
		if (sqlite3_changes(s->db) > 0)
			log_debug("store: pruned %d cache entries",
			    sqlite3_changes(s->db));
		return 0;
	}
	rc = sqlite3_bind_text(st, 1, c->url, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, c->etag, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 3, c->last_modified, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, (sqlite3_int64)c->size);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 5, c->sha256, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 6, c->path, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 7, c->images, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 8, (sqlite3_int64)c->used);
	if ((rc != SQLITE_OK && store_bind_failed(s, st, rc) != 0) ||
	    store_step(s, st) != 0) {
		log_warnx("store_put_cache: %s", s->err);
		return -1;
	}
	return 0;
}

/* Store thread: apply one operation inside the open transaction. */
static int
store_apply(struct store *s, struct sop *op)
{
	sqlite3_stmt *st;
	const struct store_item *it;
	int rc;

	switch (op->type) {
	case SOP_ADD_JOB:
		return store_apply_add(s, op);
	case SOP_ADD_ITEMS:
		return store_apply_items(s, op);
	case SOP_PUT_CACHE:
	case SOP_PRUNE_CACHE:
		return store_apply_cache(s, op);
	case SOP_UPDATE_JOB:
		st = s->st[ST_UPDATE_JOB];
		rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)op->id);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int(st, 2, op->state);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(
			    st, 3, (sqlite3_int64)op->finished);
		if ((rc != SQLITE_OK && store_bind_failed(s, st, rc) != 0) ||
		    store_step(s, st) != 0) {
			log_warnx(
			    "store_update_job: job %llu: %s", op->id, s->err);
			return -1;
		}
		if (sqlite3_changes(s->db) == 0) {
			log_warnx("store_update_job: no job %llu", op->id);
			return -1;
		}
		return 0;
	case SOP_UPDATE_ITEM:
		st = s->st[ST_UPDATE_ITEM];
		it = &op->items[0];
		if (store_bind_item(s, st, op->id, it, 0) != 0 ||
		    store_step(s, st) != 0) {
			log_warnx("store_update_item: job %llu item %lu: %s",
			    op->id, it->n, s->err);
			return -1;
		}
		if (sqlite3_changes(s->db) == 0) {
			log_warnx("store_update_item: no item %lu in job %llu",
			    it->n, op->id);
			return -1;
		}
		return 0;
	case SOP_PRUNE:
		st = s->st[ST_PRUNE];
		rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)op->time);
		if ((rc != SQLITE_OK && store_bind_failed(s, st, rc) != 0) ||
		    store_step(s, st) != 0) {
			log_warnx("store_prune: %s", s->err);
			return -1;
		}
		log_debug("store: pruned %d jobs", sqlite3_changes(s->db));
		return 0;
	}
	return -1;
}

/* Order keys by job, then batch order. */
static int
sop_key_cmp_job(const void *a, const void *b)
{
	const struct sop_key *ka = a, *kb = b;

	if (ka->job != kb->job)
		return ka->job < kb->job ? -1 : 1;
	if (ka->seq != kb->seq)
		return ka->seq < kb->seq ? -1 : 1;
	return 0;
}

/* Order keys by item, then barriers before them, then batch order. */
static int
sop_key_cmp_item(const void *a, const void *b)
{
	const struct sop_key *ka = a, *kb = b;

	if (ka->job != kb->job)
		return ka->job < kb->job ? -1 : 1;
	if (ka->n != kb->n)
		return ka->n < kb->n ? -1 : 1;
	if (ka->barriers != kb->barriers)
		return ka->barriers < kb->barriers ? -1 : 1;
	if (ka->seq != kb->seq)
		return ka->seq < kb->seq ? -1 : 1;
	return 0;
}

/*
 * Store thread: point each item update that a later update of the same item
 * makes redundant at the last such update. Only an operation on the item's
 * job (an add or an update) or a prune can change whether the item is there,
 * so such a barrier between two updates keeps both.
 */
static void
store_coalesce(struct sop_list *batch)
{
	struct sop_key *keys, *k;
	struct sop *op;
	unsigned long long job = 0;
	size_t nkeys = 0, nupdates = 0, prunes = 0, jobops = 0, seq = 0, i, j;

	for (op = TAILQ_FIRST(batch); op != NULL; op = TAILQ_NEXT(op, entry)) {
		if (op->type == SOP_UPDATE_ITEM)
			nupdates++;
		if (op->type != SOP_PRUNE)
			nkeys++;
	}
	if (nupdates < 2)
		return;
	keys = xreallocarray(NULL, nkeys, sizeof *keys);
	nkeys = 0;
	for (op = TAILQ_FIRST(batch); op != NULL; op = TAILQ_NEXT(op, entry)) {
		seq++;
		if (op->type == SOP_PRUNE) {
			prunes++;
			continue;
		}
		k = &keys[nkeys++];
		k->job = op->id;
		k->n = op->type == SOP_UPDATE_ITEM ? op->items[0].n : 0;
		k->barriers = prunes;
		k->seq = seq;
		k->op = op;
	}

	/*
	 * Count the operations on its job before each update and keep the
	 * updates only. Both counts only grow along the batch, so two updates
	 * of a job with the same sum have no barrier between them.
	 */
	qsort(keys, nkeys, sizeof *keys, sop_key_cmp_job);
	for (i = j = 0; i < nkeys; i++) {
		if (i == 0 || keys[i].job != job) {
			job = keys[i].job;
			jobops = 0;
		}
		if (keys[i].op->type != SOP_UPDATE_ITEM) {
			jobops++;
			continue;
		}
		keys[j] = keys[i];
		keys[j++].barriers += jobops;
	}
	nkeys = j;

	/* In each run of one item between barriers, the last update stays. */
	qsort(keys, nkeys, sizeof *keys, sop_key_cmp_item);
	for (i = 0; i < nkeys; i = j) {
		for (j = i + 1; j < nkeys; j++) {
			if (keys[j].job != keys[i].job ||
			    keys[j].n != keys[i].n ||
			    keys[j].barriers != keys[i].barriers)
				break;
		}
		for (k = &keys[i]; k < &keys[j - 1]; k++)
			k->op->by = keys[j - 1].op;
	}
	free(keys);
}

/* Store thread: run a batch in one transaction; 1 if it committed. */
static int
store_run(struct store *s, struct sop_list *batch)
{
	struct sop *op;
	size_t n = 0;

	if (store_step(s, s->st[ST_BEGIN]) != 0)
		goto fail;
	for (op = TAILQ_FIRST(batch); op != NULL; op = TAILQ_NEXT(op, entry)) {
		n++;
		if (op->by != NULL)
			continue;
		if (store_step(s, s->st[ST_SAVEPOINT]) != 0)
			goto fail;
		if (store_apply(s, op) == 0) {
			op->ok = 0;
			if (store_step(s, s->st[ST_RELEASE]) != 0)
				goto fail;
			continue;
		}
		/* Some errors end the whole transaction by themselves. */
		if (sqlite3_get_autocommit(s->db))
			goto fail;
		if (store_step(s, s->st[ST_ROLLBACK_TO]) != 0 ||
		    store_step(s, s->st[ST_RELEASE]) != 0)
			goto fail;
	}
	if (store_step(s, s->st[ST_COMMIT]) != 0)
		goto fail;
	/* A replaced update stands or falls with the one that replaced it. */
	for (op = TAILQ_FIRST(batch); op != NULL; op = TAILQ_NEXT(op, entry)) {
		if (op->by != NULL)
			op->ok = op->by->ok;
	}
	return 1;

fail:
	log_warnx(
	    "store: transaction of %zu operations rolled back: %s", n, s->err);
	if (!sqlite3_get_autocommit(s->db) &&
	    store_step(s, s->st[ST_ROLLBACK]) != 0)
		log_warnx("store: rollback: %s", s->err);
	for (op = TAILQ_FIRST(batch); op != NULL; op = TAILQ_NEXT(op, entry))
		op->ok = -1;
	return 0;
}

/* Store thread: take all queued operations and commit them together. */
static void *
store_main(void *arg)
{
	struct store *s = arg;
	struct sop_list batch, done;
	struct sop *op;
	struct timespec t0, t1;
	size_t updates;
	int committed, notify;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->wake && !s->stopping)
			pthread_cond_wait(&s->cond, &s->lock);
		s->wake = 0;
		if (TAILQ_EMPTY(&s->queue)) {
			if (s->stopping)
				break;
			continue;
		}
		TAILQ_INIT(&batch);
		TAILQ_CONCAT(&batch, &s->queue, entry);
		pthread_mutex_unlock(&s->lock);

		store_coalesce(&batch);
		pthread_mutex_lock(&s->dblock);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		committed = store_run(s, &batch);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		updates = (size_t)sqlite3_stmt_status(
		    s->st[ST_UPDATE_ITEM], SQLITE_STMTSTATUS_RUN, 1);
		pthread_mutex_unlock(&s->dblock);

		TAILQ_INIT(&done);
		while ((op = TAILQ_FIRST(&batch)) != NULL) {
			TAILQ_REMOVE(&batch, op, entry);
			if (op->cb != NULL)
				TAILQ_INSERT_TAIL(&done, op, entry);
			else
				sop_free(op);
		}

		pthread_mutex_lock(&s->lock);
		if (committed) {
			s->commits++;
			store_time_add(&s->times,
			    (double)(t1.tv_sec - t0.tv_sec) +
				(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		}
		s->item_updates += updates;
		notify = !TAILQ_EMPTY(&done);
		TAILQ_CONCAT(&s->done, &done, entry);
		if (notify) {
			pthread_mutex_unlock(&s->lock);
			event_active(s->done_ev, 0, 0);
			pthread_mutex_lock(&s->lock);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}
