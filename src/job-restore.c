/*
 * Restoring the jobs kept in the store at start-up. Ended items stand as
 * they were stored; a queued item waits out the retry it was waiting for.
 * A kept .part is looked at first: it is resumed when it has a validator,
 * dropped otherwise, and an item stopped while committing (its whole body
 * in the .part) is renamed into place, or found there already.
 */
#include <sys/time.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cache.h"
#include "config.h"
#include "job.h"
#include "job-private.h"
#include "log.h"
#include "store.h"
#include "writer.h"
#include "xmalloc.h"

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
		/* The stored follow_next is the job's whole budget. */
		if (it->next && j->follow_next > 0)
			j->follow_next--;
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
