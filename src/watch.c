/*
 * Following a job through GET /jobs/ID/events: a one-line bar on a
 * terminal (stderr, else stdout), plain progress lines when neither is one,
 * a line for each item as it ends, and the closing summary. The stream is
 * reopened when it ends before the job does.
 */
#include <err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "client.h"
#include "field.h"
#include "imgfetch.h"
#include "output.h"
#include "watch.h"

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

/* Seconds on the monotonic clock. */
static double
time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Set the watch up for job id, choosing how progress is shown. */
static void
watch_init(struct watch *w, struct client *c, long long id, int json, int quiet)
{
	memset(w, 0, sizeof *w);
	w->client = c;
	w->id = id;
	if (json) {
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
	if (quiet) {
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

	output_bytes(bytes, sizeof bytes, (double)w->bytes);
	output_bytes(rate, sizeof rate, watch_rate(w, now));
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
	width = output_width(w->bar);
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
	output_bytes(bytes, sizeof bytes, (double)w->bytes);
	output_bytes(rate, sizeof rate, watch_rate(w, now));
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

/*
 * The line of a done item: "done N PATH", "done N PATH: unchanged",
 * "done N URL: duplicate of PATH", or for a page "page N URL: K images".
 */
static void
watch_done(long long n, json_t *item)
{
	const char *url, *path, *dup;
	long long images;

	url = output_clean(field_string(item, "url", "?"));
	path = field_string(item, "path", NULL);
	dup = field_string(item, "duplicate_of", NULL);
	if (strcmp(field_string(item, "kind", "image"), "page") == 0) {
		images = field_int(item, "images", 0);
		printf("page %lld %s: %lld image%s%s\n", n, url, images,
		    images == 1 ? "" : "s",
		    field_true(item, "unchanged") ? ", unchanged" : "");
	} else if (dup != NULL)
		printf("done %lld %s: duplicate of %s\n", n, url,
		    output_clean(dup));
	else if (field_true(item, "unchanged"))
		printf("done %lld %s: unchanged\n", n,
		    path != NULL ? output_clean(path) : url);
	else
		printf("done %lld %s\n", n,
		    path != NULL ? output_clean(path) : url);
}

/* Report an item that has ended, once: "done N path", "failed N url: e". */
static void
watch_ended(struct watch *w, json_t *item)
{
	const char *state, *url, *error;
	long long n;

	state = field_string(item, "state", "");
	if (!field_ended(state))
		return;
	n = field_int(item, "n", -1);
	if (!watch_mark(w, n))
		return;
	if (w->json_end)
		return;
	url = field_string(item, "url", "?");
	if (strcmp(state, "failed") == 0) {
		error = field_string(item, "error", "failed");
		watch_clear(w);
		printf("failed %lld %s: %s\n", n, output_clean(url),
		    output_clean(error));
	} else if (!w->ended_lines)
		return;
	else if (strcmp(state, "done") == 0) {
		watch_clear(w);
		watch_done(n, item);
	} else {
		watch_clear(w);
		printf("cancelled %lld %s\n", n, output_clean(url));
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
	if (!field_ended(field_string(job, "state", "")))
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
static int
watch_data(void *arg, long status, const char *p, size_t n)
{
	struct watch *w = arg;
	char *start, *end, *nl;

	w->status = status;
	if (w->status < 200 || w->status > 299)
		return buf_add(&w->error, p, n, REPLY_MAX_BYTES);
	if (buf_add(&w->line, p, n, EVENT_MAX_BYTES) != 0)
		return -1;
	start = w->line.data;
	end = w->line.data + w->line.len;
	while ((nl = memchr(start, '\n', end - start)) != NULL) {
		watch_line(w, start, nl - start);
		start = nl + 1;
	}
	buf_consume(&w->line, start - w->line.data);
	return 0;
}

/* Called while the stream is open: redraw and check for stop. */
static int
watch_tick(void *arg)
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
	json_t *reply;
	char path[64];
	int rv;

	w->status = 0;
	w->events = 0;
	w->line.len = 0;
	w->line.full = 0;
	w->error.len = 0;
	snprintf(
	    path, sizeof path, "/jobs/%lld/events?items=%s", w->id, w->items);
	rv = client_stream(
	    w->client, path, watch_data, watch_tick, w, &w->status);
	if (watch_signal != 0)
		return -1;
	if (rv != 0) {
		watch_clear(w);
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

/*
 * Count the job's unchanged and duplicate images, for the summary: the
 * daemon's own counts in the final job; from a daemon without them, its
 * items (those of the final job when the stream listed every item, else
 * those of the job fetched once more).
 */
static void
watch_tally(struct watch *w, char *text, size_t len)
{
	json_t *job, *items, *item;
	long long unchanged = 0, dups = 0;
	char path[64];
	size_t i;
	int n;

	text[0] = '\0';
	if (field_get(w->final, "unchanged") != NULL) {
		/* The daemon counts them itself. */
		unchanged = field_int(w->final, "unchanged", 0);
		dups = field_int(w->final, "duplicates", 0);
		goto out;
	}
	if (strcmp(w->items, "all") == 0)
		job = json_incref(w->final);
	else {
		snprintf(path, sizeof path, "/jobs/%lld", w->id);
		if ((job = client_call(w->client, "GET", path, NULL)) == NULL)
			return;
	}
	if ((items = field_array(job, "items")) != NULL) {
		for (i = 0; i < json_array_size(items); i++) {
			item = json_array_get(items, i);
			if (strcmp(field_string(item, "kind", "image"),
				"page") == 0)
				continue;
			if (field_string(item, "duplicate_of", NULL) != NULL)
				dups++;
			else if (field_true(item, "unchanged"))
				unchanged++;
		}
	}
	json_decref(job);
out:
	n = 0;
	if (unchanged > 0)
		n = snprintf(text, len, ", %lld unchanged", unchanged);
	if (dups > 0 && n >= 0 && (size_t)n < len)
		snprintf(text + n, len - n, ", %lld duplicate%s", dups,
		    dups == 1 ? "" : "s");
}

/* Print the closing line and return the exit status the job deserves. */
static int
watch_summary(struct watch *w)
{
	const char *state;
	char bytes[32], cancelled[48] = "", tally[96], path[64];
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
		watch_tally(w, tally, sizeof tally);
		output_bytes(bytes, sizeof bytes,
		    (double)field_int(w->final, "bytes", 0));
		printf("job %lld %s: %lld/%lld done, %lld failed%s%s, %s\n",
		    w->id, output_clean(state), done, total, failed, cancelled,
		    tally, bytes);
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
int
watch_run(struct client *c, long long id, int json, int quiet)
{
	struct sigaction sa, oldint, oldterm;
	struct watch w;
	json_t *job;
	char path[64];
	int attempt, rv = EXIT_ERROR;

	watch_init(&w, c, id, json, quiet);
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
		if (field_ended(field_string(job, "state", "")))
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
