/*
 * A real HTTP origin for the integration tests, on libevent's evhttp.
 *
 *	origin --port N --root DIR
 *
 * Listens on 127.0.0.1 only (port 0 picks a free one), prints "port N" on
 * stdout once listening and serves until SIGTERM or SIGINT, then exits 0.
 * Connections are kept alive (HTTP/1.1). Every delay is an evtimer, never
 * a sleep, so hundreds of delayed requests are in progress at once.
 *
 * Routes:
 *   GET /files/PATH       the file PATH under --root ('..' refused, 404 if
 *                         missing); Content-Type from the extension (png,
 *                         jpg/jpeg, gif, webp; txt; json; anything else,
 *                         bin included, is application/octet-stream) and
 *                         Content-Length set.
 *   GET /stream/BYTES     BYTES bytes of a fixed pattern, byte i being
 *                         (i * 131 + (i >> 16)) & 0xff, with Content-Length,
 *                         written in 64 KiB pieces; the next piece is queued
 *                         only once the previous one has drained, so a huge
 *                         body never sits in memory. Content-Type image/png.
 *                         Option gap=MS waits MS ms before each further
 *                         piece (a slow transfer); magic=png|gif|jpeg puts
 *                         that format's signature over the first bytes
 *                         (\x89PNG\r\n\x1a\n, GIF89a, \xff\xd8\xff\xe0) so
 *                         that the body passes for an image; chunked=1
 *                         sends no Content-Length but chunked encoding.
 *   GET /status/CODE      that status with a short text body.
 *   GET /redirect/N?to=P  302 to /redirect/N-1 (keeping to=) while N > 0,
 *                         then 302 to P (default /files/a.png).
 *   GET /redirect-abs?to=URL
 *                         302 to URL as given (ftp://..., file:///...).
 *   GET /name/ANYTHING    the file a.png under --root, whatever ANYTHING is
 *                         (for names made from hostile URL paths).
 *   GET /headers          the request's headers as a JSON object, names
 *                         lower-cased (repeated names joined by ", ").
 *   GET /last-headers     the headers of the latest request other than
 *                         these /last-headers and /stats ones, the same way.
 *   GET /stats            {"requests": R, "active": A, "max_active": M}:
 *                         requests received, requests in progress now, the
 *                         most in progress at once. Requests to /stats,
 *                         /stats/reset and /last-headers are not counted.
 *   POST /stats/reset     zero "requests" and set "max_active" to "active".
 *   anything else         404.
 *
 * Query options on every route:
 *   delay=MS      answer only after MS milliseconds (a client that leaves
 *                 meanwhile is noticed at once and ends the request);
 *   type=MIME     send this Content-Type instead (type=none: send none);
 *   status=CODE   send this status code instead.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/queue.h>

#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define ORIGIN_PIECE_SIZE (64 * 1024)
#define ORIGIN_MAX_DELAY_MS (10 * 60 * 1000)
#define ORIGIN_DEFAULT_TARGET "/files/a.png"

enum origin_kind {
	ORIGIN_SIMPLE, /* the whole reply is built, then sent */
	ORIGIN_STREAM  /* /stream: piece by piece */
};

/* One request in progress. */
struct oreq {
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct event *timer;
	struct event *watch; /* notices a client leaving during a delay */
	enum origin_kind kind;

	int code;	       /* status to send */
	char *ctype;	       /* Content-Type to send, NULL for none */
	struct evbuffer *body; /* ORIGIN_SIMPLE: the body */

	uint64_t total;	   /* ORIGIN_STREAM: body length */
	uint64_t sent;	   /* ORIGIN_STREAM: bytes queued so far */
	long gap_ms;	   /* ORIGIN_STREAM: pause before each further piece */
	int chunked;	   /* ORIGIN_STREAM: no Content-Length, chunked */
	const char *magic; /* ORIGIN_STREAM: signature put over the start */
	size_t magiclen;
	int started; /* ORIGIN_STREAM: reply line and headers queued */

	int userdone; /* the request was handed back to libevent */
	int counted;  /* counted in the stats (/stats itself is not) */

	TAILQ_ENTRY(oreq) entry;
};
TAILQ_HEAD(oreq_list, oreq);

static struct event_base *origin_base;
static char origin_root[PATH_MAX];
static struct oreq_list origin_reqs = TAILQ_HEAD_INITIALIZER(origin_reqs);
static int origin_exiting;
static struct evbuffer *origin_last_headers;

static unsigned long long stats_requests;
static long stats_active;
static long stats_max_active;

static void oreq_stream_next(struct oreq *);

/* Print a message and exit with status 1. */
static void
origin_die(const char *what)
{
	fprintf(stderr, "origin: %s\n", what);
	exit(1);
}

/* Allocate or die. */
static void *
origin_calloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		origin_die("out of memory");
	return p;
}

/* Duplicate a string or die. */
static char *
origin_strdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		origin_die("out of memory");
	return p;
}

/* Parse a decimal number in [min, max]; -1 if it is not one. */
static int
origin_parse_num(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The Content-Type for a file name, from its extension. */
static const char *
origin_type_for(const char *path)
{
	static const struct {
		const char *ext;
		const char *type;
	} types[] = {
	    {"png", "image/png"},
	    {"jpg", "image/jpeg"},
	    {"jpeg", "image/jpeg"},
	    {"gif", "image/gif"},
	    {"webp", "image/webp"},
	    {"txt", "text/plain"},
	    {"json", "application/json"},
	    {"bin", "application/octet-stream"},
	};
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(path, '.');
	size_t i;

	if (dot == NULL || (slash != NULL && dot < slash))
		return "application/octet-stream";
	for (i = 0; i < sizeof types / sizeof types[0]; i++) {
		if (strcasecmp(dot + 1, types[i].ext) == 0)
			return types[i].type;
	}
	return "application/octet-stream";
}

/* Forget a request: stop its timer, count it as ended and free our state. */
static void
oreq_destroy(struct oreq *o)
{
	TAILQ_REMOVE(&origin_reqs, o, entry);
	if (o->timer != NULL)
		event_free(o->timer);
	if (o->watch != NULL)
		event_free(o->watch);
	if (o->body != NULL)
		evbuffer_free(o->body);
	free(o->ctype);
	if (o->counted)
		stats_active--;
	free(o);
}

/* libevent has sent the whole reply. */
static void
oreq_complete(struct evhttp_request *req, void *arg)
{
	struct oreq *o = arg;

	evhttp_connection_set_closecb(o->evcon, NULL, NULL);
	oreq_destroy(o);
}

/*
 * The connection went away while a request was in progress. Unless the
 * reply had been handed back, libevent has detached the request from the
 * connection and left it to us to free.
 */
static void
oreq_closed(struct evhttp_connection *evcon, void *arg)
{
	struct oreq *o = arg;

	if (!o->userdone && !origin_exiting)
		evhttp_request_free(o->req);
	oreq_destroy(o);
}

/* Put the status and headers chosen for a request on its reply. */
static void
oreq_add_headers(struct oreq *o)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(o->req);

	if (o->ctype != NULL)
		evhttp_add_header(out, "Content-Type", o->ctype);
}

/* Send a simple reply now. */
static void
oreq_send_simple(struct oreq *o)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(o->req);
	char len[32];

	oreq_add_headers(o);
	snprintf(len, sizeof len, "%zu", evbuffer_get_length(o->body));
	evhttp_remove_header(out, "Content-Length");
	evhttp_add_header(out, "Content-Length", len);
	o->userdone = 1;
	evhttp_send_reply(o->req, o->code, NULL, o->body);
}

/* Fill buf with the stream pattern for the piece starting at offset. */
static void
origin_pattern(unsigned char *buf, size_t len, uint64_t offset)
{
	size_t j;

	for (j = 0; j < len; j++) {
		uint64_t i = offset + j;
		buf[j] = (unsigned char)((i * 131 + (i >> 16)) & 0xff);
	}
}

/* The previous piece of a stream has drained: go on, maybe after a gap. */
static void
oreq_stream_drained(struct evhttp_connection *evcon, void *arg)
{
	struct oreq *o = arg;
	struct timeval tv;

	if (o->gap_ms > 0 && o->sent < o->total) {
		tv.tv_sec = o->gap_ms / 1000;
		tv.tv_usec = (o->gap_ms % 1000) * 1000;
		evtimer_add(o->timer, &tv);
		return;
	}
	oreq_stream_next(o);
}

/* Queue the next piece of a stream, or end it. */
static void
oreq_stream_next(struct oreq *o)
{
	static unsigned char piece[ORIGIN_PIECE_SIZE];
	struct evbuffer *buf;
	size_t len;

	if (o->sent >= o->total) {
		o->userdone = 1;
		evhttp_send_reply_end(o->req);
		return;
	}
	len = ORIGIN_PIECE_SIZE;
	if (o->total - o->sent < len)
		len = (size_t)(o->total - o->sent);
	origin_pattern(piece, len, o->sent);
	if (o->sent < o->magiclen)
		memcpy(piece, o->magic + o->sent,
		    len < o->magiclen - o->sent ? len : o->magiclen - o->sent);
	buf = evbuffer_new();
	if (buf == NULL)
		origin_die("out of memory");
	evbuffer_add(buf, piece, len);
	o->sent += len;
	evhttp_send_reply_chunk_with_cb(o->req, buf, oreq_stream_drained, o);
	evbuffer_free(buf);
}

/* Start a stream reply: status line and headers, then the first piece. */
static void
oreq_stream_start(struct oreq *o)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(o->req);
	char len[32];

	oreq_add_headers(o);
	if (!o->chunked) {
		snprintf(len, sizeof len, "%" PRIu64, o->total);
		evhttp_add_header(out, "Content-Length", len);
	}
	o->started = 1;
	evhttp_send_reply_start(o->req, o->code, NULL);
	if (o->total == 0 ||
	    evhttp_request_get_command(o->req) == EVHTTP_REQ_HEAD ||
	    o->code == 204 || o->code == 304) {
		o->userdone = 1;
		evhttp_send_reply_end(o->req);
		return;
	}
	oreq_stream_next(o);
}

/* A delay or a gap has passed. */
static void
oreq_fire(evutil_socket_t fd, short what, void *arg)
{
	struct oreq *o = arg;

	if (o->watch != NULL) {
		event_free(o->watch);
		o->watch = NULL;
	}
	if (o->kind == ORIGIN_SIMPLE)
		oreq_send_simple(o);
	else if (!o->started)
		oreq_stream_start(o);
	else
		oreq_stream_next(o);
}

/* Set a simple reply: code, text body. */
static void
oreq_set_text(struct oreq *o, int code, const char *text)
{
	o->code = code;
	free(o->ctype);
	o->ctype = origin_strdup("text/plain");
	evbuffer_add_printf(o->body, "%s\n", text);
}

/* GET /files/PATH. */
static void
route_files(struct oreq *o, const char *rel)
{
	char *dec, *p, *full = NULL;
	size_t declen;
	struct stat st;
	int fd = -1;

	dec = evhttp_uridecode(rel, 0, &declen);
	if (dec == NULL || declen != strlen(dec) || *dec == '\0') {
		oreq_set_text(o, 404, "not found");
		goto out;
	}
	for (p = dec; p != NULL; p = strchr(p, '/')) {
		if (*p == '/')
			p++;
		if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0')) {
			oreq_set_text(o, 403, "'..' refused");
			goto out;
		}
	}
	if (asprintf(&full, "%s/%s", origin_root, dec) == -1)
		origin_die("out of memory");
	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		oreq_set_text(o, 404, "not found");
		goto out;
	}
	o->code = 200;
	free(o->ctype);
	o->ctype = origin_strdup(origin_type_for(dec));
	if (st.st_size > 0) {
		if (evbuffer_add_file(o->body, fd, 0, st.st_size) == -1)
			origin_die("evbuffer_add_file failed");
		fd = -1; /* the buffer owns it now */
	}
out:
	if (fd != -1)
		close(fd);
	free(full);
	free(dec);
}

/* GET /stream/BYTES. */
static void
route_stream(struct oreq *o, const char *arg, struct evkeyvalq *query)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
	} magics[] = {
	    {"png", "\x89PNG\r\n\x1a\n", 8},
	    {"gif", "GIF89a", 6},
	    {"jpeg", "\xff\xd8\xff\xe0", 4},
	};
	const char *magic;
	uint64_t gap = 0;
	size_t i;

	if (origin_parse_num(arg, 0, UINT64_MAX / 2, &o->total) == -1) {
		oreq_set_text(o, 400, "bad length");
		return;
	}
	if (evhttp_find_header(query, "gap") != NULL &&
	    origin_parse_num(evhttp_find_header(query, "gap"), 0,
		ORIGIN_MAX_DELAY_MS, &gap) == -1) {
		oreq_set_text(o, 400, "bad gap");
		return;
	}
	magic = evhttp_find_header(query, "magic");
	if (magic != NULL) {
		for (i = 0; i < sizeof magics / sizeof magics[0]; i++) {
			if (strcmp(magic, magics[i].name) == 0)
				break;
		}
		if (i == sizeof magics / sizeof magics[0]) {
			oreq_set_text(o, 400, "bad magic");
			return;
		}
		o->magic = magics[i].bytes;
		o->magiclen = magics[i].len;
	}
	o->chunked = evhttp_find_header(query, "chunked") != NULL;
	o->kind = ORIGIN_STREAM;
	o->gap_ms = (long)gap;
	o->code = 200;
	free(o->ctype);
	o->ctype = origin_strdup("image/png");
}

/* GET /status/CODE. */
static void
route_status(struct oreq *o, const char *arg)
{
	uint64_t code;
	char text[64];

	if (origin_parse_num(arg, 100, 999, &code) == -1) {
		oreq_set_text(o, 400, "bad status");
		return;
	}
	snprintf(text, sizeof text, "status %d", (int)code);
	oreq_set_text(o, (int)code, text);
}

/* Set a 302 reply to a location. */
static void
oreq_set_redirect(struct oreq *o, const char *location)
{
	evhttp_add_header(
	    evhttp_request_get_output_headers(o->req), "Location", location);
	oreq_set_text(o, 302, "redirect");
}

/* GET /redirect/N?to=PATH. */
static void
route_redirect(struct oreq *o, const char *arg, struct evkeyvalq *query)
{
	const char *to = evhttp_find_header(query, "to");
	char *loc, *enc;
	uint64_t n;

	if (origin_parse_num(arg, 0, 1000, &n) == -1) {
		oreq_set_text(o, 400, "bad count");
		return;
	}
	if (n == 0) {
		oreq_set_redirect(o, to != NULL ? to : ORIGIN_DEFAULT_TARGET);
		return;
	}
	if (to != NULL) {
		enc = evhttp_encode_uri(to);
		if (enc == NULL)
			origin_die("out of memory");
		if (asprintf(&loc, "/redirect/%" PRIu64 "?to=%s", n - 1, enc) ==
		    -1)
			origin_die("out of memory");
		free(enc);
	} else if (asprintf(&loc, "/redirect/%" PRIu64, n - 1) == -1)
		origin_die("out of memory");
	oreq_set_redirect(o, loc);
	free(loc);
}

/* GET /redirect-abs?to=URL. */
static void
route_redirect_abs(struct oreq *o, struct evkeyvalq *query)
{
	const char *to = evhttp_find_header(query, "to");

	if (to == NULL) {
		oreq_set_text(o, 400, "to= missing");
		return;
	}
	oreq_set_redirect(o, to);
}

/* Add s to a buffer as a JSON string. */
static void
origin_json_string(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			evbuffer_add_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			evbuffer_add_printf(b, "\\u%04x", c);
		else
			evbuffer_add(b, s, 1);
	}
	evbuffer_add(b, "\"", 1);
}

/* Every value of the header called name, joined by ", ". */
static char *
origin_join_values(struct evkeyvalq *in, const char *name)
{
	struct evkeyval *h;
	struct evbuffer *v;
	char *joined;
	size_t len;
	int n = 0;

	v = evbuffer_new();
	if (v == NULL)
		origin_die("out of memory");
	TAILQ_FOREACH(h, in, next)
	{
		if (strcasecmp(h->key, name) != 0)
			continue;
		if (n++ > 0)
			evbuffer_add(v, ", ", 2);
		evbuffer_add(v, h->value, strlen(h->value));
	}
	len = evbuffer_get_length(v);
	joined = origin_calloc(1, len + 1);
	evbuffer_remove(v, joined, len);
	evbuffer_free(v);
	return joined;
}

/* Add a request's headers to b as a JSON object. */
static void
origin_headers_json(struct evkeyvalq *in, struct evbuffer *b)
{
	struct evkeyval *h, *g;
	char *name, *value;
	size_t i;
	int first = 1, seen;

	evbuffer_add(b, "{", 1);
	TAILQ_FOREACH(h, in, next)
	{
		seen = 0;
		TAILQ_FOREACH(g, in, next)
		{
			if (g == h)
				break;
			if (strcasecmp(g->key, h->key) == 0)
				seen = 1;
		}
		if (seen)
			continue;
		name = origin_strdup(h->key);
		for (i = 0; name[i] != '\0'; i++)
			name[i] = (char)tolower((unsigned char)name[i]);
		value = origin_join_values(in, h->key);
		if (!first)
			evbuffer_add(b, ", ", 2);
		first = 0;
		origin_json_string(b, name);
		evbuffer_add(b, ": ", 2);
		origin_json_string(b, value);
		free(value);
		free(name);
	}
	evbuffer_add(b, "}\n", 2);
}

/* GET /headers: the request headers as a JSON object. */
static void
route_headers(struct oreq *o)
{
	origin_headers_json(evhttp_request_get_input_headers(o->req), o->body);
	o->code = 200;
	free(o->ctype);
	o->ctype = origin_strdup("application/json");
}

/* Remember the headers of a request for GET /last-headers. */
static void
origin_remember_headers(struct evhttp_request *req)
{
	if (origin_last_headers == NULL &&
	    (origin_last_headers = evbuffer_new()) == NULL)
		origin_die("out of memory");
	evbuffer_drain(
	    origin_last_headers, evbuffer_get_length(origin_last_headers));
	origin_headers_json(
	    evhttp_request_get_input_headers(req), origin_last_headers);
}

/* GET /last-headers. */
static void
route_last_headers(struct oreq *o)
{
	if (origin_last_headers == NULL)
		evbuffer_add_printf(o->body, "{}\n");
	else
		evbuffer_add(o->body, evbuffer_pullup(origin_last_headers, -1),
		    evbuffer_get_length(origin_last_headers));
	o->code = 200;
	free(o->ctype);
	o->ctype = origin_strdup("application/json");
}

/* GET /stats and POST /stats/reset. */
static void
route_stats(struct oreq *o, int reset)
{
	if (reset) {
		stats_requests = 0;
		stats_max_active = stats_active;
	}
	evbuffer_add_printf(o->body,
	    "{\"requests\": %llu, \"active\": %ld, \"max_active\": %ld}\n",
	    stats_requests, stats_active, stats_max_active);
	o->code = 200;
	free(o->ctype);
	o->ctype = origin_strdup("application/json");
}

/*
 * The connection of a delayed request became readable. libevent does not
 * read while a request is being answered, so this is how a client that
 * gave up is noticed at once: EOF or an error ends the request and its
 * connection. Other bytes (a pipelined request) are left for libevent.
 */
static void
oreq_watch(evutil_socket_t fd, short what, void *arg)
{
	struct oreq *o = arg;
	char c;
	ssize_t n;

	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == -1 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		event_add(o->watch, NULL);
		return;
	}
	if (n > 0)
		return;
	/* libevent frees the request along with the connection. */
	o->userdone = 1;
	evhttp_connection_free(o->evcon);
}

/* Apply the delay=, type= and status= options, then answer or wait. */
static void
oreq_dispatch(struct oreq *o, struct evkeyvalq *query)
{
	const char *type = evhttp_find_header(query, "type");
	const char *status = evhttp_find_header(query, "status");
	const char *delay = evhttp_find_header(query, "delay");
	uint64_t v, ms = 0;
	struct timeval tv;

	if (type != NULL) {
		free(o->ctype);
		o->ctype =
		    strcmp(type, "none") == 0 ? NULL : origin_strdup(type);
	}
	if (status != NULL && origin_parse_num(status, 100, 999, &v) == 0)
		o->code = (int)v;
	if (delay != NULL &&
	    origin_parse_num(delay, 0, ORIGIN_MAX_DELAY_MS, &v) == 0)
		ms = v;

	o->timer = evtimer_new(origin_base, oreq_fire, o);
	if (o->timer == NULL)
		origin_die("evtimer_new failed");
	if (ms > 0) {
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
		evtimer_add(o->timer, &tv);
		o->watch = event_new(origin_base,
		    bufferevent_getfd(
			evhttp_connection_get_bufferevent(o->evcon)),
		    EV_READ, oreq_watch, o);
		if (o->watch == NULL)
			origin_die("event_new failed");
		event_add(o->watch, NULL);
		return;
	}
	oreq_fire(-1, 0, o);
}

/* Every request arrives here. */
static void
origin_handle(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq query;
	const char *path, *q;
	struct oreq *o;
	int is_stats;

	TAILQ_INIT(&query);
	path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	if (path == NULL)
		path = "/";
	q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	if (q != NULL)
		evhttp_parse_query_str(q, &query);

	is_stats = strcmp(path, "/stats") == 0 ||
	    strcmp(path, "/stats/reset") == 0 ||
	    strcmp(path, "/last-headers") == 0;
	o = origin_calloc(1, sizeof *o);
	if (!is_stats) {
		origin_remember_headers(req);
		o->counted = 1;
		stats_requests++;
		stats_active++;
		if (stats_active > stats_max_active)
			stats_max_active = stats_active;
	}
	o->req = req;
	o->evcon = evhttp_request_get_connection(req);
	o->kind = ORIGIN_SIMPLE;
	o->body = evbuffer_new();
	if (o->body == NULL)
		origin_die("out of memory");
	TAILQ_INSERT_TAIL(&origin_reqs, o, entry);
	evhttp_connection_set_closecb(o->evcon, oreq_closed, o);
	evhttp_request_set_on_complete_cb(req, oreq_complete, o);

	if (cmd == EVHTTP_REQ_GET && strncmp(path, "/files/", 7) == 0)
		route_files(o, path + 7);
	else if (cmd == EVHTTP_REQ_GET && strncmp(path, "/stream/", 8) == 0)
		route_stream(o, path + 8, &query);
	else if (cmd == EVHTTP_REQ_GET && strncmp(path, "/status/", 8) == 0)
		route_status(o, path + 8);
	else if (cmd == EVHTTP_REQ_GET && strncmp(path, "/redirect/", 10) == 0)
		route_redirect(o, path + 10, &query);
	else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/redirect-abs") == 0)
		route_redirect_abs(o, &query);
	else if (cmd == EVHTTP_REQ_GET && strncmp(path, "/name/", 6) == 0)
		route_files(o, "a.png");
	else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/headers") == 0)
		route_headers(o);
	else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/last-headers") == 0)
		route_last_headers(o);
	else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/stats") == 0)
		route_stats(o, 0);
	else if (cmd == EVHTTP_REQ_POST && strcmp(path, "/stats/reset") == 0)
		route_stats(o, 1);
	else
		oreq_set_text(o, 404, "not found");

	oreq_dispatch(o, &query);
	evhttp_clear_headers(&query);
}

/* SIGTERM or SIGINT: leave the loop. */
static void
origin_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(origin_base);
}

/* Print how to run this and exit 1. */
static void
origin_usage(void)
{
	fprintf(stderr, "usage: origin --port N --root DIR\n");
	exit(1);
}

/* Parse the options, listen, serve until SIGTERM or SIGINT. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"port", required_argument, NULL, 'p'},
	    {"root", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	struct event *sigterm, *sigint;
	struct evhttp *http;
	const char *root = NULL;
	uint64_t port = 0;
	struct oreq *o;
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (origin_parse_num(optarg, 0, 65535, &port) == -1)
				origin_usage();
			break;
		case 'r':
			root = optarg;
			break;
		default:
			origin_usage();
		}
	}
	if (optind != argc || root == NULL)
		origin_usage();
	if (realpath(root, origin_root) == NULL) {
		fprintf(stderr, "origin: %s: %s\n", root, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);

	origin_base = event_base_new();
	if (origin_base == NULL)
		origin_die("event_base_new failed");
	http = evhttp_new(origin_base);
	if (http == NULL)
		origin_die("evhttp_new failed");
	evhttp_set_default_content_type(http, NULL);
	evhttp_set_allowed_methods(http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
		EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_timeout(http, 600);
	evhttp_set_gencb(http, origin_handle, NULL);
	bound = evhttp_bind_socket_with_handle(
	    http, "127.0.0.1", (ev_uint16_t)port);
	if (bound == NULL) {
		fprintf(stderr, "origin: cannot listen on 127.0.0.1:%d\n",
		    (int)port);
		return 1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bound),
		(struct sockaddr *)&sin, &slen) == -1)
		origin_die("getsockname failed");

	sigterm = evsignal_new(origin_base, SIGTERM, origin_signal, NULL);
	sigint = evsignal_new(origin_base, SIGINT, origin_signal, NULL);
	if (sigterm == NULL || sigint == NULL)
		origin_die("evsignal_new failed");
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);

	printf("port %d\n", (int)ntohs(sin.sin_port));
	fflush(stdout);

	event_base_dispatch(origin_base);

	origin_exiting = 1;
	evhttp_free(http);
	while ((o = TAILQ_FIRST(&origin_reqs)) != NULL)
		oreq_destroy(o);
	event_free(sigterm);
	event_free(sigint);
	if (origin_last_headers != NULL)
		evbuffer_free(origin_last_headers);
	event_base_free(origin_base);
	return 0;
}
