/*
 * Jobs and items. A job is a batch of URLs; each URL is an item with its
 * own state. Items of all jobs share max_transfers slots: jobs with
 * runnable items sit in a round-robin ring and each free slot goes to the
 * next job in the ring, so a small job submitted after a huge one starts
 * at once. With host_rate, an item whose host has had its start of the
 * moment is parked with hostrate.c instead, holding no slot and keeping
 * no other host's items waiting, and comes back to the front of its job's
 * queue when its host's next start is due (every attempt counts). A transient failure puts the item back after a backoff timer,
 * holding no slot while it waits. Every job and every item's end is kept
 * in the store, so a restart carries on where the daemon stopped.
 *
 * A job may also name pages: a page is an item too, fetched into memory
 * through the same slots, parsed for images on a writer thread (html.c),
 * and the images it yields become new items of the job, with the page as
 * their Referer. With if_changed, items whose URL the cache knows are
 * fetched conditionally, and a 304 ends them unchanged; with dedup, a body
 * whose SHA-256 is already kept under the download root is dropped.
 */
#include <sys/time.h>

#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "cache.h"
#include "compat.h"
#include "config.h"
#include "defs.h"
#include "fetch.h"
#include "html.h"
#include "hostrate.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "path.h"
#include "request.h"
#include "store.h"
#include "writer.h"
#include "xmalloc.h"

enum item_state {
	ITEM_QUEUED,
	ITEM_ACTIVE,
	ITEM_DONE,
	ITEM_FAILED,
	ITEM_CANCELLED,
	ITEM_NSTATES
};
static const char *const item_state_names[] = { "queued", "active", "done",
	"failed", "cancelled" };

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE,
	JOB_FAILED,
	JOB_CANCELLED,
	JOB_NSTATES
};
static const char *const job_state_names[] = { "queued", "running", "done",
	"failed", "cancelled" };

/* Seconds between prunes of old finished jobs. */
#define PRUNE_INTERVAL 3600

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

struct job_watch {
	struct job *job;
	enum job_items items; /* which item events it wants */
	job_watch_cb cb;
	void *arg;
	TAILQ_ENTRY(job_watch) entry;
};
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

static const struct transfer_ops item_ops;
static void jobs_pump(struct jobs *);
static void item_emit(struct item *);
static void job_update(struct job *);
static struct item *job_grow(struct job *, size_t);
static int job_seen(struct job *, char *);
static int job_url_cmp(const void *, const void *);
static void job_emit_end(struct job *);
static void item_store(struct item *, int state);

/* Give the item its transfer (or NULL), keeping the in-flight list. */
static void
item_set_transfer(struct item *it, struct transfer *t)
{
	if (it->transfer == NULL && t != NULL)
		TAILQ_INSERT_TAIL(&it->job->inflight, it, inflight_entry);
	else if (it->transfer != NULL && t == NULL)
		TAILQ_REMOVE(&it->job->inflight, it, inflight_entry);
	it->transfer = t;
}

/* Bytes of the job's items so far, ended and in flight. */
static unsigned long long
job_bytes(struct job *j)
{
	unsigned long long bytes = j->bytes_done;
	struct item *it;

	TAILQ_FOREACH(it, &j->inflight, inflight_entry)
		bytes += transfer_bytes(it->transfer);
	return bytes;
}

/* Wall-clock milliseconds, for retry times that outlive the process. */
static long long
job_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* A time as RFC 3339 in UTC. */
static json_t *
job_time_json(time_t t)
{
	char buf[32];
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

/* Progress tick: tell watchers about the bytes of active items. */
static void
jobs_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jobs *js = arg;
	struct job_watch *w, *tmp;
	struct item *it;
	struct job *j;
	json_t *ev, *list, *p;
	unsigned long long bytes;
	int keepalive;

	/* Idle watchers still get one every few seconds, as a keep-alive. */
	keepalive = ++js->ticks % (5000 / PROGRESS_INTERVAL_MS) == 0;
	TAILQ_FOREACH(j, &js->watched, watched_entry) {
		/* Only when bytes moved, or as the keep-alive. */
		bytes = job_bytes(j);
		if (bytes == j->progress_bytes && !keepalive)
			continue;
		j->progress_bytes = bytes;
		list = json_array();
		TAILQ_FOREACH(it, &j->inflight, inflight_entry) {
			p = json_pack("{sIsI}", "n", (json_int_t)it->n, "bytes",
			    (json_int_t)transfer_bytes(it->transfer));
			if (transfer_size(it->transfer) >= 0)
				json_object_set_new(p, "size",
				    json_integer(transfer_size(it->transfer)));
			json_array_append_new(list, p);
		}
		ev = json_pack("{sssIsIsIsIsIso}", "event", "progress", "job",
		    (json_int_t)j->id, "bytes", (json_int_t)bytes, "done",
		    (json_int_t)j->count[ITEM_DONE], "failed",
		    (json_int_t)j->count[ITEM_FAILED], "total",
		    (json_int_t)j->nitems, "items", list);
		TAILQ_FOREACH_SAFE(w, &j->watches, entry, tmp)
			w->cb(w->arg, ev, 0);
		json_decref(ev);
	}
}

/* tdestroy: the seen tree's keys are the items' own URLs. */
static void
job_seen_free(void *p)
{
}

/* Free a job and everything it owns; nothing of it may be running. */
static void
job_free(struct job *j)
{
	struct job_watch *w;
	struct item *it;
	size_t i;

	if (!TAILQ_EMPTY(&j->watches))
		TAILQ_REMOVE(&j->jobs->watched, j, watched_entry);
	while ((w = TAILQ_FIRST(&j->watches)) != NULL) {
		TAILQ_REMOVE(&j->watches, w, entry);
		free(w);
	}
	for (i = 0; i < j->nitems; i++) {
		it = j->items[i];
		if (it->retry_ev != NULL)
			event_free(it->retry_ev);
		if (it->rate_wait != NULL)
			hostrate_cancel(it->rate_wait);
		free(it->host);
		free(it->url);
		free(it->path);
		free(it->part);
		free(it->validator);
		free(it->error);
		free(it->duplicate_of);
		free(it->sha256);
		free(it->ctype);
	}
	for (i = 0; i < j->nheaders; i++)
		free(j->headers[i]);
	free(j->headers);
	for (i = 0; i < j->nslabs; i++)
		free(j->slabs[i]);
	free(j->slabs);
	free(j->proxy);
	free(j->no_proxy);
	free(j->user_agent);
	free(j->items);
	tdestroy(j->seen, job_seen_free);
	free(j->dir);
	free(j->name);
	free(j->queue_id);
	free(j->owner_user);
	free(j);
}

/* Prune: forget jobs that ended longer than keep_finished ago. */
static void
jobs_prune_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jobs *js = arg;
	struct timeval tv = { PRUNE_INTERVAL, 0 };
	time_t before = time(NULL) - js->cfg->keep_finished;
	struct job *j;
	size_t k, n = 0;

	for (k = 0; k < js->njobs; k++) {
		j = js->all[k];
		if (j == NULL || j->finished == 0 || j->finished >= before ||
		    !TAILQ_EMPTY(&j->watches))
			continue;
		js->all[k] = NULL;
		js->nlive--;
		job_free(j);
		n++;
	}
	if (js->store != NULL)
		store_prune(js->store, before, NULL, NULL);
	if (n > 0)
		log_info("pruned %zu jobs that ended before %lld", n,
		    (long long)before);
	evtimer_add(js->prune_ev, &tv);
}

/* Create the registry. */
struct jobs *
jobs_create(struct event_base *base, struct fetcher *fetcher,
    struct writer *writer, struct store *store, const struct config *cfg)
{
	struct jobs *js;

	js = xcalloc(1, sizeof *js);
	js->base = base;
	js->fetcher = fetcher;
	js->writer = writer;
	js->store = store;
	js->cfg = cfg;
	js->started = time(NULL);
	TAILQ_INIT(&js->ring);
	TAILQ_INIT(&js->watched);
	TAILQ_INIT(&js->hashing);
	TAILQ_INIT(&js->hash_waiting);
	js->tick = event_new(base, -1, EV_PERSIST, jobs_tick_cb, js);
	js->prune_ev = evtimer_new(base, jobs_prune_cb, js);
	js->rate = hostrate_create(base, cfg->host_rate);
	return js;
}

/* Free the registry; every transfer must be gone. */
void
jobs_destroy(struct jobs *js)
{
	size_t i;

	if (js == NULL)
		return;
	for (i = 0; i < js->njobs; i++) {
		if (js->all[i] != NULL)
			job_free(js->all[i]);
	}
	free(js->all);
	cache_destroy(js->cache);
	hostrate_destroy(js->rate);
	event_free(js->tick);
	event_free(js->prune_ev);
	free(js);
}

/* Keep the progress tick running only while someone watches. */
static void
jobs_update_tick(struct jobs *js)
{
	struct timeval tv = { 0, PROGRESS_INTERVAL_MS * 1000 };

	if (js->nwatches > 0 && !event_pending(js->tick, EV_TIMEOUT, NULL))
		event_add(js->tick, &tv);
	else if (js->nwatches == 0)
		event_del(js->tick);
}

/* Move an item to a new state, keeping the counters. */
static void
item_set_state(struct item *it, enum item_state st)
{
	struct job *j = it->job;

	j->count[it->state]--;
	j->jobs->count[it->state]--;
	it->state = st;
	j->count[st]++;
	j->jobs->count[st]++;
}

/* Add what the cache and dedup made of the item to a JSON object. */
static void
item_outcome_json(struct item *it, json_t *o)
{
	if (it->unchanged)
		json_object_set_new(o, "unchanged", json_true());
	if (it->duplicate_of != NULL)
		json_object_set_new(
		    o, "duplicate_of", json_string(it->duplicate_of));
	if (it->sha256 != NULL)
		json_object_set_new(o, "sha256", json_string(it->sha256));
}

/* The item as JSON. */
static json_t *
item_json(struct item *it)
{
	json_t *o;
	unsigned long long bytes = it->bytes;
	long long size = it->size;

	if (it->transfer != NULL) {
		bytes = transfer_bytes(it->transfer);
		size = transfer_size(it->transfer);
	}
	o = json_object();
	json_object_set_new(o, "n", json_integer((json_int_t)it->n));
	json_object_set_new(o, "url", json_string(it->url));
	json_object_set_new(
	    o, "state", json_string(item_state_names[it->state]));
	if (it->path != NULL && it->state != ITEM_CANCELLED &&
	    it->state != ITEM_FAILED)
		json_object_set_new(o, "path", json_string(it->path));
	json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
	if (size >= 0)
		json_object_set_new(o, "size", json_integer(size));
	if (it->http_status != 0)
		json_object_set_new(
		    o, "http_status", json_integer(it->http_status));
	json_object_set_new(o, "attempts", json_integer(it->attempts));
	if (it->retry_ev != NULL && it->state == ITEM_QUEUED)
		json_object_set_new(o, "retry_at", job_time_json(it->retry_at));
	if (it->skipped)
		json_object_set_new(o, "skipped", json_true());
	if (it->error != NULL)
		json_object_set_new(o, "error", json_string(it->error));
	if (it->page) {
		json_object_set_new(o, "kind", json_string("page"));
		if (it->state == ITEM_DONE || it->images > 0)
			json_object_set_new(
			    o, "images", json_integer((json_int_t)it->images));
	}
	if (it->from > 0 && it->from <= it->job->nitems)
		json_object_set_new(
		    o, "page", json_string(it->job->items[it->from - 1]->url));
	item_outcome_json(it, o);
	return o;
}

/* Whether the item is among those asked for, in job objects and events. */
static int
item_listed(const struct item *it, enum job_items which)
{
	switch (which) {
	case JOB_ITEMS_ALL:
		return 1;
	case JOB_ITEMS_FAILED:
		return it->state == ITEM_FAILED || it->state == ITEM_CANCELLED;
	case JOB_ITEMS_NONE:
		break;
	}
	return 0;
}

/*
 * Add the job's own network options to o; shown, the proxy loses its user
 * and password (they stay in the store, which only the daemon reads).
 */
static void
job_network_json(struct job *j, json_t *o, int shown)
{
	char *p;

	if (j->timeout > 0)
		json_object_set_new(
		    o, "timeout", json_integer((json_int_t)j->timeout));
	if (j->retries >= 0)
		json_object_set_new(o, "retries", json_integer(j->retries));
	if (j->proxy != NULL && shown) {
		p = request_proxy_redacted(j->proxy);
		json_object_set_new(o, "proxy", json_string(p));
		free(p);
	} else if (j->proxy != NULL)
		json_object_set_new(o, "proxy", json_string(j->proxy));
	if (j->no_proxy != NULL)
		json_object_set_new(o, "no_proxy", json_string(j->no_proxy));
	if (j->user_agent != NULL)
		json_object_set_new(
		    o, "user_agent", json_string(j->user_agent));
}

/* Take the job's network options from its stored options object. */
static void
job_network_load(struct job *j, json_t *o)
{
	json_t *v;

	if ((v = json_object_get(o, "timeout")) != NULL && json_is_integer(v) &&
	    json_integer_value(v) > 0 &&
	    json_integer_value(v) <= NET_TIMEOUT_MAX)
		j->timeout = (long)json_integer_value(v);
	if ((v = json_object_get(o, "retries")) != NULL && json_is_integer(v) &&
	    json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= NET_RETRIES_MAX)
		j->retries = (int)json_integer_value(v);
	if ((v = json_object_get(o, "proxy")) != NULL && json_is_string(v))
		j->proxy = xstrdup(json_string_value(v));
	if ((v = json_object_get(o, "no_proxy")) != NULL && json_is_string(v))
		j->no_proxy = xstrdup(json_string_value(v));
	if ((v = json_object_get(o, "user_agent")) != NULL && json_is_string(v))
		j->user_agent = xstrdup(json_string_value(v));
}

/*
 * The job as JSON with the items asked for: all, only the failed or
 * cancelled ones, or none (no "items" member).
 */
json_t *
job_json(struct job *j, enum job_items which)
{
	struct item *it;
	json_t *o, *items;
	size_t i;

	o = json_object();
	json_object_set_new(o, "id", json_integer((json_int_t)j->id));
	json_object_set_new(o, "state", json_string(job_state_names[j->state]));
	json_object_set_new(o, "created", job_time_json(j->created));
	json_object_set_new(o, "total", json_integer((json_int_t)j->nitems));
	json_object_set_new(
	    o, "queued", json_integer((json_int_t)j->count[ITEM_QUEUED]));
	json_object_set_new(
	    o, "active", json_integer((json_int_t)j->count[ITEM_ACTIVE]));
	json_object_set_new(
	    o, "done", json_integer((json_int_t)j->count[ITEM_DONE]));
	json_object_set_new(
	    o, "failed", json_integer((json_int_t)j->count[ITEM_FAILED]));
	json_object_set_new(
	    o, "cancelled", json_integer((json_int_t)j->count[ITEM_CANCELLED]));
	json_object_set_new(o, "bytes", json_integer((json_int_t)job_bytes(j)));
	json_object_set_new(
	    o, "unchanged", json_integer((json_int_t)j->nunchanged));
	json_object_set_new(
	    o, "duplicates", json_integer((json_int_t)j->nduplicates));
	json_object_set_new(
	    o, "dir", json_string(j->dir != NULL ? j->dir : ""));
	json_object_set_new(o, "name",
	    json_string(j->name != NULL ? j->name : DEFAULT_NAME_TEMPLATE));
	job_network_json(j, o, 1);
	if (j->queue_id != NULL)
		json_object_set_new(o, "queue_id", json_string(j->queue_id));
	if (j->owned)
		json_object_set_new(o, "owner",
		    json_pack("{sIss?}", "uid", (json_int_t)j->owner_uid,
			"user", j->owner_user));
	else
		json_object_set_new(o, "owner", json_null());
	if (which == JOB_ITEMS_NONE)
		return o;
	items = json_array();
	for (i = 0; i < j->nitems; i++) {
		it = j->items[i];
		if (item_listed(it, which))
			json_array_append_new(items, item_json(it));
	}
	json_object_set_new(o, "items", items);
	return o;
}

/* Be told of every job's end (after its watchers). */
void
jobs_set_end_hook(struct jobs *js, jobs_end_cb cb, void *arg)
{
	js->end_cb = cb;
	js->end_arg = arg;
}

/* The job that came from a stream entry, or NULL. */
struct job *
jobs_find_queued(struct jobs *js, const char *queue_id)
{
	size_t i;

	for (i = js->njobs; i > 0; i--) {
		if (js->all[i - 1] != NULL &&
		    js->all[i - 1]->queue_id != NULL &&
		    strcmp(js->all[i - 1]->queue_id, queue_id) == 0)
			return js->all[i - 1];
	}
	return NULL;
}

/* The stream entry a job came from, or NULL. */
const char *
job_queue_id(struct job *j)
{
	return j->queue_id;
}

/* Job id. */
unsigned long long
job_id(struct job *j)
{
	return j->id;
}

/* The job's owner, if it has one. */
int
job_owner(struct job *j, struct job_owner *owner)
{
	if (!j->owned)
		return -1;
	owner->uid = j->owner_uid;
	owner->user = j->owner_user;
	return 0;
}

/* Whether the job counts for a listing of owner's jobs. */
static int
job_owned_by(const struct job *j, long long owner)
{
	return owner == JOB_OWNER_ANY ||
	    (j->owned && (long long)j->owner_uid == owner);
}

/* Whether every item has ended. */
int
job_ended(struct job *j)
{
	return j->state == JOB_DONE || j->state == JOB_FAILED ||
	    j->state == JOB_CANCELLED;
}

/* Recompute the job's state after an item changed. */
static void
job_update(struct job *j)
{
	if (job_ended(j))
		return;
	if (j->count[ITEM_QUEUED] + j->count[ITEM_ACTIVE] > 0) {
		if (j->count[ITEM_QUEUED] != j->nitems)
			j->state = JOB_RUNNING;
		return;
	}
	if (j->count[ITEM_CANCELLED] > 0)
		j->state = JOB_CANCELLED;
	else if (j->count[ITEM_FAILED] > 0)
		j->state = JOB_FAILED;
	else
		j->state = JOB_DONE;
	j->finished = time(NULL);
	if (j->jobs->store != NULL)
		store_update_job(j->jobs->store, j->id, (int)j->state,
		    j->finished, NULL, NULL);
	log_info("job %llu: %s (%zu done, %zu failed, %zu cancelled of %zu)",
	    j->id, job_state_names[j->state], j->count[ITEM_DONE],
	    j->count[ITEM_FAILED], j->count[ITEM_CANCELLED], j->nitems);
	job_emit_end(j);
	if (j->jobs->end_cb != NULL)
		j->jobs->end_cb(j->jobs->end_arg, j);
}

/*
 * Send the final job event to every watcher, with the items it asked for
 * (each kind built once), and end the watches.
 */
static void
job_emit_end(struct job *j)
{
	json_t *ev[JOB_ITEMS_NONE + 1] = { NULL };
	struct job_watch *w;
	size_t i;

	if (TAILQ_EMPTY(&j->watches))
		return;
	while ((w = TAILQ_FIRST(&j->watches)) != NULL) {
		TAILQ_REMOVE(&j->watches, w, entry);
		j->jobs->nwatches--;
		if (ev[w->items] == NULL)
			ev[w->items] = json_pack("{ssso}", "event", "job",
			    "job", job_json(j, w->items));
		w->cb(w->arg, ev[w->items], 1);
		free(w);
	}
	for (i = 0; i <= JOB_ITEMS_NONE; i++)
		json_decref(ev[i]);
	TAILQ_REMOVE(&j->jobs->watched, j, watched_entry);
	jobs_update_tick(j->jobs);
}

/* Tell the watchers that want it that an item changed state. */
static void
item_emit(struct item *it)
{
	struct job_watch *w, *tmp;
	json_t *ev = NULL;

	/* The event is built only once a watcher wants it. */
	TAILQ_FOREACH_SAFE(w, &it->job->watches, entry, tmp) {
		if (!item_listed(it, w->items))
			continue;
		if (ev == NULL)
			ev = json_pack("{sssIso}", "event", "item", "job",
			    (json_int_t)it->job->id, "item", item_json(it));
		w->cb(w->arg, ev, 0);
	}
	json_decref(ev);
}

/* The rarer item fields as a JSON object for the store, or NULL. */
static char *
item_extra(struct item *it)
{
	json_t *o;
	char *s;

	if (!it->page && !it->next && it->from == 0 && !it->unchanged &&
	    it->duplicate_of == NULL) {
		if (it->sha256 == NULL)
			return NULL;
		/* The common case, on the hot path: no JSON object to build. */
		xasprintf(&s, "{\"sha256\":\"%s\"}", it->sha256);
		return s;
	}
	o = json_object();
	if (it->page)
		json_object_set_new(o, "page", json_true());
	if (it->next)
		json_object_set_new(o, "next", json_true());
	if (it->from > 0)
		json_object_set_new(o, "from", json_integer((json_int_t)it->from));
	if (it->images > 0)
		json_object_set_new(
		    o, "images", json_integer((json_int_t)it->images));
	item_outcome_json(it, o);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* Take the rarer item fields back from the store's JSON. */
static void
item_extra_load(struct item *it, const char *extra)
{
	json_t *o, *v;

	if (extra == NULL || (o = json_loads(extra, 0, NULL)) == NULL)
		return;
	it->page = json_is_true(json_object_get(o, "page"));
	it->next = json_is_true(json_object_get(o, "next"));
	it->unchanged = json_is_true(json_object_get(o, "unchanged"));
	if ((v = json_object_get(o, "from")) != NULL && json_is_integer(v))
		it->from = (unsigned long)json_integer_value(v);
	if ((v = json_object_get(o, "images")) != NULL && json_is_integer(v))
		it->images = (unsigned long)json_integer_value(v);
	if ((v = json_object_get(o, "duplicate_of")) != NULL &&
	    json_is_string(v))
		it->duplicate_of = xstrdup(json_string_value(v));
	if ((v = json_object_get(o, "sha256")) != NULL && json_is_string(v))
		it->sha256 = xstrdup(json_string_value(v));
	json_decref(o);
}

/* Record the item in the store (state may be STORE_ITEM_COMMITTING). */
static void
item_store(struct item *it, int state)
{
	struct store_item si;
	char *extra;

	if (it->job->jobs->store == NULL)
		return;
	memset(&si, 0, sizeof si);
	si.n = it->n;
	si.url = it->url;
	si.state = state;
	si.path = it->path;
	si.part = it->part;
	si.validator = it->validator;
	si.error = it->error;
	si.http_status = it->http_status;
	si.bytes = it->state == ITEM_QUEUED ? it->part_size : it->bytes;
	si.attempts = it->attempts;
	si.retry_at = it->retry_ev != NULL ? (long long)it->retry_at : 0;
	si.extra = extra = item_extra(it);
	store_update_item(it->job->jobs->store, it->job->id, &si, NULL, NULL);
	free(extra);
}

/* Make a queued item runnable: on its job's queue, the job in the ring. */
static void
item_make_runnable(struct item *it)
{
	struct job *j = it->job;

	if (it->runnable || it->state != ITEM_QUEUED)
		return;
	it->runnable = 1;
	TAILQ_INSERT_TAIL(&j->runq, it, run_entry);
	if (!j->in_ring) {
		TAILQ_INSERT_TAIL(&j->jobs->ring, j, ring_entry);
		j->in_ring = 1;
	}
}

/* Take an item off its job's run queue. */
static void
item_unrun(struct item *it)
{
	if (!it->runnable)
		return;
	TAILQ_REMOVE(&it->job->runq, it, run_entry);
	it->runnable = 0;
}

/* Forget a kept .part, removing it from the disk. */
static void
item_drop_part(struct item *it)
{
	if (it->part == NULL)
		return;
	wfile_remove(it->job->jobs->writer, it->part);
	free(it->part);
	free(it->validator);
	it->part = it->validator = NULL;
	it->part_size = 0;
}

/* Name the item's file from its response. */
static char *
item_name(void *arg, const char *url, const char *content_type, char **cause)
{
	struct item *it = arg;
	struct job *j = it->job;
	struct path_vars vars;
	char *path;

	memset(&vars, 0, sizeof vars);
	vars.url = it->url;
	vars.content_type = content_type;
	vars.job = j->id;
	vars.n = it->n;
	vars.now = time(NULL);
	/* A name made from the digest waits for it: stage the body first. */
	path = path_expand(j->dir,
	    j->hash_name ? "{job}-{n}.{ext}"
	    : j->name != NULL ? j->name
			      : DEFAULT_NAME_TEMPLATE,
	    &vars, cause);
	if (path != NULL) {
		free(it->path);
		it->path = xstrdup(path);
	}
	if (j->hash_name) {
		free(it->ctype);
		it->ctype = content_type != NULL ? xstrdup(content_type) : NULL;
	}
	return path;
}

/* Let a prepared body go to its name, or drop it as a duplicate. */
static void
item_place(struct item *it, struct transfer *t)
{
	struct jobs *js = it->job->jobs;
	const char *sha = transfer_sha256(t), *kept;
	struct item *other;

	if (it->job->dedup && sha != NULL) {
		/* A file with the same digest on its way in: wait for it. */
		TAILQ_FOREACH(other, &js->hashing, hash_entry) {
			if (other != it && other->sha256 != NULL &&
			    strcmp(other->sha256, sha) == 0) {
				it->dedup_wait = 1;
				TAILQ_INSERT_TAIL(
				    &js->hash_waiting, it, hash_entry);
				return;
			}
		}
		if ((kept = cache_find_sha256(js->cache, sha)) != NULL) {
			free(it->duplicate_of);
			it->duplicate_of = xstrdup(kept);
			fetch_dedup(t, kept);
			return;
		}
		TAILQ_INSERT_TAIL(&js->hashing, it, hash_entry);
		it->dedup_wait = 2;
	}
	if (it->job->hash_name && it->path != NULL)
		fetch_commit_as(t, it->path);
	else
		fetch_commit(t);
}

/* The body is on disk: record the final name, then let it be renamed. */
static void
item_prepared_stored(void *arg, int ok)
{
	struct transfer *t = arg;
	struct item *it;

	/* Renaming even if the store failed: the file is complete. */
	if ((it = transfer_owner(t)) == NULL)
		fetch_commit(t); /* cancelled meanwhile: dropped */
	else
		item_place(it, t);
}

/* A file of this digest is in (path) or failed (NULL): wake its waiters. */
static void
jobs_hash_settled(struct jobs *js, const char *sha, const char *path)
{
	struct item *it, *tmp;
	int first = 1;

	TAILQ_FOREACH_SAFE(it, &js->hash_waiting, hash_entry, tmp) {
		if (it->sha256 == NULL || strcmp(it->sha256, sha) != 0)
			continue;
		TAILQ_REMOVE(&js->hash_waiting, it, hash_entry);
		it->dedup_wait = 0;
		if (it->transfer == NULL)
			continue;
		if (path != NULL) {
			free(it->duplicate_of);
			it->duplicate_of = xstrdup(path);
			fetch_dedup(it->transfer, path);
		} else if (first) {
			/* The first waiter takes the failed file's place. */
			first = 0;
			TAILQ_INSERT_TAIL(&js->hashing, it, hash_entry);
			it->dedup_wait = 2;
			if (it->job->hash_name && it->path != NULL)
				fetch_commit_as(it->transfer, it->path);
			else
				fetch_commit(it->transfer);
		} else {
			TAILQ_INSERT_TAIL(&js->hash_waiting, it, hash_entry);
			it->dedup_wait = 1;
		}
	}
}

/* The item's body is complete as part, to be renamed to path. */
static void
item_prepared(void *arg, struct transfer *t, const char *path, const char *part)
{
	struct item *it = arg;
	struct store_item si;
	struct path_vars vars;
	char *cause = NULL, *final;

	free(it->path);
	it->path = xstrdup(path);
	if (transfer_sha256(t) != NULL) {
		free(it->sha256);
		it->sha256 = xstrdup(transfer_sha256(t));
	}
	if (it->job->hash_name && it->sha256 != NULL) {
		/* The name from the digest, now that it is known. */
		memset(&vars, 0, sizeof vars);
		vars.url = it->url;
		vars.job = it->job->id;
		vars.n = it->n;
		vars.now = time(NULL);
		vars.sha256 = it->sha256;
		vars.content_type = it->ctype;
		final = path_expand(it->job->dir, it->job->name, &vars, &cause);
		if (final == NULL) {
			log_warnx("job %llu item %lu: %s; kept as %s",
			    it->job->id, it->n, cause, path);
			free(cause);
		} else {
			free(it->path);
			it->path = final;
		}
	}
	if (it->job->jobs->store == NULL) {
		item_place(it, t);
		return;
	}
	memset(&si, 0, sizeof si);
	si.n = it->n;
	si.url = it->url;
	si.state = STORE_ITEM_COMMITTING;
	si.path = it->path;
	si.part = part;
	si.attempts = it->attempts;
	si.bytes = transfer_bytes(t);
	store_update_item(
	    it->job->jobs->store, it->job->id, &si, item_prepared_stored, t);
}

/* Retry timer: the item may run again. */
static void
item_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct item *it = arg;

	event_free(it->retry_ev);
	it->retry_ev = NULL;
	item_make_runnable(it);
	jobs_pump(it->job->jobs);
}

/* Milliseconds to wait before attempt number attempts + 1. */
static long
item_backoff(struct item *it, long retry_after)
{
	const struct config *cfg = it->job->jobs->cfg;
	long long ms = cfg->retry_delay;
	int i;

	for (i = 1; i < it->attempts && ms < cfg->retry_delay_max; i++)
		ms *= 2;
	if (ms > cfg->retry_delay_max)
		ms = cfg->retry_delay_max;
	/* Jitter of +-50% keeps many failed items from coming back at once. */
	ms = ms / 2 + (long long)(random() % (ms + 1));
	if (retry_after >= 0) {
		if (retry_after > cfg->retry_after_max)
			retry_after = cfg->retry_after_max;
		if ((long long)retry_after * 1000 > ms)
			ms = (long long)retry_after * 1000;
	}
	return (long)ms;
}

/* Wait, then try the item again. */
static void
item_schedule_retry(struct item *it, long retry_after)
{
	struct timeval tv;
	long ms;

	ms = item_backoff(it, retry_after);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	/* Rounded up: a restart must never bring the retry forward. */
	it->retry_at = (time_t)((job_now_ms() + ms + 999) / 1000);
	it->retry_ev = evtimer_new(it->job->jobs->base, item_retry_cb, it);
	evtimer_add(it->retry_ev, &tv);
	metrics_retry();
	log_info("job %llu item %lu: attempt %d failed (%s), retry in %ld ms%s",
	    it->job->id, it->n, it->attempts, it->error, ms,
	    it->part != NULL ? ", resuming" : "");
}

/* A page being parsed off the loop, and what the parse found. */
struct parse {
	struct item *item; /* NULL once the item was cancelled */
	char *body;
	size_t len;
	char *url; /* the page's final URL, for relative references */
	char *ctype;
	char *etag;
	char *last_modified;
	int same_host;
	int rc;
	char *error;
	struct html_found found;
};

/* Writer thread: parse the page. Touches nothing but the parse. */
static void
parse_work(void *arg)
{
	struct parse *p = arg;

	p->rc = html_extract(p->body, p->len, p->url, p->ctype, p->same_host,
	    &p->found, &p->error);
	free(p->body);
	p->body = NULL;
}

/* Free a parse. */
static void
parse_free(struct parse *p)
{
	free(p->body);
	free(p->url);
	free(p->ctype);
	free(p->etag);
	free(p->last_modified);
	free(p->error);
	html_found_finish(&p->found);
	free(p);
}

/*
 * Add what a page references as new items of its job: images not yet in
 * the job, and up to follow_next pages reached through rel="next".
 * Returns the number of images the page references.
 */
static size_t
job_add_found(struct item *page, char *const *images, size_t nimages,
    char *const *next, size_t nnext)
{
	struct job *j = page->job;
	struct jobs *js = j->jobs;
	struct store_item *sitems;
	struct item *it, *first;
	char **urls, *extra;
	size_t i, k, n = 0, nnew = 0;
	int *is_page;

	urls = xcalloc(nimages + nnext, sizeof *urls);
	is_page = xcalloc(nimages + nnext, sizeof *is_page);
	for (i = 0; i < nimages; i++) {
		if (j->seen != NULL && tfind(images[i], &j->seen, job_url_cmp))
			continue;
		urls[n] = xstrdup(images[i]);
		job_seen(j, urls[n++]);
	}
	for (i = 0; i < nnext && j->follow_next > 0; i++) {
		if (j->seen != NULL && tfind(next[i], &j->seen, job_url_cmp))
			continue;
		j->follow_next--;
		is_page[n] = 1;
		urls[n] = xstrdup(next[i]);
		job_seen(j, urls[n++]);
	}
	if (n == 0)
		goto out;
	first = job_grow(j, n);
	sitems = xcalloc(n, sizeof *sitems);
	for (k = 0; k < n; k++) {
		it = &first[k];
		it->url = urls[k];
		it->state = ITEM_QUEUED;
		it->from = page->n + 1;
		it->page = it->next = is_page[k];
		nnew += !is_page[k];
		sitems[k].n = it->n;
		sitems[k].url = it->url;
		sitems[k].state = STORE_ITEM_QUEUED;
		sitems[k].extra = item_extra(it);
		item_make_runnable(it);
	}
	j->count[ITEM_QUEUED] += n;
	js->count[ITEM_QUEUED] += n;
	if (js->store != NULL)
		store_add_items(js->store, j->id, sitems, n, NULL, NULL);
	for (k = 0; k < n; k++) {
		extra = (char *)sitems[k].extra;
		free(extra);
	}
	free(sitems);
	log_info("job %llu item %lu: page %s: %zu images, %zu new, %zu more "
		 "pages",
	    j->id, page->n, page->url, nimages, nnew, n - nnew);
out:
	free(urls);
	free(is_page);
	return nimages;
}

/* A page ended: its images are in the job, or it failed. */
static void
item_page_end(struct item *it, const char *error)
{
	struct job *j = it->job;

	if (error != NULL) {
		free(it->error);
		it->error = xstrdup(error);
		item_set_state(it, ITEM_FAILED);
		item_store(it, STORE_ITEM_FAILED);
		log_warnx("job %llu item %lu: page %s failed: %s", j->id, it->n,
		    it->url, error);
	} else {
		item_set_state(it, ITEM_DONE);
		item_store(it, STORE_ITEM_DONE);
		log_info("job %llu item %lu: page done %s (%lu images%s)",
		    j->id, it->n, it->url, it->images,
		    it->unchanged ? ", unchanged" : "");
	}
	j->bytes_done += it->bytes;
	j->jobs->bytes += it->bytes;
	item_emit(it);
	job_update(j);
	jobs_pump(j->jobs);
}

/* Split a newline-joined list in place into an array (caller frees). */
static char **
job_split_lines(char *s, size_t *n)
{
	char **v = NULL, *line;
	size_t cap = 0;

	*n = 0;
	while (s != NULL && (line = strsep(&s, "\n")) != NULL) {
		if (*line == '\0')
			continue;
		if (*n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			v = xreallocarray(v, cap, sizeof *v);
		}
		v[(*n)++] = line;
	}
	return v;
}

/* Writer: a page's parse ended. */
static void
parse_done_cb(struct wfile *f, enum wfile_event ev, void *arg)
{
	struct parse *p = arg;
	struct item *it = p->item;
	struct cache_entry ce;
	struct buf_join {
		char *s;
		size_t len;
	} joined = { NULL, 0 };
	size_t i, len;

	if (ev != WFILE_DONE)
		return;
	if (it == NULL) {
		parse_free(p);
		return;
	}
	it->task = NULL;
	it->parse = NULL;
	if (p->rc != 0) {
		item_page_end(it, p->error != NULL ? p->error : "cannot parse");
		parse_free(p);
		return;
	}
	it->images = job_add_found(it, p->found.images, p->found.nimages,
	    p->found.next, p->found.nnext);
	if (it->job->if_changed) {
		/* The page's image list, for a 304 next time. */
		for (i = 0; i < p->found.nimages; i++) {
			len = strlen(p->found.images[i]);
			joined.s = xrealloc(joined.s, joined.len + len + 2);
			memcpy(joined.s + joined.len, p->found.images[i], len);
			joined.len += len;
			joined.s[joined.len++] = '\n';
			joined.s[joined.len] = '\0';
		}
		memset(&ce, 0, sizeof ce);
		ce.url = it->url;
		ce.etag = p->etag;
		ce.last_modified = p->last_modified;
		ce.size = (long long)it->bytes;
		ce.images = joined.s != NULL ? joined.s : (char *)"";
		ce.used = time(NULL);
		cache_put(it->job->jobs->cache, &ce);
		free(joined.s);
	}
	item_page_end(it, NULL);
	parse_free(p);
}

/* A page's body is in: parse it on a writer thread. */
static void
item_page_parse(struct item *it, const struct fetch_result *res)
{
	struct parse *p;

	p = xcalloc(1, sizeof *p);
	p->item = it;
	p->body = fetch_take_body(res);
	p->len = res->body_len;
	p->url = xstrdup(res->effective_url != NULL ? res->effective_url
						    : it->url);
	p->ctype = res->content_type != NULL ? xstrdup(res->content_type)
					     : NULL;
	p->etag = res->etag != NULL ? xstrdup(res->etag) : NULL;
	p->last_modified =
	    res->last_modified != NULL ? xstrdup(res->last_modified) : NULL;
	p->same_host = it->job->same_host;
	it->bytes = res->body_len;
	it->parse = p;
	it->task = wfile_task(
	    it->job->jobs->writer, parse_work, p, parse_done_cb, p);
}

/* A page answered 304: its images are those the cache remembers. */
static void
item_page_unchanged(struct item *it)
{
	const struct cache_entry *ce;
	char *copy = NULL, **urls;
	size_t n = 0;

	it->unchanged = 1;
	if ((ce = cache_get(it->job->jobs->cache, it->url)) != NULL &&
	    ce->images != NULL)
		copy = xstrdup(ce->images);
	urls = job_split_lines(copy, &n);
	it->images = job_add_found(it, urls, n, NULL, 0);
	cache_touch(it->job->jobs->cache, it->url);
	free(urls);
	free(copy);
	item_page_end(it, NULL);
}

/* A page turned out to be an image: fetch it as one. */
static void
item_page_is_image(struct item *it)
{
	struct job *j = it->job;
	struct item *img;
	struct store_item si;
	char *extra;

	img = job_grow(j, 1);
	img->url = xstrdup(it->url);
	img->state = ITEM_QUEUED;
	img->from = it->n + 1;
	j->count[ITEM_QUEUED]++;
	j->jobs->count[ITEM_QUEUED]++;
	if (j->jobs->store != NULL) {
		memset(&si, 0, sizeof si);
		si.n = img->n;
		si.url = img->url;
		si.state = STORE_ITEM_QUEUED;
		si.extra = extra = item_extra(img);
		store_add_items(j->jobs->store, j->id, &si, 1, NULL, NULL);
		free(extra);
	}
	item_make_runnable(img);
	it->images = 1;
	log_info("job %llu item %lu: page %s is an image; fetching it as one",
	    j->id, it->n, it->url);
	item_page_end(it, NULL);
}

/* Record an image's fetch in the cache, for if_changed and dedup. */
static void
item_cache(struct item *it, const struct fetch_result *res)
{
	struct cache_entry ce;

	memset(&ce, 0, sizeof ce);
	ce.url = it->url;
	ce.etag = (char *)res->etag;
	ce.last_modified = (char *)res->last_modified;
	ce.size = (long long)it->bytes;
	ce.sha256 = it->sha256;
	ce.path = it->path;
	ce.used = time(NULL);
	cache_put(it->job->jobs->cache, &ce);
}

/* The item's transfer ended. */
static void
item_done(void *arg, const struct fetch_result *res)
{
	struct item *it = arg;
	struct job *j = it->job;
	struct jobs *js = j->jobs;
	const struct cache_entry *ce;
	int hashing = it->dedup_wait == 2;

	item_set_transfer(it, NULL);
	if (it->transferring) {
		it->transferring = 0;
		js->transfers--;
	}
	if (hashing) {
		TAILQ_REMOVE(&js->hashing, it, hash_entry);
		it->dedup_wait = 0;
	}
	if (res->sha256 != NULL &&
	    (it->sha256 == NULL || strcmp(it->sha256, res->sha256) != 0)) {
		free(it->sha256);
		it->sha256 = xstrdup(res->sha256);
	}
	if (res->ok && !res->duplicate) {
		free(it->duplicate_of);
		it->duplicate_of = NULL;
	}
	if (res->ok && it->page) {
		it->http_status = res->http_status;
		if (res->not_modified)
			item_page_unchanged(it);
		else if (res->page_is_image)
			item_page_is_image(it);
		else
			item_page_parse(it, res);
		jobs_pump(js);
		return;
	}
	if (res->ok && res->not_modified) {
		/* The cached fetch stands: its file is the item's. */
		it->http_status = res->http_status;
		it->unchanged = 1;
		ce = cache_get(js->cache, it->url);
		free(it->path);
		it->path = ce != NULL && ce->path != NULL ? xstrdup(ce->path)
							  : NULL;
		if (ce != NULL && ce->sha256 != NULL) {
			free(it->sha256);
			it->sha256 = xstrdup(ce->sha256);
		}
		cache_touch(js->cache, it->url);
		it->bytes = 0;
		j->nunchanged++;
		item_set_state(it, ITEM_DONE);
		item_store(it, STORE_ITEM_DONE);
		log_info("job %llu item %lu: unchanged %s", j->id, it->n,
		    it->path != NULL ? it->path : it->url);
		item_emit(it);
		job_update(j);
		jobs_pump(js);
		return;
	}
	it->http_status = res->http_status;
	metrics_http_status(res->http_status);
	free(it->error);
	it->error = NULL;
	/* Keep what the failed attempt left for the next one. */
	if (!res->ok && res->part != NULL) {
		if (it->part == NULL || strcmp(it->part, res->part) != 0) {
			free(it->part);
			it->part = xstrdup(res->part);
		}
		free(it->validator);
		it->validator =
		    res->validator != NULL ? xstrdup(res->validator) : NULL;
		it->part_size = res->part_size;
		if (res->path != NULL &&
		    (it->path == NULL || strcmp(it->path, res->path) != 0)) {
			free(it->path);
			it->path = xstrdup(res->path);
		}
	} else if (!res->ok) {
		/* Nothing to resume: a stale .part from before goes too. */
		item_drop_part(it);
	}
	if (res->ok) {
		free(it->path);
		it->path = xstrdup(res->path);
		it->skipped = res->skipped;
		it->bytes = res->bytes;
		free(it->part);
		free(it->validator);
		it->part = it->validator = NULL;
		it->part_size = 0;
		j->bytes_done += it->bytes;
		js->bytes += it->bytes;
		if (res->duplicate && it->duplicate_of != NULL) {
			free(it->path);
			it->path = xstrdup(it->duplicate_of);
			j->nduplicates++;
		}
		if (j->if_changed || j->dedup)
			item_cache(it, res);
		if (hashing)
			jobs_hash_settled(js, it->sha256, it->path);
		item_set_state(it, ITEM_DONE);
		item_store(it, STORE_ITEM_DONE);
		log_info("job %llu item %lu: done %s (%llu bytes)%s", j->id,
		    it->n, it->path, it->bytes,
		    res->duplicate ? ", a duplicate: not kept"
		    : it->skipped  ? ", existing file kept"
				   : "");
	} else if (res->retryable && js->stopping) {
		/* Shutdown: leave it queued and resumable for the next start. */
		it->error = xstrdup(res->error);
		it->bytes = it->part_size;
		item_set_state(it, ITEM_QUEUED);
		item_store(it, STORE_ITEM_QUEUED);
	} else if (res->retryable &&
	    it->attempts <= (j->retries >= 0 ? j->retries : js->cfg->retries)) {
		it->error = xstrdup(res->error);
		it->bytes = it->part_size;
		item_set_state(it, ITEM_QUEUED);
		item_schedule_retry(it, res->retry_after);
		item_store(it, STORE_ITEM_QUEUED);
	} else {
		it->error = xstrdup(res->error);
		it->bytes = res->bytes;
		item_drop_part(it);
		j->bytes_done += it->bytes;
		js->bytes += it->bytes;
		item_set_state(it, ITEM_FAILED);
		item_store(it, STORE_ITEM_FAILED);
		log_warnx("job %llu item %lu: failed %s after %d attempt%s: %s",
		    j->id, it->n, it->url, it->attempts,
		    it->attempts == 1 ? "" : "s", it->error);
	}
	if (hashing && !res->ok && it->sha256 != NULL)
		jobs_hash_settled(js, it->sha256, NULL);
	item_emit(it);
	job_update(j);
	jobs_pump(js);
}

/* The item's network part is over: its slot goes to the next item. */
static void
item_released(void *arg)
{
	struct item *it = arg;

	if (!it->transferring)
		return;
	it->transferring = 0;
	it->job->jobs->transfers--;
	jobs_pump(it->job->jobs);
}

/*
 * A body started: record its .part (and validator), so that after a kill -9
 * the next start continues it, or at least removes it, whatever name the
 * next attempt picks.
 */
static void
item_opened(void *arg, const char *path, const char *part,
    const char *validator, long long size)
{
	struct item *it = arg;

	free(it->path);
	free(it->part);
	free(it->validator);
	it->path = xstrdup(path);
	it->part = xstrdup(part);
	it->validator = validator != NULL ? xstrdup(validator) : NULL;
	it->part_size = 0;
	item_store(it, STORE_ITEM_ACTIVE);
}

static const struct transfer_ops item_ops = { item_name, item_prepared,
	item_done, item_released, item_opened };

/* Start one runnable item. */
static void
item_start(struct item *it)
{
	struct job *j = it->job;
	struct fetch_request req;
	const struct cache_entry *ce;

	it->attempts++;
	item_set_state(it, ITEM_ACTIVE);
	log_debug("job %llu item %lu: start %s (attempt %d%s)", j->id, it->n,
	    it->url, it->attempts, it->part != NULL ? ", resuming" : "");
	memset(&req, 0, sizeof req);
	req.url = it->url;
	req.headers = j->headers;
	req.nheaders = j->nheaders;
	req.path = it->part != NULL ? it->path : NULL;
	req.part = it->part;
	req.offset = it->part_size;
	req.validator = it->validator;
	/* Until the store has the job, no file of it may reach the disk. */
	req.hold = !j->stored;
	req.page = it->page;
	req.max_body = j->max_page_size > 0 ? j->max_page_size
					     : j->jobs->cfg->max_page_size;
	req.hash_first = j->dedup || j->hash_name;
	if (it->from > 0)
		req.referer = j->items[it->from - 1]->url;
	if (j->if_changed && it->part == NULL &&
	    (ce = cache_get(j->jobs->cache, it->url)) != NULL &&
	    (ce->path != NULL || ce->images != NULL)) {
		req.if_none_match = ce->etag;
		req.if_modified_since = ce->last_modified;
	}
	req.timeout = j->timeout;
	req.proxy = j->proxy;
	req.no_proxy = j->no_proxy;
	req.user_agent = j->user_agent;
	req.skip_existing = j->skip_existing;
	item_set_transfer(
	    it, fetch_start(j->jobs->fetcher, &req, &item_ops, it));
	if (it->transfer != NULL) {
		it->transferring = 1;
		j->jobs->transfers++;
	} else {
		it->error = xstrdup("could not start the transfer");
		item_set_state(it, ITEM_FAILED);
		item_store(it, STORE_ITEM_FAILED);
		log_warnx("job %llu item %lu: failed %s: %s", j->id, it->n,
		    it->url, it->error);
	}
	item_emit(it);
	job_update(j);
}

/* The item's host may start it now: first in its job's queue again. */
static void
item_rate_cb(void *arg)
{
	struct item *it = arg;
	struct job *j = it->job;

	it->rate_wait = NULL;
	if (it->state != ITEM_QUEUED || it->runnable)
		return;
	it->rate_granted = 1;
	it->runnable = 1;
	TAILQ_INSERT_HEAD(&j->runq, it, run_entry);
	if (!j->in_ring) {
		TAILQ_INSERT_TAIL(&j->jobs->ring, j, ring_entry);
		j->in_ring = 1;
	}
	jobs_pump(j->jobs);
}

/*
 * Whether host_rate lets the item start now; if not, it is parked until
 * its host's next start is due.
 */
static int
item_rate_ok(struct item *it)
{
	struct jobs *js = it->job->jobs;

	if (it->rate_granted) {
		it->rate_granted = 0;
		return 1;
	}
	if (js->cfg->host_rate <= 0)
		return 1;
	if (it->host == NULL)
		it->host = hostrate_key(it->url);
	if (hostrate_take(
		js->rate, it->host, item_rate_cb, it, &it->rate_wait) == 0)
		return 1;
	log_debug("job %llu item %lu: waiting for host_rate on %s", it->job->id,
	    it->n, it->host);
	return 0;
}

/* Fill free transfer slots, one item per job in turn. */
static void
jobs_pump(struct jobs *js)
{
	struct job *j;
	struct item *it;

	/*
	 * A slot frees when an item's body is with the writer, so a slow disk
	 * does not hold the network back; the writer's backlog is bounded on
	 * its own, by bytes and by items still being written.
	 */
	while (!js->stopping &&
	    js->transfers < (size_t)js->cfg->max_transfers &&
	    js->count[ITEM_ACTIVE] <
		(size_t)js->cfg->max_transfers * FINISHING_FACTOR &&
	    writer_backlog(js->writer) < WRITER_BACKLOG_BYTES &&
	    (j = TAILQ_FIRST(&js->ring)) != NULL) {
		TAILQ_REMOVE(&js->ring, j, ring_entry);
		j->in_ring = 0;
		if ((it = TAILQ_FIRST(&j->runq)) == NULL)
			continue;
		item_unrun(it);
		if (!TAILQ_EMPTY(&j->runq)) {
			TAILQ_INSERT_TAIL(&js->ring, j, ring_entry);
			j->in_ring = 1;
		}
		if (!item_rate_ok(it))
			continue; /* parked: no slot taken */
		item_start(it);
	}
}

/* Add n new items to a job, in one block; returns the first. */
static struct item *
job_grow(struct job *j, size_t n)
{
	struct item *slab;
	size_t i;

	if (n == 0)
		return NULL;
	slab = xcalloc(n, sizeof *slab);
	j->slabs = xreallocarray(j->slabs, j->nslabs + 1, sizeof *j->slabs);
	j->slabs[j->nslabs++] = slab;
	if (j->nitems + n > j->capitems) {
		j->capitems = j->capitems == 0 ? n : j->capitems * 2;
		if (j->capitems < j->nitems + n)
			j->capitems = j->nitems + n;
		j->items =
		    xreallocarray(j->items, j->capitems, sizeof *j->items);
	}
	for (i = 0; i < n; i++) {
		slab[i].job = j;
		slab[i].n = j->nitems + i;
		slab[i].size = -1;
		j->items[j->nitems + i] = &slab[i];
	}
	j->nitems += n;
	return slab;
}

/* Allocate a job with room for nitems and register it under id. */
static struct job *
job_new(struct jobs *js, unsigned long long id, size_t nitems)
{
	struct job *j;

	j = xcalloc(1, sizeof *j);
	j->jobs = js;
	j->id = id;
	j->state = JOB_QUEUED;
	j->retries = -1;
	TAILQ_INIT(&j->watches);
	TAILQ_INIT(&j->runq);
	TAILQ_INIT(&j->inflight);
	job_grow(j, nitems);
	if (id > js->njobs) {
		js->all = xreallocarray(js->all, id, sizeof *js->all);
		memset(
		    js->all + js->njobs, 0, (id - js->njobs) * sizeof *js->all);
		js->njobs = id;
	}
	js->all[id - 1] = j;
	js->nlive++;
	return j;
}

/* The store has the job: let its files reach the disk, tell the submitter. */
static void
job_stored(void *arg, int ok)
{
	struct job *j = arg;
	struct item *it;

	j->stored = 1;
	if (ok != 0) {
		log_error("job %llu: could not be stored; cancelled", j->id);
		job_cancel(j);
	} else {
		TAILQ_FOREACH(it, &j->inflight, inflight_entry)
			fetch_release(it->transfer);
	}
	if (j->accept_cb != NULL)
		j->accept_cb(j->accept_arg, j, ok);
	j->accept_cb = NULL;
	jobs_pump(j->jobs);
}

/* Without a store: accept on the next loop turn. */
static void
job_accept_later_cb(evutil_socket_t fd, short what, void *arg)
{
	job_stored(arg, 0);
}

/* Set a job's own options. */
static void
job_set_options(struct job *j, int if_changed, int dedup, int same_host,
    int follow_next, long long max_page_size)
{
	j->if_changed = if_changed;
	j->dedup = dedup;
	j->same_host = same_host;
	j->follow_next = follow_next;
	j->max_page_size = max_page_size;
	j->hash_name = path_template_has_sha256(j->name);
}

/* The job's own options as JSON for the store, or NULL for none. */
static char *
job_options_json(struct job *j)
{
	json_t *o;
	char *s = NULL;

	o = json_object();
	job_network_json(j, o, 0);
	if (j->if_changed)
		json_object_set_new(o, "if_changed", json_true());
	if (j->dedup)
		json_object_set_new(o, "dedup", json_true());
	if (j->same_host)
		json_object_set_new(o, "same_host", json_true());
	if (j->follow_next > 0)
		json_object_set_new(
		    o, "follow_next", json_integer(j->follow_next));
	if (j->max_page_size > 0)
		json_object_set_new(o, "max_page_size",
		    json_integer((json_int_t)j->max_page_size));
	if (json_object_size(o) > 0)
		s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

/* Take a stored job's options back. */
static void
job_options_load(struct job *j, const char *options)
{
	json_t *o;

	j->hash_name = path_template_has_sha256(j->name);
	if (options == NULL || (o = json_loads(options, 0, NULL)) == NULL)
		return;
	job_set_options(j, json_is_true(json_object_get(o, "if_changed")),
	    json_is_true(json_object_get(o, "dedup")),
	    json_is_true(json_object_get(o, "same_host")),
	    (int)json_integer_value(json_object_get(o, "follow_next")),
	    json_integer_value(json_object_get(o, "max_page_size")));
	json_decref(o);
}

/* tsearch order of URLs. */
static int
job_url_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Note a URL as part of the job; 0 if it was already. */
static int
job_seen(struct job *j, char *url)
{
	char **slot;

	if ((slot = tsearch(url, &j->seen, job_url_cmp)) == NULL)
		fatalx("%s: tsearch failed", __func__);
	return *slot == url;
}

/* Accept a new job. */
struct job *
jobs_submit(struct jobs *js, struct job_request *req,
    const struct job_owner *owner, int *status, char **cause, jobs_accept_cb cb,
    void *arg)
{
	struct store_item *sitems;
	struct store_job sj;
	struct job *j;
	char *options;
	size_t i, pending;

	pending = js->count[ITEM_QUEUED] + js->count[ITEM_ACTIVE];
	if (js->stopping) {
		*status = 503;
		xasprintf(cause, "shutting down");
		return NULL;
	}
	if (pending + req->nurls + req->npages >
	    (size_t)js->cfg->queue_limit) {
		*status = 503;
		xasprintf(cause,
		    "queue full: %zu items pending, %zu more would "
		    "pass queue_limit %d",
		    pending, req->nurls + req->npages, js->cfg->queue_limit);
		return NULL;
	}
	j = job_new(js, js->njobs + 1, req->npages + req->nurls);
	j->created = time(NULL);
	j->dir = req->dir;
	j->name = req->name;
	j->headers = req->headers;
	j->nheaders = req->nheaders;
	j->timeout = req->timeout > 0 ? req->timeout : 0;
	j->retries = req->retries;
	j->proxy = req->proxy;
	j->no_proxy = req->no_proxy;
	j->user_agent = req->user_agent;
	req->proxy = req->no_proxy = req->user_agent = NULL;
	j->accept_cb = cb;
	j->accept_arg = arg;
	if (owner != NULL) {
		j->owned = 1;
		j->owner_uid = owner->uid;
		j->owner_user =
		    owner->user != NULL ? xstrdup(owner->user) : NULL;
	}
	j->queue_id = req->queue_id;
	j->skip_existing = req->skip_existing;
	job_set_options(j, req->if_changed,
	    req->dedup >= 0 ? req->dedup : js->cfg->dedup, req->same_host,
	    req->follow_next, req->max_page_size);
	/* Pages first: their images start while the listed ones run. */
	for (i = 0; i < req->npages; i++) {
		j->items[i]->url = req->pages[i];
		j->items[i]->page = 1;
	}
	for (i = 0; i < req->nurls; i++)
		j->items[req->npages + i]->url = req->urls[i];
	for (i = 0; i < j->nitems; i++) {
		j->items[i]->state = ITEM_QUEUED;
		if (req->npages > 0)
			job_seen(j, j->items[i]->url);
		item_make_runnable(j->items[i]);
	}
	free(req->urls);
	free(req->pages);
	memset(req, 0, sizeof *req);
	j->count[ITEM_QUEUED] = j->nitems;
	js->count[ITEM_QUEUED] += j->nitems;
	log_info("job %llu: accepted, %zu items into \"%s\" as \"%s\" for "
		 "uid %ld (%s)",
	    j->id, j->nitems, j->dir != NULL ? j->dir : "",
	    j->name != NULL ? j->name : DEFAULT_NAME_TEMPLATE,
	    j->owned ? (long)j->owner_uid : -1L,
	    j->owner_user != NULL ? j->owner_user : "no name");

	if (js->store == NULL) {
		event_base_once(
		    js->base, -1, EV_TIMEOUT, job_accept_later_cb, j, NULL);
		return j;
	}
	/* Durable before the reply: the job runs once the store has it. */
	sitems = xcalloc(j->nitems, sizeof *sitems);
	for (i = 0; i < j->nitems; i++) {
		sitems[i].n = i;
		sitems[i].url = j->items[i]->url;
		sitems[i].state = STORE_ITEM_QUEUED;
		sitems[i].extra = j->items[i]->page ? "{\"page\":true}" : NULL;
	}
	memset(&sj, 0, sizeof sj);
	sj.id = j->id;
	sj.created = j->created;
	sj.state = (int)j->state;
	sj.dir = j->dir;
	sj.name = j->name;
	sj.headers = j->headers;
	sj.nheaders = j->nheaders;
	sj.options = options = job_options_json(j);
	sj.queue_id = j->queue_id;
	sj.owned = j->owned;
	sj.owner_uid = j->owner_uid;
	sj.owner_user = j->owner_user;
	sj.items = sitems;
	sj.nitems = j->nitems;
	store_add_job(js->store, &sj, job_stored, j);
	free(sitems);
	free(options);
	/*
	 * The network need not wait for the commit: transfers start now and
	 * their files are held in memory (bounded like any writer backlog)
	 * until job_stored, so a crash before it leaves nothing on the disk.
	 */
	jobs_pump(js);
	return j;
}

/* Restart: queue the item, or wait out a retry it was waiting for. */
static void
item_restart_queued(struct item *it)
{
	struct timeval tv;
	long long wait = (long long)it->retry_at * 1000 - job_now_ms();

	if (it->retry_at == 0 || wait <= 0) {
		it->retry_at = 0;
		item_make_runnable(it);
		return;
	}
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	it->retry_ev = evtimer_new(it->job->jobs->base, item_retry_cb, it);
	evtimer_add(it->retry_ev, &tv);
	log_info("job %llu item %lu: waiting %lld ms more for its retry",
	    it->job->id, it->n, wait);
}

/* Restart: the item turned out done, with bytes in its final file. */
static void
item_restored_done(struct item *it, unsigned long long bytes, const char *how)
{
	struct job *j = it->job;

	it->bytes = bytes;
	it->part_size = 0;
	j->bytes_done += bytes;
	j->jobs->bytes += bytes;
	item_set_state(it, ITEM_DONE);
	item_store(it, STORE_ITEM_DONE);
	log_info("job %llu item %lu: done %s (%llu bytes, %s after a restart)",
	    j->id, it->n, it->path, bytes, how);
	item_emit(it);
	job_update(j);
}

/* Restart: a committing item's complete .part was renamed into place. */
static void
item_commit_cb(struct wfile *f, enum wfile_event ev, void *arg)
{
	struct item *it = arg;
	struct job *j = it->job;

	if (ev == WFILE_PREPARED) {
		free(it->path);
		it->path = xstrdup(wfile_path(f));
		wfile_rename(f);
		return;
	}
	if (ev != WFILE_DONE)
		return;
	it->probe = NULL;
	free(it->part);
	free(it->validator);
	it->part = it->validator = NULL;
	if (wfile_ok(f) == 0) {
		item_restored_done(it, it->part_size, "completed");
		return;
	}
	log_warnx("job %llu item %lu: completing after a restart failed: %s;"
		  " fetching again",
	    j->id, it->n, wfile_error(f));
	it->part_size = 0;
	item_make_runnable(it);
	jobs_pump(j->jobs);
}

/* Restart: finish a committing item whose whole body is in its .part. */
static void
item_finish_commit(struct item *it)
{
	struct wfile_spec spec;

	memset(&spec, 0, sizeof spec);
	spec.relpath = it->path;
	spec.part = it->part;
	spec.offset = it->part_size;
	spec.policy = it->job->skip_existing ? EXISTS_SKIP
					     : it->job->jobs->cfg->on_exists;
	spec.do_fsync = it->job->jobs->cfg->fsync;
	it->probe =
	    wfile_open(it->job->jobs->writer, &spec, item_commit_cb, it);
	if (it->probe == NULL) {
		item_make_runnable(it);
		return;
	}
	wfile_commit(it->probe);
}

/* Restart: a kept .part, or a committing item's final file, was looked at. */
static void
item_probe_cb(struct wfile *f, enum wfile_event ev, void *arg)
{
	struct item *it = arg;
	struct job *j = it->job;
	int found = ev == WFILE_DONE && wfile_ok(f) == 0;

	if (ev != WFILE_DONE)
		return;
	it->probe = NULL;
	if (j->cancel_requested) {
		item_drop_part(it);
		item_set_state(it, ITEM_CANCELLED);
		item_store(it, STORE_ITEM_CANCELLED);
		job_update(j);
		return;
	}
	if (it->probing_final) {
		it->probing_final = 0;
		it->committing = 0;
		if (found) {
			/* Renamed into place before the daemon stopped. */
			item_restored_done(it, wfile_size(f), "found in place");
			return;
		}
	} else if (found) {
		it->part_size = wfile_size(f);
		if (it->committing) {
			it->committing = 0;
			/* The record may go out before the last writes end. */
			if (it->part_size == it->commit_size) {
				item_finish_commit(it);
				return;
			}
			log_info("job %llu item %lu: %s holds %llu of its %llu "
				 "bytes; not renamed",
			    j->id, it->n, it->part, it->part_size,
			    it->commit_size);
		}
		/* Without a validator a Range request is unsafe: fetch anew. */
		if (it->validator == NULL || it->part_size == 0)
			item_drop_part(it);
	} else {
		free(it->part);
		free(it->validator);
		it->part = it->validator = NULL;
		it->part_size = 0;
		if (it->committing && it->path != NULL) {
			/* No .part: was it renamed before the crash? */
			it->probing_final = 1;
			it->probe = wfile_probe(
			    j->jobs->writer, it->path, item_probe_cb, it);
			return;
		}
	}
	item_restart_queued(it);
	jobs_pump(j->jobs);
}

/* Restart: rebuild one stored job. */
static void
jobs_restore_job(void *arg, const struct store_job *sj)
{
	struct jobs *js = arg;
	const struct store_item *si;
	struct item *it;
	struct job *j;
	json_t *opts;
	size_t i;
	int scrapes = 0;

	j = job_new(js, sj->id, sj->nitems);
	j->created = sj->created;
	j->finished = sj->finished;
	j->dir = sj->dir != NULL ? xstrdup(sj->dir) : NULL;
	j->name = sj->name != NULL ? xstrdup(sj->name) : NULL;
	j->owned = sj->owned;
	j->owner_uid = sj->owner_uid;
	j->owner_user = sj->owner_user != NULL ? xstrdup(sj->owner_user) : NULL;
	j->stored = 1;
	if (sj->options != NULL &&
	    (opts = json_loads(sj->options, 0, NULL)) != NULL) {
		job_network_load(j, opts);
		json_decref(opts);
	}
	/* A queue job run again after a restart keeps what is already there. */
	if (sj->queue_id != NULL) {
		j->queue_id = xstrdup(sj->queue_id);
		j->skip_existing = 1;
	}
	if (sj->nheaders > 0) {
		j->headers = xcalloc(sj->nheaders, sizeof *j->headers);
		for (i = 0; i < sj->nheaders; i++)
			j->headers[i] = xstrdup(sj->headers[i]);
		j->nheaders = sj->nheaders;
	}
	job_options_load(j, sj->options);
	for (i = 0; i < sj->nitems; i++) {
		si = &sj->items[i];
		it = j->items[i];
		it->url = xstrdup(si->url != NULL ? si->url : "");
		item_extra_load(it, si->extra);
		if (it->page)
			scrapes = 1;
		it->path = si->path != NULL ? xstrdup(si->path) : NULL;
		it->part = si->part != NULL ? xstrdup(si->part) : NULL;
		it->validator =
		    si->validator != NULL ? xstrdup(si->validator) : NULL;
		it->error = si->error != NULL ? xstrdup(si->error) : NULL;
		it->http_status = si->http_status;
		it->bytes = si->bytes;
		it->attempts = si->attempts;
		it->retry_at = (time_t)si->retry_at;
		switch (si->state) {
		case STORE_ITEM_DONE:
			it->state = ITEM_DONE;
			j->bytes_done += it->bytes;
			if (!it->page && it->unchanged)
				j->nunchanged++;
			if (it->duplicate_of != NULL)
				j->nduplicates++;
			break;
		case STORE_ITEM_FAILED:
			it->state = ITEM_FAILED;
			j->bytes_done += it->bytes;
			break;
		case STORE_ITEM_CANCELLED:
			it->state = ITEM_CANCELLED;
			j->bytes_done += it->bytes;
			break;
		default:
			it->state = ITEM_QUEUED;
			it->bytes = 0;
			break;
		}
		j->count[it->state]++;
		js->count[it->state]++;
		if (it->state != ITEM_QUEUED)
			continue;
		it->committing =
		    si->state == STORE_ITEM_COMMITTING && it->path != NULL;
		it->commit_size = si->bytes;
		if (it->part != NULL)
			it->probe = wfile_probe(
			    js->writer, it->part, item_probe_cb, it);
		else if (it->committing) {
			it->probing_final = 1;
			it->probe = wfile_probe(
			    js->writer, it->path, item_probe_cb, it);
		} else
			item_restart_queued(it);
	}
	/* A scraping job must not take in a URL it has twice. */
	for (i = 0; scrapes && i < j->nitems; i++)
		job_seen(j, j->items[i]->url);
	js->bytes += j->bytes_done;
	if (sj->state >= 0 && sj->state < JOB_NSTATES)
		j->state = (enum job_state)sj->state;
	if (!job_ended(j) && j->count[ITEM_QUEUED] == 0 &&
	    j->count[ITEM_ACTIVE] == 0) {
		j->state = JOB_RUNNING;
		job_update(j);
	}
	if (!TAILQ_EMPTY(&j->runq) && !j->in_ring) {
		TAILQ_INSERT_TAIL(&js->ring, j, ring_entry);
		j->in_ring = 1;
	}
}

/* Load the stored jobs and start what is left of them. */
int
jobs_restore(struct jobs *js)
{
	struct timeval now = { 0, 0 };
	size_t pending;

	js->cache = cache_create(js->store, js->cfg->cache_max_entries);
	if (js->store != NULL &&
	    store_load(js->store, jobs_restore_job, js) == -1)
		return -1;
	pending = js->count[ITEM_QUEUED];
	if (js->njobs > 0)
		log_info("restored %zu jobs, %zu items to fetch", js->nlive,
		    pending);
	/* Prune now (on the first loop turn), then every PRUNE_INTERVAL. */
	evtimer_add(js->prune_ev, &now);
	jobs_pump(js);
	return 0;
}

/* Apply a reloaded config. */
void
jobs_reconfigure(struct jobs *js)
{
	fetcher_reconfigure(js->fetcher);
	cache_set_max(js->cache, js->cfg->cache_max_entries);
	hostrate_set_rate(js->rate, js->cfg->host_rate);
	jobs_pump(js);
}

/* Forget a pending accept callback. */
void
job_clear_accept(struct job *j)
{
	j->accept_cb = NULL;
	j->accept_arg = NULL;
}

/* Find a job by id. */
struct job *
jobs_find(struct jobs *js, unsigned long long id)
{
	if (id == 0 || id > js->njobs)
		return NULL;
	return js->all[id - 1];
}

/* All jobs (or one uid's), newest first, optionally of one state. */
json_t *
jobs_list_json(struct jobs *js, const char *state, long long owner)
{
	json_t *list;
	size_t i, k;
	int want = -1;

	if (state != NULL) {
		for (k = 0; k < JOB_NSTATES; k++) {
			if (strcmp(state, job_state_names[k]) == 0)
				want = (int)k;
		}
		if (want == -1)
			return NULL;
	}
	list = json_array();
	for (i = js->njobs; i > 0; i--) {
		if (js->all[i - 1] == NULL ||
		    (want != -1 && (int)js->all[i - 1]->state != want) ||
		    !job_owned_by(js->all[i - 1], owner))
			continue;
		json_array_append_new(
		    list, job_json(js->all[i - 1], JOB_ITEMS_NONE));
	}
	return json_pack("{so}", "jobs", list);
}

/* The daemon's counters (of every job or one uid's) and limits. */
json_t *
jobs_status_json(struct jobs *js, long long owner)
{
	const struct config *cfg = js->cfg;
	size_t count[ITEM_NSTATES], nlive = js->nlive, i, k;
	unsigned long long bytes = js->bytes;
	json_t *o;

	memcpy(count, js->count, sizeof count);
	if (owner != JOB_OWNER_ANY) {
		memset(count, 0, sizeof count);
		nlive = 0;
		bytes = 0;
		for (i = 0; i < js->njobs; i++) {
			if (js->all[i] == NULL ||
			    !job_owned_by(js->all[i], owner))
				continue;
			nlive++;
			for (k = 0; k < ITEM_NSTATES; k++)
				count[k] += js->all[i]->count[k];
			/* Ended items only, as js->bytes counts them. */
			bytes += js->all[i]->bytes_done;
		}
	}
	o = json_pack("{sssIsIs{sIsIsIsIsI}sIs{sisisisisIsIsIsisisi}}",
	    "version", IMGFETCHD_VERSION, "uptime",
	    (json_int_t)(time(NULL) - js->started), "jobs", (json_int_t)nlive,
	    "items", "queued", (json_int_t)count[ITEM_QUEUED], "active",
	    (json_int_t)count[ITEM_ACTIVE], "done",
	    (json_int_t)count[ITEM_DONE], "failed",
	    (json_int_t)count[ITEM_FAILED], "cancelled",
	    (json_int_t)count[ITEM_CANCELLED], "bytes", (json_int_t)bytes,
	    "limits", "max_transfers", cfg->max_transfers,
	    "max_host_connections", cfg->max_host_connections, "workers",
	    cfg->workers, "queue_limit", cfg->queue_limit, "max_item_size",
	    (json_int_t)cfg->max_item_size, "max_request_body",
	    (json_int_t)cfg->max_request_body, "timeout",
	    (json_int_t)cfg->timeout, "connect_timeout",
	    (int)cfg->connect_timeout, "max_redirects", cfg->max_redirects,
	    "retries", cfg->retries);
	json_object_set_new(
	    o, "scope", json_string(owner == JOB_OWNER_ANY ? "all" : "own"));
	json_object_set_new(json_object_get(o, "limits"), "host_rate",
	    json_real(cfg->host_rate));
	json_object_set_new(o, "private_jobs", json_boolean(cfg->private_jobs));
	return o;
}

/* Cancel a job's remaining items. */
void
job_cancel(struct job *j)
{
	struct item *it;
	size_t i;

	if (job_ended(j))
		return;
	j->cancel_requested = 1;
	for (i = 0; i < j->nitems; i++) {
		it = j->items[i];
		if (it->state != ITEM_QUEUED && it->state != ITEM_ACTIVE)
			continue;
		if (it->probe != NULL)
			continue; /* finishes in item_probe_cb, then cancelled */
		if (it->parse != NULL) {
			/* The parse runs on; its result is dropped. */
			it->parse->item = NULL;
			it->parse = NULL;
			it->task = NULL;
		}
		if (it->dedup_wait != 0) {
			TAILQ_REMOVE(it->dedup_wait == 1 ? &j->jobs->hash_waiting
							 : &j->jobs->hashing,
			    it, hash_entry);
			if (it->dedup_wait == 2 && it->sha256 != NULL)
				jobs_hash_settled(j->jobs, it->sha256, NULL);
		}
		if (it->transfer != NULL) {
			struct transfer *t = it->transfer;

			/* A job's bytes stay the sum of its items' bytes. */
			it->bytes = transfer_bytes(it->transfer);
			fetch_cancel(it->transfer);
			/* A parked prepared file waits for nothing now. */
			if (it->dedup_wait == 1)
				fetch_commit(t);
			it->dedup_wait = 0;
			item_set_transfer(it, NULL);
			if (it->transferring) {
				it->transferring = 0;
				j->jobs->transfers--;
			}
		} else
			it->bytes = 0;
		j->bytes_done += it->bytes;
		j->jobs->bytes += it->bytes;
		if (it->retry_ev != NULL) {
			event_free(it->retry_ev);
			it->retry_ev = NULL;
		}
		if (it->rate_wait != NULL) {
			hostrate_cancel(it->rate_wait);
			it->rate_wait = NULL;
		}
		it->rate_granted = 0;
		item_unrun(it);
		item_drop_part(it);
		item_set_state(it, ITEM_CANCELLED);
		item_store(it, STORE_ITEM_CANCELLED);
		item_emit(it);
	}
	if (j->in_ring) {
		TAILQ_REMOVE(&j->jobs->ring, j, ring_entry);
		j->in_ring = 0;
	}
	log_info("job %llu: cancel requested", j->id);
	job_update(j);
	jobs_pump(j->jobs);
}

/* What a stored cancel calls back. */
struct job_cancel_wait {
	struct job *job;
	jobs_accept_cb cb;
	void *arg;
};

/* The store has every record of the cancel. */
static void
job_cancel_stored_cb(void *arg, int ok)
{
	struct job_cancel_wait *cw = arg;

	cw->cb(cw->arg, cw->job, ok);
	free(cw);
}

/* Without a store: answer on the next loop turn. */
static void
job_cancel_later_cb(evutil_socket_t fd, short what, void *arg)
{
	job_cancel_stored_cb(arg, 0);
}

/*
 * Cancel and wait for the store: its operations run in order, so once this
 * last one is committed every cancelled item's record is too.
 */
void
job_cancel_stored(struct job *j, jobs_accept_cb cb, void *arg)
{
	struct job_cancel_wait *cw;

	job_cancel(j);
	cw = xcalloc(1, sizeof *cw);
	cw->job = j;
	cw->cb = cb;
	cw->arg = arg;
	if (j->jobs->store == NULL)
		event_base_once(j->jobs->base, -1, EV_TIMEOUT,
		    job_cancel_later_cb, cw, NULL);
	else
		store_update_job(j->jobs->store, j->id, (int)j->state,
		    j->finished, job_cancel_stored_cb, cw);
}

/* Start nothing new. */
void
jobs_stop_intake(struct jobs *js)
{
	js->stopping = 1;
}

/* Stop every running item, keeping it resumable. */
void
jobs_suspend_all(struct jobs *js)
{
	struct item *it, *tmp;
	struct job *j;
	size_t k;

	js->stopping = 1;
	/* Files parked behind one with their digest go in as they are. */
	while ((it = TAILQ_FIRST(&js->hash_waiting)) != NULL) {
		TAILQ_REMOVE(&js->hash_waiting, it, hash_entry);
		it->dedup_wait = 0;
		if (it->transfer == NULL)
			continue;
		if (it->job->hash_name && it->path != NULL)
			fetch_commit_as(it->transfer, it->path);
		else
			fetch_commit(it->transfer);
	}
	for (k = 0; k < js->njobs; k++) {
		if ((j = js->all[k]) == NULL)
			continue;
		TAILQ_FOREACH_SAFE(it, &j->inflight, inflight_entry, tmp)
			fetch_suspend(it->transfer);
	}
}

/* A one-line summary of the counters. */
const char *
jobs_status_line(struct jobs *js)
{
	static char line[256];

	snprintf(line, sizeof line,
	    "%zu jobs; items: %zu queued, %zu active, "
	    "%zu done, %zu failed; %llu bytes",
	    js->nlive, js->count[ITEM_QUEUED], js->count[ITEM_ACTIVE],
	    js->count[ITEM_DONE], js->count[ITEM_FAILED], js->bytes);
	return line;
}

/* Items queued or active. */
size_t
jobs_pending(struct jobs *js)
{
	return js->count[ITEM_QUEUED] + js->count[ITEM_ACTIVE];
}

/* Items active. */
size_t
jobs_active(struct jobs *js)
{
	return js->count[ITEM_ACTIVE];
}

/* Follow a job's events. */
struct job_watch *
job_watch(struct job *j, enum job_items items, job_watch_cb cb, void *arg)
{
	struct job_watch *w;

	w = xcalloc(1, sizeof *w);
	w->job = j;
	w->items = items;
	w->cb = cb;
	w->arg = arg;
	if (TAILQ_EMPTY(&j->watches))
		TAILQ_INSERT_TAIL(&j->jobs->watched, j, watched_entry);
	TAILQ_INSERT_TAIL(&j->watches, w, entry);
	j->jobs->nwatches++;
	jobs_update_tick(j->jobs);
	return w;
}

/* Stop following. */
void
job_unwatch(struct job_watch *w)
{
	struct jobs *js = w->job->jobs;

	TAILQ_REMOVE(&w->job->watches, w, entry);
	if (TAILQ_EMPTY(&w->job->watches))
		TAILQ_REMOVE(&js->watched, w->job, watched_entry);
	js->nwatches--;
	jobs_update_tick(js);
	free(w);
}
