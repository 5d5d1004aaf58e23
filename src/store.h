/* The job store: jobs and item states in SQLite (WAL), on its own thread. */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <time.h>

struct event_base;
struct store;

/* Item states as stored; the same numbers as job.c's. */
enum store_item_state {
	STORE_ITEM_QUEUED,
	STORE_ITEM_ACTIVE,
	STORE_ITEM_DONE,
	STORE_ITEM_FAILED,
	STORE_ITEM_CANCELLED,
	STORE_ITEM_COMMITTING
};

/* One item's record. Strings may be NULL. */
struct store_item {
	unsigned long n;
	const char *url;
	int state; /* enum store_item_state */
	const char *path; /* final relative path (done, committing) */
	const char *part; /* relative path of the .part file */
	const char *validator; /* ETag or Last-Modified for If-Range */
	const char *error;
	long http_status;
	unsigned long long bytes;
	int attempts;
	long long retry_at; /* a waiting retry's time (epoch s), or 0 */
	const char *extra; /* JSON object of the rarer fields, or NULL */
};

/* One job's record. */
struct store_job {
	unsigned long long id;
	time_t created;
	time_t finished; /* 0 while not ended */
	int state; /* job.c's job state number */
	const char *dir;
	const char *name;
	char *const *headers; /* "Name: value" */
	size_t nheaders;
	const char *options; /* JSON object of the job's settings, or NULL */
	const char *queue_id; /* the shared queue's stream entry, or NULL */
	int owned; /* owner_uid and owner_user are known (0: stored before) */
	unsigned long owner_uid; /* the submitter's uid */
	const char *owner_user; /* its user name then, or NULL */
	const struct store_item *items;
	size_t nitems;
};

/* What the last successful fetch of a URL gave. Strings may be NULL. */
struct store_cache {
	const char *url;
	const char *etag;
	const char *last_modified;
	long long size; /* body bytes, -1 if unknown */
	const char *sha256; /* hex */
	const char *path; /* where it was saved, relative to the root */
	const char *images; /* a page's image URLs, newline-joined */
	time_t used; /* last fetched or confirmed unchanged */
};

/* Called on the loop thread once an operation committed (ok = 0) or failed
 * (-1). */
typedef void (*store_cb)(void *arg, int ok);
/* Called for each stored job by store_load. */
typedef void (*store_load_cb)(void *arg, const struct store_job *);

/*
 * Open (creating) DIR/imgfetchd.db in WAL mode and start the store thread.
 * Returns NULL with *cause set.
 */
struct store *store_open(struct event_base *, const char *dir, char **cause);
/* Flush every queued operation, stop the thread, close the database. */
void store_close(struct store *);

/* Read every job with its items, oldest first (start-up, before the loop). */
int store_load(struct store *, store_load_cb, void *arg);

/*
 * Queue operations. All data is copied at the call. Operations are applied
 * in call order; the store thread groups whatever is queued into one
 * transaction, so many small updates cost one commit. cb (may be NULL) is
 * called on the loop thread once the operation's transaction committed.
 * An item update that a later one of the same item in the same transaction
 * replaces, with no other operation on its job and no prune in between, is
 * not run: its callback gets the result of the one that replaced it.
 */
void store_add_job(
    struct store *, const struct store_job *, store_cb, void *arg);
void store_update_job(struct store *, unsigned long long id, int state,
    time_t finished, store_cb, void *arg);
void store_update_item(struct store *, unsigned long long job,
    const struct store_item *, store_cb, void *arg);
/* Add items (with their URLs) to a stored job. */
void store_add_items(struct store *, unsigned long long job,
    const struct store_item *, size_t nitems, store_cb, void *arg);
/* Record a URL's cache entry, replacing an earlier one. */
void store_put_cache(struct store *, const struct store_cache *);
/* Keep only the keep most recently used cache entries. */
void store_prune_cache(struct store *, size_t keep);
typedef void (*store_cache_cb)(void *arg, const struct store_cache *);
/* Read every cache entry, least recently used first (start-up only). */
int store_load_cache(struct store *, store_cache_cb, void *arg);

/* Delete ended jobs that finished before the given time. */
void store_prune(struct store *, time_t before, store_cb, void *arg);

/* Statistic: transactions the store thread has committed so far. */
size_t store_commits(struct store *);
/* Statistic: how long each committed transaction took. */
#define STORE_TIME_NBUCKETS 12
extern const double store_time_bounds[STORE_TIME_NBUCKETS];
struct store_times {
	/* per bucket (not cumulative); the last is above every bound */
	unsigned long long buckets[STORE_TIME_NBUCKETS + 1];
	unsigned long long count;
	double sum; /* seconds */
};
void store_commit_times(struct store *, struct store_times *);
/* Statistic: item UPDATE statements the store thread has run so far. */
size_t store_item_updates(struct store *);

#endif
