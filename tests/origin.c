/*
 * A real HTTP origin for the integration tests, on libevent's evhttp.
 *
 *	origin --port N --root DIR
 *
 * Listens on 127.0.0.1 only (port 0 picks a free one), prints "port N" on
 * stdout once listening and serves until SIGTERM or SIGINT, then exits 0.
 * Connections are kept alive (HTTP/1.1). Every delay is an evtimer, never
 * a sleep, so hundreds of delayed requests are in progress at once; every
 * delay is bounded (ORIGIN_MAX_DELAY_MS).
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
 *                         Option magic=png|gif|jpeg puts that format's
 *                         signature over the first bytes (\x89PNG\r\n\x1a\n,
 *                         GIF89a, \xff\xd8\xff\xe0) so that the body passes
 *                         for an image; chunked=1 sends no Content-Length
 *                         but chunked encoding.
 *   GET /status/CODE      that status with a short text body.
 *   GET /redirect/N?to=P  302 to /redirect/N-1 (keeping to=) while N > 0,
 *                         then 302 to P (default /files/a.png).
 *   GET /redirect-abs?to=URL
 *                         302 to URL as given (ftp://..., file:///...).
 *   GET /loop             302 to /loop, for ever (a redirect loop).
 *   GET /name/ANYTHING    the file a.png under --root, whatever ANYTHING is
 *                         (for names made from hostile URL paths).
 *   GET /html             a small HTML page, 200, Content-Type text/html
 *                         (type=image/png makes it an HTML page posing as
 *                         an image).
 *   GET /headers          the request's headers as a JSON object, names
 *                         lower-cased (repeated names joined by ", ").
 *   GET /last-headers     the headers of the latest request other than
 *                         these /last-headers, /stats and /keys ones, the
 *                         same way.
 *   GET /stats            {"requests": R, "active": A, "max_active": M}:
 *                         requests received, requests in progress now, the
 *                         most in progress at once. Requests to /stats,
 *                         /stats/reset, /last-headers and /keys/ are not
 *                         counted.
 *   POST /stats/reset     zero "requests" and set "max_active" to "active".
 *   GET /keys/KEY         what the requests made with key=KEY got, as
 *                         {"requests": R, "bytes": B, "log": [{"t": MS,
 *                         "range": FROM or null, "if_range": V or null,
 *                         "status": CODE, "bytes": N, "end": HOW}, ...]}:
 *                         t is when the request arrived (ms, monotonic
 *                         clock), range the first byte its Range header
 *                         asked for, bytes the body bytes sent, end how the
 *                         reply ended: "complete", "reset" (reset=),
 *                         "closed" (short= or length=), "client" (the
 *                         client left first) or "active" (still going).
 *   anything else         404.
 *
 * Query options on every route:
 *   delay=MS      answer only after MS milliseconds (a client that leaves
 *                 meanwhile is noticed at once and ends the request);
 *   type=MIME     send this Content-Type instead (type=none: send none);
 *   key=KEY       log the request under KEY (see /keys/KEY);
 *   fail=N        with key=: the fault options below apply only to the
 *                 first N requests made with this key; later ones are
 *                 served normally (a server that fails, then recovers).
 * Fault options (on every route unless fail= says otherwise):
 *   status=CODE   send this status code instead;
 *   retry_after=V send "Retry-After: V" (seconds, or a date as given);
 *   retry_date=S  send Retry-After as an HTTP date S seconds from now.
 * Body options, for /stream and for 200 replies of /files, /name and
 * /html (such a reply is then sent piece by piece like /stream's):
 *   gap=MS        wait MS ms before each further 64 KiB piece;
 *   validator=etag|weak|lm|both|none
 *                 send a strong ETag, a weak one (W/), Last-Modified, the
 *                 strong ETag and Last-Modified, or neither (default);
 *                 they name the file (size, mtime) or the stream (length,
 *                 magic), so they stay the same from request to request;
 *   range=ignore|bad
 *                 by default "Range: bytes=N-" (or N-M) gets a 206 with
 *                 Content-Range from N on, or the full 200 when If-Range
 *                 does not match the validator sent, and 416 when N is
 *                 past the end; ignore always answers 200 with the full
 *                 body; bad answers with a 206 that starts at 0.
 * Body faults (fault options too, so fail= applies):
 *   reset=N       after N body bytes, wait 100 ms and reset the connection
 *                 (RST);
 *   short=N       after N body bytes, wait 100 ms and close the connection
 *                 (FIN): a body shorter than its Content-Length;
 *   length=N      send Content-Length N (more than the body: a lying
 *                 length), send the body, then close as short= does;
 *   stall=MS      after stall_at=N body bytes (default 4096) send nothing
 *                 for MS ms, then go on (a client leaving meanwhile is
 *                 noticed at once).
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
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define ORIGIN_PIECE_SIZE (64 * 1024)
#define ORIGIN_MAX_DELAY_MS (10 * 60 * 1000)
#define ORIGIN_DEFAULT_TARGET "/files/a.png"
#define ORIGIN_BREAK_MS 100 /* from the last byte to a reset or close */
#define ORIGIN_STALL_AT 4096 /* default stall_at= */
#define ORIGIN_STREAM_MTIME 1704067200 /* Last-Modified of /stream */
#define ORIGIN_HTML \
	"<!DOCTYPE html>\n<html><head><title>Not here</title></head>\n" \
	"<body><p>This is a web page, not a picture.</p></body></html>\n"

enum origin_validator {
	VALIDATOR_NONE,
	VALIDATOR_ETAG,
	VALIDATOR_WEAK,
	VALIDATOR_LM,
	VALIDATOR_BOTH
};

enum origin_range {
	RANGE_HONOUR, /* 206 from the first byte asked for */
	RANGE_IGNORE, /* always 200 with the full body */
	RANGE_BAD /* 206 that starts at 0 */
};

/* One request logged under a key. */
struct okey_req {
	long long t_ms; /* arrival, monotonic */
	long long range_from; /* first byte of Range, -1 for none */
	char *if_range; /* If-Range, NULL for none */
	int status;
	uint64_t bytes; /* body bytes sent */
	const char *end; /* how the reply ended, NULL while active */
};

/* The requests made with one key=. */
struct okey {
	char *name;
	struct okey_req *reqs;
	size_t n, cap;
	TAILQ_ENTRY(okey) entry;
};
TAILQ_HEAD(okey_list, okey);

enum origin_kind {
	ORIGIN_SIMPLE, /* the whole reply is built, then sent */
	ORIGIN_STREAM /* /stream: piece by piece */
};

/* One request in progress. */
struct oreq {
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct event *timer;
	struct event *watch; /* notices a client leaving during a delay */
	enum origin_kind kind;

	int code; /* status to send */
	char *ctype; /* Content-Type to send, NULL for none */
	struct evbuffer *body; /* ORIGIN_SIMPLE: the body */

	uint64_t total; /* ORIGIN_STREAM: length of the whole body */
	uint64_t pos; /* ORIGIN_STREAM: offset of the next piece */
	uint64_t end; /* ORIGIN_STREAM: offset this reply stops at */
	uint64_t sent; /* body bytes queued so far */
	uint64_t declared; /* ORIGIN_STREAM: Content-Length sent */
	const unsigned char *data; /* ORIGIN_STREAM: the bytes, or NULL for
				      the pattern */
	long gap_ms; /* ORIGIN_STREAM: pause before each further piece */
	int chunked; /* ORIGIN_STREAM: no Content-Length, chunked */
	const char *magic; /* ORIGIN_STREAM: signature put over the start */
	size_t magiclen;
	int started; /* ORIGIN_STREAM: reply line and headers queued */
	time_t mtime; /* for the validators */
	enum origin_validator validator;
	char etag[64];
	char lastmod[64];

	int64_t stall_at; /* body bytes before the stall, -1 for none */
	long stall_ms;
	int stalled;
	int64_t break_at; /* body bytes before a reset or close, -1 */
	int break_rst; /* reset rather than close */
	int breaking; /* the timer ends the connection */
	char *retry_after; /* Retry-After to send, or NULL */

	struct okey *key; /* logged under this key= */
	size_t keyidx;
	const char *ended; /* how the reply ended */

	int userdone; /* the request was handed back to libevent */
	int counted; /* counted in the stats (/stats itself is not) */

	TAILQ_ENTRY(oreq) entry;
};
TAILQ_HEAD(oreq_list, oreq);

static struct event_base *origin_base;
static char origin_root[PATH_MAX];
static struct oreq_list origin_reqs = TAILQ_HEAD_INITIALIZER(origin_reqs);
static int origin_exiting;
static struct evbuffer *origin_last_headers;
static struct okey_list origin_keys = TAILQ_HEAD_INITIALIZER(origin_keys);

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
		{ "png", "image/png" },
		{ "jpg", "image/jpeg" },
		{ "jpeg", "image/jpeg" },
		{ "gif", "image/gif" },
		{ "webp", "image/webp" },
		{ "txt", "text/plain" },
		{ "json", "application/json" },
		{ "bin", "application/octet-stream" },
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

/* Milliseconds on the monotonic clock. */
static long long
origin_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The key called name, created on first use. */
static struct okey *
okey_get(const char *name)
{
	struct okey *k;

	TAILQ_FOREACH(k, &origin_keys, entry) {
		if (strcmp(k->name, name) == 0)
			return k;
	}
	k = origin_calloc(1, sizeof *k);
	k->name = origin_strdup(name);
	TAILQ_INSERT_TAIL(&origin_keys, k, entry);
	return k;
}

/* Log a new request under a key; returns its index. */
static size_t
okey_add(struct okey *k, struct evhttp_request *req)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct okey_req *r;
	const char *range, *ifr;
	uint64_t from;

	if (k->n == k->cap) {
		k->cap = k->cap == 0 ? 8 : k->cap * 2;
		k->reqs = realloc(k->reqs, k->cap * sizeof *k->reqs);
		if (k->reqs == NULL)
			origin_die("out of memory");
	}
	r = &k->reqs[k->n];
	memset(r, 0, sizeof *r);
	r->t_ms = origin_now_ms();
	r->range_from = -1;
	range = evhttp_find_header(in, "Range");
	if (range != NULL && strncmp(range, "bytes=", 6) == 0) {
		char *num = origin_strdup(range + 6);

		num[strcspn(num, "-")] = '\0';
		if (origin_parse_num(num, 0, INT64_MAX, &from) == 0)
			r->range_from = (long long)from;
		free(num);
	}
	ifr = evhttp_find_header(in, "If-Range");
	if (ifr != NULL)
		r->if_range = origin_strdup(ifr);
	return k->n++;
}

/* Free every key. */
static void
okey_free_all(void)
{
	struct okey *k;
	size_t i;

	while ((k = TAILQ_FIRST(&origin_keys)) != NULL) {
		TAILQ_REMOVE(&origin_keys, k, entry);
		for (i = 0; i < k->n; i++)
			free(k->reqs[i].if_range);
		free(k->reqs);
		free(k->name);
		free(k);
	}
}

/* Forget a request: stop its timer, count it as ended and free our state. */
static void
oreq_destroy(struct oreq *o)
{
	struct okey_req *r;

	if (o->key != NULL) {
		r = &o->key->reqs[o->keyidx];
		r->status = o->code;
		r->bytes = o->sent;
		r->end = o->ended != NULL ? o->ended : "client";
	}
	TAILQ_REMOVE(&origin_reqs, o, entry);
	if (o->timer != NULL)
		event_free(o->timer);
	if (o->watch != NULL)
		event_free(o->watch);
	if (o->body != NULL)
		evbuffer_free(o->body);
	free(o->ctype);
	free(o->retry_after);
	if (o->counted)
		stats_active--;
	free(o);
}

/* libevent has sent the whole reply. */
static void
oreq_complete(struct evhttp_request *req, void *arg)
{
	struct oreq *o = arg;

	o->ended = "complete";
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
	if (o->retry_after != NULL)
		evhttp_add_header(out, "Retry-After", o->retry_after);
	if (o->validator == VALIDATOR_ETAG || o->validator == VALIDATOR_BOTH)
		evhttp_add_header(out, "ETag", o->etag);
	else if (o->validator == VALIDATOR_WEAK) {
		char weak[sizeof o->etag + 2];

		snprintf(weak, sizeof weak, "W/%s", o->etag);
		evhttp_add_header(out, "ETag", weak);
	}
	if (o->validator == VALIDATOR_LM || o->validator == VALIDATOR_BOTH)
		evhttp_add_header(out, "Last-Modified", o->lastmod);
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
	o->sent = evbuffer_get_length(o->body);
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

/* Arm the request's timer for ms milliseconds. */
static void
oreq_arm(struct oreq *o, long ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(o->timer, &tv);
}

/*
 * The connection of a waiting request became readable. libevent does not
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

/* Notice the client leaving while the request waits on its timer. */
static void
oreq_watch_start(struct oreq *o)
{
	if (o->watch != NULL)
		return;
	o->watch = event_new(origin_base,
	    bufferevent_getfd(evhttp_connection_get_bufferevent(o->evcon)),
	    EV_READ, oreq_watch, o);
	if (o->watch == NULL)
		origin_die("event_new failed");
	event_add(o->watch, NULL);
}

/*
 * End the connection in the middle of a reply (reset= and short=, or the
 * end of a body shorter than its length=). evhttp shuts the socket down
 * for writing before it closes it, which would send a FIN ahead of any
 * reset; so for a reset the socket is first replaced, under the same
 * descriptor, by a spare one, which closes the real one with SO_LINGER 0.
 */
static void
oreq_break(struct oreq *o)
{
	struct linger lg = { 1, 0 };
	int fd, spare;

	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(o->evcon));
	if (o->break_rst) {
		o->ended = "reset";
		spare = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (spare == -1 ||
		    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) ==
			-1 ||
		    dup2(spare, fd) == -1)
			origin_die("cannot reset a connection");
		close(spare);
	} else
		o->ended = "closed";
	/* libevent frees the request along with the connection. */
	o->userdone = 1;
	evhttp_connection_free(o->evcon);
}

/* The previous piece of a stream has drained: go on, maybe after a gap. */
static void
oreq_stream_drained(struct evhttp_connection *evcon, void *arg)
{
	struct oreq *o = arg;

	if (o->gap_ms > 0 && o->pos < o->end) {
		oreq_arm(o, o->gap_ms);
		return;
	}
	oreq_stream_next(o);
}

/* Queue the next piece of a stream, stall, break the connection or end. */
static void
oreq_stream_next(struct oreq *o)
{
	static unsigned char piece[ORIGIN_PIECE_SIZE];
	struct evbuffer *buf;
	size_t len;

	if (o->stall_at >= 0 && !o->stalled &&
	    o->sent >= (uint64_t)o->stall_at) {
		o->stalled = 1;
		oreq_watch_start(o);
		oreq_arm(o, o->stall_ms);
		return;
	}
	if ((o->break_at >= 0 && o->sent >= (uint64_t)o->break_at) ||
	    (o->pos >= o->end && !o->chunked && o->sent < o->declared)) {
		/* Let the client read what was sent before it ends. */
		o->breaking = 1;
		oreq_arm(o, ORIGIN_BREAK_MS);
		return;
	}
	if (o->pos >= o->end) {
		o->userdone = 1;
		evhttp_send_reply_end(o->req);
		return;
	}
	len = ORIGIN_PIECE_SIZE;
	if (o->end - o->pos < len)
		len = (size_t)(o->end - o->pos);
	if (o->stall_at >= 0 && !o->stalled &&
	    (uint64_t)o->stall_at - o->sent < len)
		len = (size_t)((uint64_t)o->stall_at - o->sent);
	if (o->break_at >= 0 && (uint64_t)o->break_at - o->sent < len)
		len = (size_t)((uint64_t)o->break_at - o->sent);
	if (o->data != NULL)
		memcpy(piece, o->data + o->pos, len);
	else
		origin_pattern(piece, len, o->pos);
	if (o->pos < o->magiclen)
		memcpy(piece, o->magic + o->pos,
		    len < o->magiclen - o->pos ? len : o->magiclen - o->pos);
	buf = evbuffer_new();
	if (buf == NULL)
		origin_die("out of memory");
	evbuffer_add(buf, piece, len);
	o->pos += len;
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
		snprintf(len, sizeof len, "%" PRIu64, o->declared);
		evhttp_add_header(out, "Content-Length", len);
	}
	o->started = 1;
	evhttp_send_reply_start(o->req, o->code, NULL);
	if (o->end == o->pos ||
	    evhttp_request_get_command(o->req) == EVHTTP_REQ_HEAD ||
	    o->code == 204 || o->code == 304) {
		o->userdone = 1;
		evhttp_send_reply_end(o->req);
		return;
	}
	oreq_stream_next(o);
}

/* A delay, a gap, a stall or the pause before a break has passed. */
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
	else if (o->breaking)
		oreq_break(o);
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
	o->mtime = st.st_mtime;
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
		{ "png", "\x89PNG\r\n\x1a\n", 8 },
		{ "gif", "GIF89a", 6 },
		{ "jpeg", "\xff\xd8\xff\xe0", 4 },
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

/* GET /loop: a redirect to itself. */
static void
route_loop(struct oreq *o)
{
	oreq_set_redirect(o, "/loop");
}

/* GET /html: a web page. */
static void
route_html(struct oreq *o)
{
	evbuffer_add_printf(o->body, "%s", ORIGIN_HTML);
	o->code = 200;
	free(o->ctype);
	o->ctype = origin_strdup("text/html; charset=utf-8");
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
	TAILQ_FOREACH(h, in, next) {
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
	TAILQ_FOREACH(h, in, next) {
		seen = 0;
		TAILQ_FOREACH(g, in, next) {
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

/* GET /keys/KEY: what the requests made with key=KEY got. */
static void
route_keys(struct oreq *o, const char *name)
{
	struct okey *k = okey_get(name);
	struct okey_req *r;
	uint64_t bytes = 0;
	size_t i;

	for (i = 0; i < k->n; i++)
		bytes += k->reqs[i].bytes;
	evbuffer_add_printf(o->body,
	    "{\"requests\": %zu, \"bytes\": %" PRIu64 ", \"log\": [", k->n,
	    bytes);
	for (i = 0; i < k->n; i++) {
		r = &k->reqs[i];
		evbuffer_add_printf(o->body,
		    "%s{\"t\": %lld, \"range\": ", i > 0 ? ", " : "", r->t_ms);
		if (r->range_from >= 0)
			evbuffer_add_printf(o->body, "%lld", r->range_from);
		else
			evbuffer_add_printf(o->body, "null");
		evbuffer_add_printf(o->body, ", \"if_range\": ");
		if (r->if_range != NULL)
			origin_json_string(o->body, r->if_range);
		else
			evbuffer_add_printf(o->body, "null");
		evbuffer_add_printf(o->body,
		    ", \"status\": %d, \"bytes\": %" PRIu64
		    ", \"end\": \"%s\"}",
		    r->status, r->bytes, r->end != NULL ? r->end : "active");
	}
	evbuffer_add_printf(o->body, "]}\n");
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

/* A number option in [min, max], or def when absent or not a number. */
static int64_t
origin_num_opt(struct evkeyvalq *query, const char *name, uint64_t min,
    uint64_t max, int64_t def)
{
	const char *s = evhttp_find_header(query, name);
	uint64_t v;

	if (s == NULL || origin_parse_num(s, min, max, &v) == -1)
		return def;
	return (int64_t)v;
}

/* Whether the query asks for the body to be sent piece by piece. */
static int
oreq_wants_pieces(struct oreq *o, struct evkeyvalq *query, int faults)
{
	static const char *const opts[] = { "gap", "validator", "range" };
	static const char *const faultopts[] = { "reset", "short", "length",
		"stall" };
	size_t i;

	if (evhttp_find_header(
		evhttp_request_get_input_headers(o->req), "Range") != NULL)
		return 1;
	for (i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		if (evhttp_find_header(query, opts[i]) != NULL)
			return 1;
	}
	for (i = 0; faults && i < sizeof faultopts / sizeof faultopts[0]; i++) {
		if (evhttp_find_header(query, faultopts[i]) != NULL)
			return 1;
	}
	return 0;
}

/* Does an If-Range value name the representation's current validator? */
static int
oreq_if_range_matches(struct oreq *o, const char *v)
{
	if ((o->validator == VALIDATOR_ETAG ||
		o->validator == VALIDATOR_BOTH) &&
	    strcmp(v, o->etag) == 0)
		return 1;
	return (o->validator == VALIDATOR_LM ||
		   o->validator == VALIDATOR_BOTH) &&
	    strcmp(v, o->lastmod) == 0;
}

/* Answer a Range request for a body sent piece by piece. */
static void
oreq_range(struct oreq *o, enum origin_range mode)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(o->req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(o->req);
	const char *range = evhttp_find_header(in, "Range");
	const char *ifr = evhttp_find_header(in, "If-Range");
	char *spec, *dash, cr[96];
	uint64_t from, to;

	if (range == NULL || mode == RANGE_IGNORE ||
	    strncmp(range, "bytes=", 6) != 0 || strchr(range, ',') != NULL)
		return;
	if (ifr != NULL && !oreq_if_range_matches(o, ifr))
		return; /* changed (or unknown): the full body */
	spec = origin_strdup(range + 6);
	dash = strchr(spec, '-');
	if (dash == NULL) {
		free(spec);
		return;
	}
	*dash = '\0';
	to = o->total > 0 ? o->total - 1 : 0;
	if (origin_parse_num(spec, 0, UINT64_MAX / 2, &from) == -1 ||
	    (dash[1] != '\0' &&
		origin_parse_num(dash + 1, from, UINT64_MAX / 2, &to) == -1)) {
		free(spec);
		return;
	}
	free(spec);
	if (from >= o->total) {
		snprintf(cr, sizeof cr, "bytes */%" PRIu64, o->total);
		evhttp_add_header(out, "Content-Range", cr);
		o->code = 416;
		o->pos = o->end = o->declared = 0;
		return;
	}
	if (to >= o->total)
		to = o->total - 1;
	if (mode == RANGE_BAD) {
		from = 0;
		to = o->total - 1;
	}
	snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, from,
	    to, o->total);
	evhttp_add_header(out, "Content-Range", cr);
	o->code = 206;
	o->pos = from;
	o->end = to + 1;
	o->declared = o->end - o->pos;
}

/* The body options: validators, Range, gaps. */
static void
oreq_body_options(struct oreq *o, struct evkeyvalq *query)
{
	static const char *const vnames[] = { "none", "etag", "weak", "lm",
		"both" };
	const char *validator = evhttp_find_header(query, "validator");
	const char *range = evhttp_find_header(query, "range");
	enum origin_range mode = RANGE_HONOUR;
	struct tm tm;
	size_t i;

	for (i = 0; validator != NULL && i < sizeof vnames / sizeof vnames[0];
	     i++) {
		if (strcmp(validator, vnames[i]) == 0)
			o->validator = (enum origin_validator)i;
	}
	snprintf(o->etag, sizeof o->etag, "\"%c%" PRIu64 "-%lld-%s\"",
	    o->data != NULL ? 'f' : 's', o->total, (long long)o->mtime,
	    o->magic != NULL ? evhttp_find_header(query, "magic") : "raw");
	gmtime_r(&o->mtime, &tm);
	strftime(
	    o->lastmod, sizeof o->lastmod, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	o->gap_ms = (long)origin_num_opt(
	    query, "gap", 0, ORIGIN_MAX_DELAY_MS, o->gap_ms);
	if (range != NULL && strcmp(range, "ignore") == 0)
		mode = RANGE_IGNORE;
	else if (range != NULL && strcmp(range, "bad") == 0)
		mode = RANGE_BAD;
	o->pos = 0;
	o->end = o->declared = o->total;
	if (o->code == 200 && !o->chunked)
		oreq_range(o, mode);
}

/* The body faults: reset=, short=, length=, stall=. */
static void
oreq_body_faults(struct oreq *o, struct evkeyvalq *query)
{
	int64_t v;

	if ((v = origin_num_opt(query, "reset", 0, UINT64_MAX / 2, -1)) >= 0) {
		o->break_at = v;
		o->break_rst = 1;
	} else if ((v = origin_num_opt(
			query, "short", 0, UINT64_MAX / 2, -1)) >= 0)
		o->break_at = v;
	if ((v = origin_num_opt(query, "length", 0, UINT64_MAX / 2, -1)) >= 0 &&
	    (uint64_t)v > o->end - o->pos)
		o->declared = (uint64_t)v;
	if ((v = origin_num_opt(query, "stall", 0, ORIGIN_MAX_DELAY_MS, -1)) >=
	    0) {
		o->stall_ms = (long)v;
		o->stall_at = origin_num_opt(
		    query, "stall_at", 0, UINT64_MAX / 2, ORIGIN_STALL_AT);
	}
}

/* Retry-After from retry_after= or retry_date=. */
static void
oreq_retry_after(struct oreq *o, struct evkeyvalq *query)
{
	const char *ra = evhttp_find_header(query, "retry_after");
	int64_t secs;
	time_t when;
	struct tm tm;
	char date[64];

	if (ra != NULL) {
		o->retry_after = origin_strdup(ra);
		return;
	}
	secs = origin_num_opt(query, "retry_date", 0, 86400, -1);
	if (secs < 0)
		return;
	when = time(NULL) + (time_t)secs;
	gmtime_r(&when, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	o->retry_after = origin_strdup(date);
}

/*
 * Apply the query options (key= and fail= first: they decide whether the
 * fault options apply), then answer or wait.
 */
static void
oreq_dispatch(struct oreq *o, struct evkeyvalq *query)
{
	const char *type = evhttp_find_header(query, "type");
	const char *status = evhttp_find_header(query, "status");
	const char *key = evhttp_find_header(query, "key");
	int64_t fail = origin_num_opt(query, "fail", 0, UINT64_MAX / 2, -1);
	uint64_t v, ms;
	int faults = 1;

	if (key != NULL) {
		o->key = okey_get(key);
		o->keyidx = okey_add(o->key, o->req);
		if (fail >= 0 && (int64_t)o->keyidx >= fail)
			faults = 0;
	}
	if (type != NULL) {
		free(o->ctype);
		o->ctype =
		    strcmp(type, "none") == 0 ? NULL : origin_strdup(type);
	}
	if (faults && status != NULL &&
	    origin_parse_num(status, 100, 999, &v) == 0)
		o->code = (int)v;
	if (faults)
		oreq_retry_after(o, query);
	ms =
	    (uint64_t)origin_num_opt(query, "delay", 0, ORIGIN_MAX_DELAY_MS, 0);

	if (o->kind == ORIGIN_SIMPLE && o->code == 200 &&
	    oreq_wants_pieces(o, query, faults)) {
		/* A whole reply sent piece by piece, like /stream. */
		o->kind = ORIGIN_STREAM;
		o->total = evbuffer_get_length(o->body);
		o->data = evbuffer_pullup(o->body, -1);
	}
	if (o->kind == ORIGIN_STREAM) {
		oreq_body_options(o, query);
		if (faults)
			oreq_body_faults(o, query);
	}

	o->timer = evtimer_new(origin_base, oreq_fire, o);
	if (o->timer == NULL)
		origin_die("evtimer_new failed");
	if (ms > 0) {
		oreq_arm(o, (long)ms);
		oreq_watch_start(o);
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
	    strcmp(path, "/last-headers") == 0 ||
	    strncmp(path, "/keys/", 6) == 0;
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
	o->mtime = ORIGIN_STREAM_MTIME;
	o->stall_at = o->break_at = -1;
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
	else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/loop") == 0)
		route_loop(o);
	else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/html") == 0)
		route_html(o);
	else if (cmd == EVHTTP_REQ_GET && strncmp(path, "/keys/", 6) == 0 &&
	    path[6] != '\0')
		route_keys(o, path + 6);
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
		{ "port", required_argument, NULL, 'p' },
		{ "root", required_argument, NULL, 'r' }, { NULL, 0, NULL, 0 }
	};
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
	okey_free_all();
	event_base_free(origin_base);
	return 0;
}
