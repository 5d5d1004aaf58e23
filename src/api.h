/* The HTTP/JSON API on a Unix socket, served by evhttp. */
#ifndef API_H
#define API_H

struct event_base;
struct config;
struct jobs;
struct api;

/*
 * Listen on cfg->socket_path (replacing a stale socket, refusing to start
 * if a daemon answers there) with cfg->socket_mode. Returns NULL with the
 * reason logged.
 */
struct api *api_create(
    struct event_base *, struct jobs *, const struct config *);
struct queue;
struct metrics;
/* "shared": true jobs and GET /v1/queue go to q (may be NULL). */
void api_set_queue(struct api *, struct queue *);
/* GET /v1/metrics writes m's exposition. */
void api_set_metrics(struct api *, struct metrics *);
/* Stop accepting: close the listener and remove the socket file. */
void api_close(struct api *);
/* Close every connection and free. */
void api_destroy(struct api *);

#endif
