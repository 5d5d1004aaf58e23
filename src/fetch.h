/* libcurl's multi socket interface on the libevent loop. */
#ifndef FETCH_H
#define FETCH_H

#include <stddef.h>

struct event_base;
struct config;
struct writer;
struct fetcher;
struct transfer;

struct fetch_result {
	int ok;                /* the file is in place (or skipped) */
	long http_status;      /* last status seen, 0 if none */
	const char *error;     /* when !ok */
	const char *path;      /* when ok: final relative path */
	int skipped;           /* an existing file was kept */
	unsigned long long bytes;
};

struct transfer_ops {
	/*
	 * Name the file once the response is known to be a success. Returns a
	 * new relative path, or NULL with *cause set to fail the transfer.
	 */
	char *(*name)(void *arg, const char *url, const char *content_type,
	    char **cause);
	/* The transfer has ended and its file is in place or removed. */
	void (*done)(void *arg, const struct fetch_result *);
};

struct fetcher *fetcher_create(struct event_base *, struct writer *,
    const struct config *);
/* Cancel everything (removing .part files) and free once the writer is done. */
void fetcher_destroy(struct fetcher *);
/* Transfers still holding a file or a connection, including cancelled ones. */
size_t fetcher_busy(struct fetcher *);

/*
 * Start fetching url with extra "Name: value" headers (copied). The ops are
 * called on the loop thread, never from inside fetch_start.
 */
struct transfer *fetch_start(struct fetcher *, const char *url,
    char *const *headers, size_t nheaders, const struct transfer_ops *,
    void *arg);
/* Stop a transfer; its owner hears nothing more and its .part goes away. */
void fetch_cancel(struct transfer *);
/* Body bytes received so far. */
unsigned long long transfer_bytes(const struct transfer *);
/* The Content-Length, or -1 when not known. */
long long transfer_size(const struct transfer *);

#endif
