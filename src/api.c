/*
 * The HTTP/JSON API on a Unix domain socket, served by libevent's evhttp:
 * routes under /v1, JSON bodies with jansson, errors as {"error": "..."}.
 * The events endpoint keeps a chunked reply open and writes one JSON line
 * per job event until the job ends or the client goes away.
 *
 * Who may do what: each connection's peer is read once with SO_PEERCRED.
 * A job belongs to the uid that submitted it. Cancelling is for its owner,
 * root and the daemon's own uid (which is who runs it: the service's user,
 * or the user who started it by hand); a job stored before owners were
 * kept has none and only root and the daemon's uid may cancel it. With
 * private_jobs, other users' jobs are also hidden from everyone else:
 * absent from lists, 404 by id and for events, and /v1/status counts only
 * the client's own jobs.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "api.h"
#include "compat.h"
#include "config.h"
#include "defs.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "queue.h"
#include "query.h"
#include "request.h"
#include "xmalloc.h"

struct api_conn;

/* An events reply in progress. */
struct api_stream {
	struct api_conn *conn;
	struct evhttp_request *req;
	struct job_watch *watch;
};

/* A reply waiting for the store: a new job's 202 or a cancel's 200. */
struct api_submit {
	struct api *api;
	struct api_conn *conn; /* NULL once the client left */
	struct evhttp_request *req; /* NULL once the client left */
	struct job *job;
	int cancel; /* a DELETE, not a POST */
	int minimal; /* Prefer: return=minimal, the job without its items */
	TAILQ_ENTRY(api_submit) entry;
};
TAILQ_HEAD(api_submit_list, api_submit);

/* A reply waiting for the shared queue's Redis. */
struct api_qcall {
	struct api_conn *conn; /* NULL once the client left */
	struct evhttp_request *req; /* NULL once the client left */
};

/* A client connection that has sent a request. */
struct api_conn {
	struct api *api;
	struct evhttp_connection *evcon;
	int known; /* SO_PEERCRED answered: uid is the peer's */
	uid_t uid;
	struct api_stream *stream;
	struct api_submit *submit;
	struct api_qcall *qcall;
	TAILQ_ENTRY(api_conn) entry;
};
TAILQ_HEAD(api_conn_list, api_conn);

struct api {
	struct event_base *base;
	struct jobs *jobs;
	const struct config *cfg;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct evconnlistener *listener;
	struct event *resume_ev; /* re-enables accepting after EMFILE */
	struct api_conn_list conns;
	/*
	 * Every accepted connection's bufferevent, with a reference of ours:
	 * evhttp's free leaves it callback-less, the sweep then drops our
	 * reference (closing it) and the count goes down. This is how idle
	 * connections count against max_api_connections too.
	 */
	struct bufferevent **bevs;
	size_t nbevs;
	size_t bevs_cap;
	struct event *sweep_ev;
	int paused;
	struct api_submit_list submits;
	struct queue *queue; /* the shared queue, or NULL */
	struct metrics *metrics;
	char *path;
	int fd;
	int activated; /* the socket came from the service manager */
	/* The last uid named by NSS, so a client's jobs cost one lookup. */
	int named;
	uid_t named_uid;
	char *named_user; /* NULL if that uid has no name */
};

/* Seconds accepting pauses when the daemon is out of file descriptors. */
#define API_EMFILE_PAUSE 1

/* Milliseconds between sweeps of closed connections. */
#define API_SWEEP_MS 200

/* Bytes over max_request_body that are still read, to answer in JSON. */
#define API_BODY_SLACK (64 * 1024)

static struct api *api_current;

/* The reason phrase for a status code. */
static const char *
api_reason(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}

/* Send a JSON reply, taking the reference to obj. */
static void
api_reply(struct evhttp_request *req, int code, json_t *obj)
{
	struct evbuffer *buf;
	char *text;

	text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (text == NULL)
		fatalx("api_reply: json_dumps failed");
	buf = evbuffer_new();
	evbuffer_add(buf, text, strlen(text));
	evbuffer_add(buf, "\n", 1);
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, code, api_reason(code), buf);
	evbuffer_free(buf);
}

static const char *api_conn_user(struct api_conn *);

/* Send {"error": "..."} with a status code. */
static void api_error(struct evhttp_request *req, int code, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
static void
api_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	va_list ap;
	json_t *obj;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatal("api_error");
	va_end(ap);
	log_debug("api: %s %s: %d %s",
	    evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET"
							      : "request",
	    evhttp_request_get_uri(req), code, msg);
	/* msg may quote a decoded query, which need not be UTF-8. */
	if ((obj = json_pack("{ss}", "error", msg)) == NULL)
		obj = json_pack("{ss}", "error", "request is not valid UTF-8");
	api_reply(req, code, obj);
	free(msg);
}

/* Refuse a method, naming the ones allowed. */
static void
api_bad_method(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Allow", allow);
	api_error(req, 405, "method not allowed on %s (allowed: %s)",
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)), allow);
}

/* Parse the query string into q; 0, or -1 with a 400 sent. */
static int
api_query(
    struct evhttp_request *req, struct evkeyvalq *q, const char *const *known)
{
	char *cause = NULL;

	if (query_parse(
		evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)), known,
		q, &cause) == -1) {
		api_error(req, 400, "%s", cause);
		free(cause);
		return -1;
	}
	return 0;
}

/* Whether a Content-Type header names this media type. */
static int
api_type_is(const char *header, const char *type)
{
	size_t len = strlen(type);

	while (*header == ' ')
		header++;
	return strncasecmp(header, type, len) == 0 &&
	    (header[len] == '\0' || header[len] == ';' || header[len] == ' ');
}

/* The store has the job (or failed to keep it): reply now. */
static void
api_submit_cb(void *arg, struct job *j, int ok)
{
	struct api_submit *sub = arg;
	char loc[64];

	TAILQ_REMOVE(&sub->api->submits, sub, entry);
	if (sub->conn != NULL)
		sub->conn->submit = NULL;
	if (sub->req == NULL) {
		log_info(
		    "api: job %llu stored, but its client has gone", job_id(j));
	} else if (sub->cancel)
		api_reply(sub->req, 200, job_json(j, JOB_ITEMS_ALL));
	else if (ok != 0)
		api_error(sub->req, 500,
		    "job %llu could not be stored in the "
		    "state directory; it was cancelled",
		    job_id(j));
	else {
		snprintf(loc, sizeof loc, API_PREFIX "/jobs/%llu", job_id(j));
		evhttp_add_header(evhttp_request_get_output_headers(sub->req),
		    "Location", loc);
		if (sub->minimal)
			evhttp_add_header(
			    evhttp_request_get_output_headers(sub->req),
			    "Preference-Applied", "return=minimal");
		api_reply(sub->req, 202,
		    job_json(j, sub->minimal ? JOB_ITEMS_NONE : JOB_ITEMS_ALL));
	}
	free(sub);
}

/*
 * Whether the request carries "Prefer: return=minimal" (RFC 7240): the
 * reply then leaves the item list out, which for a big job is most of it.
 */
static int
api_prefers_minimal(struct evhttp_request *req)
{
	const char *p;
	size_t len = strlen("return=minimal");

	p = evhttp_find_header(evhttp_request_get_input_headers(req), "Prefer");
	for (; p != NULL; p = strchr(p, ',')) {
		p += strspn(p, ", ");
		/* strchr finds the terminating NUL too. */
		if (strncasecmp(p, "return=minimal", len) == 0 &&
		    strchr(",; ", p[len]) != NULL)
			return 1;
	}
	return 0;
}

/* Redis answered a shared job's XADD or a GET /v1/queue. */
static void
api_qcall_cb(void *arg, int status, json_t *reply)
{
	struct api_qcall *qc = arg;

	if (qc->conn != NULL)
		qc->conn->qcall = NULL;
	if (qc->req != NULL) {
		if (status == 503)
			evhttp_add_header(
			    evhttp_request_get_output_headers(qc->req),
			    "Retry-After", "1");
		api_reply(qc->req, status, json_incref(reply));
	}
	free(qc);
}

/* A reply that waits for the shared queue. */
static struct api_qcall *
api_qcall_new(struct api_conn *conn, struct evhttp_request *req)
{
	struct api_qcall *qc;

	qc = xcalloc(1, sizeof *qc);
	qc->conn = conn;
	qc->req = req;
	conn->qcall = qc;
	return qc;
}

/*
 * Take "shared" out of a JSON job. Returns 0 with *shared set and *text
 * the job without it (NULL if the body held no "shared"), or -1 with a 400
 * sent. A body that is not a JSON object is left to request_parse_json.
 */
static int
api_take_shared(struct evhttp_request *req, const char *body, size_t len,
    int *shared, char **text)
{
	json_t *root, *v;

	*shared = 0;
	*text = NULL;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	if (root == NULL)
		return 0;
	if (!json_is_object(root) ||
	    (v = json_object_get(root, "shared")) == NULL) {
		json_decref(root);
		return 0;
	}
	if (!json_is_boolean(v)) {
		json_decref(root);
		api_error(req, 400, "shared: must be true or false");
		return -1;
	}
	*shared = json_is_true(v);
	json_object_del(root, "shared");
	*text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (*text == NULL)
		fatalx("%s: json_dumps failed", __func__);
	return 0;
}

/* Whether the client may see and cancel every job: root, the daemon's uid. */
static int
api_privileged(const struct api_conn *conn)
{
	return conn->known && (conn->uid == 0 || conn->uid == geteuid());
}

/* Whether the client owns the job. */
static int
api_owns(const struct api_conn *conn, struct job *j)
{
	struct job_owner owner;

	return conn->known && job_owner(j, &owner) == 0 &&
	    owner.uid == (unsigned long)conn->uid;
}

/* Whether the client may see a job: private_jobs hides others' jobs. */
static int
api_may_see(const struct api_conn *conn, struct job *j)
{
	return !conn->api->cfg->private_jobs || api_privileged(conn) ||
	    api_owns(conn, j);
}

/* Whose jobs the client's lists and counters cover. */
static long long
api_scope(const struct api_conn *conn)
{
	if (!conn->api->cfg->private_jobs || api_privileged(conn))
		return JOB_OWNER_ANY;
	/* A peer of unknown uid owns nothing: no uid is this large. */
	return conn->known ? (long long)conn->uid : (long long)UINT32_MAX + 1;
}

/* Whether the client may cancel a job; if not, a 403 is sent. */
static int
api_may_cancel(struct api_conn *conn, struct evhttp_request *req, struct job *j)
{
	struct job_owner owner;

	if (api_privileged(conn) || api_owns(conn, j))
		return 1;
	if (job_owner(j, &owner) == -1)
		api_error(req, 403,
		    "job %llu has no owner (it was stored before owners "
		    "were kept); only root and the daemon's user may cancel it",
		    job_id(j));
	else if (owner.user != NULL)
		api_error(req, 403, "job %llu belongs to uid %lu (%s)",
		    job_id(j), owner.uid, owner.user);
	else
		api_error(req, 403, "job %llu belongs to uid %lu", job_id(j),
		    owner.uid);
	return 0;
}

/* POST /v1/jobs */
static void
api_post_jobs(struct api_conn *conn, struct evhttp_request *req)
{
	struct api *api = conn->api;
	struct api_submit *sub;
	static const char *const known[] = { "dir", "name", NULL };
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct job_request jr;
	struct job_owner owner;
	struct request_limits lim;
	struct evkeyvalq q;
	const char *type, *dir, *name;
	struct job *j;
	char *body, *cause = NULL, loc[64], *text = NULL;
	size_t len;
	int rc, status = 400, shared = 0;

	memset(&jr, 0, sizeof jr);
	len = evbuffer_get_length(in);
	if ((long long)len > api->cfg->max_request_body) {
		api_error(req, 413,
		    "request body of %zu bytes is over "
		    "max_request_body (%lld)",
		    len, api->cfg->max_request_body);
		return;
	}
	body = (char *)evbuffer_pullup(in, -1);
	if (body == NULL)
		body = (char *)"";
	config_request_limits(api->cfg, &lim);
	type = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "Content-Type");
	if (type != NULL && api_type_is(type, "text/uri-list")) {
		if (api_query(req, &q, known) == -1)
			return;
		dir = evhttp_find_header(&q, "dir");
		name = evhttp_find_header(&q, "name");
		rc = request_parse_urilist_limits(
		    &jr, body, len, dir, name, &lim, &cause);
		evhttp_clear_headers(&q);
	} else if (type == NULL || api_type_is(type, "application/json")) {
		if (evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)) !=
		    NULL) {
			api_error(req, 400,
			    "query parameters are only for "
			    "text/uri-list; put options in the JSON body");
			return;
		}
		if (api_take_shared(req, body, len, &shared, &text) == -1)
			return;
		if (text != NULL) {
			body = text;
			len = strlen(text);
		}
		rc = request_parse_json_limits(&jr, body, len, &lim, &cause);
	} else {
		api_error(req, 415,
		    "Content-Type must be application/json or "
		    "text/uri-list, not \"%s\"",
		    type);
		return;
	}
	if (rc == 0 && request_check_limits(&jr, api->cfg, &cause) != 0) {
		request_finish(&jr);
		rc = -1;
	}
	if (rc == -1) {
		api_error(
		    req, 400, "%s", cause != NULL ? cause : "bad request");
		free(cause);
		free(text);
		return;
	}
	if (shared) {
		/* Checked as a job; the stream gets it without "shared". */
		request_finish(&jr);
		if (api->queue == NULL)
			api_error(req, 400,
			    "shared: this daemon has no queue (set queue in "
			    "its configuration)");
		else
			queue_enqueue(api->queue, text, api_qcall_cb,
			    api_qcall_new(conn, req));
		free(text);
		return;
	}
	free(text);
	sub = xcalloc(1, sizeof *sub);
	sub->minimal = api_prefers_minimal(req);
	owner.uid = (unsigned long)conn->uid;
	owner.user = conn->known ? api_conn_user(conn) : NULL;
	if ((j = jobs_submit(api->jobs, &jr, conn->known ? &owner : NULL,
		 &status, &cause, api_submit_cb, sub)) == NULL) {
		free(sub);
		request_finish(&jr);
		if (status == 503) {
			snprintf(loc, sizeof loc, "%d", RETRY_AFTER_SECONDS);
			evhttp_add_header(
			    evhttp_request_get_output_headers(req),
			    "Retry-After", loc);
		}
		api_error(req, status, "%s", cause);
		free(cause);
		return;
	}
	/* The 202 goes out once the job is durable: api_submit_cb. */
	sub->api = api;
	sub->conn = conn;
	sub->req = req;
	sub->job = j;
	conn->submit = sub;
	TAILQ_INSERT_TAIL(&api->submits, sub, entry);
}

/* GET /v1/jobs */
static void
api_get_jobs(struct api_conn *conn, struct evhttp_request *req)
{
	struct api *api = conn->api;
	static const char *const known[] = { "state", NULL };
	struct evkeyvalq q;
	const char *state;
	json_t *list;

	if (api_query(req, &q, known) == -1)
		return;
	state = evhttp_find_header(&q, "state");
	list = jobs_list_json(api->jobs, state, api_scope(conn));
	if (list == NULL)
		api_error(req, 400, "state: unknown job state \"%s\"", state);
	else
		api_reply(req, 200, list);
	evhttp_clear_headers(&q);
}

/* Write one event line to a stream. */
static void
api_stream_send(struct api_stream *s, json_t *ev)
{
	struct evbuffer *buf;
	char *text;

	if ((text = json_dumps(ev, JSON_COMPACT)) == NULL)
		return;
	buf = evbuffer_new();
	evbuffer_add(buf, text, strlen(text));
	evbuffer_add(buf, "\n", 1);
	free(text);
	evhttp_send_reply_chunk(s->req, buf);
	evbuffer_free(buf);
}

/* End a stream's reply and free it. */
static void
api_stream_end(struct api_stream *s)
{
	if (s->conn != NULL)
		s->conn->stream = NULL;
	evhttp_send_reply_end(s->req);
	free(s);
}

/* A job event for a stream. */
static void
api_stream_cb(void *arg, json_t *ev, int last)
{
	struct api_stream *s = arg;

	api_stream_send(s, ev);
	if (last) {
		s->watch = NULL;
		api_stream_end(s);
	}
}

/*
 * Parse ?items= of a job or events request: which items to show. A large
 * job's every item is costly JSON to build on the loop; pollers ask for
 * fewer. 0, or -1 with a 400 sent.
 */
static int
api_items_query(struct evhttp_request *req, enum job_items *items)
{
	static const char *const known[] = { "items", NULL };
	struct evkeyvalq q;
	const char *value;
	int rc = 0;

	if (api_query(req, &q, known) == -1)
		return -1;
	value = evhttp_find_header(&q, "items");
	if (value == NULL || strcmp(value, "all") == 0)
		*items = JOB_ITEMS_ALL;
	else if (strcmp(value, "failed") == 0)
		*items = JOB_ITEMS_FAILED;
	else if (strcmp(value, "none") == 0)
		*items = JOB_ITEMS_NONE;
	else {
		api_error(req, 400, "items: must be all, failed or none");
		rc = -1;
	}
	evhttp_clear_headers(&q);
	return rc;
}

/* GET /v1/jobs/ID/events */
static void
api_get_events(struct api_conn *conn, struct evhttp_request *req, struct job *j)
{
	struct api_stream *s;
	enum job_items items;
	json_t *ev;

	if (api_items_query(req, &items) == -1)
		return;
	s = xcalloc(1, sizeof *s);
	s->req = req;
	s->conn = conn;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/x-ndjson");
	evhttp_send_reply_start(req, 200, "OK");
	ev =
	    json_pack("{ssso}", "event", "snapshot", "job", job_json(j, items));
	api_stream_send(s, ev);
	json_decref(ev);
	if (job_ended(j)) {
		ev = json_pack(
		    "{ssso}", "event", "job", "job", job_json(j, items));
		api_stream_send(s, ev);
		json_decref(ev);
		api_stream_end(s);
		return;
	}
	s->watch = job_watch(j, items, api_stream_cb, s);
	conn->stream = s;
}

/* Routes under /v1/jobs/ID[/events]. */
static void
api_job_route(
    struct api_conn *conn, struct evhttp_request *req, const char *rest)
{
	struct api *api = conn->api;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct api_submit *sub;
	unsigned long long id = 0;
	enum job_items items;
	struct job *j;
	int events = 0;

	if (query_job_path(rest, &id, &events) == -1) {
		api_error(req, 404, "no such path: %s",
		    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)));
		return;
	}
	/* A job the client may not see is answered as if absent. */
	if ((j = jobs_find(api->jobs, id)) == NULL || !api_may_see(conn, j)) {
		api_error(req, 404, "no such job: %llu", id);
		return;
	}
	if (events) {
		if (cmd != EVHTTP_REQ_GET) {
			api_bad_method(req, "GET");
			return;
		}
		api_get_events(conn, req, j);
		return;
	}
	if (cmd == EVHTTP_REQ_GET) {
		if (api_items_query(req, &items) == 0)
			api_reply(req, 200, job_json(j, items));
	} else if (cmd == EVHTTP_REQ_DELETE) {
		if (!api_may_cancel(conn, req, j))
			return;
		if (job_ended(j)) {
			api_reply(req, 200, job_json(j, JOB_ITEMS_ALL));
			return;
		}
		/* The 200 goes out once the cancel is stored: api_submit_cb. */
		sub = xcalloc(1, sizeof *sub);
		sub->api = api;
		sub->conn = conn;
		sub->req = req;
		sub->job = j;
		sub->cancel = 1;
		conn->submit = sub;
		TAILQ_INSERT_TAIL(&api->submits, sub, entry);
		job_cancel_stored(j, api_submit_cb, sub);
	} else
		api_bad_method(req, "GET, DELETE");
}

/* Stop or restart accepting, by the connection count and EMFILE pauses. */
static void
api_update_accepting(struct api *api)
{
	if (api->listener == NULL)
		return;
	if (api->nbevs >= (size_t)api->cfg->max_api_connections || api->paused)
		evconnlistener_disable(api->listener);
	else
		evconnlistener_enable(api->listener);
}

/*
 * Let go of a request whose reply will never be finished. When the client
 * left first, evhttp has detached the request from its connection and
 * left it to us; otherwise the connection frees it right after closecb.
 */
static void
api_request_release(struct evhttp_request *req)
{
	if (evhttp_request_get_connection(req) == NULL)
		evhttp_request_free(req);
}

/* A tracked connection closed. */
static void
api_conn_closecb(struct evhttp_connection *evcon, void *arg)
{
	struct api_conn *conn = arg;
	struct api *api = conn->api;

	if (conn->stream != NULL) {
		log_debug("api: events client went away");
		if (conn->stream->watch != NULL)
			job_unwatch(conn->stream->watch);
		api_request_release(conn->stream->req);
		free(conn->stream);
	}
	if (conn->qcall != NULL) {
		/* Redis still answers; nobody is left to hear it. */
		api_request_release(conn->qcall->req);
		conn->qcall->conn = NULL;
		conn->qcall->req = NULL;
	}
	if (conn->submit != NULL) {
		/* Its job goes on; nobody is left to hear the 202. */
		api_request_release(conn->submit->req);
		conn->submit->conn = NULL;
		conn->submit->req = NULL;
	}
	TAILQ_REMOVE(&api->conns, conn, entry);
	free(conn);
	/* evhttp frees the bufferevent after this returns: sweep then. */
	event_active(api->sweep_ev, 0, 0);
}

/* Drop the connections evhttp has let go of; the rest stay counted. */
static void
api_sweep(struct api *api)
{
	bufferevent_event_cb eventcb;
	struct bufferevent *bev;
	size_t i = 0;

	while (i < api->nbevs) {
		bev = api->bevs[i];
		bufferevent_getcb(bev, NULL, NULL, &eventcb, NULL);
		if (eventcb != NULL) {
			i++;
			continue;
		}
		/* Freed by evhttp: our reference is the last; this closes it. */
		bufferevent_decref(bev);
		api->bevs[i] = api->bevs[--api->nbevs];
	}
	api_update_accepting(api);
}

/* Sweep now and then while connections are open. */
static void
api_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api *api = arg;
	struct timeval tv = { 0, API_SWEEP_MS * 1000 };

	api_sweep(api);
	if (api->nbevs > 0)
		evtimer_add(api->sweep_ev, &tv);
}

/* evhttp accepted a connection: make its bufferevent and count it. */
static struct bufferevent *
api_bev_cb(struct event_base *base, void *arg)
{
	struct api *api = arg;
	struct timeval tv = { 0, API_SWEEP_MS * 1000 };
	struct bufferevent *bev;

	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL;
	bufferevent_incref(bev);
	if (api->nbevs == api->bevs_cap) {
		api->bevs_cap = api->bevs_cap == 0 ? 64 : api->bevs_cap * 2;
		api->bevs =
		    xreallocarray(api->bevs, api->bevs_cap, sizeof *api->bevs);
	}
	api->bevs[api->nbevs++] = bev;
	api_update_accepting(api);
	if (!evtimer_pending(api->sweep_ev, NULL))
		evtimer_add(api->sweep_ev, &tv);
	return bev;
}

/*
 * The name of the connection's uid, for the owner of a job it submits.
 * getpwuid_r may ask NSS (a directory server), so it runs only here, when
 * a job is submitted, and the last uid's answer is kept.
 */
static const char *
api_conn_user(struct api_conn *conn)
{
	struct api *api = conn->api;
	struct passwd pw, *found = NULL;
	long size;
	char *buf;

	if (api->named && api->named_uid == conn->uid)
		return api->named_user;
	free(api->named_user);
	api->named_user = NULL;
	if ((size = sysconf(_SC_GETPW_R_SIZE_MAX)) <= 0)
		size = 16384;
	buf = xmalloc((size_t)size);
	if (getpwuid_r(conn->uid, &pw, buf, (size_t)size, &found) == 0 &&
	    found != NULL)
		api->named_user = xstrdup(pw.pw_name);
	free(buf);
	api->named = 1;
	api->named_uid = conn->uid;
	return api->named_user;
}

/* Who is at the other end of a new connection: its uid from SO_PEERCRED. */
static void
api_conn_identify(struct api_conn *conn)
{
	struct bufferevent *bev;
	struct ucred cred;
	socklen_t len = sizeof cred;
	evutil_socket_t fd;

	bev = evhttp_connection_get_bufferevent(conn->evcon);
	fd = bev != NULL ? bufferevent_getfd(bev) : -1;
	if (fd == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("api: SO_PEERCRED");
		return;
	}
	conn->known = 1;
	conn->uid = cred.uid;
	log_debug("api: connection from pid %ld, uid %lu", (long)cred.pid,
	    (unsigned long)cred.uid);
}

/* The tracked connection a request came on, tracking it if new. */
static struct api_conn *
api_conn_get(struct api *api, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct api_conn *conn;

	TAILQ_FOREACH(conn, &api->conns, entry) {
		if (conn->evcon == evcon)
			return conn;
	}
	conn = xcalloc(1, sizeof *conn);
	conn->api = api;
	conn->evcon = evcon;
	api_conn_identify(conn);
	TAILQ_INSERT_HEAD(&api->conns, conn, entry);
	evhttp_connection_set_closecb(evcon, api_conn_closecb, conn);
	return conn;
}

/* GET /v1/metrics: the Prometheus text exposition. */
static void
api_metrics(struct api *api, struct evhttp_request *req)
{
	struct evbuffer *buf;

	if (api->metrics == NULL) {
		api_error(req, 404, "no metrics");
		return;
	}
	buf = evbuffer_new();
	metrics_write(api->metrics, buf);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", METRICS_CONTENT_TYPE);
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
}

/* Every request: route by path and method. */
static void
api_request_cb(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct api_conn *conn;
	const char *path;

	conn = api_conn_get(api, req);

	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path == NULL)
		path = "";
	if (strcmp(path, API_PREFIX "/jobs") == 0) {
		if (cmd == EVHTTP_REQ_GET)
			api_get_jobs(conn, req);
		else if (cmd == EVHTTP_REQ_POST)
			api_post_jobs(conn, req);
		else
			api_bad_method(req, "GET, POST");
	} else if (strncmp(path, API_PREFIX "/jobs/",
		       strlen(API_PREFIX "/jobs/")) == 0)
		api_job_route(conn, req, path + strlen(API_PREFIX "/jobs/"));
	else if (strcmp(path, API_PREFIX "/status") == 0) {
		if (cmd == EVHTTP_REQ_GET)
			api_reply(req, 200,
			    jobs_status_json(api->jobs, api_scope(conn)));
		else
			api_bad_method(req, "GET");
	} else if (strcmp(path, API_PREFIX "/queue") == 0) {
		if (cmd != EVHTTP_REQ_GET)
			api_bad_method(req, "GET");
		else if (api->queue == NULL)
			api_error(req, 404,
			    "no queue: set queue in the configuration");
		else
			queue_info(
			    api->queue, api_qcall_cb, api_qcall_new(conn, req));
	} else if (strcmp(path, API_PREFIX "/metrics") == 0) {
		if (cmd == EVHTTP_REQ_GET)
			api_metrics(api, req);
		else
			api_bad_method(req, "GET");
	} else
		api_error(req, 404, "no such path: %.200s", path);
}

/* Bind the Unix socket, replacing a stale one. Returns the fd or -1. */
static int
api_listen(const char *path, int mode)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, probe;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		log_warnx("api: socket path too long (%zu bytes, at most %zu): "
			  "%s",
		    strlen(path), sizeof sun.sun_path - 1, path);
		return -1;
	}
	strcpy(sun.sun_path, path);

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("api: %s exists and is not a socket; "
				  "refusing to replace it",
			    path);
			return -1;
		}
		/* Is a daemon answering there, or is it left over? */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe == -1) {
			log_warn("api: socket");
			return -1;
		}
		if (connect(probe, (struct sockaddr *)&sun, sizeof sun) == 0) {
			close(probe);
			log_warnx(
			    "api: another daemon is listening on %s", path);
			return -1;
		}
		close(probe);
		if (unlink(path) == -1 && errno != ENOENT) {
			log_warn("api: unlink stale socket %s", path);
			return -1;
		}
		log_info("api: replaced stale socket %s", path);
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		log_warn("api: socket");
		return -1;
	}
	old = umask(S_IXUSR | S_IXGRP | S_IRWXO);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		umask(old);
		log_warn("api: bind %s", sun.sun_path);
		goto fail;
	}
	umask(old);
	if (chmod(sun.sun_path, (mode_t)mode) == -1) {
		log_warn("api: chmod %s", sun.sun_path);
		unlink(sun.sun_path);
		goto fail;
	}
	if (listen(fd, 128) == -1) {
		log_warn("api: listen %s", sun.sun_path);
		unlink(sun.sun_path);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* Accepting may resume after an EMFILE pause. */
static void
api_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api *api = arg;

	api->paused = 0;
	api_update_accepting(api);
}

/*
 * accept failed (evhttp passes itself as the argument, so the one API of
 * the process is found through api_current): out of descriptors pauses
 * accepting for a moment instead of spinning on the listener.
 */
static void
api_accept_error_cb(struct evconnlistener *listener, void *arg)
{
	struct api *api = api_current;
	struct timeval tv = { API_EMFILE_PAUSE, 0 };
	int error = EVUTIL_SOCKET_ERROR();

	if (api == NULL)
		return;
	log_warnx("api: accept: %s; pausing for %d s",
	    evutil_socket_error_to_string(error), API_EMFILE_PAUSE);
	api->paused = 1;
	api_update_accepting(api);
	evtimer_add(api->resume_ev, &tv);
}

/* Create the API server on its socket. */
struct api *
api_create(struct event_base *base, struct jobs *jobs, const struct config *cfg)
{
	struct api *api;

	api = xcalloc(1, sizeof *api);
	TAILQ_INIT(&api->conns);
	TAILQ_INIT(&api->submits);
	api->base = base;
	api->jobs = jobs;
	api->cfg = cfg;
	api->path = xstrdup(cfg->socket_path);
	if ((api->fd = notify_listen_fd()) != -1) {
		/* Socket activation: the socket and its file are systemd's. */
		api->activated = 1;
		evutil_make_socket_nonblocking(api->fd);
		evutil_make_socket_closeonexec(api->fd);
	} else if ((api->fd = api_listen(api->path, cfg->socket_mode)) == -1)
		goto fail;
	if ((api->http = evhttp_new(base)) == NULL) {
		log_warnx("api: evhttp_new failed");
		goto fail;
	}
	/* All methods reach the router, which answers 405 in JSON itself. */
	evhttp_set_allowed_methods(api->http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
		EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
		EVHTTP_REQ_PATCH | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
	/*
	 * evhttp's own cap sits API_BODY_SLACK above ours so that a body a
	 * little too large gets our JSON 413; past that, evhttp answers 413
	 * itself (libevent 2.1 lets no handler see a request it refused).
	 */
	evhttp_set_max_body_size(
	    api->http, (ev_ssize_t)cfg->max_request_body + API_BODY_SLACK);
	evhttp_set_max_headers_size(api->http, 65536);
	evhttp_set_gencb(api->http, api_request_cb, api);
	evhttp_set_bevcb(api->http, api_bev_cb, api);
	evhttp_set_timeout(api->http, (int)cfg->api_idle_timeout);
	api->sweep_ev = evtimer_new(base, api_sweep_cb, api);
	api->listener = evconnlistener_new(base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, api->fd);
	if (api->listener == NULL) {
		log_warnx("api: cannot listen on %s", api->path);
		goto fail;
	}
	api->fd = -1; /* the listener owns it now */
	evconnlistener_set_error_cb(api->listener, api_accept_error_cb);
	api->bound = evhttp_bind_listener(api->http, api->listener);
	if (api->bound == NULL) {
		log_warnx("api: cannot accept on %s", api->path);
		goto fail;
	}
	api->resume_ev = evtimer_new(base, api_resume_cb, api);
	api_current = api;
	if (api->activated)
		log_info("api: listening on the socket passed by systemd");
	else
		log_info("api: listening on %s (mode %04o)", api->path,
		    cfg->socket_mode);
	return api;
fail:
	if (api->http != NULL)
		evhttp_free(api->http);
	if (api->sweep_ev != NULL)
		event_free(api->sweep_ev);
	if (api->listener != NULL && api->bound == NULL)
		evconnlistener_free(api->listener);
	if (api->fd != -1)
		close(api->fd);
	if ((api->fd != -1 || api->listener != NULL) && !api->activated)
		unlink(api->path);
	free(api->path);
	free(api);
	return NULL;
}

/* Serve shared jobs and GET /v1/queue through the queue. */
void
api_set_queue(struct api *api, struct queue *q)
{
	api->queue = q;
}

/* Serve GET /v1/metrics from the registry. */
void
api_set_metrics(struct api *api, struct metrics *m)
{
	api->metrics = m;
}

/* Stop accepting and remove the socket file. */
void
api_close(struct api *api)
{
	if (api->bound == NULL)
		return;
	/* Frees the listener, which closes the socket. */
	evhttp_del_accept_socket(api->http, api->bound);
	api->bound = NULL;
	api->listener = NULL;
	if (!api->activated && unlink(api->path) == -1 && errno != ENOENT)
		log_warn("api: unlink %s", api->path);
}

/* Close every connection and free. */
void
api_destroy(struct api *api)
{
	struct api_submit *sub;

	if (api == NULL)
		return;
	api_close(api);
	free(api->named_user);
	/* Closes every connection; api_conn_closecb frees its state. */
	evhttp_free(api->http);
	api_sweep(api);
	if (api->nbevs != 0)
		log_warnx(
		    "api_destroy: %zu connections still open", api->nbevs);
	free(api->bevs);
	if (api->sweep_ev != NULL)
		event_free(api->sweep_ev);
	while ((sub = TAILQ_FIRST(&api->submits)) != NULL) {
		TAILQ_REMOVE(&api->submits, sub, entry);
		job_clear_accept(sub->job);
		free(sub);
	}
	if (api->resume_ev != NULL)
		event_free(api->resume_ev);
	if (api_current == api)
		api_current = NULL;
	free(api->path);
	free(api);
}
