/*
 * The shared queue: several daemons take jobs from one Redis stream
 * through a consumer group. Each entry is a job in the JSON of
 * POST /v1/jobs (field "job"). A node reads (XREADGROUP, COUNT
 * queue_batch) only while fewer than queue_low_water items are queued or
 * active here, stores and runs the job like any other, and when the job
 * ends adds its final JSON to the results stream and acknowledges the
 * entry, both in one script that first checks the entry is still this
 * node's: an entry is acknowledged once, with one result.
 *
 * Delivery is at least once. While this node runs an entry it resets the
 * entry's idle time (XCLAIM ... JUSTID, again only for entries it still
 * owns); entries of a node that stopped go idle, and after claim_idle
 * seconds another node takes them (XAUTOCLAIM) and runs them again with
 * on_exists "skip", keeping the files already in place.
 *
 * The loop never waits for Redis: hiredis's async context sits on the
 * loop through its libevent adapter, and nothing blocks (no BLOCK reads;
 * an idle node polls every QUEUE_POLL_MS). When the connection fails the
 * daemon goes on with its local jobs, says so once, and reconnects with
 * a doubling backoff. hiredis's async API has no reply timeout, so a
 * watchdog does it: a connection that is not made, or that leaves a
 * command unanswered, for queue_timeout seconds (a stopped or wedged
 * server, a dead network path) is dropped and made again; the commands
 * on it get no reply, as when the connection breaks. After every
 * (re)connect it reads its own pending
 * entries (XREADGROUP ... 0): those whose jobs are here (restored from the
 * store after a restart too) are followed, ended ones acknowledged, and
 * unknown ones run again; nothing pending is lost. Everything here runs
 * on the loop thread.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "compat.h"
#include "config.h"
#include "defs.h"
#include "job.h"
#include "log.h"
#include "queue.h"
#include "request.h"
#include "xmalloc.h"

/*
 * Acknowledge an entry this node owns, with its result: KEYS stream and
 * results, ARGV group, id, node, the job's JSON. Returns 1 if it was
 * acknowledged here, 0 if it was no longer this node's.
 */
static const char queue_ack_script[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)\n"
    "if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end\n"
    "redis.call('XADD', KEYS[2], '*', 'queue_id', ARGV[2], 'node', ARGV[3],"
    " 'job', ARGV[4])\n"
    "return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n";

/*
 * Reset the idle time of the entries (ARGV 3...) that are still this
 * node's (ARGV 2) in the group (ARGV 1); returns how many were.
 */
static const char queue_refresh_script[] =
    "local n = 0\n"
    "for i = 3, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], "
    "1)\n"
    "  if #p == 1 and p[1][2] == ARGV[2] then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], "
    "'JUSTID')\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

enum queue_state {
	QUEUE_DOWN, /* waiting to reconnect */
	QUEUE_CONNECTING,
	QUEUE_SETUP, /* group created, own pending entries being read */
	QUEUE_UP
};

/* A stream entry this node holds. */
struct qentry {
	char *id;
	char *body; /* waiting for room: the job's JSON */
	int skip; /* claimed from another node: on_exists "skip" */
	int started; /* its job is here */
	char *result; /* ended: the job's final JSON, to acknowledge */
	int acking; /* the acknowledgement is on its way */
	int seen; /* in the own pending entries read after a connect */
	TAILQ_ENTRY(qentry) entry;
};
TAILQ_HEAD(qentry_list, qentry);

struct queue {
	struct event_base *base;
	struct jobs *jobs;
	const struct config *cfg;
	struct config_redis addr;
	char *where; /* the address, for messages */
	redisAsyncContext *ac;
	enum queue_state state;
	struct event *retry_ev;
	struct event *tick_ev;
	struct event *watch_ev;
	size_t inflight; /* commands sent, not yet answered */
	struct timeval waiting_since; /* connect, or the last reply */
	int dropping; /* the watchdog is freeing the connection */
	long backoff_ms;
	int down_logged; /* the connection's loss has been said */
	int reading; /* an XREADGROUP > is on its way */
	int claiming;
	int refreshing;
	int stopping;
	int destroying;
	char claim_cursor[64];
	char recover_from[64];
	struct timeval last_refresh;
	struct timeval last_claim;
	struct qentry_list entries;
	size_t nentries;
	struct queue_stats stats;
};

/* A command on its way: its reply passes queue_answer_cb first. */
struct qcmd {
	struct queue *q;
	redisCallbackFn *fn;
	void *arg;
};

/* An API request waiting for Redis. */
struct qcall {
	struct queue *q;
	queue_reply_cb cb;
	void *arg;
	json_t *obj;
	int status;
	int waiting; /* replies still to come */
};

static void queue_connect(struct queue *);
static void queue_pump(struct queue *);

/* The entry with this id, or NULL. */
static struct qentry *
queue_find(struct queue *q, const char *id)
{
	struct qentry *e;

	TAILQ_FOREACH(e, &q->entries, entry) {
		if (strcmp(e->id, id) == 0)
			return e;
	}
	return NULL;
}

/* Add an entry by id. */
static struct qentry *
queue_add(struct queue *q, const char *id)
{
	struct qentry *e;

	e = xcalloc(1, sizeof *e);
	e->id = xstrdup(id);
	TAILQ_INSERT_TAIL(&q->entries, e, entry);
	q->nentries++;
	return e;
}

/* Forget an entry. */
static void
queue_remove(struct queue *q, struct qentry *e)
{
	TAILQ_REMOVE(&q->entries, e, entry);
	q->nentries--;
	free(e->id);
	free(e->body);
	free(e->result);
	free(e);
}

/* Whether the reply is an error; logs it with what was asked. */
static int
queue_reply_error(struct queue *q, redisReply *r, const char *what)
{
	if (r == NULL)
		return 1; /* the connection went: said once elsewhere */
	if (r->type != REDIS_REPLY_ERROR)
		return 0;
	log_warnx("queue: %s: %s", what, r->str);
	return 1;
}

/* Every reply (NULL when the connection went) is progress, then its own. */
static void
queue_answer_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct qcmd *c = arg;
	struct queue *q = c->q;

	q->inflight--;
	if (reply != NULL)
		event_base_gettimeofday_cached(q->base, &q->waiting_since);
	c->fn(ac, reply, c->arg);
	free(c);
}

/* Send a command with lengths; -1 if hiredis refused it (going). */
static int
queue_send(struct queue *q, redisCallbackFn *fn, void *arg, int argc,
    const char **argv, const size_t *len)
{
	struct qcmd *c;

	if (q->ac == NULL)
		return -1;
	c = xmalloc(sizeof *c);
	c->q = q;
	c->fn = fn;
	c->arg = arg;
	if (redisAsyncCommandArgv(q->ac, queue_answer_cb, c, argc, argv, len) !=
	    REDIS_OK) {
		log_warnx("queue: %s could not be sent", argv[0]);
		free(c);
		return -1;
	}
	/* The watchdog times the oldest wait, from the last reply. */
	if (q->inflight++ == 0)
		event_base_gettimeofday_cached(q->base, &q->waiting_since);
	return 0;
}

/* Send a command of strings; -1 if hiredis refused it. */
static int
queue_command(struct queue *q, redisCallbackFn *fn, void *arg, int argc,
    const char **argv)
{
	size_t len[64];
	int i;

	if (argc > (int)(sizeof len / sizeof len[0]))
		return -1;
	for (i = 0; i < argc; i++)
		len[i] = strlen(argv[i]);
	return queue_send(q, fn, arg, argc, argv, len);
}

/* The acknowledgement of an ended entry's job was answered. */
static void
queue_ack_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = ac->data;
	redisReply *r = reply;
	struct qentry *e;

	if ((e = queue_find(q, arg)) != NULL)
		e->acking = 0;
	if (queue_reply_error(q, r, "acknowledging an entry") || e == NULL) {
		free(arg);
		return;
	}
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
		q->stats.acked++;
		log_info("queue: entry %s acknowledged", e->id);
	} else
		log_info("queue: entry %s is another node's now; its result "
			 "is theirs to give",
		    e->id);
	free(arg);
	queue_remove(q, e);
}

/* Send an ended entry's result and acknowledgement. */
static void
queue_ack(struct queue *q, struct qentry *e)
{
	const char *argv[] = { "EVAL", queue_ack_script, "2",
		q->cfg->queue_stream, q->cfg->queue_results,
		q->cfg->queue_group, e->id, q->cfg->node, e->result };
	size_t len[9];
	char *id;
	int i;

	if (q->state != QUEUE_UP || e->acking || e->result == NULL)
		return;
	/* The result may hold any byte: lengths, not strlen, for it. */
	for (i = 0; i < 9; i++)
		len[i] = strlen(argv[i]);
	id = xstrdup(e->id);
	if (queue_send(q, queue_ack_cb, id, 9, argv, len) == -1) {
		free(id);
		return;
	}
	e->acking = 1;
}

/* A job ended: acknowledge its entry if it came from the stream. */
static void
queue_job_end(void *arg, struct job *j)
{
	struct queue *q = arg;
	const char *id = job_queue_id(j);
	struct qentry *e;
	json_t *o;

	if (id == NULL)
		return;
	if ((e = queue_find(q, id)) == NULL)
		e = queue_add(q, id);
	e->started = 1;
	o = job_json(j, JOB_ITEMS_FAILED);
	json_object_set_new(o, "node", json_string(q->cfg->node));
	free(e->result);
	if ((e->result = json_dumps(o, JSON_COMPACT)) == NULL)
		fatalx("%s: json_dumps failed", __func__);
	json_decref(o);
	queue_ack(q, e);
}

/* A job that cannot run ends at once with an error as its result. */
static void
queue_fail_entry(struct queue *q, struct qentry *e, const char *why)
{
	json_t *o;

	log_warnx("queue: entry %s: %s", e->id, why);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "queue_id", e->id, "state",
	    "failed", "error", why, "node", q->cfg->node, "stream",
	    q->cfg->queue_stream);
	if (o == NULL)
		o = json_pack("{ssss}", "queue_id", e->id, "state", "failed");
	free(e->body);
	e->body = NULL;
	e->started = 1;
	free(e->result);
	e->result = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	queue_ack(q, e);
}

/*
 * Start an entry's job, if there is room. Returns 0 when it was started
 * or failed for good, -1 when it must wait for room.
 */
static int
queue_start(struct queue *q, struct qentry *e)
{
	struct job_request jr;
	struct job *j;
	char *cause = NULL;
	int status = 0;

	if (request_parse_json(&jr, e->body, strlen(e->body), &cause) == -1) {
		queue_fail_entry(q, e, cause != NULL ? cause : "bad job");
		free(cause);
		return 0;
	}
	jr.queue_id = xstrdup(e->id);
	jr.skip_existing = e->skip;
	if (jr.nurls > (size_t)q->cfg->queue_limit) {
		xasprintf(&cause, "%zu items are more than queue_limit %d",
		    jr.nurls, q->cfg->queue_limit);
		request_finish(&jr);
		queue_fail_entry(q, e, cause);
		free(cause);
		return 0;
	}
	/* No local owner: root and the daemon's user may cancel it. */
	j = jobs_submit(q->jobs, &jr, NULL, &status, &cause, NULL, NULL);
	if (j == NULL) {
		request_finish(&jr);
		log_debug("queue: entry %s waits: %s", e->id, cause);
		free(cause);
		return -1;
	}
	log_info("queue: entry %s is job %llu%s", e->id, job_id(j),
	    e->skip ? " (claimed: existing files kept)" : "");
	free(e->body);
	e->body = NULL;
	e->started = 1;
	return 0;
}

/*
 * Take one entry of a reply ([id, [field, value, ...]]): read anew,
 * claimed from another node, or found pending here after a connect.
 */
enum queue_how { QUEUE_READ, QUEUE_CLAIMED, QUEUE_MINE };
static void queue_job_end(void *, struct job *);
static void
queue_take(struct queue *q, redisReply *r, enum queue_how how)
{
	struct job *j;
	redisReply *fields;
	struct qentry *e;
	const char *id;
	size_t i;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		return;
	id = r->element[0]->str;
	fields = r->element[1];
	if ((e = queue_find(q, id)) != NULL) {
		e->seen = 1;
		return;
	}
	if ((j = jobs_find_queued(q->jobs, id)) != NULL) {
		/* Here already (restored after a restart): follow it. */
		e = queue_add(q, id);
		e->started = 1;
		e->seen = 1;
		if (job_ended(j))
			queue_job_end(q, j);
		return;
	}
	e = queue_add(q, id);
	e->seen = 1;
	/* Run before, here or elsewhere: keep what is in place. */
	e->skip = how != QUEUE_READ;
	if (how == QUEUE_CLAIMED)
		q->stats.claimed++;
	else if (how == QUEUE_READ)
		q->stats.read++;
	if (fields->type != REDIS_REPLY_ARRAY) {
		queue_fail_entry(q, e, "the entry was deleted from the stream");
		return;
	}
	for (i = 0; i + 1 < fields->elements; i += 2) {
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, "job") == 0 &&
		    fields->element[i + 1]->type == REDIS_REPLY_STRING)
			break;
	}
	if (i + 1 >= fields->elements) {
		queue_fail_entry(q, e, "the entry has no \"job\" field");
		return;
	}
	e->body =
	    xstrndup(fields->element[i + 1]->str, fields->element[i + 1]->len);
	if (how == QUEUE_CLAIMED)
		log_info("queue: entry %s claimed from a stopped node", id);
	else if (how == QUEUE_MINE)
		log_info(
		    "queue: entry %s was pending here; running it again", id);
	queue_start(q, e);
}

/* Take the entries of an XREADGROUP reply; returns how many it held. */
static size_t
queue_take_read(struct queue *q, redisReply *r, enum queue_how how, char *last,
    size_t lastlen)
{
	redisReply *list;
	size_t i, n = 0;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
		return 0;
	/* [[stream, [entry, ...]]] */
	r = r->element[0];
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
		return 0;
	list = r->element[1];
	if (list->type != REDIS_REPLY_ARRAY)
		return 0;
	for (i = 0; i < list->elements; i++) {
		queue_take(q, list->element[i], how);
		if (list->element[i]->type == REDIS_REPLY_ARRAY &&
		    list->element[i]->elements > 0 &&
		    list->element[i]->element[0]->type == REDIS_REPLY_STRING)
			snprintf(last, lastlen, "%s",
			    list->element[i]->element[0]->str);
		n++;
	}
	return n;
}

/* Whether the daemon has room for another entry. */
static int
queue_has_room(struct queue *q)
{
	struct qentry *e;

	if (q->stopping)
		return 0;
	TAILQ_FOREACH(e, &q->entries, entry) {
		if (e->body != NULL)
			return 0;
	}
	return jobs_pending(q->jobs) < (size_t)q->cfg->queue_low_water;
}

/* New entries arrived (or none). */
static void
queue_read_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = ac->data;
	char last[64];

	q->reading = 0;
	if (queue_reply_error(q, reply, "XREADGROUP"))
		return;
	/* More at once while there is room: no waiting for the poll. */
	if (queue_take_read(q, reply, QUEUE_READ, last, sizeof last) > 0)
		queue_pump(q);
}

/* Claimed entries of stopped nodes arrived. */
static void
queue_claim_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = ac->data;
	redisReply *r = reply, *list;
	size_t i;

	q->claiming = 0;
	if (queue_reply_error(q, r, "XAUTOCLAIM"))
		return;
	/* [next cursor, [entry, ...], [deleted id, ...]] */
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		return;
	snprintf(
	    q->claim_cursor, sizeof q->claim_cursor, "%s", r->element[0]->str);
	list = r->element[1];
	if (list->type != REDIS_REPLY_ARRAY)
		return;
	for (i = 0; i < list->elements; i++)
		queue_take(q, list->element[i], QUEUE_CLAIMED);
	/* More to look at, or more taken: go on while there is room. */
	if (list->elements > 0 || strcmp(q->claim_cursor, "0-0") != 0) {
		memset(&q->last_claim, 0, sizeof q->last_claim);
		queue_pump(q);
	}
}

/* The refresh of running entries was answered. */
static void
queue_refresh_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = ac->data;
	redisReply *r = reply;

	q->refreshing = 0;
	if (queue_reply_error(q, r, "refreshing entries"))
		return;
	if (r->type == REDIS_REPLY_INTEGER && (size_t)r->integer < q->nentries)
		log_debug("queue: %lld of %zu entries still this node's",
		    r->integer, q->nentries);
}

/* Keep the entries this node holds from looking abandoned. */
static void
queue_refresh(struct queue *q)
{
	const char **argv;
	struct qentry *e;
	int argc = 0;
	size_t *len, i;

	if (q->nentries == 0 || q->refreshing)
		return;
	argv = xcalloc(q->nentries + 6, sizeof *argv);
	len = xcalloc(q->nentries + 6, sizeof *len);
	argv[argc++] = "EVAL";
	argv[argc++] = queue_refresh_script;
	argv[argc++] = "1";
	argv[argc++] = q->cfg->queue_stream;
	argv[argc++] = q->cfg->queue_group;
	argv[argc++] = q->cfg->node;
	TAILQ_FOREACH(e, &q->entries, entry)
		argv[argc++] = e->id;
	for (i = 0; i < (size_t)argc; i++)
		len[i] = strlen(argv[i]);
	if (queue_send(q, queue_refresh_cb, NULL, argc, argv, len) == 0)
		q->refreshing = 1;
	free(argv);
	free(len);
}

/* Milliseconds from a to b. */
static long long
queue_ms_between(const struct timeval *a, const struct timeval *b)
{
	return (long long)(b->tv_sec - a->tv_sec) * 1000 +
	    (b->tv_usec - a->tv_usec) / 1000;
}

/* Everything the connection should do now. */
static void
queue_pump(struct queue *q)
{
	char batch[16], idle[32];
	struct qentry *e, *tmp;
	struct timeval now;
	long long claim_ms = (long long)q->cfg->claim_idle * 1000;

	if (q->state != QUEUE_UP)
		return;
	TAILQ_FOREACH_SAFE(e, &q->entries, entry, tmp) {
		if (e->result != NULL)
			queue_ack(q, e);
		else if (e->body != NULL && !q->stopping &&
		    queue_start(q, e) == -1)
			break;
	}
	event_base_gettimeofday_cached(q->base, &now);
	/* Refresh three times per claim_idle, claim twice. */
	if (queue_ms_between(&q->last_refresh, &now) >= claim_ms / 3) {
		q->last_refresh = now;
		queue_refresh(q);
	}
	snprintf(batch, sizeof batch, "%d", q->cfg->queue_batch);
	if (!q->claiming && queue_has_room(q) &&
	    queue_ms_between(&q->last_claim, &now) >= claim_ms / 2) {
		const char *argv[] = { "XAUTOCLAIM", q->cfg->queue_stream,
			q->cfg->queue_group, q->cfg->node, idle,
			q->claim_cursor, "COUNT", batch };

		q->last_claim = now;
		snprintf(idle, sizeof idle, "%lld", claim_ms);
		if (queue_command(q, queue_claim_cb, NULL, 8, argv) == 0)
			q->claiming = 1;
	}
	if (!q->reading && !q->claiming && queue_has_room(q)) {
		const char *argv[] = { "XREADGROUP", "GROUP",
			q->cfg->queue_group, q->cfg->node, "COUNT", batch,
			"STREAMS", q->cfg->queue_stream, ">" };

		if (queue_command(q, queue_read_cb, NULL, 9, argv) == 0)
			q->reading = 1;
	}
}

/* The poll timer. */
static void
queue_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	queue_pump(arg);
}

/* The connection is ready: say so, and start taking entries. */
static void
queue_ready(struct queue *q)
{
	struct qentry *e, *tmp;
	struct timeval tv = { 0, QUEUE_POLL_MS * 1000 };
	size_t running = 0;

	/* Entries not pending here any more were acknowledged or taken. */
	TAILQ_FOREACH_SAFE(e, &q->entries, entry, tmp) {
		if (e->seen)
			running++;
		else if (!e->started || e->result != NULL)
			queue_remove(q, e);
	}
	q->state = QUEUE_UP;
	q->stats.connected = 1;
	q->stats.connects++;
	q->backoff_ms = QUEUE_BACKOFF_MIN_MS;
	log_info("queue: %s %s as node \"%s\" of group \"%s\" on stream "
		 "\"%s\" (%zu entries pending here)",
	    q->down_logged ? "connected again to" : "connected to", q->where,
	    q->cfg->node, q->cfg->queue_group, q->cfg->queue_stream, running);
	q->down_logged = 0;
	memset(&q->last_refresh, 0, sizeof q->last_refresh);
	event_add(q->tick_ev, &tv);
	queue_pump(q);
}

/* This node's own pending entries, after a connect. */
static void
queue_recover_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = ac->data;
	const char *argv[] = { "XREADGROUP", "GROUP", q->cfg->queue_group,
		q->cfg->node, "COUNT", NULL, "STREAMS", q->cfg->queue_stream,
		q->recover_from };
	char count[16];
	size_t n;

	if (queue_reply_error(q, reply, "reading own pending entries")) {
		if (reply != NULL)
			redisAsyncDisconnect(ac);
		return;
	}
	n = queue_take_read(
	    q, reply, QUEUE_MINE, q->recover_from, sizeof q->recover_from);
	if (n < QUEUE_RECOVER_COUNT) {
		queue_ready(q);
		return;
	}
	snprintf(count, sizeof count, "%d", QUEUE_RECOVER_COUNT);
	argv[5] = count;
	queue_command(q, queue_recover_cb, NULL, 9, argv);
}

/* The group exists (or was made): read own pending entries. */
static void
queue_group_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = ac->data;
	redisReply *r = reply;
	struct qentry *e;
	const char *argv[] = { "XREADGROUP", "GROUP", q->cfg->queue_group,
		q->cfg->node, "COUNT", NULL, "STREAMS", q->cfg->queue_stream,
		"0" };
	char count[16];

	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "BUSYGROUP", 9) != 0) {
		log_warnx("queue: XGROUP CREATE: %s", r->str);
		redisAsyncDisconnect(ac);
		return;
	}
	TAILQ_FOREACH(e, &q->entries, entry)
		e->seen = 0;
	snprintf(q->recover_from, sizeof q->recover_from, "0");
	snprintf(count, sizeof count, "%d", QUEUE_RECOVER_COUNT);
	argv[5] = count;
	queue_command(q, queue_recover_cb, NULL, 9, argv);
}

/* SELECT was answered. */
static void
queue_select_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = ac->data;

	if (reply != NULL && queue_reply_error(q, reply, "SELECT"))
		redisAsyncDisconnect(ac);
}

/* Say once that Redis cannot be reached; the rest go to the debug log. */
static void
queue_say_down(struct queue *q, const char *why)
{
	if (!q->down_logged)
		log_warnx("queue: %s: %s; local jobs go on, reconnecting",
		    q->where, why);
	else
		log_debug("queue: %s: %s", q->where, why);
	q->down_logged = 1;
}

/* Try again after the backoff, which doubles up to its cap. */
static void
queue_schedule(struct queue *q)
{
	struct timeval tv;

	q->ac = NULL;
	q->state = QUEUE_DOWN;
	q->stats.connected = 0;
	q->inflight = 0;
	q->reading = q->claiming = q->refreshing = 0;
	event_del(q->tick_ev);
	if (q->destroying)
		return;
	tv.tv_sec = q->backoff_ms / 1000;
	tv.tv_usec = (q->backoff_ms % 1000) * 1000;
	evtimer_add(q->retry_ev, &tv);
	q->backoff_ms *= 2;
	if (q->backoff_ms > QUEUE_BACKOFF_MAX_MS)
		q->backoff_ms = QUEUE_BACKOFF_MAX_MS;
}

/* The connection was made, or not. */
static void
queue_connect_cb(const redisAsyncContext *ac, int status)
{
	struct queue *q = ac->data;
	char db[16];
	const char *select[] = { "SELECT", db };
	const char *group[] = { "XGROUP", "CREATE", q->cfg->queue_stream,
		q->cfg->queue_group, "0", "MKSTREAM" };

	if (status != REDIS_OK) {
		/* hiredis frees the context after this returns. */
		queue_say_down(q, ac->errstr);
		queue_schedule(q);
		return;
	}
	q->state = QUEUE_SETUP;
	if (q->addr.db != 0) {
		snprintf(db, sizeof db, "%d", q->addr.db);
		queue_command(q, queue_select_cb, NULL, 2, select);
	}
	/* From 0: jobs added before any node made the group are taken too. */
	queue_command(q, queue_group_cb, NULL, 6, group);
}

/* The connection is gone; pending callbacks have had NULL replies. */
static void
queue_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct queue *q = ac->data;

	if (!q->destroying && !q->dropping)
		queue_say_down(q, ac->err != 0 ? ac->errstr : "disconnected");
	queue_schedule(q);
}

/* Start connecting. */
static void
queue_connect(struct queue *q)
{
	redisAsyncContext *ac;

	if (q->addr.path != NULL)
		ac = redisAsyncConnectUnix(q->addr.path);
	else
		ac = redisAsyncConnect(q->addr.host, q->addr.port);
	if (ac == NULL)
		fatalx("%s: out of memory", __func__);
	if (ac->err != 0) {
		queue_say_down(q, ac->errstr);
		redisAsyncFree(ac);
		queue_schedule(q);
		return;
	}
	ac->data = q;
	if (redisLibeventAttach(ac, q->base) != REDIS_OK) {
		log_warnx("queue: cannot attach to the event loop");
		redisAsyncFree(ac);
		queue_schedule(q);
		return;
	}
	redisAsyncSetConnectCallback(ac, queue_connect_cb);
	redisAsyncSetDisconnectCallback(ac, queue_disconnect_cb);
	q->ac = ac;
	q->state = QUEUE_CONNECTING;
	q->inflight = 0;
	event_base_gettimeofday_cached(q->base, &q->waiting_since);
}

/*
 * The watchdog: drop a connection not made, or a command not answered,
 * within queue_timeout; the reconnect follows as for a broken one.
 */
static void
queue_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	redisAsyncContext *ac = q->ac;
	struct timeval now;
	char why[64];

	if (ac == NULL || (q->state != QUEUE_CONNECTING && q->inflight == 0))
		return;
	event_base_gettimeofday_cached(q->base, &now);
	if (queue_ms_between(&q->waiting_since, &now) <
	    (long long)q->cfg->queue_timeout * 1000)
		return;
	snprintf(why, sizeof why, "%s in %ld s",
	    q->state == QUEUE_CONNECTING ? "no connection" : "no reply",
	    q->cfg->queue_timeout);
	queue_say_down(q, why);
	q->stats.timeouts++;
	/* Replies come NULL; a made connection also calls the disconnect. */
	q->dropping = 1;
	redisAsyncFree(ac);
	q->dropping = 0;
	if (q->ac == ac)
		queue_schedule(q);
}

/* The reconnect timer. */
static void
queue_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	queue_connect(arg);
}

/* Create the consumer and start connecting. */
struct queue *
queue_create(
    struct event_base *base, struct jobs *jobs, const struct config *cfg)
{
	struct timeval watch_tv = { 0, QUEUE_WATCH_MS * 1000 };
	struct queue *q;
	char *cause = NULL;

	q = xcalloc(1, sizeof *q);
	if (config_parse_redis(cfg->queue, &q->addr, &cause) == -1) {
		log_warnx("queue: %s", cause);
		free(cause);
		free(q);
		return NULL;
	}
	q->base = base;
	q->jobs = jobs;
	q->cfg = cfg;
	q->where = xstrdup(cfg->queue);
	TAILQ_INIT(&q->entries);
	snprintf(q->claim_cursor, sizeof q->claim_cursor, "0-0");
	q->backoff_ms = QUEUE_BACKOFF_MIN_MS;
	q->retry_ev = evtimer_new(base, queue_retry_cb, q);
	q->tick_ev = event_new(base, -1, EV_PERSIST, queue_tick_cb, q);
	q->watch_ev = event_new(base, -1, EV_PERSIST, queue_watch_cb, q);
	if (q->retry_ev == NULL || q->tick_ev == NULL || q->watch_ev == NULL)
		fatalx("%s: event_new failed", __func__);
	event_add(q->watch_ev, &watch_tv);
	jobs_set_end_hook(jobs, queue_job_end, q);
	queue_connect(q);
	return q;
}

/* Read and claim nothing more. */
void
queue_stop(struct queue *q)
{
	if (q != NULL)
		q->stopping = 1;
}

/* Disconnect and free. */
void
queue_destroy(struct queue *q)
{
	struct qentry *e;

	if (q == NULL)
		return;
	q->destroying = 1;
	jobs_set_end_hook(q->jobs, NULL, NULL);
	if (q->ac != NULL)
		redisAsyncFree(q->ac);
	q->ac = NULL;
	while ((e = TAILQ_FIRST(&q->entries)) != NULL)
		queue_remove(q, e);
	event_free(q->retry_ev);
	event_free(q->tick_ev);
	event_free(q->watch_ev);
	config_redis_finish(&q->addr);
	free(q->where);
	free(q);
}

/* The counters for the metrics. */
void
queue_stats(struct queue *q, struct queue_stats *st)
{
	*st = q->stats;
	st->running = q->nentries;
}

/* This node's consumer name. */
const char *
queue_node(struct queue *q)
{
	return q->cfg->node;
}

/* Answer a call from the loop: it is never answered inside the call. */
static void
queue_call_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qcall *c = arg;

	c->cb(c->arg, c->status, c->obj);
	json_decref(c->obj);
	free(c);
}

/* A new call with its object. */
static struct qcall *
queue_call_new(struct queue *q, queue_reply_cb cb, void *arg)
{
	struct qcall *c;

	c = xcalloc(1, sizeof *c);
	c->q = q;
	c->cb = cb;
	c->arg = arg;
	c->obj = json_object();
	json_object_set_new(
	    c->obj, "stream", json_string(q->cfg->queue_stream));
	json_object_set_new(c->obj, "group", json_string(q->cfg->queue_group));
	json_object_set_new(c->obj, "node", json_string(q->cfg->node));
	return c;
}

/* Answer a call now (from inside a reply callback). */
static void
queue_call_finish(struct qcall *c)
{
	queue_call_done_cb(-1, 0, c);
}

/* Answer 503 on the next loop turn: Redis is not connected. */
static void
queue_call_unavailable(struct qcall *c)
{
	c->status = 503;
	json_object_set_new(c->obj, "connected", json_false());
	json_object_set_new(c->obj, "error",
	    json_string("the queue's Redis is not connected; try again"));
	if (event_base_once(
		c->q->base, -1, EV_TIMEOUT, queue_call_done_cb, c, NULL) == -1)
		fatalx("%s: event_base_once failed", __func__);
}

/* The XADD of a shared job was answered. */
static void
queue_enqueue_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct qcall *c = arg;
	redisReply *r = reply;

	if (r == NULL) {
		c->status = 503;
		json_object_set_new(c->obj, "error",
		    json_string("the queue's Redis went away before "
				"answering: the job may or may not be on the "
				"stream"));
	} else if (r->type != REDIS_REPLY_STRING) {
		c->status = 500;
		json_object_set_new(c->obj, "error",
		    json_string(
			r->type == REDIS_REPLY_ERROR ? r->str : "XADD failed"));
	} else {
		c->status = 202;
		json_object_set_new(c->obj, "queue_id", json_string(r->str));
		log_info("queue: job added to %s as %s",
		    c->q->cfg->queue_stream, r->str);
	}
	queue_call_finish(c);
}

/* XADD a job to the stream. */
void
queue_enqueue(struct queue *q, const char *job, queue_reply_cb cb, void *arg)
{
	struct qcall *c = queue_call_new(q, cb, arg);
	const char *argv[] = { "XADD", q->cfg->queue_stream, "*", "job", job };

	if (q->state != QUEUE_UP && q->state != QUEUE_SETUP) {
		queue_call_unavailable(c);
		return;
	}
	if (queue_command(q, queue_enqueue_cb, c, 5, argv) == -1)
		queue_call_unavailable(c);
}

/* A flat [key, value, ...] reply's value for key, or NULL. */
static redisReply *
queue_field(redisReply *r, const char *key)
{
	size_t i;

	if (r->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (i = 0; i + 1 < r->elements; i += 2) {
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(r->element[i]->str, key) == 0)
			return r->element[i + 1];
	}
	return NULL;
}

/* One part of GET /v1/queue was answered. */
static void
queue_info_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct qcall *c = arg;
	redisReply *r = reply, *v, *p;
	json_t *list, *o;
	size_t i;

	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		if (c->status == 200) {
			c->status = r == NULL ? 503 : 500;
			json_object_set_new(c->obj, "error",
			    json_string(r == NULL
				    ? "the queue's Redis went away before "
				      "answering"
				    : r->str));
		}
	} else if (r->type == REDIS_REPLY_INTEGER)
		json_object_set_new(c->obj, "length", json_integer(r->integer));
	else if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER)
		/* XPENDING's summary: count, smallest, largest, consumers. */
		json_object_set_new(
		    c->obj, "pending", json_integer(r->element[0]->integer));
	else if (r->type == REDIS_REPLY_ARRAY) {
		/* XINFO CONSUMERS: one flat key-value list per consumer. */
		list = json_array();
		for (i = 0; i < r->elements; i++) {
			p = r->element[i];
			o = json_object();
			if ((v = queue_field(p, "name")) != NULL &&
			    v->type == REDIS_REPLY_STRING)
				json_object_set_new(
				    o, "name", json_string(v->str));
			if ((v = queue_field(p, "pending")) != NULL &&
			    v->type == REDIS_REPLY_INTEGER)
				json_object_set_new(
				    o, "pending", json_integer(v->integer));
			if ((v = queue_field(p, "idle")) != NULL &&
			    v->type == REDIS_REPLY_INTEGER)
				json_object_set_new(
				    o, "idle_ms", json_integer(v->integer));
			json_array_append_new(list, o);
		}
		json_object_set_new(c->obj, "consumers", list);
	}
	if (--c->waiting == 0)
		queue_call_finish(c);
}

/* The stream's length, pending entries and consumers. */
void
queue_info(struct queue *q, queue_reply_cb cb, void *arg)
{
	struct qcall *c = queue_call_new(q, cb, arg);
	const char *xlen[] = { "XLEN", q->cfg->queue_stream };
	const char *pending[] = { "XPENDING", q->cfg->queue_stream,
		q->cfg->queue_group };
	const char *consumers[] = { "XINFO", "CONSUMERS", q->cfg->queue_stream,
		q->cfg->queue_group };

	json_object_set_new(
	    c->obj, "running", json_integer((json_int_t)q->nentries));
	if (q->state != QUEUE_UP) {
		queue_call_unavailable(c);
		return;
	}
	json_object_set_new(c->obj, "connected", json_true());
	c->status = 200;
	c->waiting = 3;
	/* Pipelined on one connection: the replies come in this order. */
	if (queue_command(q, queue_info_cb, c, 2, xlen) == -1) {
		queue_call_unavailable(c);
		return;
	}
	if (queue_command(q, queue_info_cb, c, 3, pending) == -1)
		c->waiting--;
	if (queue_command(q, queue_info_cb, c, 4, consumers) == -1)
		c->waiting--;
}
