/* The shared queue: jobs from a Redis stream, read by a consumer group. */
#ifndef QUEUE_H
#define QUEUE_H

#include <stddef.h>

#include <jansson.h>

struct event_base;
struct config;
struct jobs;
struct queue;

/*
 * Become a consumer of cfg->queue_stream in cfg->queue_group as cfg->node
 * and start connecting (in the background: the loop never waits for
 * Redis). NULL with the reason logged if cfg->queue cannot be used.
 */
struct queue *queue_create(
    struct event_base *, struct jobs *, const struct config *);
/* Shutdown: read and claim nothing more; running entries stay pending. */
void queue_stop(struct queue *);
/* Disconnect and free; callbacks not yet called get a 503. */
void queue_destroy(struct queue *);

/*
 * The answer to an API request: a status (202, 200, 503, 500) and a JSON
 * object (borrowed). Called from the loop, never from inside the call
 * that was given it.
 */
typedef void (*queue_reply_cb)(void *arg, int status, json_t *reply);
/* XADD a job, as the JSON text of POST /v1/jobs, to the stream. */
void queue_enqueue(struct queue *, const char *job, queue_reply_cb, void *arg);
/* The stream's length, pending entries and consumers (GET /v1/queue). */
void queue_info(struct queue *, queue_reply_cb, void *arg);

/* Counters for the metrics. */
struct queue_stats {
	int connected;
	size_t running; /* entries this node runs, not yet acknowledged */
	unsigned long long read; /* entries taken with XREADGROUP */
	unsigned long long claimed; /* entries taken from dead nodes */
	unsigned long long acked; /* jobs ended and acknowledged */
	unsigned long long connects; /* successful (re)connections */
	unsigned long long timeouts; /* dropped by the watchdog */
};
void queue_stats(struct queue *, struct queue_stats *);
const char *queue_node(struct queue *);

#endif
