/* libcurl's multi socket interface on the libevent loop. */
#ifndef FETCH_H
#define FETCH_H

#include <stddef.h>

struct event_base;
struct config;
struct writer;
struct fetcher;
struct transfer;

struct fetch_request {
	const char *url;
	char *const *headers; /* extra "Name: value" */
	size_t nheaders;
	const char *path; /* final path from an earlier attempt */
	const char *part; /* its .part, to resume, or NULL */
	unsigned long long offset; /* bytes in the .part */
	const char *validator; /* ETag or Last-Modified, for If-Range */
	int hold; /* keep the body off the disk until fetch_release */
	const char *referer; /* Referer header, or NULL */
	const char *if_none_match; /* conditional request, or NULL */
	const char *if_modified_since;
	int hash_first; /* the digest is known at prepared (writer.h) */
	/*
	 * A page: its body is kept in memory (at most max_body bytes) for
	 * the owner, never written; no image checks.
	 */
	int page;
	long long max_body;
	/* The job's network options: 0 or NULL for the config's. */
	long timeout; /* seconds */
	const char *proxy; /* "" for a direct connection */
	const char *no_proxy;
	const char *user_agent;
	int skip_existing; /* on_exists "skip" whatever the config says */
};

struct fetch_result {
	int ok; /* the file is in place (or skipped) */
	int retryable; /* a transient failure: worth another try */
	long retry_after; /* seconds the server asked for, or -1 */
	long http_status; /* last status seen, 0 if none */
	const char *error; /* when !ok */
	const char *path; /* final relative path, when known */
	int skipped; /* an existing file was kept */
	unsigned long long bytes; /* bytes of the body so far (a resumed
	                               .part's included) */
	const char *part; /* when !ok: a kept .part to resume, or NULL */
	unsigned long long part_size;
	const char *validator; /* for If-Range with that .part */
	int not_modified; /* 304 to a conditional request: no body */
	const char *etag; /* of the response, or NULL */
	const char *last_modified;
	const char *sha256; /* of the file in place (hex), when known */
	int duplicate; /* dropped as a copy of path (fetch_dedup) */
	/* A page: */
	const char *body; /* the body (NUL-terminated), owner may take it */
	size_t body_len;
	const char *content_type;
	const char *effective_url; /* after redirects */
	int page_is_image; /* the "page" is an image: nothing kept */
};

struct transfer_ops {
	/*
	 * Name the file once the response is known to be an image. Returns a
	 * new relative path, or NULL with *cause set to fail the transfer.
	 */
	char *(*name)(
	    void *arg, const char *url, const char *content_type, char **cause);
	/*
	 * The body is on disk as path's .part and path is its final name;
	 * the owner records that, then calls fetch_commit. May be NULL.
	 */
	void (*prepared)(
	    void *arg, struct transfer *, const char *path, const char *part);
	/* The transfer has ended; its file is in place, kept or removed. */
	void (*done)(void *arg, const struct fetch_result *);
	/*
	 * The network part is over (the body is with the writer, or the
	 * transfer failed): its slot is free. Comes before done. May be NULL.
	 */
	void (*released)(void *arg);
	/*
	 * The body is being written to part; it can be resumed with the
	 * validator (NULL if there is none); size is the whole body's, or -1.
	 * May be NULL.
	 */
	void (*opened)(void *arg, const char *path, const char *part,
	    const char *validator, long long size);
};

struct fetcher *fetcher_create(
    struct event_base *, struct writer *, const struct config *);
/* Apply changed caps from the config (after a reload). */
void fetcher_reconfigure(struct fetcher *);
/* Free; every transfer must be gone. */
void fetcher_destroy(struct fetcher *);
/* Transfers still holding a file or a connection, including cancelled ones. */
size_t fetcher_busy(struct fetcher *);

/*
 * Start a transfer (the request's strings are copied). The ops are called
 * on the loop thread, never from inside fetch_start. NULL if libcurl
 * refused it.
 */
struct transfer *fetch_start(struct fetcher *, const struct fetch_request *,
    const struct transfer_ops *, void *arg);
/* After ops->prepared: rename the file into place. */
void fetch_commit(struct transfer *);
/* After ops->prepared: rename it to relpath instead. */
void fetch_commit_as(struct transfer *, const char *relpath);
/* After ops->prepared: drop it if path holds the same bytes, else rename. */
void fetch_dedup(struct transfer *, const char *path);
/* The arg given to fetch_start, or NULL once the transfer is cancelled. */
void *transfer_owner(const struct transfer *);
/* At ops->prepared of a hash_first transfer: the body's SHA-256 (hex). */
const char *transfer_sha256(const struct transfer *);
/* Take a finished page's body (from fetch_result.body); caller frees. */
char *fetch_take_body(const struct fetch_result *);
/* Let a transfer started with hold write its file. */
void fetch_release(struct transfer *);
/* Stop a transfer; its owner hears nothing more and its .part goes away. */
void fetch_cancel(struct transfer *);
/* Stop a transfer but keep its .part for a later resume; done follows. */
void fetch_suspend(struct transfer *);
/* Body bytes received so far, counting a resumed .part. */
unsigned long long transfer_bytes(const struct transfer *);
/* The whole body's size when known, or -1. */
long long transfer_size(const struct transfer *);

#endif
