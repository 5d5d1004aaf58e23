/*
 * The connection to the daemon: HTTP over its Unix socket with libcurl, one
 * easy handle reused for every request. Replies are parsed with jansson;
 * failures (no daemon, an error reply) are reported on stderr where they
 * happen, with the API's own message when it sent one.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include <stddef.h>

#include <jansson.h>

struct client;

/* A request body and its media type. */
struct client_body {
	const char *type;
	const char *data;
	size_t len;
};

/* Takes each piece of a streamed body with the reply's HTTP status;
 * returns 0 to go on, -1 to stop the stream. */
typedef int (*client_data_fn)(void *, long, const char *, size_t);
/* Called often while a stream is open; nonzero stops it. */
typedef int (*client_tick_fn)(void *);

struct client *client_create(const char *);
void client_destroy(struct client *);
const char *client_socket(struct client *);
void client_set_minimal(struct client *, int);
char *client_escape(struct client *, const char *);

int client_request(struct client *, const char *, const char *,
    const struct client_body *, long *, json_t **);
json_t *client_reply(long, json_t *);
json_t *client_call(
    struct client *, const char *, const char *, const struct client_body *);
void client_warn_reply(long, json_t *);
int client_stream(struct client *, const char *, client_data_fn, client_tick_fn,
    void *, long *);

#endif
