/*
 * Jobs and items. A job is a batch of URLs; each URL is an item with its
 * own state. Items of all jobs share max_transfers slots: jobs with queued
 * items sit in a round-robin ring and each free slot goes to the next job
 * in the ring, so a small job submitted after a huge one starts at once.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "compat.h"
#include "config.h"
#include "defs.h"
#include "fetch.h"
#include "job.h"
#include "log.h"
#include "path.h"
#include "request.h"
#include "xmalloc.h"

enum item_state { ITEM_QUEUED, ITEM_ACTIVE, ITEM_DONE, ITEM_FAILED,
    ITEM_CANCELLED, ITEM_NSTATES };
static const char *const item_state_names[] = { "queued", "active", "done",
    "failed", "cancelled" };

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED,
    JOB_CANCELLED };
static const char *const job_state_names[] = { "queued", "running", "done",
    "failed", "cancelled" };

struct item {
	struct job *job;
	unsigned long n;
	char *url;
	enum item_state state;
	char *path;
	char *error;
	long http_status;
	unsigned long long bytes;
	long long size;
	int skipped;
	struct transfer *transfer;
};

struct job_watch {
	struct job *job;
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
	char *dir;
	char *name;
	char **headers;
	size_t nheaders;
	struct item *items;
	size_t nitems;
	size_t next;        /* first item that may still be queued */
	size_t count[ITEM_NSTATES];
	unsigned long long bytes_done;
	unsigned long long progress_bytes; /* in the last progress event */
	int in_ring;
	struct watch_list watches;
	TAILQ_ENTRY(job) ring_entry;
};
TAILQ_HEAD(job_ring, job);

struct jobs {
	struct event_base *base;
	struct fetcher *fetcher;
	const struct config *cfg;
	struct job **all;   /* by id - 1 */
	size_t njobs;
	struct job_ring ring;
	size_t count[ITEM_NSTATES];
	unsigned long long bytes;
	struct event *tick;
	unsigned long ticks;
	size_t nwatches;
	time_t started;
};

static const struct transfer_ops item_ops;
static void jobs_pump(struct jobs *);
static void job_emit(struct job *, json_t *, int last);

/* Bytes of the job's items so far, finished and in flight. */
static unsigned long long
job_bytes(struct job *j)
{
	unsigned long long bytes = j->bytes_done;
	size_t i;

	if (j->count[ITEM_ACTIVE] == 0)
		return bytes;
	for (i = 0; i < j->nitems; i++) {
		if (j->items[i].transfer != NULL)
			bytes += transfer_bytes(j->items[i].transfer);
	}
	return bytes;
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
	size_t i, k;
	int keepalive;

	/* Idle watchers still get one every few seconds, as a keep-alive. */
	keepalive = ++js->ticks % (5000 / PROGRESS_INTERVAL_MS) == 0;
	for (k = 0; k < js->njobs; k++) {
		j = js->all[k];
		if (TAILQ_EMPTY(&j->watches))
			continue;
		/* Only when bytes moved, or as the keep-alive. */
		bytes = job_bytes(j);
		if (bytes == j->progress_bytes && !keepalive)
			continue;
		j->progress_bytes = bytes;
		list = json_array();
		for (i = 0; i < j->nitems; i++) {
			it = &j->items[i];
			if (it->transfer == NULL)
				continue;
			p = json_pack("{sIsI}", "n", (json_int_t)it->n,
			    "bytes", (json_int_t)transfer_bytes(it->transfer));
			if (transfer_size(it->transfer) >= 0)
				json_object_set_new(p, "size",
				    json_integer(transfer_size(it->transfer)));
			json_array_append_new(list, p);
		}
		ev = json_pack("{sssIsIsIsIsIso}", "event", "progress",
		    "job", (json_int_t)j->id,
		    "bytes", (json_int_t)bytes,
		    "done", (json_int_t)j->count[ITEM_DONE],
		    "failed", (json_int_t)j->count[ITEM_FAILED],
		    "total", (json_int_t)j->nitems,
		    "items", list);
		TAILQ_FOREACH_SAFE(w, &j->watches, entry, tmp)
			w->cb(w->arg, ev, 0);
		json_decref(ev);
	}
}

/* Create the registry. */
struct jobs *
jobs_create(struct event_base *base, struct fetcher *fetcher,
    const struct config *cfg)
{
	struct jobs *js;

	js = xcalloc(1, sizeof *js);
	js->base = base;
	js->fetcher = fetcher;
	js->cfg = cfg;
	js->started = time(NULL);
	TAILQ_INIT(&js->ring);
	js->tick = event_new(base, -1, EV_PERSIST, jobs_tick_cb, js);
	return js;
}

/* Free a job and everything it owns. */
static void
job_free(struct job *j)
{
	struct job_watch *w;
	size_t i;

	while ((w = TAILQ_FIRST(&j->watches)) != NULL) {
		TAILQ_REMOVE(&j->watches, w, entry);
		free(w);
	}
	for (i = 0; i < j->nitems; i++) {
		free(j->items[i].url);
		free(j->items[i].path);
		free(j->items[i].error);
	}
	for (i = 0; i < j->nheaders; i++)
		free(j->headers[i]);
	free(j->headers);
	free(j->items);
	free(j->dir);
	free(j->name);
	free(j);
}

/* Free the registry; every transfer must be gone. */
void
jobs_destroy(struct jobs *js)
{
	size_t i;

	if (js == NULL)
		return;
	for (i = 0; i < js->njobs; i++)
		job_free(js->all[i]);
	free(js->all);
	event_free(js->tick);
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
	json_object_set_new(o, "state", json_string(item_state_names[it->state]));
	if (it->path != NULL)
		json_object_set_new(o, "path", json_string(it->path));
	json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
	if (size >= 0)
		json_object_set_new(o, "size", json_integer(size));
	if (it->http_status != 0)
		json_object_set_new(o, "http_status",
		    json_integer(it->http_status));
	if (it->skipped)
		json_object_set_new(o, "skipped", json_true());
	if (it->error != NULL)
		json_object_set_new(o, "error", json_string(it->error));
	return o;
}

/* Format a time as RFC 3339 in UTC. */
static void
job_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The job as JSON, with or without its items. */
json_t *
job_json(struct job *j, int with_items)
{
	json_t *o, *items;
	char created[32];
	size_t i;

	job_time(j->created, created, sizeof created);
	o = json_object();
	json_object_set_new(o, "id", json_integer((json_int_t)j->id));
	json_object_set_new(o, "state", json_string(job_state_names[j->state]));
	json_object_set_new(o, "created", json_string(created));
	json_object_set_new(o, "total", json_integer((json_int_t)j->nitems));
	json_object_set_new(o, "queued",
	    json_integer((json_int_t)j->count[ITEM_QUEUED]));
	json_object_set_new(o, "active",
	    json_integer((json_int_t)j->count[ITEM_ACTIVE]));
	json_object_set_new(o, "done",
	    json_integer((json_int_t)j->count[ITEM_DONE]));
	json_object_set_new(o, "failed",
	    json_integer((json_int_t)j->count[ITEM_FAILED]));
	json_object_set_new(o, "cancelled",
	    json_integer((json_int_t)j->count[ITEM_CANCELLED]));
	json_object_set_new(o, "bytes", json_integer((json_int_t)job_bytes(j)));
	json_object_set_new(o, "dir", json_string(j->dir != NULL ? j->dir : ""));
	json_object_set_new(o, "name", json_string(j->name != NULL ? j->name :
	    DEFAULT_NAME_TEMPLATE));
	if (with_items) {
		items = json_array();
		for (i = 0; i < j->nitems; i++)
			json_array_append_new(items, item_json(&j->items[i]));
		json_object_set_new(o, "items", items);
	}
	return o;
}

/* Job id. */
unsigned long long
job_id(struct job *j)
{
	return j->id;
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
	json_t *ev;

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
	log_info("job %llu: %s (%zu done, %zu failed, %zu cancelled of %zu)",
	    j->id, job_state_names[j->state], j->count[ITEM_DONE],
	    j->count[ITEM_FAILED], j->count[ITEM_CANCELLED], j->nitems);
	ev = json_pack("{ssso}", "event", "job", "job", job_json(j, 1));
	job_emit(j, ev, 1);
	json_decref(ev);
}

/* Send an event to the job's watchers; the last one ends every watch. */
static void
job_emit(struct job *j, json_t *ev, int last)
{
	struct job_watch *w, *tmp;

	TAILQ_FOREACH_SAFE(w, &j->watches, entry, tmp) {
		if (last) {
			TAILQ_REMOVE(&j->watches, w, entry);
			j->jobs->nwatches--;
		}
		w->cb(w->arg, ev, last);
		if (last)
			free(w);
	}
	if (last)
		jobs_update_tick(j->jobs);
}

/* Tell watchers an item changed state. */
static void
item_emit(struct item *it)
{
	json_t *ev;

	if (TAILQ_EMPTY(&it->job->watches))
		return;
	ev = json_pack("{sssIso}", "event", "item", "job",
	    (json_int_t)it->job->id, "item", item_json(it));
	job_emit(it->job, ev, 0);
	json_decref(ev);
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
	path = path_expand(j->dir, j->name != NULL ? j->name :
	    DEFAULT_NAME_TEMPLATE, &vars, cause);
	if (path != NULL) {
		free(it->path);
		it->path = xstrdup(path);
	}
	return path;
}

/* The item's transfer ended. */
static void
item_done(void *arg, const struct fetch_result *res)
{
	struct item *it = arg;
	struct job *j = it->job;

	it->transfer = NULL;
	it->http_status = res->http_status;
	it->bytes = res->bytes;
	j->bytes_done += res->bytes;
	j->jobs->bytes += res->bytes;
	if (res->ok) {
		free(it->path);
		it->path = xstrdup(res->path);
		it->skipped = res->skipped;
		item_set_state(it, ITEM_DONE);
		log_info("job %llu item %lu: done %s (%llu bytes)%s", j->id,
		    it->n, it->path, it->bytes,
		    it->skipped ? ", existing file kept" : "");
	} else {
		free(it->path);
		it->path = NULL;
		it->error = xstrdup(res->error);
		item_set_state(it, ITEM_FAILED);
		log_warnx("job %llu item %lu: failed %s: %s", j->id, it->n,
		    it->url, it->error);
	}
	item_emit(it);
	job_update(j);
	jobs_pump(j->jobs);
}

static const struct transfer_ops item_ops = { item_name, item_done };

/* Start one queued item. */
static void
item_start(struct item *it)
{
	struct job *j = it->job;

	item_set_state(it, ITEM_ACTIVE);
	log_debug("job %llu item %lu: start %s", j->id, it->n, it->url);
	it->transfer = fetch_start(j->jobs->fetcher, it->url, j->headers,
	    j->nheaders, &item_ops, it);
	if (it->transfer == NULL) {
		it->error = xstrdup("could not start the transfer");
		item_set_state(it, ITEM_FAILED);
		log_warnx("job %llu item %lu: failed %s: %s", j->id, it->n,
		    it->url, it->error);
	}
	item_emit(it);
	job_update(j);
}

/* The next queued item of a job, or NULL. */
static struct item *
job_next_queued(struct job *j)
{
	while (j->next < j->nitems) {
		if (j->items[j->next].state == ITEM_QUEUED)
			return &j->items[j->next];
		j->next++;
	}
	return NULL;
}

/* Fill free transfer slots, one item per job in turn. */
static void
jobs_pump(struct jobs *js)
{
	struct job *j;
	struct item *it;

	while (js->count[ITEM_ACTIVE] < (size_t)js->cfg->max_transfers &&
	    (j = TAILQ_FIRST(&js->ring)) != NULL) {
		TAILQ_REMOVE(&js->ring, j, ring_entry);
		j->in_ring = 0;
		if ((it = job_next_queued(j)) == NULL)
			continue;
		j->next++;
		if (job_next_queued(j) != NULL) {
			TAILQ_INSERT_TAIL(&js->ring, j, ring_entry);
			j->in_ring = 1;
		}
		item_start(it);
	}
}

/* Accept a new job. */
struct job *
jobs_submit(struct jobs *js, struct job_request *req, int *status,
    char **cause)
{
	struct job *j;
	size_t i, pending;

	pending = js->count[ITEM_QUEUED] + js->count[ITEM_ACTIVE];
	if (pending + req->nurls > (size_t)js->cfg->queue_limit) {
		*status = 503;
		xasprintf(cause, "queue full: %zu items pending, %zu more would "
		    "pass queue_limit %d", pending, req->nurls,
		    js->cfg->queue_limit);
		return NULL;
	}
	j = xcalloc(1, sizeof *j);
	j->jobs = js;
	j->id = js->njobs + 1;
	j->created = time(NULL);
	j->state = JOB_QUEUED;
	TAILQ_INIT(&j->watches);
	j->dir = req->dir;
	j->name = req->name;
	j->headers = req->headers;
	j->nheaders = req->nheaders;
	j->nitems = req->nurls;
	j->items = xcalloc(req->nurls, sizeof *j->items);
	for (i = 0; i < req->nurls; i++) {
		j->items[i].job = j;
		j->items[i].n = i;
		j->items[i].url = req->urls[i];
		j->items[i].state = ITEM_QUEUED;
		j->items[i].size = -1;
	}
	free(req->urls);
	memset(req, 0, sizeof *req);
	j->count[ITEM_QUEUED] = j->nitems;
	js->count[ITEM_QUEUED] += j->nitems;

	js->all = xreallocarray(js->all, js->njobs + 1, sizeof *js->all);
	js->all[js->njobs++] = j;
	TAILQ_INSERT_TAIL(&js->ring, j, ring_entry);
	j->in_ring = 1;
	log_info("job %llu: accepted, %zu items into \"%s\" as \"%s\"", j->id,
	    j->nitems, j->dir != NULL ? j->dir : "",
	    j->name != NULL ? j->name : DEFAULT_NAME_TEMPLATE);
	jobs_pump(js);
	return j;
}

/* Find a job by id. */
struct job *
jobs_find(struct jobs *js, unsigned long long id)
{
	if (id == 0 || id > js->njobs)
		return NULL;
	return js->all[id - 1];
}

/* All jobs, newest first, optionally of one state. */
json_t *
jobs_list_json(struct jobs *js, const char *state)
{
	json_t *list;
	size_t i, k;
	int want = -1;

	if (state != NULL) {
		for (k = 0; k < sizeof job_state_names / sizeof *job_state_names;
		    k++) {
			if (strcmp(state, job_state_names[k]) == 0)
				want = (int)k;
		}
		if (want == -1)
			return NULL;
	}
	list = json_array();
	for (i = js->njobs; i > 0; i--) {
		if (want != -1 && (int)js->all[i - 1]->state != want)
			continue;
		json_array_append_new(list, job_json(js->all[i - 1], 0));
	}
	return json_pack("{so}", "jobs", list);
}

/* The daemon's counters and limits. */
json_t *
jobs_status_json(struct jobs *js)
{
	const struct config *cfg = js->cfg;

	return json_pack("{sssIsIs{sIsIsIsIsI}sIs{sisisisisIsIsIsisi}}",
	    "version", IMGFETCHD_VERSION,
	    "uptime", (json_int_t)(time(NULL) - js->started),
	    "jobs", (json_int_t)js->njobs,
	    "items",
	    "queued", (json_int_t)js->count[ITEM_QUEUED],
	    "active", (json_int_t)js->count[ITEM_ACTIVE],
	    "done", (json_int_t)js->count[ITEM_DONE],
	    "failed", (json_int_t)js->count[ITEM_FAILED],
	    "cancelled", (json_int_t)js->count[ITEM_CANCELLED],
	    "bytes", (json_int_t)js->bytes,
	    "limits",
	    "max_transfers", cfg->max_transfers,
	    "max_host_connections", cfg->max_host_connections,
	    "workers", cfg->workers,
	    "queue_limit", cfg->queue_limit,
	    "max_item_size", (json_int_t)cfg->max_item_size,
	    "max_request_body", (json_int_t)cfg->max_request_body,
	    "timeout", (json_int_t)cfg->timeout,
	    "connect_timeout", (int)cfg->connect_timeout,
	    "max_redirects", cfg->max_redirects);
}

/* Cancel a job's remaining items. */
void
job_cancel(struct job *j)
{
	struct item *it;
	size_t i;

	if (job_ended(j))
		return;
	for (i = 0; i < j->nitems; i++) {
		it = &j->items[i];
		if (it->state != ITEM_QUEUED && it->state != ITEM_ACTIVE)
			continue;
		if (it->transfer != NULL) {
			/* A job's bytes stay the sum of its items' bytes. */
			it->bytes = transfer_bytes(it->transfer);
			j->bytes_done += it->bytes;
			j->jobs->bytes += it->bytes;
			fetch_cancel(it->transfer);
			it->transfer = NULL;
		}
		free(it->path);
		it->path = NULL;
		item_set_state(it, ITEM_CANCELLED);
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

/* Cancel everything that has not ended. */
void
jobs_cancel_all(struct jobs *js)
{
	size_t i;

	for (i = 0; i < js->njobs; i++)
		job_cancel(js->all[i]);
}

/* Items queued or active. */
size_t
jobs_pending(struct jobs *js)
{
	return js->count[ITEM_QUEUED] + js->count[ITEM_ACTIVE];
}

/* Follow a job's events. */
struct job_watch *
job_watch(struct job *j, job_watch_cb cb, void *arg)
{
	struct job_watch *w;

	w = xcalloc(1, sizeof *w);
	w->job = j;
	w->cb = cb;
	w->arg = arg;
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
	js->nwatches--;
	jobs_update_tick(js);
	free(w);
}
