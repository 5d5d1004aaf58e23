/*
 * What job.c, job-page.c, job-restore.c and job-json.c share: the job,
 * item and registry structs and the functions one of them calls in
 * another. Included by those four files only; everything else goes
 * through job.h.
 */
#ifndef JOB_PRIVATE_H
#define JOB_PRIVATE_H

#include <time.h>

#include <event2/util.h>

#include "compat.h"
#include "job.h"

struct cache;
struct event;
struct fetch_result;
struct hostrate;
struct hostrate_wait;
struct parse;
struct transfer;
struct wfile;

enum item_state {
	ITEM_QUEUED,
	ITEM_ACTIVE,
	ITEM_DONE,
	ITEM_FAILED,
	ITEM_CANCELLED,
	ITEM_NSTATES
};

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE,
	JOB_FAILED,
	JOB_CANCELLED,
	JOB_NSTATES
};

/* The names of the job states, in job objects and in the log. */
extern const char *const job_state_names[];

struct item {
	struct job *job;
	unsigned long n;
	char *url;
	enum item_state state;
	char *path; /* final path, once chosen */
	char *part; /* a .part kept for a resume */
	unsigned long long part_size;
	char *validator; /* for If-Range with that .part */
	char *error;
	long http_status;
	unsigned long long bytes;
	long long size;
	int attempts;
	int skipped;
	int runnable; /* on the job's run queue */
	int transferring; /* holds a transfer slot */
	int committing; /* restart: its body was complete in the .part */
	unsigned long long commit_size; /* restart: the body's whole size */
	int probing_final; /* restart: looking for its final file */
	struct transfer *transfer;
	struct wfile *probe; /* restart: looking at a kept file */
	TAILQ_ENTRY(item) inflight_entry; /* on job->inflight with a transfer */
	struct event *retry_ev; /* waiting for a retry */
	char *host; /* hostrate_key of the URL, once host_rate needed it */
	struct hostrate_wait *rate_wait; /* parked until its host may start */
	int rate_granted; /* its host's start is taken: it may run */
	time_t retry_at;
	TAILQ_ENTRY(item) run_entry;

	/* Scraping, caching and dedup. */
	int page; /* a page to scrape, not an image */
	int next; /* a page reached through rel="next" */
	unsigned long from; /* n + 1 of the page it was found on, or 0 */
	unsigned long images; /* a page: images it yielded */
	int unchanged; /* 304: the earlier file stands */
	char *duplicate_of; /* dropped as a copy of this kept file */
	char *sha256; /* of the body, hex */
	struct wfile *task; /* a page being parsed */
	struct parse *parse;
	int dedup_wait; /* 1: parked behind a file with its digest; 2: on
	                   jobs->hashing, the first with its digest */
	char *ctype; /* Content-Type, kept for a name from the digest */
	TAILQ_ENTRY(item) hash_entry; /* on jobs->hashing or ->hash_waiting */
};
TAILQ_HEAD(item_queue, item);

/* A job's watches; struct job_watch itself is job.c's own. */
TAILQ_HEAD(watch_list, job_watch);

struct job {
	struct jobs *jobs;
	unsigned long long id;
	enum job_state state;
	time_t created;
	time_t finished;
	char *dir;
	char *name;
	char **headers;
	size_t nheaders;
	/* Network options of the job (request.h); -1 or NULL: the config's. */
	long timeout;
	int retries;
	char *proxy;
	char *no_proxy;
	char *user_agent;
	int owned; /* owner_uid and owner_user are known */
	unsigned long owner_uid;
	char *owner_user; /* NULL if the uid had no name */
	struct item **items;
	size_t nitems;
	size_t capitems;
	struct item **slabs; /* the blocks items were allocated in */
	size_t nslabs;
	int if_changed;
	int dedup;
	int same_host;
	int follow_next; /* pages still to follow through rel="next" */
	long long max_page_size;
	int hash_name; /* the name template uses {sha256} */
	void *seen; /* tsearch tree of the job's URLs, once it scrapes */
	size_t nunchanged; /* images done unchanged (304) */
	size_t nduplicates; /* images done as duplicates */
	struct item_queue runq;
	struct item_queue inflight; /* items with a transfer */
	size_t count[ITEM_NSTATES];
	unsigned long long bytes_done;
	unsigned long long progress_bytes; /* in the last progress event */
	int stored; /* accepted by the store: its files may reach the disk */
	int cancel_requested;
	int in_ring;
	jobs_accept_cb accept_cb;
	void *accept_arg;
	char *queue_id; /* the shared queue's stream entry, or NULL */
	int skip_existing; /* on_exists "skip" (a claimed or rerun entry) */
	struct watch_list watches;
	TAILQ_ENTRY(job) ring_entry;
	TAILQ_ENTRY(job) watched_entry; /* on jobs->watched while watched */
};
TAILQ_HEAD(job_ring, job);

struct jobs {
	struct event_base *base;
	struct fetcher *fetcher;
	struct writer *writer;
	struct store *store;
	const struct config *cfg;
	struct job **all; /* by id - 1; NULL once pruned */
	size_t njobs;
	size_t nlive;
	struct job_ring ring;
	struct hostrate *rate; /* host_rate */
	size_t count[ITEM_NSTATES];
	size_t transfers; /* items holding a transfer slot */
	unsigned long long bytes;
	struct event *tick;
	struct event *prune_ev;
	unsigned long ticks;
	size_t nwatches;
	struct job_ring watched; /* jobs with watches: the tick's work */
	time_t started;
	int stopping;
	struct cache *cache;
	struct item_queue hashing; /* dedup items between PREPARED and DONE */
	struct item_queue hash_waiting; /* ... and those parked behind them */
	jobs_end_cb end_cb; /* the shared queue hears of every job's end */
	void *end_arg;
};

/* job.c: the registry, items' lifecycle and scheduling. */
unsigned long long job_bytes(struct job *);
/* Wall-clock milliseconds, for retry times kept in the store. */
long long job_now_ms(void);
struct job *job_new(struct jobs *, unsigned long long id, size_t nitems);
struct item *job_grow(struct job *, size_t);
void job_set_options(struct job *, int if_changed, int dedup, int same_host,
    int follow_next, long long max_page_size);
void job_update(struct job *);
void item_set_state(struct item *, enum item_state);
void item_emit(struct item *);
/* state: a STORE_ITEM_* (STORE_ITEM_COMMITTING too). */
void item_store(struct item *, int state);
void item_make_runnable(struct item *);
void item_drop_part(struct item *);
/* The retry timer's callback; arg is the item. */
void item_retry_cb(evutil_socket_t, short, void *);
void jobs_pump(struct jobs *);

/* job-page.c: pages, scraped for images. */
/* Note a URL (kept, not copied) as the job's; 0 if it was already. */
int job_seen(struct job *, char *);
void item_page_parse(struct item *, const struct fetch_result *);
void item_page_unchanged(struct item *);
void item_page_is_image(struct item *);
void item_page_cancel(struct item *);

/* job-json.c: JSON for the API and for the store. */
json_t *item_json(struct item *);
int item_listed(const struct item *, enum job_items);
/* The rarer item fields for the store (caller frees), or NULL. */
char *item_extra(struct item *);
void item_extra_load(struct item *, const char *extra);
char *job_options_json(struct job *);
void job_options_load(struct job *, const char *options);

#endif
