/*
 * Prometheus metrics in the text exposition format (0.0.4): HELP and TYPE
 * lines, then samples. Counters that grow where things happen (HTTP
 * statuses, retries) are plain integers incremented on the loop thread;
 * gauges are read from their owners when scraped; the event-loop lag is a
 * timer that measures how late it fires. The store's commit times are the
 * store thread's, copied out under its lock (store.c). Everything here
 * runs on the loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "config.h"
#include "defs.h"
#include "fetch.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "store.h"
#include "writer.h"
#include "xmalloc.h"

/* HTTP status codes counted one by one; others go under "other". */
#define METRICS_STATUS_MIN 100
#define METRICS_STATUS_MAX 599

/* Upper bounds, in seconds, of the loop-lag histogram's buckets. */
static const double metrics_lag_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5 };
#define METRICS_LAG_NBUCKETS \
	(sizeof metrics_lag_bounds / sizeof metrics_lag_bounds[0])

/* The counters bumped from job.c: one set per process, loop thread only. */
static struct {
	unsigned long long status[METRICS_STATUS_MAX - METRICS_STATUS_MIN + 1];
	unsigned long long status_other;
	unsigned long long retries;
} metrics_counts;

struct metrics {
	struct event_base *base;
	const struct config *cfg;
	struct jobs *jobs;
	struct fetcher *fetcher;
	struct writer *writer;
	struct store *store;
	struct queue *queue;
	struct event *lag_ev;
	struct timespec lag_due;
	unsigned long long lag[METRICS_LAG_NBUCKETS + 1];
	unsigned long long lag_count;
	double lag_sum;
	struct evhttp *http;
};

/* A response's status code, once per response an item got. */
void
metrics_http_status(long status)
{
	if (status >= METRICS_STATUS_MIN && status <= METRICS_STATUS_MAX)
		metrics_counts.status[status - METRICS_STATUS_MIN]++;
	else if (status != 0)
		metrics_counts.status_other++;
}

/* An item's attempt failed and it will be tried again. */
void
metrics_retry(void)
{
	metrics_counts.retries++;
}

/* Seconds from a to b. */
static double
metrics_elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Arm the lag probe METRICS_LAG_INTERVAL_MS from now. */
static void
metrics_lag_arm(struct metrics *m)
{
	struct timeval tv = { 0, METRICS_LAG_INTERVAL_MS * 1000 };

	clock_gettime(CLOCK_MONOTONIC, &m->lag_due);
	m->lag_due.tv_nsec += METRICS_LAG_INTERVAL_MS * 1000000L;
	while (m->lag_due.tv_nsec >= 1000000000L) {
		m->lag_due.tv_sec++;
		m->lag_due.tv_nsec -= 1000000000L;
	}
	evtimer_add(m->lag_ev, &tv);
}

/* The lag probe fired: count how late, and arm it again. */
static void
metrics_lag_cb(evutil_socket_t fd, short what, void *arg)
{
	struct metrics *m = arg;
	struct timespec now;
	double late;
	size_t i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	late = metrics_elapsed(&m->lag_due, &now);
	if (late < 0)
		late = 0;
	for (i = 0; i < METRICS_LAG_NBUCKETS; i++) {
		if (late <= metrics_lag_bounds[i])
			break;
	}
	m->lag[i]++;
	m->lag_count++;
	m->lag_sum += late;
	metrics_lag_arm(m);
}

/* Create the registry and start the lag probe. */
struct metrics *
metrics_create(struct event_base *base, const struct config *cfg,
    struct jobs *jobs, struct fetcher *fetcher, struct writer *writer,
    struct store *store)
{
	struct metrics *m;

	m = xcalloc(1, sizeof *m);
	m->base = base;
	m->cfg = cfg;
	m->jobs = jobs;
	m->fetcher = fetcher;
	m->writer = writer;
	m->store = store;
	m->lag_ev = evtimer_new(base, metrics_lag_cb, m);
	if (m->lag_ev == NULL)
		fatalx("%s: evtimer_new failed", __func__);
	metrics_lag_arm(m);
	return m;
}

/* Let the exposition include the shared queue. */
void
metrics_set_queue(struct metrics *m, struct queue *q)
{
	m->queue = q;
}

/* Free the registry. */
void
metrics_destroy(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->http != NULL)
		evhttp_free(m->http);
	event_free(m->lag_ev);
	free(m);
}

/* Append a label value, escaped as the text format wants. */
static void
metrics_label(struct evbuffer *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			evbuffer_add(b, "\\\\", 2);
		else if (*v == '"')
			evbuffer_add(b, "\\\"", 2);
		else if (*v == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, v, 1);
	}
}

/* HELP and TYPE lines of a metric family. */
static void
metrics_family(
    struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(
	    b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One family of a single unlabelled sample. */
static void
metrics_one(struct evbuffer *b, const char *name, const char *type,
    const char *help, unsigned long long value)
{
	metrics_family(b, name, type, help);
	evbuffer_add_printf(b, "%s %llu\n", name, value);
}

/* A histogram from per-bucket (not cumulative) counts. */
static void
metrics_histogram(struct evbuffer *b, const char *name, const char *help,
    const double *bounds, const unsigned long long *buckets, size_t n,
    unsigned long long count, double sum)
{
	unsigned long long cum = 0;
	size_t i;

	metrics_family(b, name, "histogram", help);
	for (i = 0; i < n; i++) {
		cum += buckets[i];
		evbuffer_add_printf(
		    b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], cum);
	}
	evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, count);
	evbuffer_add_printf(
	    b, "%s_sum %.9f\n%s_count %llu\n", name, sum, name, count);
}

/* The items gauges, read from the /v1/status object. */
static void
metrics_items(struct metrics *m, struct evbuffer *b)
{
	static const char *const states[] = { "queued", "active", "done",
		"failed", "cancelled" };
	json_t *status, *items;
	size_t i;

	status = jobs_status_json(m->jobs, JOB_OWNER_ANY);
	items = json_object_get(status, "items");
	metrics_family(
	    b, "imgfetchd_items", "gauge", "Items of the jobs kept, by state.");
	for (i = 0; i < sizeof states / sizeof states[0]; i++)
		evbuffer_add_printf(b, "imgfetchd_items{state=\"%s\"} %lld\n",
		    states[i],
		    (long long)json_integer_value(
			json_object_get(items, states[i])));
	metrics_one(b, "imgfetchd_jobs", "gauge", "Jobs kept.",
	    (unsigned long long)json_integer_value(
		json_object_get(status, "jobs")));
	metrics_one(b, "imgfetchd_bytes_total", "counter",
	    "Body bytes of the items kept (ended and in flight).",
	    (unsigned long long)json_integer_value(
		json_object_get(status, "bytes")));
	json_decref(status);
}

/* The shared queue's gauges and counters. */
static void
metrics_queue(struct metrics *m, struct evbuffer *b)
{
	struct queue_stats st;

	queue_stats(m->queue, &st);
	metrics_one(b, "imgfetchd_queue_connected", "gauge",
	    "1 while the shared queue's Redis is connected.",
	    (unsigned long long)st.connected);
	metrics_one(b, "imgfetchd_queue_running", "gauge",
	    "Stream entries this node runs, not yet acknowledged.",
	    (unsigned long long)st.running);
	metrics_one(b, "imgfetchd_queue_read_total", "counter",
	    "Stream entries read with XREADGROUP.", st.read);
	metrics_one(b, "imgfetchd_queue_claimed_total", "counter",
	    "Stream entries claimed from nodes that stopped.", st.claimed);
	metrics_one(b, "imgfetchd_queue_acked_total", "counter",
	    "Stream entries whose job ended and was acknowledged.", st.acked);
	metrics_one(b, "imgfetchd_queue_connects_total", "counter",
	    "Successful connections to the queue's Redis.", st.connects);
	metrics_one(b, "imgfetchd_queue_timeouts_total", "counter",
	    "Connections to the queue's Redis dropped for want of an answer "
	    "within queue_timeout.",
	    st.timeouts);
}

/* Append the whole exposition. */
void
metrics_write(struct metrics *m, struct evbuffer *b)
{
	struct store_times t;
	size_t i;

	metrics_family(b, "imgfetchd_node_info", "gauge",
	    "The daemon's node name and version.");
	evbuffer_add_printf(b, "imgfetchd_node_info{node=\"");
	metrics_label(b, m->cfg->node);
	evbuffer_add_printf(b, "\",version=\"%s\"} 1\n", IMGFETCHD_VERSION);
	if (m->jobs != NULL)
		metrics_items(m, b);
	metrics_family(b, "imgfetchd_http_responses_total", "counter",
	    "Responses items got, by HTTP status code.");
	for (i = 0;
	     i < sizeof metrics_counts.status / sizeof metrics_counts.status[0];
	     i++) {
		if (metrics_counts.status[i] != 0)
			evbuffer_add_printf(b,
			    "imgfetchd_http_responses_total{code=\"%zu\"} "
			    "%llu\n",
			    i + METRICS_STATUS_MIN, metrics_counts.status[i]);
	}
	evbuffer_add_printf(b,
	    "imgfetchd_http_responses_total{code=\"other\"} %llu\n",
	    metrics_counts.status_other);
	metrics_one(b, "imgfetchd_retries_total", "counter",
	    "Failed attempts that were tried again.", metrics_counts.retries);
	if (m->fetcher != NULL)
		metrics_one(b, "imgfetchd_transfers_active", "gauge",
		    "Transfers holding a connection or a file.",
		    (unsigned long long)fetcher_busy(m->fetcher));
	if (m->writer != NULL) {
		metrics_one(b, "imgfetchd_writer_backlog_bytes", "gauge",
		    "Bytes handed to the writer threads and not yet written.",
		    (unsigned long long)writer_backlog(m->writer));
		metrics_one(b, "imgfetchd_writer_open_files", "gauge",
		    "Files the writer threads have not finished.",
		    (unsigned long long)writer_open_files(m->writer));
	}
	if (m->store != NULL) {
		store_commit_times(m->store, &t);
		metrics_histogram(b, "imgfetchd_store_commit_seconds",
		    "Time the job store took per transaction.",
		    store_time_bounds, t.buckets, STORE_TIME_NBUCKETS, t.count,
		    t.sum);
	}
	metrics_histogram(b, "imgfetchd_loop_lag_seconds",
	    "How late a periodic timer of the event loop fired.",
	    metrics_lag_bounds, m->lag, METRICS_LAG_NBUCKETS, m->lag_count,
	    m->lag_sum);
	if (m->queue != NULL)
		metrics_queue(m, b);
}

/* The metrics listener's requests: GET /v1/metrics only. */
static void
metrics_request_cb(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evbuffer *buf;
	const char *path;

	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	buf = evbuffer_new();
	if (path == NULL || strcmp(path, API_PREFIX "/metrics") != 0) {
		evbuffer_add_printf(buf, "not found\n");
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "text/plain");
		evhttp_send_reply(req, 404, "Not Found", buf);
	} else if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evbuffer_add_printf(buf, "method not allowed\n");
		evhttp_add_header(
		    evhttp_request_get_output_headers(req), "Allow", "GET");
		evhttp_send_reply(req, 405, "Method Not Allowed", buf);
	} else {
		metrics_write(m, buf);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", METRICS_CONTENT_TYPE);
		evhttp_send_reply(req, 200, "OK", buf);
	}
	evbuffer_free(buf);
}

/* Serve the metrics on a TCP address. */
int
metrics_listen(struct metrics *m, const char *addr)
{
	char *host = NULL, *cause = NULL;
	int port;

	if (config_parse_listen(addr, &host, &port, &cause) == -1) {
		log_warnx("metrics_listen: %s", cause);
		free(cause);
		return -1;
	}
	if ((m->http = evhttp_new(m->base)) == NULL) {
		log_warnx("metrics_listen: evhttp_new failed");
		goto fail;
	}
	evhttp_set_allowed_methods(m->http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
		EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_timeout(m->http, (int)m->cfg->api_idle_timeout);
	evhttp_set_gencb(m->http, metrics_request_cb, m);
	if (evhttp_bind_socket_with_handle(m->http, host, (ev_uint16_t)port) ==
	    NULL) {
		log_warn("metrics_listen: cannot listen on %s", addr);
		goto fail;
	}
	log_info("metrics: listening on %s", addr);
	free(host);
	return 0;
fail:
	if (m->http != NULL)
		evhttp_free(m->http);
	m->http = NULL;
	free(host);
	return -1;
}
