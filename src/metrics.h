/* Prometheus metrics: counters kept where things happen, a text exposition. */
#ifndef METRICS_H
#define METRICS_H

struct event_base;
struct evbuffer;
struct config;
struct jobs;
struct fetcher;
struct writer;
struct store;
struct queue;
struct metrics;

/*
 * The registry of one daemon. Gauges (items by state, transfers, the
 * writer's backlog, ...) are read from the parts at exposition time; the
 * loop-lag probe is a timer on base. Any part may be NULL.
 */
struct metrics *metrics_create(struct event_base *, const struct config *,
    struct jobs *, struct fetcher *, struct writer *, struct store *);
void metrics_set_queue(struct metrics *, struct queue *);
/* Close the listener, stop the probe, free. */
void metrics_destroy(struct metrics *);
/* Append the exposition (text format 0.0.4) to buf. */
void metrics_write(struct metrics *, struct evbuffer *);
/* The Content-Type of the exposition. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/*
 * Serve GET /v1/metrics, and only that, on a TCP "HOST:PORT". Returns -1
 * with the reason logged.
 */
int metrics_listen(struct metrics *, const char *addr);

/* Hot path, loop thread only: plain increments. */
void metrics_http_status(long status);
void metrics_retry(void);

#endif
