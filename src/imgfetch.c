/*
 * imgfetch: the command-line client of imgfetchd. It speaks the daemon's
 * HTTP/JSON API over the daemon's Unix socket, with libcurl for HTTP and
 * jansson for every JSON body sent or received; a new job goes as a
 * text/uri-list when that form carries all of it. Nothing the server sends
 * is trusted: every member is type-checked before use and a missing or odd
 * one is shown as absent, never dereferenced.
 *
 * Exit status: 0 when the command succeeded (for add --wait and wait: every
 * item done), 1 when a waited-for job had failed or cancelled items, 2 for
 * usage errors, connection errors and error replies from the API.
 */
#include <sys/types.h>
#include <sys/ioctl.h>

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "defs.h"

#define nitems(a) (sizeof(a) / sizeof(a)[0])

#define EXIT_DONE 0
#define EXIT_FAILED 1
#define EXIT_ERROR 2

/* Largest reply body and largest single events line accepted. */
#define REPLY_MAX_BYTES ((size_t)512 * 1024 * 1024)
#define EVENT_MAX_BYTES ((size_t)512 * 1024 * 1024)
/* Seconds allowed to connect to the daemon's socket. */
#define CONNECT_TIMEOUT 10L
/* Times the events stream is reopened when it ends before the job. */
#define STREAM_RETRIES 5
/* Seconds to wait for the stream to close after the final job event. */
#define FINAL_GRACE 2.0
/* Rate is bytes over this many seconds; samples kept for it. */
#define RATE_WINDOW 5.0
#define RATE_SAMPLES 64
/* Least seconds between bar redraws and between plain progress lines. */
#define BAR_INTERVAL 0.25
#define LINE_INTERVAL 1.0
/* Bar width in columns: at least, at most, and room kept for the text. */
#define BAR_MIN 10
#define BAR_MAX 50
#define BAR_TEXT 40
/* Most items whose end is remembered (to report each only once). */
#define SEEN_MAX (4 * 1024 * 1024)
/* Longest server string shown in human output. */
#define TEXT_MAX 8192

/* Options that only some commands take. */
#define OPT_ADD 0x1
#define OPT_LS 0x2

enum { OPT_STATE = 256 };

/* A growing byte buffer, always NUL-terminated once used. */
struct buf {
	char *data;
	size_t len;
	size_t size;
	int full; /* an append went past the limit */
};

/* A request body and its media type. */
struct body {
	const char *type;
	const char *data;
	size_t len;
};

/* A list of strings the list owns. */
struct strings {
	char **v;
	size_t n;
	size_t size;
};

/* The connection to the daemon: one easy handle reused for every request. */
struct client {
	const char *socket;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	int json;
	int quiet; /* no progress, no line per done item */
	int minimal; /* ask a POST to leave the job's items out of its reply */
};

/* Bytes seen at one moment, for the rate. */
struct sample {
	double t;
	long long bytes;
};

/* A job being followed through its events stream. */
struct watch {
	struct client *client;
	long long id;

	int json_end; /* --json: show nothing but the final job */
	FILE *bar; /* terminal the bar is drawn on, or NULL */
	int bar_shown; /* the bar is on screen now */
	char drawn[1024]; /* the bar as last drawn */
	int lines; /* plain progress lines on stdout */
	int ended_lines; /* a line for every item that ends, not just failed */
	const char *items; /* the item events asked of the stream */

	long status; /* HTTP status of the stream */
	struct buf line; /* partial events line */
	struct buf error; /* body of an error reply */

	int snapshot; /* a snapshot has arrived */
	int events; /* events taken from the current stream */
	json_t *final; /* the job as it ended */
	double final_at;

	long long total;
	long long done;
	long long failed;
	long long bytes;
	double partial; /* fractions of active items */

	unsigned char *seen; /* items whose end was reported */
	size_t nseen;

	struct sample samples[RATE_SAMPLES];
	size_t nsamples;
	size_t next;

	double last_draw;
	double last_line;
	long long line_done;
	long long line_failed;
	long long line_bytes;
};

static volatile sig_atomic_t watch_signal;

/* Resize memory or abort: the client has nothing useful to do without it. */
static void *
xrealloc(void *p, size_t size)
{
	void *q;

	if ((q = realloc(p, size == 0 ? 1 : size)) == NULL)
		errx(EXIT_ERROR, "out of memory");
	return q;
}

/* Copy a string or abort. */
static char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		errx(EXIT_ERROR, "out of memory");
	return p;
}

/* Append n bytes; -1 (and the buffer marked full) past limit. */
static int
buf_add(struct buf *b, const void *p, size_t n, size_t limit)
{
	size_t size;

	if (n > limit || b->len > limit - n) {
		b->full = 1;
		return -1;
	}
	if (b->len + n + 1 > b->size) {
		size = b->size == 0 ? 4096 : b->size;
		while (size < b->len + n + 1)
			size *= 2;
		b->data = xrealloc(b->data, size);
		b->size = size;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* Drop the first n bytes. */
static void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		if (b->data != NULL)
			b->data[0] = '\0';
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

/* Free the buffer's memory and empty it. */
static void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

/* Add a copy of s to the list. */
static void
strings_add(struct strings *l, const char *s)
{
	if (l->n == l->size) {
		l->size = l->size == 0 ? 16 : l->size * 2;
		l->v = xrealloc(l->v, l->size * sizeof *l->v);
	}
	l->v[l->n++] = xstrdup(s);
}

/* Free the list and its strings. */
static void
strings_free(struct strings *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

/* Seconds on the monotonic clock. */
static double
time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Format a byte count in binary units: "512 B", "3.4 MiB". */
static void
human_bytes(char *dst, size_t len, double n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
		"PiB", "EiB" };
	size_t i = 0;

	if (!(n >= 0))
		n = 0;
	while (n >= 1024 && i < nitems(units) - 1) {
		n /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(dst, len, "%.0f %s", n, units[i]);
	else
		snprintf(dst, len, "%.1f %s", n, units[i]);
}

/* Format seconds as "2d 3h", "3h 4m", "4m 5s" or "5s". */
static void
human_duration(char *dst, size_t len, long long s)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(dst, len, "%lldd %lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(dst, len, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(dst, len, "%lldm %llds", s / 60, s % 60);
	else
		snprintf(dst, len, "%llds", s);
}

/*
 * A copy of a server string fit for a terminal: control characters become
 * '?' and long strings are cut. Returns one of a few rotating buffers, so a
 * printf may show several of them.
 */
static const char *
text_clean(const char *s)
{
	static char bufs[4][TEXT_MAX];
	static size_t next;
	char *b;
	size_t i;

	b = bufs[next++ % nitems(bufs)];
	for (i = 0; s[i] != '\0' && i < TEXT_MAX - 4; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			b[i] = '?';
		else
			b[i] = s[i];
	}
	if (s[i] != '\0') {
		memcpy(b + i, "...", 3);
		i += 3;
	}
	b[i] = '\0';
	return b;
}

/* A member of an object, or NULL when obj is no object or lacks it. */
static json_t *
field_get(json_t *obj, const char *key)
{
	if (!json_is_object(obj))
		return NULL;
	return json_object_get(obj, key);
}

/* An integer member, or def when absent or not a number. */
static long long
field_int(json_t *obj, const char *key, long long def)
{
	json_t *v;
	double d;

	if ((v = field_get(obj, key)) == NULL)
		return def;
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (d >= -9e18 && d <= 9e18)
			return (long long)d;
	}
	return def;
}

/* A string member, or def when absent or not a string. */
static const char *
field_string(json_t *obj, const char *key, const char *def)
{
	json_t *v;

	if ((v = field_get(obj, key)) == NULL || !json_is_string(v))
		return def;
	return json_string_value(v);
}

/* An object member, or NULL. */
static json_t *
field_object(json_t *obj, const char *key)
{
	json_t *v;

	if ((v = field_get(obj, key)) == NULL || !json_is_object(v))
		return NULL;
	return v;
}

/* An array member, or NULL. */
static json_t *
field_array(json_t *obj, const char *key)
{
	json_t *v;

	if ((v = field_get(obj, key)) == NULL || !json_is_array(v))
		return NULL;
	return v;
}

/* Whether a job or item state is one it never leaves. */
static int
state_ended(const char *state)
{
	return strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
	    strcmp(state, "cancelled") == 0;
}

/* Print a JSON value as-is, indented, on stdout. */
static void
output_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	putchar('\n');
	fflush(stdout);
}

/* Open the handle; -1 if libcurl cannot. */
static int
client_init(struct client *c, const char *socket, int json)
{
	memset(c, 0, sizeof *c);
	c->socket = socket;
	c->json = json;
	if ((c->curl = curl_easy_init()) == NULL) {
		warnx("cannot initialise libcurl");
		return -1;
	}
	return 0;
}

/* Close the handle. */
static void
client_finish(struct client *c)
{
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
}

/* Point the handle at method and path (below the API prefix). */
static void
client_setup(struct client *c, const char *method, const char *path)
{
	char *url;
	size_t len;

	curl_easy_reset(c->curl);
	c->errbuf[0] = '\0';
	len = sizeof "http://localhost" API_PREFIX + strlen(path);
	url = xrealloc(NULL, len);
	snprintf(url, len, "http://localhost%s%s", API_PREFIX, path);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT);
	curl_easy_setopt(
	    c->curl, CURLOPT_USERAGENT, "imgfetch/" IMGFETCHD_VERSION);
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
}

/* Report a failed transfer: above all, a daemon that is not there. */
static void
client_warn(struct client *c, CURLcode code)
{
	const char *why;
	long oserr = 0;

	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
	if (c->errbuf[0] != '\0')
		why = c->errbuf;
	else
		why = curl_easy_strerror(code);
	if (code == CURLE_COULDNT_CONNECT ||
	    (code == CURLE_OPERATION_TIMEDOUT && oserr != 0)) {
		if (oserr != 0)
			why = strerror((int)oserr);
		warnx("cannot connect to %s: %s (is imgfetchd running?)",
		    c->socket, why);
		return;
	}
	if (code == CURLE_GOT_NOTHING) {
		warnx("%s: the daemon closed the connection without a reply",
		    c->socket);
		return;
	}
	warnx("%s: %s", c->socket, why);
}

/* Report an error reply: the API's own message when it sent one. */
static void
client_warn_reply(long status, json_t *reply)
{
	const char *error;

	error = field_string(reply, "error", NULL);
	if (error != NULL)
		warnx("%ld: %s", status, text_clean(error));
	else
		warnx("%ld: unexpected reply from the daemon", status);
}

/* Collect a reply body. */
static size_t
client_write(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (buf_add(b, p, size * n, REPLY_MAX_BYTES) != 0)
		return 0;
	return size * n;
}

/*
 * Send one request with an optional body. On any HTTP answer returns 0 with
 * *status set and *reply the parsed body (NULL if it is not JSON); -1 if no
 * answer came, reported.
 */
static int
client_request(struct client *c, const char *method, const char *path,
    const struct body *body, long *status, json_t **reply)
{
	struct curl_slist *headers = NULL, *h;
	struct buf b;
	char type[64];
	CURLcode code;
	int rv = -1;

	memset(&b, 0, sizeof b);
	*status = 0;
	*reply = NULL;
	client_setup(c, method, path);
	if (body != NULL) {
		snprintf(type, sizeof type, "Content-Type: %s", body->type);
		if ((h = curl_slist_append(headers, type)) == NULL)
			goto nomem;
		headers = h;
		if ((h = curl_slist_append(headers, "Expect:")) == NULL)
			goto nomem;
		headers = h;
		if (c->minimal) {
			h = curl_slist_append(
			    headers, "Prefer: return=minimal");
			if (h == NULL)
				goto nomem;
			headers = h;
		}
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)body->len);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body->data);
	}
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, client_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
	code = curl_easy_perform(c->curl);
	if (code != CURLE_OK) {
		if (b.full)
			warnx("%s: reply too large", c->socket);
		else
			client_warn(c, code);
		goto fail;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	if (b.len != 0)
		*reply = json_loadb(b.data, b.len, 0, NULL);
	rv = 0;
	goto fail;

nomem:
	warnx("out of memory");
fail:
	curl_slist_free_all(headers);
	buf_free(&b);
	return rv;
}

/*
 * The JSON object of a 2xx reply; NULL after reporting any other. Takes
 * the reply.
 */
static json_t *
client_reply(long status, json_t *reply)
{
	if (status >= 200 && status <= 299) {
		if (json_is_object(reply))
			return reply;
		warnx("%ld: malformed reply from the daemon", status);
	} else
		client_warn_reply(status, reply);
	json_decref(reply);
	return NULL;
}

/*
 * Send one request and return the JSON object of a 2xx reply; NULL after
 * reporting any other outcome.
 */
static json_t *
client_call(struct client *c, const char *method, const char *path,
    const struct body *body)
{
	json_t *reply;
	long status;

	if (client_request(c, method, path, body, &status, &reply) != 0)
		return NULL;
	return client_reply(status, reply);
}

/* Read a job id operand; -1 if it is not one. */
static long long
id_parse(const char *s)
{
	char *end;
	long long id;

	errno = 0;
	id = strtoll(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0) {
		warnx("bad job id \"%s\"", s);
		return -1;
	}
	return id;
}

/* Terminal width of the stream, 80 when unknown. */
static int
tty_width(FILE *f)
{
	struct winsize ws;

	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* Set the watch up for job id, choosing how progress is shown. */
static void
watch_init(struct watch *w, struct client *c, long long id)
{
	memset(w, 0, sizeof *w);
	w->client = c;
	w->id = id;
	if (c->json) {
		/* All it shows is the final job event. */
		w->json_end = 1;
		w->items = "none";
		return;
	}
	if (isatty(STDERR_FILENO))
		w->bar = stderr;
	else if (isatty(STDOUT_FILENO))
		w->bar = stdout;
	else
		w->lines = 1;
	w->ended_lines = !isatty(STDOUT_FILENO);
	if (c->quiet) {
		/* Failed items and the summary only. */
		w->bar = NULL;
		w->lines = 0;
		w->ended_lines = 0;
	}
	/* Without their lines, done items need no event of their own. */
	w->items = w->ended_lines ? "all" : "failed";
}

/* Free what the watch holds. */
static void
watch_finish(struct watch *w)
{
	buf_free(&w->line);
	buf_free(&w->error);
	json_decref(w->final);
	free(w->seen);
}

/* Note the byte count now, for the rate. */
static void
watch_sample(struct watch *w, double now)
{
	w->samples[w->next].t = now;
	w->samples[w->next].bytes = w->bytes;
	w->next = (w->next + 1) % RATE_SAMPLES;
	if (w->nsamples < RATE_SAMPLES)
		w->nsamples++;
}

/* Bytes per second over the last RATE_WINDOW seconds. */
static double
watch_rate(struct watch *w, double now)
{
	struct sample *s, *base = NULL;
	size_t i, first;
	double dt;

	if (w->nsamples == 0)
		return 0;
	first = (w->next + RATE_SAMPLES - w->nsamples) % RATE_SAMPLES;
	for (i = 0; i < w->nsamples; i++) {
		s = &w->samples[(first + i) % RATE_SAMPLES];
		if (base == NULL || s->t <= now - RATE_WINDOW)
			base = s;
		else
			break;
	}
	dt = now - base->t;
	if (dt < 0.5 || w->bytes < base->bytes)
		return 0;
	return (double)(w->bytes - base->bytes) / dt;
}

/* Erase the bar so other lines can be printed. */
static void
watch_clear(struct watch *w)
{
	if (w->bar == NULL || !w->bar_shown)
		return;
	fputs("\r\033[K", w->bar);
	fflush(w->bar);
	w->bar_shown = 0;
}

/* Redraw the one-line bar, at most every BAR_INTERVAL unless forced. */
static void
watch_draw(struct watch *w, int force)
{
	char text[256], line[1024], bytes[32], rate[32];
	double now, frac;
	int width, barw, n, i, fill;

	if (w->bar == NULL || !w->snapshot)
		return;
	now = time_now();
	if (!force && now - w->last_draw < BAR_INTERVAL)
		return;
	w->last_draw = now;

	human_bytes(bytes, sizeof bytes, (double)w->bytes);
	human_bytes(rate, sizeof rate, watch_rate(w, now));
	n = snprintf(text, sizeof text, " %lld/%lld done", w->done, w->total);
	if (w->failed != 0)
		n += snprintf(
		    text + n, sizeof text - n, ", %lld failed", w->failed);
	snprintf(text + n, sizeof text - n, "  %s  %s/s", bytes, rate);

	frac = 1;
	if (w->total > 0)
		frac = ((double)(w->done + w->failed) + w->partial) /
		    (double)w->total;
	if (!(frac >= 0))
		frac = 0;
	if (frac > 1)
		frac = 1;

	/* The bar keeps its width while the text grows, up to a point. */
	width = tty_width(w->bar);
	if (width > (int)sizeof line - 1)
		width = sizeof line - 1;
	n = (int)strlen(text);
	barw = width - 1 - 7 - (n > BAR_TEXT ? n : BAR_TEXT);
	if (barw > BAR_MAX)
		barw = BAR_MAX;
	n = 0;
	if (barw >= BAR_MIN) {
		fill = (int)(frac * barw);
		line[n++] = '[';
		for (i = 0; i < barw; i++)
			line[n++] = i < fill ? '#' : '-';
		line[n++] = ']';
		n += snprintf(
		    line + n, sizeof line - n, " %3d%%", (int)(frac * 100));
	}
	snprintf(line + n, sizeof line - n, "%s", text);
	if ((int)strlen(line) > width - 1)
		line[width - 1] = '\0';
	if (w->bar_shown && strcmp(line, w->drawn) == 0)
		return;
	snprintf(w->drawn, sizeof w->drawn, "%s", line);
	fprintf(w->bar, "\r%s\033[K", line);
	fflush(w->bar);
	w->bar_shown = 1;
}

/* Print a plain progress line, at most every LINE_INTERVAL unless forced. */
static void
watch_plain(struct watch *w, int force)
{
	char bytes[32], rate[32];
	double now;

	if (!w->lines || !w->snapshot)
		return;
	now = time_now();
	if (!force && now - w->last_line < LINE_INTERVAL)
		return;
	if (w->last_line != 0 && w->done == w->line_done &&
	    w->failed == w->line_failed && w->bytes == w->line_bytes)
		return;
	w->last_line = now;
	w->line_done = w->done;
	w->line_failed = w->failed;
	w->line_bytes = w->bytes;
	human_bytes(bytes, sizeof bytes, (double)w->bytes);
	human_bytes(rate, sizeof rate, watch_rate(w, now));
	printf("job %lld: %lld/%lld done, %lld failed, %s, %s/s\n", w->id,
	    w->done, w->total, w->failed, bytes, rate);
	fflush(stdout);
}

/* Show the progress the way the output wants it. */
static void
watch_show(struct watch *w, int force)
{
	watch_draw(w, force);
	watch_plain(w, force);
}

/* Take the counts of a job object. */
static void
watch_counts(struct watch *w, json_t *job)
{
	w->total = field_int(job, "total", w->total);
	w->done = field_int(job, "done", w->done);
	w->failed = field_int(job, "failed", w->failed);
	w->bytes = field_int(job, "bytes", w->bytes);
}

/* Mark item n reported; 0 if it already was. */
static int
watch_mark(struct watch *w, long long n)
{
	size_t size;

	if (n < 0 || n >= SEEN_MAX)
		return 1;
	if ((size_t)n >= w->nseen) {
		size = w->nseen == 0 ? 256 : w->nseen;
		while (size <= (size_t)n)
			size *= 2;
		w->seen = xrealloc(w->seen, size);
		memset(w->seen + w->nseen, 0, size - w->nseen);
		w->nseen = size;
	}
	if (w->seen[n])
		return 0;
	w->seen[n] = 1;
	return 1;
}

/* Report an item that has ended, once: "done N path", "failed N url: e". */
static void
watch_ended(struct watch *w, json_t *item)
{
	const char *state, *url, *path, *error;
	long long n;

	state = field_string(item, "state", "");
	if (!state_ended(state))
		return;
	n = field_int(item, "n", -1);
	if (!watch_mark(w, n))
		return;
	if (w->json_end)
		return;
	url = field_string(item, "url", "?");
	path = field_string(item, "path", NULL);
	if (strcmp(state, "failed") == 0) {
		error = field_string(item, "error", "failed");
		watch_clear(w);
		printf("failed %lld %s: %s\n", n, text_clean(url),
		    text_clean(error));
	} else if (!w->ended_lines)
		return;
	else if (strcmp(state, "done") == 0) {
		watch_clear(w);
		printf(
		    "done %lld %s\n", n, text_clean(path != NULL ? path : url));
	} else {
		watch_clear(w);
		printf("cancelled %lld %s\n", n, text_clean(url));
	}
	fflush(stdout);
}

/* Report every ended item of a job object. */
static void
watch_items(struct watch *w, json_t *job)
{
	json_t *items;
	size_t i;

	if ((items = field_array(job, "items")) == NULL)
		return;
	for (i = 0; i < json_array_size(items); i++)
		watch_ended(w, json_array_get(items, i));
}

/* The job as the stream starts. */
static void
watch_snapshot(struct watch *w, json_t *ev)
{
	json_t *job;

	if ((job = field_object(ev, "job")) == NULL)
		return;
	watch_counts(w, job);
	w->snapshot = 1;
	watch_sample(w, time_now());
	watch_items(w, job);
	if (!state_ended(field_string(job, "state", "")))
		watch_show(w, 1);
}

/* An item changed state. */
static void
watch_item(struct watch *w, json_t *ev)
{
	if (field_int(ev, "job", w->id) != w->id)
		return;
	watch_ended(w, field_object(ev, "item"));
	watch_draw(w, !w->bar_shown);
}

/* New counts and bytes. */
static void
watch_progress(struct watch *w, json_t *ev)
{
	json_t *items, *item;
	long long bytes, size;
	size_t i;

	if (field_int(ev, "job", w->id) != w->id)
		return;
	watch_counts(w, ev);
	w->partial = 0;
	if ((items = field_array(ev, "items")) != NULL) {
		for (i = 0; i < json_array_size(items); i++) {
			item = json_array_get(items, i);
			bytes = field_int(item, "bytes", 0);
			size = field_int(item, "size", 0);
			if (size > 0 && bytes > 0)
				w->partial += bytes >= size
				    ? 1
				    : (double)bytes / (double)size;
		}
	}
	watch_sample(w, time_now());
	watch_show(w, 0);
}

/* The job has ended: keep it and report any item not yet reported. */
static void
watch_job(struct watch *w, json_t *job)
{
	if (w->final != NULL || !json_is_object(job))
		return;
	w->final = json_incref(job);
	w->final_at = time_now();
	w->snapshot = 1;
	w->partial = 0;
	watch_counts(w, job);
	watch_items(w, job);
}

/* Handle one line of the events stream; odd lines are skipped. */
static void
watch_line(struct watch *w, const char *p, size_t len)
{
	json_t *ev;
	const char *event;

	while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == ' '))
		len--;
	if (len == 0)
		return;
	if ((ev = json_loadb(p, len, 0, NULL)) == NULL)
		return;
	event = field_string(ev, "event", "");
	w->events++;
	if (strcmp(event, "snapshot") == 0)
		watch_snapshot(w, ev);
	else if (strcmp(event, "item") == 0)
		watch_item(w, ev);
	else if (strcmp(event, "progress") == 0)
		watch_progress(w, ev);
	else if (strcmp(event, "job") == 0)
		watch_job(w, field_object(ev, "job"));
	json_decref(ev);
}

/* Take stream bytes: whole lines are handled at once, the rest kept. */
static size_t
watch_write(char *p, size_t size, size_t n, void *arg)
{
	struct watch *w = arg;
	char *start, *end, *nl;

	n *= size;
	if (w->status == 0)
		curl_easy_getinfo(
		    w->client->curl, CURLINFO_RESPONSE_CODE, &w->status);
	if (w->status < 200 || w->status > 299) {
		if (buf_add(&w->error, p, n, REPLY_MAX_BYTES) != 0)
			return 0;
		return n;
	}
	if (buf_add(&w->line, p, n, EVENT_MAX_BYTES) != 0)
		return 0;
	start = w->line.data;
	end = w->line.data + w->line.len;
	while ((nl = memchr(start, '\n', end - start)) != NULL) {
		watch_line(w, start, nl - start);
		start = nl + 1;
	}
	buf_consume(&w->line, start - w->line.data);
	return n;
}

/* Called by libcurl while the stream is open: redraw and check for stop. */
static int
watch_tick(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct watch *w = arg;

	if (watch_signal != 0)
		return 1;
	if (w->final != NULL)
		return time_now() - w->final_at > FINAL_GRACE;
	watch_draw(w, 0);
	return 0;
}

/* Remember a signal for the stream to stop on. */
static void
watch_catch(int sig)
{
	watch_signal = sig;
}

/* Follow the events stream once; 0 when it has ended, -1 on an error. */
static int
watch_stream(struct watch *w)
{
	struct client *c = w->client;
	json_t *reply;
	char path[64];
	CURLcode code;

	w->status = 0;
	w->events = 0;
	w->line.len = 0;
	w->line.full = 0;
	w->error.len = 0;
	snprintf(
	    path, sizeof path, "/jobs/%lld/events?items=%s", w->id, w->items);
	client_setup(c, "GET", path);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, watch_tick);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, w);
	code = curl_easy_perform(c->curl);
	if (watch_signal != 0)
		return -1;
	if (w->status == 0)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &w->status);
	if (w->status == 0) {
		watch_clear(w);
		client_warn(c, code);
		return -1;
	}
	if (w->status < 200 || w->status > 299) {
		watch_clear(w);
		reply = json_loadb(w->error.data != NULL ? w->error.data : "",
		    w->error.len, 0, NULL);
		client_warn_reply(w->status, reply);
		json_decref(reply);
		return -1;
	}
	if (w->line.full) {
		watch_clear(w);
		warnx("job %lld: events line too long", w->id);
	} else if (w->line.len != 0)
		watch_line(w, w->line.data, w->line.len);
	return 0;
}

/* Print the closing line and return the exit status the job deserves. */
static int
watch_summary(struct watch *w)
{
	const char *state;
	char bytes[32], cancelled[48] = "", path[64];
	long long total, done, failed, n;
	json_t *job;

	state = field_string(w->final, "state", "?");
	total = field_int(w->final, "total", 0);
	done = field_int(w->final, "done", 0);
	failed = field_int(w->final, "failed", 0);
	if ((n = field_int(w->final, "cancelled", 0)) > 0)
		snprintf(cancelled, sizeof cancelled, ", %lld cancelled", n);
	if (w->json_end) {
		/* The stream's job lists no items: print the whole job. */
		snprintf(path, sizeof path, "/jobs/%lld", w->id);
		job = client_call(w->client, "GET", path, NULL);
		output_json(job != NULL ? job : w->final);
		json_decref(job);
	} else {
		if (w->bar != NULL) {
			watch_draw(w, 1);
			fputc('\n', w->bar);
			fflush(w->bar);
			w->bar_shown = 0;
		}
		human_bytes(bytes, sizeof bytes,
		    (double)field_int(w->final, "bytes", 0));
		printf("job %lld %s: %lld/%lld done, %lld failed%s, %s\n",
		    w->id, text_clean(state), done, total, failed, cancelled,
		    bytes);
		fflush(stdout);
	}
	if (strcmp(state, "done") == 0 && failed == 0 && done == total)
		return EXIT_DONE;
	return EXIT_FAILED;
}

/*
 * Follow job id to its end, showing progress; the exit status says how it
 * ended. When the stream closes before the final job event, the job is
 * fetched and, if it is still going, the stream reopened; only streams that
 * brought no event at all count against STREAM_RETRIES.
 */
static int
watch_run(struct client *c, long long id)
{
	struct sigaction sa, oldint, oldterm;
	struct watch w;
	json_t *job;
	char path[64];
	int attempt, rv = EXIT_ERROR;

	watch_init(&w, c, id);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = watch_catch;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &oldint);
	sigaction(SIGTERM, &sa, &oldterm);

	snprintf(path, sizeof path, "/jobs/%lld", id);
	for (attempt = 0;; attempt++) {
		if (watch_stream(&w) != 0)
			goto fail;
		if (w.final != NULL)
			break;
		if (w.events != 0)
			attempt = 0;
		watch_clear(&w);
		if ((job = client_call(c, "GET", path, NULL)) == NULL)
			goto fail;
		if (state_ended(field_string(job, "state", "")))
			watch_job(&w, job);
		json_decref(job);
		if (w.final != NULL)
			break;
		if (attempt == STREAM_RETRIES) {
			warnx("job %lld: events stream keeps ending early", id);
			goto fail;
		}
		sleep(1);
		if (watch_signal != 0)
			goto fail;
	}
	rv = watch_summary(&w);

fail:
	if (watch_signal != 0) {
		if (w.bar_shown)
			fputc('\n', w.bar);
		warnx("interrupted; job %lld goes on in the daemon", id);
		rv = 128 + watch_signal;
	}
	sigaction(SIGINT, &oldint, NULL);
	sigaction(SIGTERM, &oldterm, NULL);
	watch_finish(&w);
	return rv;
}

/* Add the URLs of a file (or stdin for "-"), one a line; -1 on error. */
static int
add_read(struct strings *urls, const char *file)
{
	FILE *f;
	char *line = NULL, *p, *end;
	size_t size = 0;
	ssize_t len;
	int rv = -1;

	if (strcmp(file, "-") == 0)
		f = stdin;
	else if ((f = fopen(file, "r")) == NULL) {
		warn("%s", file);
		return -1;
	}
	while ((len = getline(&line, &size, f)) != -1) {
		p = line;
		end = line + len;
		while (end > p &&
		    (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' ||
			end[-1] == '\t'))
			end--;
		*end = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		strings_add(urls, p);
	}
	if (ferror(f)) {
		warn("%s", strcmp(file, "-") == 0 ? "stdin" : file);
		goto fail;
	}
	rv = 0;

fail:
	free(line);
	if (f != stdin)
		fclose(f);
	return rv;
}

/* Whether jansson takes s as a string: valid UTF-8 (ASCII always is). */
static int
add_utf8(const char *s)
{
	const unsigned char *p;
	json_t *v;

	p = (const unsigned char *)s;
	while (*p != '\0' && *p < 0x80)
		p++;
	if (*p == '\0')
		return 1;
	if ((v = json_string(s)) == NULL)
		return 0;
	json_decref(v);
	return 1;
}

/* Check the URLs, dir and name are UTF-8 before either form is sent. */
static int
add_check(struct strings *urls, const char *dir, const char *name)
{
	size_t i;

	for (i = 0; i < urls->n; i++) {
		if (!add_utf8(urls->v[i])) {
			warnx("not valid UTF-8: %s", urls->v[i]);
			return -1;
		}
	}
	if (dir != NULL && !add_utf8(dir)) {
		warnx("dir: not valid UTF-8: %s", dir);
		return -1;
	}
	if (name != NULL && !add_utf8(name)) {
		warnx("name: not valid UTF-8: %s", name);
		return -1;
	}
	return 0;
}

/* A string checked by add_check, as JSON. */
static json_t *
add_string(const char *s)
{
	json_t *v;

	if ((v = json_string_nocheck(s)) == NULL)
		errx(EXIT_ERROR, "out of memory");
	return v;
}

/* Build the JSON job body; NULL after reporting a bad header. */
static json_t *
add_body(struct strings *urls, const char *dir, const char *name,
    struct strings *headers)
{
	json_t *body, *list, *hdrs, *v;
	char *copy, *value;
	size_t i;

	body = json_object();
	list = json_array();
	hdrs = json_object();
	if (body == NULL || list == NULL || hdrs == NULL)
		errx(EXIT_ERROR, "out of memory");
	json_object_set_new(body, "urls", list);
	for (i = 0; i < urls->n; i++)
		json_array_append_new(list, add_string(urls->v[i]));
	if (dir != NULL)
		json_object_set_new(body, "dir", add_string(dir));
	if (name != NULL)
		json_object_set_new(body, "name", add_string(name));
	for (i = 0; i < headers->n; i++) {
		copy = xstrdup(headers->v[i]);
		value = strchr(copy, ':');
		*value++ = '\0';
		value += strspn(value, " \t");
		if ((v = json_string(value)) == NULL) {
			warnx("%s: not valid UTF-8: %s", copy, value);
			free(copy);
			goto fail;
		}
		json_object_set_new(hdrs, copy, v);
		free(copy);
	}
	if (headers->n != 0)
		json_object_set(body, "headers", hdrs);
	json_decref(hdrs);
	return body;

fail:
	json_decref(hdrs);
	json_decref(body);
	return NULL;
}

/*
 * Whether a text/uri-list carries the job exactly: it has no place for
 * headers, and its parser trims blanks, splits at LF and skips empty lines
 * and lines starting with '#', so such URLs must go as JSON (which refuses
 * them with the message the user has always seen).
 */
static int
add_listable(struct strings *urls, struct strings *headers)
{
	const unsigned char *p;
	size_t i;

	if (headers->n != 0)
		return 0;
	for (i = 0; i < urls->n; i++) {
		p = (const unsigned char *)urls->v[i];
		if (*p == '\0' || *p == '#')
			return 0;
		for (; *p != '\0'; p++) {
			if (*p <= 0x20 || *p == 0x7f)
				return 0;
		}
	}
	return 1;
}

/* Append "?key=value" or "&key=value", the value percent-encoded. */
static int
add_param(struct client *c, char **path, const char *key, const char *value)
{
	char *esc, *p;
	size_t len;

	if ((esc = curl_easy_escape(c->curl, value, 0)) == NULL) {
		warnx("cannot encode the request");
		return -1;
	}
	len = strlen(*path) + strlen(key) + strlen(esc) + 3;
	p = xrealloc(NULL, len);
	snprintf(p, len, "%s%c%s=%s", *path,
	    strchr(*path, '?') != NULL ? '&' : '?', key, esc);
	curl_free(esc);
	free(*path);
	*path = p;
	return 0;
}

/* The URLs as a text/uri-list body: one a line, each ended by CRLF. */
static char *
add_list(struct strings *urls, size_t *len)
{
	char *text, *p;
	size_t i, n;

	*len = 0;
	for (i = 0; i < urls->n; i++)
		*len += strlen(urls->v[i]) + 2;
	p = text = xrealloc(NULL, *len + 1);
	for (i = 0; i < urls->n; i++) {
		n = strlen(urls->v[i]);
		memcpy(p, urls->v[i], n);
		p += n;
		*p++ = '\r';
		*p++ = '\n';
	}
	*p = '\0';
	return text;
}

/*
 * POST the job as a text/uri-list, dir and name in the query: 0 with the
 * answer in *status and *reply, -1 if none came (reported).
 */
static int
add_post_list(struct client *c, struct strings *urls, const char *dir,
    const char *name, long *status, json_t **reply)
{
	struct body body;
	char *path, *text = NULL;
	int rv = -1;

	path = xstrdup("/jobs");
	if (dir != NULL && add_param(c, &path, "dir", dir) != 0)
		goto out;
	if (name != NULL && add_param(c, &path, "name", name) != 0)
		goto out;
	body.type = "text/uri-list";
	body.data = text = add_list(urls, &body.len);
	rv = client_request(c, "POST", path, &body, status, reply);
out:
	free(text);
	free(path);
	return rv;
}

/* POST the job as JSON; returns as add_post_list does. */
static int
add_post_json(struct client *c, struct strings *urls, const char *dir,
    const char *name, struct strings *headers, long *status, json_t **reply)
{
	struct body body;
	json_t *obj;
	char *text;
	int rv;

	if ((obj = add_body(urls, dir, name, headers)) == NULL)
		return -1;
	text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (text == NULL) {
		warnx("cannot encode the request");
		return -1;
	}
	body.type = "application/json";
	body.data = text;
	body.len = strlen(text);
	rv = client_request(c, "POST", "/jobs", &body, status, reply);
	free(text);
	return rv;
}

/*
 * POST the job; the object of the 2xx reply, or NULL after reporting. A
 * text/uri-list with dir and name in the query is smaller than JSON and
 * much cheaper for the daemon to take in, so it goes whenever it carries
 * the whole job. If the daemon refuses it, the job is sent again as JSON,
 * whose refusals name urls[i] as the client has always shown them (the
 * list's would name a line of a body the user never saw).
 */
static json_t *
add_post(struct client *c, struct strings *urls, const char *dir,
    const char *name, struct strings *headers)
{
	json_t *reply;
	long status;

	if (add_listable(urls, headers)) {
		if (add_post_list(c, urls, dir, name, &status, &reply) != 0)
			return NULL;
		if (status != 400 && status != 413 && status != 415)
			return client_reply(status, reply);
		json_decref(reply);
	}
	if (add_post_json(c, urls, dir, name, headers, &status, &reply) != 0)
		return NULL;
	return client_reply(status, reply);
}

/* Submit a job; with wait, follow it to its end. */
static int
cmd_add(struct client *c, struct strings *urls, const char *dir,
    const char *name, struct strings *headers, int wait)
{
	json_t *reply;
	long long id, total;

	if (add_check(urls, dir, name) != 0)
		return EXIT_ERROR;
	/* Only --json without --wait prints the job with its items. */
	c->minimal = wait || !c->json;
	reply = add_post(c, urls, dir, name, headers);
	c->minimal = 0;
	if (reply == NULL)
		return EXIT_ERROR;
	if ((id = field_int(reply, "id", -1)) < 0) {
		warnx("malformed reply from the daemon: no job id");
		json_decref(reply);
		return EXIT_ERROR;
	}
	if (c->json) {
		if (!wait)
			output_json(reply);
	} else {
		total = field_int(reply, "total", (long long)urls->n);
		printf("job %lld: %lld item%s queued\n", id, total,
		    total == 1 ? "" : "s");
		fflush(stdout);
	}
	json_decref(reply);
	if (wait)
		return watch_run(c, id);
	return EXIT_DONE;
}

/* Print one item of a job. */
static void
status_item(json_t *item, int width)
{
	const char *state, *url, *path, *error;
	char bytes[32], size[32], text[80];
	long long n, got, want, code;

	n = field_int(item, "n", -1);
	state = field_string(item, "state", "?");
	url = field_string(item, "url", "?");
	path = field_string(item, "path", NULL);
	error = field_string(item, "error", NULL);
	got = field_int(item, "bytes", 0);
	want = field_int(item, "size", -1);
	code = field_int(item, "http_status", 0);

	human_bytes(bytes, sizeof bytes, (double)got);
	if (want >= 0 && want != got) {
		human_bytes(size, sizeof size, (double)want);
		snprintf(text, sizeof text, "%s of %s", bytes, size);
		printf(
		    "  %*lld  %-9s  %-20s", width, n, text_clean(state), text);
	} else
		printf(
		    "  %*lld  %-9s  %-10s", width, n, text_clean(state), bytes);
	if (path != NULL)
		printf("  %s", text_clean(path));
	else
		printf("  %s", text_clean(url));
	if (error != NULL) {
		if (path != NULL)
			printf(" (%s)", text_clean(url));
		printf(": %s", text_clean(error));
	} else if (code >= 400)
		printf(": HTTP %lld", code);
	putchar('\n');
}

/* Print a job and its items. */
static void
status_job(json_t *job)
{
	json_t *items;
	char bytes[32];
	const char *s;
	long long total;
	size_t i;
	int width;

	total = field_int(job, "total", 0);
	human_bytes(bytes, sizeof bytes, (double)field_int(job, "bytes", 0));
	printf("job %lld: %s, %lld/%lld done, %lld failed",
	    field_int(job, "id", -1),
	    text_clean(field_string(job, "state", "?")),
	    field_int(job, "done", 0), total, field_int(job, "failed", 0));
	if (field_int(job, "cancelled", 0) > 0)
		printf(", %lld cancelled", field_int(job, "cancelled", 0));
	printf(", %s\n", bytes);
	if ((s = field_string(job, "created", NULL)) != NULL)
		printf("created: %s\n", text_clean(s));
	if ((s = field_string(job, "dir", NULL)) != NULL)
		printf("dir: %s\n", text_clean(s));
	if ((s = field_string(job, "name", NULL)) != NULL)
		printf("name: %s\n", text_clean(s));
	if ((items = field_array(job, "items")) == NULL)
		return;
	width = snprintf(NULL, 0, "%lld", total > 0 ? total - 1 : 0);
	for (i = 0; i < json_array_size(items); i++)
		status_item(json_array_get(items, i), width);
}

/* Print one scalar JSON value as text. */
static void
status_value(json_t *v)
{
	char *text;

	if (json_is_string(v))
		printf("%s", text_clean(json_string_value(v)));
	else if ((text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) !=
	    NULL) {
		printf("%s", text_clean(text));
		free(text);
	}
}

/* Print the daemon's status. */
static void
status_daemon(json_t *st)
{
	static const char *const states[] = { "queued", "active", "done",
		"failed", "cancelled" };
	json_t *items, *limits, *v;
	const char *key;
	char buf[32];
	size_t i;

	human_duration(buf, sizeof buf, field_int(st, "uptime", 0));
	printf("imgfetchd %s, up %s\n",
	    text_clean(field_string(st, "version", "?")), buf);
	printf("jobs: %lld\n", field_int(st, "jobs", 0));
	if ((items = field_object(st, "items")) != NULL) {
		printf("items:");
		for (i = 0; i < nitems(states); i++)
			printf("%s %lld %s", i == 0 ? "" : ",",
			    field_int(items, states[i], 0), states[i]);
		putchar('\n');
	}
	human_bytes(buf, sizeof buf, (double)field_int(st, "bytes", 0));
	printf("bytes: %s\n", buf);
	if ((limits = field_object(st, "limits")) != NULL) {
		printf("limits:\n");
		json_object_foreach(limits, key, v)
		{
			printf("  %s: ", text_clean(key));
			status_value(v);
			putchar('\n');
		}
	}
}

/* Show the daemon's status, or one job's with id >= 0. */
static int
cmd_status(struct client *c, long long id)
{
	json_t *reply;
	char path[64];

	if (id < 0)
		snprintf(path, sizeof path, "/status");
	else
		snprintf(path, sizeof path, "/jobs/%lld", id);
	if ((reply = client_call(c, "GET", path, NULL)) == NULL)
		return EXIT_ERROR;
	if (c->json)
		output_json(reply);
	else if (id < 0)
		status_daemon(reply);
	else
		status_job(reply);
	json_decref(reply);
	return EXIT_DONE;
}

/* List jobs, one a line, optionally only those in a state. */
static int
cmd_ls(struct client *c, const char *state)
{
	json_t *reply, *jobs, *job;
	char *path = NULL, *esc, bytes[32], counts[96];
	size_t i, len;
	int rv = EXIT_ERROR;

	if (state != NULL) {
		if ((esc = curl_easy_escape(c->curl, state, 0)) == NULL)
			errx(EXIT_ERROR, "out of memory");
		len = strlen(esc) + sizeof "/jobs?state=";
		path = xrealloc(NULL, len);
		snprintf(path, len, "/jobs?state=%s", esc);
		curl_free(esc);
	}
	reply = client_call(c, "GET", path != NULL ? path : "/jobs", NULL);
	free(path);
	if (reply == NULL)
		return EXIT_ERROR;
	if (c->json) {
		output_json(reply);
		rv = EXIT_DONE;
		goto out;
	}
	if ((jobs = field_array(reply, "jobs")) == NULL) {
		warnx("malformed reply from the daemon: no jobs list");
		goto out;
	}
	for (i = 0; i < json_array_size(jobs); i++) {
		job = json_array_get(jobs, i);
		if (!json_is_integer(field_get(job, "id")))
			continue;
		human_bytes(
		    bytes, sizeof bytes, (double)field_int(job, "bytes", 0));
		snprintf(counts, sizeof counts, "%lld/%lld/%lld",
		    field_int(job, "done", 0), field_int(job, "failed", 0),
		    field_int(job, "total", 0));
		printf("%6lld  %-9s  %-14s  %10s  %s\n",
		    field_int(job, "id", -1),
		    text_clean(field_string(job, "state", "?")), counts, bytes,
		    text_clean(field_string(job, "created", "-")));
	}
	rv = EXIT_DONE;

out:
	json_decref(reply);
	return rv;
}

/* Cancel a job and print the state it is left in. */
static int
cmd_cancel(struct client *c, long long id)
{
	json_t *reply;
	char path[64];

	snprintf(path, sizeof path, "/jobs/%lld", id);
	if ((reply = client_call(c, "DELETE", path, NULL)) == NULL)
		return EXIT_ERROR;
	if (c->json)
		output_json(reply);
	else
		printf("job %lld: %s\n", field_int(reply, "id", id),
		    text_clean(field_string(reply, "state", "?")));
	json_decref(reply);
	return EXIT_DONE;
}

/* Print the usage lines to f. */
static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: imgfetch [--socket PATH] [--json] [--quiet] COMMAND "
	    "[ARGS]\n"
	    "       imgfetch add URL... [-f FILE|-] [--dir DIR]\n"
	    "                [--name TEMPLATE] [--wait]\n"
	    "                [--header 'Name: value']...\n"
	    "       imgfetch status [ID]\n"
	    "       imgfetch ls [--state STATE]\n"
	    "       imgfetch cancel ID\n"
	    "       imgfetch wait ID\n");
}

/* Print the help text. */
static void
help(void)
{
	usage(stdout);
	printf(
	    "\n"
	    "Commands:\n"
	    "  add       queue a job of URLs (arguments and/or -f files)\n"
	    "  status    show the daemon's status, or a job and its items\n"
	    "  ls        list jobs, newest first\n"
	    "  cancel    cancel a job\n"
	    "  wait      follow a job until it ends, showing progress\n"
	    "\n"
	    "Options:\n"
	    "  -s, --socket PATH     the daemon's socket (else\n"
	    "                        $IMGFETCH_SOCKET, else\n"
	    "                        $XDG_RUNTIME_DIR/imgfetchd.sock,\n"
	    "                        else ./imgfetchd.sock)\n"
	    "  -j, --json            print the API's JSON instead of text\n"
	    "  -f, --file FILE       read URLs, one a line, from FILE ('-':\n"
	    "                        stdin); '#' comments and blanks skipped\n"
	    "  -d, --dir DIR         save under DIR in the download directory\n"
	    "  -n, --name TEMPLATE   file name template\n"
	    "  -H, --header 'N: v'   send this request header with every URL\n"
	    "  -w, --wait            after add, wait for the job to end\n"
	    "  -q, --quiet           waiting: no progress and no line per\n"
	    "                        done item, only failures and the end\n"
	    "      --state STATE     ls: only jobs in STATE\n"
	    "  -h, --help            show this help\n"
	    "  -V, --version         show the version\n"
	    "\n"
	    "Exit status: 0 success (every item done), 1 the job failed or\n"
	    "was cancelled, 2 usage, connection or API error.\n");
}

/* The socket: option, else environment, else the daemon's default. */
static char *
socket_choose(const char *option)
{
	const char *env;
	char *path;
	size_t len;

	if (option != NULL)
		return xstrdup(option);
	if ((env = getenv("IMGFETCH_SOCKET")) != NULL && *env != '\0')
		return xstrdup(env);
	if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && *env != '\0') {
		len = strlen(env) + sizeof "/imgfetchd.sock";
		path = xrealloc(NULL, len);
		snprintf(path, len, "%s/imgfetchd.sock", env);
		return path;
	}
	return xstrdup("imgfetchd.sock");
}

/* Whether a header argument looks like "Name: value". */
static int
header_check(const char *h)
{
	const char *colon;

	if ((colon = strchr(h, ':')) == NULL || colon == h)
		return 0;
	return strcspn(h, " \t") >= (size_t)(colon - h);
}

/* Parse the command line, run one command, exit with its status. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = { { "dir", required_argument,
						      NULL, 'd' },
		{ "file", required_argument, NULL, 'f' },
		{ "header", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "name", required_argument, NULL, 'n' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "socket", required_argument, NULL, 's' },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "version", no_argument, NULL, 'V' },
		{ "wait", no_argument, NULL, 'w' }, { NULL, 0, NULL, 0 } };
	struct strings urls, files, headers;
	struct client client;
	const char *cmd, *dir = NULL, *name = NULL, *state = NULL;
	const char *sockopt = NULL;
	char *sock = NULL;
	long long id = -1;
	int ch, json = 0, quiet = 0, wait = 0, used = 0, allowed;
	int rv = EXIT_ERROR;
	size_t i;

	memset(&urls, 0, sizeof urls);
	memset(&files, 0, sizeof files);
	memset(&headers, 0, sizeof headers);
	memset(&client, 0, sizeof client);

	opterr = 0;
	while ((ch = getopt_long(
		    argc, argv, ":d:f:H:hjn:qs:Vw", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			used |= OPT_ADD;
			break;
		case 'f':
			strings_add(&files, optarg);
			used |= OPT_ADD;
			break;
		case 'H':
			if (!header_check(optarg)) {
				warnx("--header: expected 'Name: value', "
				      "not \"%s\"",
				    optarg);
				goto usage;
			}
			strings_add(&headers, optarg);
			used |= OPT_ADD;
			break;
		case 'h':
			help();
			rv = EXIT_DONE;
			goto out;
		case 'j':
			json = 1;
			break;
		case 'n':
			name = optarg;
			used |= OPT_ADD;
			break;
		case 's':
			sockopt = optarg;
			break;
		case OPT_STATE:
			state = optarg;
			used |= OPT_LS;
			break;
		case 'V':
			printf("imgfetch %s\n", IMGFETCHD_VERSION);
			rv = EXIT_DONE;
			goto out;
		case 'q':
			quiet = 1;
			break;
		case 'w':
			wait = 1;
			used |= OPT_ADD;
			break;
		case ':':
			warnx("option %s needs an argument", argv[optind - 1]);
			goto usage;
		default:
			if (optopt != 0)
				warnx("unknown option -%c", optopt);
			else
				warnx("unknown option %s", argv[optind - 1]);
			goto usage;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		warnx("no command given");
		goto usage;
	}
	cmd = argv[0];
	argc--;
	argv++;

	if (strcmp(cmd, "add") == 0)
		allowed = OPT_ADD;
	else if (strcmp(cmd, "ls") == 0)
		allowed = OPT_LS;
	else if (strcmp(cmd, "status") == 0 || strcmp(cmd, "cancel") == 0 ||
	    strcmp(cmd, "wait") == 0)
		allowed = 0;
	else {
		warnx("unknown command \"%s\"", cmd);
		goto usage;
	}
	if (used & ~allowed) {
		warnx("%s: option not accepted by this command", cmd);
		goto usage;
	}

	if (strcmp(cmd, "add") == 0) {
		for (i = 0; i < (size_t)argc; i++)
			strings_add(&urls, argv[i]);
		for (i = 0; i < files.n; i++) {
			if (add_read(&urls, files.v[i]) != 0)
				goto out;
		}
		if (urls.n == 0) {
			warnx("add: no URLs given");
			goto usage;
		}
	} else if (strcmp(cmd, "ls") == 0) {
		if (argc != 0)
			goto extra;
	} else if (strcmp(cmd, "status") == 0) {
		if (argc > 1)
			goto extra;
		if (argc == 1 && (id = id_parse(argv[0])) < 0)
			goto usage;
	} else {
		if (argc == 0) {
			warnx("%s: no job id given", cmd);
			goto usage;
		}
		if (argc > 1)
			goto extra;
		if ((id = id_parse(argv[0])) < 0)
			goto usage;
	}

	if (curl_global_init(CURL_GLOBAL_ALL) != 0) {
		warnx("cannot initialise libcurl");
		goto out;
	}
	sock = socket_choose(sockopt);
	if (client_init(&client, sock, json) != 0)
		goto cleanup;
	client.quiet = quiet;
	if (strcmp(cmd, "add") == 0)
		rv = cmd_add(&client, &urls, dir, name, &headers, wait);
	else if (strcmp(cmd, "status") == 0)
		rv = cmd_status(&client, id);
	else if (strcmp(cmd, "ls") == 0)
		rv = cmd_ls(&client, state);
	else if (strcmp(cmd, "cancel") == 0)
		rv = cmd_cancel(&client, id);
	else
		rv = watch_run(&client, id);
	client_finish(&client);
cleanup:
	curl_global_cleanup();
	goto out;

extra:
	warnx("%s: too many arguments", cmd);
usage:
	usage(stderr);
	rv = EXIT_ERROR;
out:
	free(sock);
	strings_free(&urls);
	strings_free(&files);
	strings_free(&headers);
	return rv;
}
