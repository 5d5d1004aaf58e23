/*
 * Jobs and items. A job is a batch of URLs; each URL is an item with its
 * own state. Items of all jobs share max_transfers slots: jobs with
 * runnable items sit in a round-robin ring and each free slot goes to the
 * next job in the ring, so a small job submitted after a huge one starts
 * at once. With host_rate, an item whose host has had its start of the
 * moment is parked with hostrate.c instead, holding no slot and keeping
 * no other host's items waiting, and comes back to the front of its job's
 * queue when its host's next start is due (every attempt counts). A
 * transient failure puts the item back after a backoff timer, holding no
 * slot while it waits. Every job and every item's end is kept
 * in the store, so a restart carries on where the daemon stopped.
 *
 * With if_changed, items whose URL the cache knows are fetched
 * conditionally, and a 304 ends them unchanged; with dedup, a body whose
 * SHA-256 is already kept under the download root is dropped.
 *
 * Pages to scrape are in job-page.c, the restart from the store in
 * job-restore.c, and jobs and items as JSON in job-json.c; job-private.h
 * holds what these files share.
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
#include "hostrate.h"
#include "job.h"
#include "job-private.h"
#include "log.h"
#include "metrics.h"
#include "path.h"
#include "request.h"
#include "store.h"
#include "writer.h"
#include "xmalloc.h"

/* Seconds between prunes of old finished jobs. */
#define PRUNE_INTERVAL 3600

struct job_watch {
	struct job *job;
	enum job_items items; /* which item events it wants */
	job_watch_cb cb;
	void *arg;
	TAILQ_ENTRY(job_watch) entry;
};

static void job_emit_end(struct job *);

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
unsigned long long
job_bytes(struct job *j)
{
	unsigned long long bytes = j->bytes_done;
	struct item *it;

	TAILQ_FOREACH(it, &j->inflight, inflight_entry)
		bytes += transfer_bytes(it->transfer);
	return bytes;
}

/* Wall-clock milliseconds, for retry times that outlive the process. */
long long
job_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
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
		item_page_cancel(it);
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
void
item_set_state(struct item *it, enum item_state st)
{
	struct job *j = it->job;

	j->count[it->state]--;
	j->jobs->count[it->state]--;
	it->state = st;
	j->count[st]++;
	j->jobs->count[st]++;
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

/* Whether every item has ended. */
int
job_ended(struct job *j)
{
	return j->state == JOB_DONE || j->state == JOB_FAILED ||
	    j->state == JOB_CANCELLED;
}

/* Recompute the job's state after an item changed. */
void
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
void
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
void
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
void
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
void
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
void
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
void
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
struct item *
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
struct job *
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
void
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
		item_page_cancel(it);
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
