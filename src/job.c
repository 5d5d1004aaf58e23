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
 */
#include <sys/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "compat.h"
#include "config.h"
#include "defs.h"
#include "fetch.h"
#include "hostrate.h"
#include "job.h"
#include "log.h"
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
	int owned; /* owner_uid and owner_user are known */
	unsigned long owner_uid;
	char *owner_user; /* NULL if the uid had no name */
	struct item *items;
	size_t nitems;
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
};

static const struct transfer_ops item_ops;
static void jobs_pump(struct jobs *);
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
		it = &j->items[i];
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
	}
	for (i = 0; i < j->nheaders; i++)
		free(j->headers[i]);
	free(j->headers);
	free(j->items);
	free(j->dir);
	free(j->name);
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
	    o, "dir", json_string(j->dir != NULL ? j->dir : ""));
	json_object_set_new(o, "name",
	    json_string(j->name != NULL ? j->name : DEFAULT_NAME_TEMPLATE));
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
		it = &j->items[i];
		if (item_listed(it, which))
			json_array_append_new(items, item_json(it));
	}
	json_object_set_new(o, "items", items);
	return o;
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

/* Record the item in the store (state may be STORE_ITEM_COMMITTING). */
static void
item_store(struct item *it, int state)
{
	struct store_item si;

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
	store_update_item(it->job->jobs->store, it->job->id, &si, NULL, NULL);
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
	path = path_expand(j->dir,
	    j->name != NULL ? j->name : DEFAULT_NAME_TEMPLATE, &vars, cause);
	if (path != NULL) {
		free(it->path);
		it->path = xstrdup(path);
	}
	return path;
}

/* The body is on disk: record the final name, then let it be renamed. */
static void
item_prepared_stored(void *arg, int ok)
{
	struct transfer *t = arg;

	/* Renaming even if the store failed: the file is complete. */
	fetch_commit(t);
}

/* The item's body is complete as part, to be renamed to path. */
static void
item_prepared(void *arg, struct transfer *t, const char *path, const char *part)
{
	struct item *it = arg;
	struct store_item si;

	free(it->path);
	it->path = xstrdup(path);
	if (it->job->jobs->store == NULL) {
		fetch_commit(t);
		return;
	}
	memset(&si, 0, sizeof si);
	si.n = it->n;
	si.url = it->url;
	si.state = STORE_ITEM_COMMITTING;
	si.path = path;
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
	log_info("job %llu item %lu: attempt %d failed (%s), retry in %ld ms%s",
	    it->job->id, it->n, it->attempts, it->error, ms,
	    it->part != NULL ? ", resuming" : "");
}

/* The item's transfer ended. */
static void
item_done(void *arg, const struct fetch_result *res)
{
	struct item *it = arg;
	struct job *j = it->job;
	struct jobs *js = j->jobs;

	item_set_transfer(it, NULL);
	if (it->transferring) {
		it->transferring = 0;
		js->transfers--;
	}
	it->http_status = res->http_status;
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
		item_set_state(it, ITEM_DONE);
		item_store(it, STORE_ITEM_DONE);
		log_info("job %llu item %lu: done %s (%llu bytes)%s", j->id,
		    it->n, it->path, it->bytes,
		    it->skipped ? ", existing file kept" : "");
	} else if (res->retryable && js->stopping) {
		/* Shutdown: leave it queued and resumable for the next start. */
		it->error = xstrdup(res->error);
		it->bytes = it->part_size;
		item_set_state(it, ITEM_QUEUED);
		item_store(it, STORE_ITEM_QUEUED);
	} else if (res->retryable && it->attempts <= js->cfg->retries) {
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

/* Allocate a job with room for nitems and register it under id. */
static struct job *
job_new(struct jobs *js, unsigned long long id, size_t nitems)
{
	struct job *j;
	size_t i;

	j = xcalloc(1, sizeof *j);
	j->jobs = js;
	j->id = id;
	j->state = JOB_QUEUED;
	TAILQ_INIT(&j->watches);
	TAILQ_INIT(&j->runq);
	TAILQ_INIT(&j->inflight);
	j->nitems = nitems;
	j->items = xcalloc(nitems, sizeof *j->items);
	for (i = 0; i < nitems; i++) {
		j->items[i].job = j;
		j->items[i].n = i;
		j->items[i].size = -1;
	}
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

/* Accept a new job. */
struct job *
jobs_submit(struct jobs *js, struct job_request *req,
    const struct job_owner *owner, int *status, char **cause, jobs_accept_cb cb,
    void *arg)
{
	struct store_item *sitems;
	struct store_job sj;
	struct job *j;
	size_t i, pending;

	pending = js->count[ITEM_QUEUED] + js->count[ITEM_ACTIVE];
	if (js->stopping) {
		*status = 503;
		xasprintf(cause, "shutting down");
		return NULL;
	}
	if (pending + req->nurls > (size_t)js->cfg->queue_limit) {
		*status = 503;
		xasprintf(cause,
		    "queue full: %zu items pending, %zu more would "
		    "pass queue_limit %d",
		    pending, req->nurls, js->cfg->queue_limit);
		return NULL;
	}
	j = job_new(js, js->njobs + 1, req->nurls);
	j->created = time(NULL);
	j->dir = req->dir;
	j->name = req->name;
	j->headers = req->headers;
	j->nheaders = req->nheaders;
	j->accept_cb = cb;
	j->accept_arg = arg;
	if (owner != NULL) {
		j->owned = 1;
		j->owner_uid = owner->uid;
		j->owner_user =
		    owner->user != NULL ? xstrdup(owner->user) : NULL;
	}
	for (i = 0; i < req->nurls; i++) {
		j->items[i].url = req->urls[i];
		j->items[i].state = ITEM_QUEUED;
		item_make_runnable(&j->items[i]);
	}
	free(req->urls);
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
		sitems[i].url = j->items[i].url;
		sitems[i].state = STORE_ITEM_QUEUED;
	}
	memset(&sj, 0, sizeof sj);
	sj.id = j->id;
	sj.created = j->created;
	sj.state = (int)j->state;
	sj.dir = j->dir;
	sj.name = j->name;
	sj.headers = j->headers;
	sj.nheaders = j->nheaders;
	sj.owned = j->owned;
	sj.owner_uid = j->owner_uid;
	sj.owner_user = j->owner_user;
	sj.items = sitems;
	sj.nitems = j->nitems;
	store_add_job(js->store, &sj, job_stored, j);
	free(sitems);
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
	spec.policy = it->job->jobs->cfg->on_exists;
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
	size_t i;

	j = job_new(js, sj->id, sj->nitems);
	j->created = sj->created;
	j->finished = sj->finished;
	j->dir = sj->dir != NULL ? xstrdup(sj->dir) : NULL;
	j->name = sj->name != NULL ? xstrdup(sj->name) : NULL;
	j->owned = sj->owned;
	j->owner_uid = sj->owner_uid;
	j->owner_user = sj->owner_user != NULL ? xstrdup(sj->owner_user) : NULL;
	j->stored = 1;
	if (sj->nheaders > 0) {
		j->headers = xcalloc(sj->nheaders, sizeof *j->headers);
		for (i = 0; i < sj->nheaders; i++)
			j->headers[i] = xstrdup(sj->headers[i]);
		j->nheaders = sj->nheaders;
	}
	for (i = 0; i < sj->nitems; i++) {
		si = &sj->items[i];
		it = &j->items[i];
		it->url = xstrdup(si->url != NULL ? si->url : "");
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
		it = &j->items[i];
		if (it->state != ITEM_QUEUED && it->state != ITEM_ACTIVE)
			continue;
		if (it->probe != NULL)
			continue; /* finishes in item_probe_cb, then cancelled */
		if (it->transfer != NULL) {
			/* A job's bytes stay the sum of its items' bytes. */
			it->bytes = transfer_bytes(it->transfer);
			fetch_cancel(it->transfer);
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
