/*
 * Jobs and items as JSON: the API's job objects, listings and status, and
 * the fields the store keeps as JSON (an item's rarer fields, a job's
 * options), written and read back.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "defs.h"
#include "fetch.h"
#include "job.h"
#include "job-private.h"
#include "path.h"
#include "request.h"
#include "xmalloc.h"

/* State names, as job objects and listings show them. */
static const char *const item_state_names[] = { "queued", "active", "done",
	"failed", "cancelled" };
const char *const job_state_names[] = { "queued", "running", "done", "failed",
	"cancelled" };

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
json_t *
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
int
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

/* Whether the job counts for a listing of owner's jobs. */
static int
job_owned_by(const struct job *j, long long owner)
{
	return owner == JOB_OWNER_ANY ||
	    (j->owned && (long long)j->owner_uid == owner);
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

/* The rarer item fields as a JSON object for the store, or NULL. */
char *
item_extra(struct item *it)
{
	json_t *o;
	char *s;

	if (!it->page && !it->next && it->images == 0 && !it->unchanged &&
	    it->duplicate_of == NULL) {
		/*
		 * The common cases, on the hot path (a list's images, a page's
		 * thousands of found ones): numbers and hex only, so no JSON
		 * object to build.
		 */
		if (it->from == 0 && it->sha256 == NULL)
			return NULL;
		if (it->from == 0)
			xasprintf(&s, "{\"sha256\":\"%s\"}", it->sha256);
		else if (it->sha256 == NULL)
			xasprintf(&s, "{\"from\":%lu}", it->from);
		else
			xasprintf(&s, "{\"from\":%lu,\"sha256\":\"%s\"}",
			    it->from, it->sha256);
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
void
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

/* The job's own options as JSON for the store, or NULL for none. */
char *
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
void
job_options_load(struct job *j, const char *options)
{
	json_t *o;

	j->hash_name = path_template_has_sha256(j->name);
	if (options == NULL || (o = json_loads(options, 0, NULL)) == NULL)
		return;
	job_network_load(j, o);
	job_set_options(j, json_is_true(json_object_get(o, "if_changed")),
	    json_is_true(json_object_get(o, "dedup")),
	    json_is_true(json_object_get(o, "same_host")),
	    (int)json_integer_value(json_object_get(o, "follow_next")),
	    json_integer_value(json_object_get(o, "max_page_size")));
	json_decref(o);
}
