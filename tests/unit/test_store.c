/*
 * Unit tests for store.c: round trips, group commit, coalesced item updates,
 * pruning and locking.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "xmalloc.h"

#define BIG_ITEMS 10000
#define BURST 5000
#define MAX_JOBS 16
#define MAX_OPS 16384
#define COALESCE_ITEMS 1000
#define COALESCE_ROUNDS 8
#define LOOP_TIMEOUT_SECONDS 30

#include "check.h"

#undef CHECK_STR
#define CHECK_STR(got, want, what, id) \
	do { \
		const char *g_ = (got), *w_ = (want); \
		check_at(same(g_, w_), __FILE__, __LINE__, \
		    "%s %s: got \"%s\", want \"%s\"", what, id, \
		    g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
	} while (0)

#define CHECK_NUM(got, want, what, id) \
	do { \
		long long g_ = (long long)(got), w_ = (long long)(want); \
		check_at(g_ == w_, __FILE__, __LINE__, \
		    "%s %s: %s is %lld, want %lld", what, id, #got, g_, w_); \
	} while (0)

/* Strings made by the test, freed at the end. */
static char **pool;
static size_t npool, poolcap;

/* Format a string kept until the end of the test. */
static char *__attribute__((format(printf, 1, 2))) S(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		abort();
	va_end(ap);
	if (npool == poolcap) {
		poolcap = poolcap == 0 ? 1024 : poolcap * 2;
		pool = xreallocarray(pool, poolcap, sizeof *pool);
	}
	pool[npool++] = s;
	return s;
}

/* What the store should hold. */
struct model {
	struct store_job job;
	struct store_item *items;
	int gone; /* pruned */
	int seen; /* by the current load */
	char *headers[4];
};

static struct model jobs[MAX_JOBS];
static size_t njobs;

/* Callback bookkeeping. */
static struct event_base *base;
static int results[MAX_OPS];
static int nops; /* callbacks asked for */
static int ncalls; /* callbacks received */
static int order_ok = 1;
static int timed_out;

/* Count a callback; the arg is its sequence number. */
static void
count_cb(void *arg, int ok)
{
	int seq = (int)(intptr_t)arg;

	if (seq != ncalls)
		order_ok = 0;
	if (seq >= 0 && seq < MAX_OPS)
		results[seq] = ok;
	ncalls++;
	if (ncalls == nops)
		event_base_loopbreak(base);
}

/* The arg for the next operation's callback. */
static void *
next_op(void)
{
	if (nops >= MAX_OPS)
		abort();
	results[nops] = 1;
	return (void *)(intptr_t)nops++;
}

/* A callback that must never run. */
static void
never_cb(void *arg, int ok)
{
	int *calls = arg;

	(*calls)++;
}

/* Stop a loop that waits too long. */
static void
timeout_cb(int fd, short what, void *arg)
{
	timed_out = 1;
	event_base_loopbreak(base);
}

/* Run the loop until every callback asked for has arrived; -1 on timeout. */
static int
run_until_done(int line)
{
	struct timeval tv = { LOOP_TIMEOUT_SECONDS, 0 };
	struct event *timer;

	timer = evtimer_new(base, timeout_cb, NULL);
	evtimer_add(timer, &tv);
	timed_out = 0;
	while (ncalls < nops && !timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(timer);
	check_at(!timed_out, __FILE__, line,
	    "timed out with %d of %d callbacks", ncalls, nops);
	check_at(order_ok, __FILE__, line, "callbacks out of order");
	return timed_out ? -1 : 0;
}

/* Add a job to the model. */
static struct model *
model_job(unsigned long long id, time_t created, time_t finished, int state,
    const char *dir, const char *name, size_t nitems)
{
	struct model *m;

	if (njobs == MAX_JOBS)
		abort();
	m = &jobs[njobs++];
	m->job.id = id;
	m->job.created = created;
	m->job.finished = finished;
	m->job.state = state;
	m->job.dir = dir;
	m->job.name = name;
	m->job.headers = m->headers;
	m->items = xcalloc(nitems, sizeof *m->items);
	m->job.items = m->items;
	m->job.nitems = nitems;
	return m;
}

/* The model of a job. */
static struct model *
model_find(unsigned long long id)
{
	size_t i;

	for (i = 0; i < njobs; i++) {
		if (jobs[i].job.id == id)
			return &jobs[i];
	}
	return NULL;
}

/* Change an item in the model and queue the same change. */
static void
update_item(struct store *s, struct model *m, size_t i, int state,
    const char *path, const char *part, const char *validator,
    const char *error, long status, unsigned long long bytes, int attempts)
{
	struct store_item *it = &m->items[i];

	it->state = state;
	it->path = path;
	it->part = part;
	it->validator = validator;
	it->error = error;
	it->http_status = status;
	it->bytes = bytes;
	it->attempts = attempts;
	store_update_item(s, m->job.id, it, count_cb, next_op());
}

/* Load callback: compare a stored job with the model. */
static void
load_cb(void *arg, const struct store_job *got)
{
	unsigned long long *last = arg;
	const struct store_item *gi, *wi;
	struct model *m;
	char id[64], iid[64];
	size_t i;

	snprintf(id, sizeof id, "%llu", got->id);
	check_at(got->id > *last, __FILE__, __LINE__, "job %s after %llu", id,
	    *last);
	*last = got->id;
	m = model_find(got->id);
	check_at(m != NULL && !m->gone, __FILE__, __LINE__,
	    "job %s should not be stored", id);
	if (m == NULL || m->gone)
		return;
	CHECK(!m->seen);
	m->seen = 1;
	CHECK_NUM(got->created, m->job.created, "job", id);
	CHECK_NUM(got->finished, m->job.finished, "job", id);
	CHECK_NUM(got->state, m->job.state, "job", id);
	CHECK_STR(got->dir, m->job.dir, "job", id);
	CHECK_STR(got->name, m->job.name, "job", id);
	CHECK_NUM(got->owned, m->job.owned, "job", id);
	if (m->job.owned)
		CHECK_NUM(got->owner_uid, m->job.owner_uid, "job", id);
	CHECK_STR(got->owner_user, m->job.owner_user, "job", id);
	CHECK_NUM(got->nheaders, m->job.nheaders, "job", id);
	for (i = 0; i < got->nheaders && i < m->job.nheaders; i++)
		CHECK_STR(got->headers[i], m->job.headers[i], "header of", id);
	CHECK_NUM(got->nitems, m->job.nitems, "job", id);
	for (i = 0; i < got->nitems && i < m->job.nitems; i++) {
		gi = &got->items[i];
		wi = &m->items[i];
		snprintf(iid, sizeof iid, "%llu/%lu", got->id, wi->n);
		CHECK_NUM(gi->n, wi->n, "item", iid);
		CHECK_STR(gi->url, wi->url, "item", iid);
		CHECK_NUM(gi->state, wi->state, "item", iid);
		CHECK_STR(gi->path, wi->path, "item", iid);
		CHECK_STR(gi->part, wi->part, "item", iid);
		CHECK_STR(gi->validator, wi->validator, "item", iid);
		CHECK_STR(gi->error, wi->error, "item", iid);
		CHECK_NUM(gi->http_status, wi->http_status, "item", iid);
		CHECK_NUM(gi->bytes, wi->bytes, "item", iid);
		CHECK_NUM(gi->attempts, wi->attempts, "item", iid);
		CHECK_NUM(gi->retry_at, wi->retry_at, "item", iid);
	}
}

/* Open the store, load it and check it matches the model exactly. */
static struct store *
reopen_and_check(const char *dir, int line)
{
	struct store *s;
	unsigned long long last = 0;
	char *cause = NULL;
	size_t i;

	s = store_open(base, dir, &cause);
	check_at(
	    s != NULL, __FILE__, line, "store_open: %s", cause ? cause : "?");
	free(cause);
	if (s == NULL)
		return NULL;
	for (i = 0; i < njobs; i++)
		jobs[i].seen = 0;
	check_at(store_load(s, load_cb, &last) == 0, __FILE__, line,
	    "store_load failed");
	for (i = 0; i < njobs; i++) {
		check_at(jobs[i].gone || jobs[i].seen, __FILE__, line,
		    "job %llu not loaded", jobs[i].job.id);
	}
	return s;
}

/* Write calls and bytes written by this process so far (/proc/self/io). */
static void
write_stats(unsigned long long *calls, unsigned long long *bytes)
{
	char line[128];
	FILE *f;

	*calls = *bytes = 0;
	if ((f = fopen("/proc/self/io", "r")) == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "syscw: ", 7) == 0)
			*calls = strtoull(line + 7, NULL, 10);
		else if (strncmp(line, "wchar: ", 7) == 0)
			*bytes = strtoull(line + 7, NULL, 10);
	}
	fclose(f);
}

/* Read one number from the database directly. */
static long long
db_count(const char *dbpath, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long n = -1;

	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL) ==
		SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return n;
}

/* Open and close: the store's statements and thread alone. */
static void
test_open_errors(const char *tmp)
{
	struct store *s;
	char *cause = NULL, *dir;

	store_close(NULL);
	dir = S("%s/no/such/parent", tmp);
	s = store_open(base, dir, &cause);
	CHECK(s == NULL);
	CHECK(cause != NULL && strstr(cause, "mkdir") != NULL);
	free(cause);
}

/*
 * Make every write to a file past its first byte fail (EFBIG), or go through
 * again. Meanwhile messages to a stderr that is a file are lost too.
 */
static int
failing_writes(int on)
{
	static struct rlimit saved;
	struct rlimit rl;

	if (on) {
		if (getrlimit(RLIMIT_FSIZE, &saved) == -1) {
			perror("getrlimit");
			return -1;
		}
		rl = saved;
		rl.rlim_cur = 1;
	} else
		rl = saved;
	if (setrlimit(RLIMIT_FSIZE, &rl) == -1) {
		perror("setrlimit");
		return -1;
	}
	return 0;
}

/* An item's values for one round of test_coalesce. */
static void
coalesce_item(struct store_item *it, size_t i, int round)
{
	it->state = round % 2 ? STORE_ITEM_COMMITTING : STORE_ITEM_ACTIVE;
	it->path = round % 2 ? S("c/%zu.png", i) : NULL;
	it->part = S("c/%zu.png.%d.part", i, round);
	it->validator = round % 3 ? S("\"v%d\"", round) : NULL;
	it->error = NULL;
	it->http_status = 200 + round;
	it->bytes = (unsigned long long)round * 100000 + i;
	it->attempts = round;
	it->retry_at = round == 4 ? 4102444800LL + (long long)i : 0;
}

/*
 * Coalescing: rounds of updates of the same items of job 7 in one batch,
 * and jobs added, updated and pruned between them. Only the last update of
 * an item between barriers (an operation on its job, a prune) runs; every
 * callback reports what running them all would have.
 */
static void
test_coalesce(struct store *s)
{
	struct model *m = model_find(7), *other = model_find(9);
	struct store_item it;
	struct store_job added;
	size_t i, runs, want_runs = 0;
	int first, bad[8], nbad = 0, r, k, j, want, notfailed = 0, ok;

	runs = store_item_updates(s);
	first = nops;

	/* An update before its job is added fails; the add is a barrier. */
	memset(&it, 0, sizeof it);
	it.url = "http://c/21";
	added = (struct store_job){ .id = 21,
		.created = 50,
		.finished = 100,
		.items = &it,
		.nitems = 1 };
	bad[nbad++] = nops;
	store_update_item(s, 21, &it, count_cb, next_op());
	store_add_job(s, &added, count_cb, next_op());
	want_runs++;

	for (r = 0; r < COALESCE_ROUNDS; r++) {
		for (i = 0; i < COALESCE_ITEMS; i++) {
			coalesce_item(&m->items[i], i, r);
			/* The last update of some items has no callback. */
			if (r == COALESCE_ROUNDS - 1 && i % 2)
				store_update_item(
				    s, 7, &m->items[i], NULL, NULL);
			else
				store_update_item(
				    s, 7, &m->items[i], count_cb, next_op());
		}
		switch (r) {
		case 0:
			/* Two updates of an unknown item: one runs, both fail. */
			bad[nbad++] = nops;
			store_update_item(s, 99, &it, count_cb, next_op());
			bad[nbad++] = nops;
			store_update_item(s, 99, &it, count_cb, next_op());
			want_runs++;
			break;
		case 1:
			it.state = STORE_ITEM_ACTIVE;
			store_update_item(s, 21, &it, count_cb, next_op());
			/* Another job's update is no barrier for job 7. */
			store_update_job(s, other->job.id, other->job.state,
			    other->job.finished, count_cb, next_op());
			break;
		case 2:
			it.state = STORE_ITEM_COMMITTING;
			store_update_item(s, 21, &it, count_cb, next_op());
			want_runs++;
			store_update_job(s, 7, m->job.state, m->job.finished,
			    count_cb, next_op());
			want_runs += COALESCE_ITEMS;
			added.id = 22;
			store_add_job(s, &added, count_cb, next_op());
			store_update_item(s, 22, &it, count_cb, next_op());
			want_runs++;
			break;
		case 5:
			/* Removes jobs 21 and 22: a barrier for every item. */
			store_prune(s, 150, count_cb, next_op());
			want_runs += COALESCE_ITEMS;
			bad[nbad++] = nops;
			store_update_item(s, 22, &it, count_cb, next_op());
			want_runs++;
			break;
		}
	}
	want_runs += COALESCE_ITEMS;
	model_job(21, 50, 100, 0, NULL, NULL, 0)->gone = 1;
	model_job(22, 50, 100, 0, NULL, NULL, 0)->gone = 1;

	fprintf(stderr, "test_store: three warnings expected below\n");
	if (run_until_done(__LINE__) != 0)
		return;
	for (k = first; k < nops; k++) {
		want = 0;
		for (j = 0; j < nbad; j++) {
			if (bad[j] == k)
				want = -1;
		}
		check_at(results[k] == want, __FILE__, __LINE__,
		    "op %d: ok %d, want %d", k, results[k], want);
	}
	runs = store_item_updates(s) - runs;
	check_at(runs == want_runs, __FILE__, __LINE__,
	    "ran %zu UPDATE statements, want %zu", runs, want_runs);
	printf("test_store: %d rounds of updates of %d items and a few more "
	       "in one batch ran %zu UPDATE statements\n",
	    COALESCE_ROUNDS, COALESCE_ITEMS, runs);

	/*
	 * A batch that fails as a whole: writes past RLIMIT_FSIZE fail, so the
	 * commit does. The updates it did not run report the failure too, and
	 * the model keeps what was committed before.
	 */
	first = nops;
	runs = store_item_updates(s);
	for (r = 0; r < 3; r++) {
		for (i = 0; i < 10; i++) {
			it = m->items[i];
			it.error = S("rolled back %d", r);
			store_update_item(s, 7, &it, count_cb, next_op());
		}
	}
	fprintf(stderr, "test_store: a failed commit expected below\n");
	if (failing_writes(1) != 0)
		return;
	ok = run_until_done(__LINE__);
	if (failing_writes(0) != 0 || ok != 0)
		return;
	for (k = first; k < nops; k++) {
		if (results[k] != -1)
			notfailed++;
	}
	check_at(notfailed == 0, __FILE__, __LINE__,
	    "%d of %d operations of a failed batch not reported failed",
	    notfailed, nops - first);
	runs = store_item_updates(s) - runs;
	check_at(runs == 10, __FILE__, __LINE__,
	    "30 updates of 10 items ran %zu UPDATE statements", runs);
}

static size_t ncached;
static char cached_sha[80];

/* store_load_cache: count the entries and keep the one of cache/3. */
static void
cache_cb(void *arg, const struct store_cache *c)
{
	ncached++;
	if (strcmp(c->url, "http://h/3.png") == 0)
		snprintf(cached_sha, sizeof cached_sha, "%s",
		    c->sha256 != NULL ? c->sha256 : "(null)");
}

/* New items of job 1 with their extra JSON; cache entries and a prune. */
static void
test_items_and_cache(struct store *s, const char *dbpath)
{
	struct store_item add[2];
	struct store_cache c;
	char url[64], sha[80];
	int i;

	memset(add, 0, sizeof add);
	add[0].n = 1000;
	add[0].url = "http://h/found-1.png";
	add[0].extra = "{\"page\":\"http://h/\"}";
	add[1].n = 1001;
	add[1].url = "http://h/found-2.png";
	store_add_items(s, 1, add, 2, count_cb, next_op());
	for (i = 0; i < 5; i++) {
		memset(&c, 0, sizeof c);
		snprintf(url, sizeof url, "http://h/%d.png", i);
		snprintf(sha, sizeof sha, "%064d", i);
		c.url = url;
		c.etag = "\"e\"";
		c.size = 10 + i;
		c.sha256 = sha;
		c.path = "h/x.png";
		c.used = 1000 + i;
		store_put_cache(s, &c);
	}
	store_prune_cache(s, 3);
	store_update_job(s, 1, 1, 0, count_cb, next_op());
	if (run_until_done(__LINE__) != 0)
		return;
	CHECK(results[nops - 2] == 0);
	CHECK(db_count(dbpath, "SELECT count(*) FROM items WHERE job = 1 AND "
			       "n >= 1000") == 2);
	CHECK(db_count(dbpath, "SELECT count(*) FROM items WHERE n = 1000 AND "
			       "extra LIKE '%page%'") == 1);
	/* The three most recently used stay. */
	CHECK(db_count(dbpath, "SELECT count(*) FROM cache") == 3);
	CHECK(db_count(dbpath, "SELECT min(used) FROM cache") == 1002);
	ncached = 0;
	CHECK(store_load_cache(s, cache_cb, NULL) == 0);
	CHECK(ncached == 3);
	CHECK(strcmp(cached_sha, "0000000000000000000000000000000000000000000"
				 "000000000000000000003") == 0);
	/* Keep the model in step: job 1 now has the two new items. */
	db_count(dbpath, "DELETE FROM items WHERE n >= 1000");
}

int
main(void)
{
	struct store *s = NULL, *s2;
	struct model *m;
	struct store_job dup, badh, half;
	struct store_item halfitems[3];
	struct stat sb;
	char tmpl[] = "/tmp/test_store.XXXXXX";
	const char *tmp, *dir, *dbpath;
	char *cause = NULL, *badheaders[2];
	unsigned long long calls0, bytes0, calls1, bytes1;
	size_t i, commits;
	int never = 0, first;

	log_init(LOG_LEVEL_WARN, "test_store");
	signal(SIGXFSZ, SIG_IGN);
	if (evthread_use_pthreads() == -1 ||
	    (base = event_base_new()) == NULL) {
		fprintf(stderr, "cannot set up libevent\n");
		return 1;
	}
	if ((tmp = mkdtemp(tmpl)) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	dir = S("%s/state", tmp);
	dbpath = S("%s/imgfetchd.db", dir);

	test_open_errors(tmp);

	/* First open creates the directory, private. */
	s = store_open(base, dir, &cause);
	check_at(s != NULL, __FILE__, __LINE__, "store_open: %s",
	    cause ? cause : "?");
	free(cause);
	cause = NULL;
	if (s == NULL)
		goto out;
	CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) &&
	    (sb.st_mode & 0777) == 0700);

	/* A second daemon on the same directory is refused. */
	s2 = store_open(base, dir, &cause);
	CHECK(s2 == NULL);
	check_at(cause != NULL &&
		strstr(cause, "in use by another imgfetchd") != NULL,
	    __FILE__, __LINE__, "cause: %s", cause ? cause : "(null)");
	free(cause);
	cause = NULL;
	store_close(s2);

	/* Jobs: strings, NULLs, empty strings, gaps in n, a big one. */
	m = model_job(1, 1000, 0, 0, "downloads/a", "first job", 3);
	m->headers[0] = "X-Test: 1";
	m->headers[1] = "Authorization: Bearer abc def";
	m->job.nheaders = 2;
	m->job.owned = 1;
	m->job.owner_uid = 1000;
	m->job.owner_user = "alice";
	m->items[0] =
	    (struct store_item){ .n = 0, .url = "https://example.com/a.png" };
	m->items[1] = (struct store_item){ .n = 1,
		.url = "https://example.com/b.jpg",
		.state = STORE_ITEM_ACTIVE,
		.part = "a/b.jpg.part",
		.validator = "\"etag-1\"",
		.bytes = 100,
		.attempts = 1 };
	m->items[2] = (struct store_item){ .n = 5, .url = NULL, .error = "" };
	store_add_job(s, &m->job, count_cb, next_op());

	m = model_job(7, 2000, 0, 1, NULL, NULL, BIG_ITEMS);
	/* Root's job: uid 0 is an owner, not "none". */
	m->job.owned = 1;
	m->job.owner_uid = 0;
	m->job.owner_user = "root";
	for (i = 0; i < BIG_ITEMS; i++) {
		m->items[i].n = i;
		m->items[i].url =
		    S("http://h%zu.example/img/%zu.png", i % 7, i);
	}
	store_add_job(s, &m->job, count_cb, next_op());

	m = model_job(8, 100, 500, 2, "old", "pruned", 2);
	m->items[0] = (struct store_item){ .n = 0,
		.url = "http://x/0",
		.state = STORE_ITEM_DONE,
		.path = "old/0" };
	m->items[1] = (struct store_item){ .n = 1,
		.url = "http://x/1",
		.state = STORE_ITEM_FAILED,
		.error = "HTTP 500" };
	store_add_job(s, &m->job, count_cb, next_op());
	m = model_job(9, 100, 2000, 2, "recent", NULL, 1);
	m->items[0] = (struct store_item){ .n = 0, .url = "http://y/0" };
	store_add_job(s, &m->job, count_cb, next_op());
	m = model_job(10, 100, 1499, 4, NULL, "pruned, no items", 0);
	store_add_job(s, &m->job, count_cb, next_op());
	m = model_job(11, 100, 1500, 3, NULL, "finished at the limit", 0);
	store_add_job(s, &m->job, NULL, NULL);

	/* Updates in the same pass as the inserts. */
	m = model_find(1);
	update_item(s, m, 0, STORE_ITEM_DONE, "downloads/a/a.png", NULL,
	    "W/\"x\"", NULL, 200, 123456789012ULL, 2);
	update_item(s, m, 1, STORE_ITEM_FAILED, NULL, NULL, NULL, "HTTP 404",
	    404, 0, 3);
	m->job.state = 3;
	m->job.finished = 1600;
	store_update_job(s, 1, 3, 1600, count_cb, next_op());
	m = model_find(7);
	for (i = 0; i < BIG_ITEMS; i += 1000)
		update_item(s, m, i, STORE_ITEM_DONE, S("h/%zu.png", i), NULL,
		    NULL, NULL, 200, i * 10, 1);
	m->job.state = 2;
	store_update_job(s, 7, 2, 0, count_cb, next_op());
	m = model_find(9);
	m->items[0].state = STORE_ITEM_CANCELLED;
	store_update_item(s, 9, &m->items[0], NULL, NULL);

	/* Operations that fail alone, without taking the batch with them. */
	first = nops;
	store_update_item(s, 99, &m->items[0], count_cb, next_op());
	store_update_job(s, 12345, 1, 0, count_cb, next_op());
	dup = model_find(1)->job;
	dup.name = "duplicate id";
	store_add_job(s, &dup, count_cb, next_op());
	halfitems[0] = (struct store_item){ .n = 0, .url = "http://z/0" };
	halfitems[1] = (struct store_item){ .n = 1, .url = "http://z/1" };
	halfitems[2] = (struct store_item){ .n = 0, .url = "http://z/dup" };
	half = (struct store_job){
		.id = 12, .created = 5, .items = halfitems, .nitems = 3
	};
	store_add_job(s, &half, count_cb, next_op());
	badheaders[0] = "X-Ok: 1";
	badheaders[1] = "X-Bad: a\nInjected: b";
	badh = (struct store_job){
		.id = 13, .created = 5, .headers = badheaders, .nheaders = 2
	};
	store_add_job(s, &badh, count_cb, next_op());
	m = model_find(1);
	m->items[2].attempts = 7;
	m->items[2].retry_at = 4102444800LL; /* past 32 bits of seconds */
	store_update_item(s, 1, &m->items[2], count_cb, next_op());

	CHECK(ncalls == 0); /* never from inside a store_* call */
	fprintf(stderr, "test_store: five warnings expected below\n");
	if (run_until_done(__LINE__) != 0)
		goto out;
	CHECK(ncalls == nops);
	for (i = 0; i < (size_t)nops; i++) {
		if ((int)i >= first && (int)i < first + 5)
			check_at(results[i] == -1, __FILE__, __LINE__,
			    "op %zu: ok %d, want -1", i, results[i]);
		else
			check_at(results[i] == 0, __FILE__, __LINE__,
			    "op %zu: ok %d, want 0", i, results[i]);
	}

	/* Group commit: a burst of updates costs a handful of commits. */
	write_stats(&calls0, &bytes0);
	commits = store_commits(s);
	m = model_find(7);
	first = nops;
	for (i = 0; i < BURST; i++)
		update_item(s, m, i, STORE_ITEM_ACTIVE, NULL,
		    S("h/%zu.png.part", i), i % 2 ? "\"v\"" : NULL, NULL, 0, i,
		    (int)(i % 5));
	if (run_until_done(__LINE__) != 0)
		goto out;
	for (i = (size_t)first; i < (size_t)nops; i++)
		check_at(results[i] == 0, __FILE__, __LINE__,
		    "op %zu: ok %d, want 0", i, results[i]);
	commits = store_commits(s) - commits;
	check_at(commits >= 1 && commits < 100, __FILE__, __LINE__,
	    "%d updates took %zu commits", BURST, commits);
	/*
	 * sqlvfs: a commit reaches the WAL in one write (or a few of up to
	 * 124 KiB), where SQLite alone writes each page and its frame header
	 * apart, 2 KiB a write on average.
	 */
	write_stats(&calls1, &bytes1);
	calls1 -= calls0;
	bytes1 -= bytes0;
	check_at(calls1 > 0 && bytes1 / calls1 >= 16384, __FILE__, __LINE__,
	    "%llu bytes in %llu writes", bytes1, calls1);
	printf("test_store: %d updates in %zu commit(s), %llu bytes in %llu "
	       "write(s)\n",
	    BURST, commits, bytes1, calls1);

	test_coalesce(s);

	/* Close commits what is queued; its callbacks are dropped. */
	for (i = BURST; i < BURST + 10; i++) {
		m->items[i].state = STORE_ITEM_DONE;
		m->items[i].path = S("closing/%zu", i);
		store_update_item(s, 7, &m->items[i], never_cb, &never);
	}
	store_close(s);
	s = NULL;
	CHECK(never == 0);

	/* Everything round-trips. */
	s = reopen_and_check(dir, __LINE__);
	if (s == NULL)
		goto out;

	/* Prune: strictly before the limit, ended jobs only. */
	store_prune(s, 1500, count_cb, next_op());
	if (run_until_done(__LINE__) != 0)
		goto out;
	CHECK(results[nops - 1] == 0);
	model_find(8)->gone = 1;
	model_find(10)->gone = 1;
	store_close(s);
	s = NULL;
	CHECK(db_count(dbpath, "SELECT count(*) FROM jobs") == 4);
	CHECK(db_count(dbpath,
		  "SELECT count(*) FROM items WHERE job IN (8, 10)") == 0);
	CHECK(db_count(dbpath, "SELECT count(*) FROM items") ==
	    3 + BIG_ITEMS + 1);
	s = reopen_and_check(dir, __LINE__);
	store_close(s);
	s = NULL;

	/* A version 4 database (no owners) is upgraded: jobs have none. */
	CHECK(db_count(dbpath, "PRAGMA user_version") == 5);
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN owner_uid");
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN owner_user");
	db_count(dbpath, "PRAGMA user_version = 4");
	for (i = 0; i < njobs; i++) {
		jobs[i].job.owned = 0;
		jobs[i].job.owner_uid = 0;
		jobs[i].job.owner_user = NULL;
	}
	s = reopen_and_check(dir, __LINE__);
	store_close(s);
	s = NULL;
	CHECK(db_count(dbpath, "PRAGMA user_version") == 5);

	/* A version 3 database (no queue_id, no owners) is upgraded. */
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN queue_id");
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN owner_uid");
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN owner_user");
	db_count(dbpath, "PRAGMA user_version = 3");
	s = reopen_and_check(dir, __LINE__);
	store_close(s);
	s = NULL;
	CHECK(db_count(dbpath, "PRAGMA user_version") == 5);
	CHECK(db_count(dbpath,
		  "SELECT count(*) FROM jobs WHERE queue_id IS NULL") == 4);

	/* A version 2 database (no options, extra, cache) is upgraded. */
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN queue_id");
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN owner_uid");
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN owner_user");
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN options");
	db_count(dbpath, "ALTER TABLE items DROP COLUMN extra");
	db_count(dbpath, "DROP TABLE cache");
	db_count(dbpath, "PRAGMA user_version = 2");
	s = reopen_and_check(dir, __LINE__);
	store_close(s);
	s = NULL;
	CHECK(db_count(dbpath, "PRAGMA user_version") == 5);

	/* A version 1 database (no retry_at either) is upgraded in place. */
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN queue_id");
	db_count(dbpath, "ALTER TABLE items DROP COLUMN retry_at");
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN owner_uid");
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN owner_user");
	db_count(dbpath, "ALTER TABLE jobs DROP COLUMN options");
	db_count(dbpath, "ALTER TABLE items DROP COLUMN extra");
	db_count(dbpath, "DROP TABLE cache");
	db_count(dbpath, "PRAGMA user_version = 1");
	model_find(1)->items[2].retry_at = 0;
	s = reopen_and_check(dir, __LINE__);
	if (s == NULL)
		goto out;
	CHECK(db_count(dbpath, "PRAGMA user_version") == 5);

	/* Items added to a stored job, and the cache, round-trip. */
	test_items_and_cache(s, dbpath);
	store_close(s);
	s = NULL;

	/* A database from a newer imgfetchd is refused. */
	db_count(dbpath, "PRAGMA user_version = 6");
	s = store_open(base, dir, &cause);
	CHECK(s == NULL);
	CHECK(cause != NULL && strstr(cause, "schema version 6") != NULL);
	free(cause);

out:
	store_close(s);
	unlink(dbpath);
	unlink(S("%s-wal", dbpath));
	unlink(S("%s-shm", dbpath));
	unlink(S("%s/imgfetchd.lock", dir));
	rmdir(dir);
	rmdir(tmp);
	for (i = 0; i < njobs; i++)
		free(jobs[i].items);
	for (i = 0; i < npool; i++)
		free(pool[i]);
	free(pool);
	event_base_free(base);
	libevent_global_shutdown();
	return check_summary("test_store");
}
