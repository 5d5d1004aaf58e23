/* The writer pool: every byte of download file I/O, off the loop thread. */
#ifndef WRITER_H
#define WRITER_H

#include <stddef.h>

#include "config.h"

struct event_base;
struct writer;
struct wfile;

enum wfile_event {
	WFILE_DRAINED, /* unwritten bytes fell to PENDING_RESUME_BYTES */
	WFILE_FAILED,  /* a write failed; the owner must abort or commit */
	WFILE_DONE,    /* commit or abort finished; the wfile is freed after */
};

/* Called on the loop thread. */
typedef void (*wfile_cb)(struct wfile *, enum wfile_event, void *arg);

/* Start nthreads workers writing below the directory rootfd (not taken). */
struct writer *writer_create(struct event_base *, int rootfd, int nthreads);
/* Stop and join the workers. Every wfile must have reached WFILE_DONE. */
void writer_destroy(struct writer *);
/* Files not yet done. */
size_t writer_open_files(struct writer *);

/*
 * Begin a file at relpath (a checked relative path) below the root. Nothing
 * touches the disk until the first bytes or the commit reach a worker. The
 * callback receives every event; after WFILE_DONE the wfile is gone.
 */
struct wfile *wfile_open(struct writer *, const char *relpath,
    enum exists_policy, int do_fsync, wfile_cb, void *arg);
/* Copy bytes in; full chunks go to the pool at once. */
void wfile_write(struct wfile *, const void *, size_t);
/* Bytes given to wfile_write and not yet on disk. */
size_t wfile_pending(struct wfile *);
/* Ask for one WFILE_DRAINED once the pending bytes are low again. */
void wfile_want_drain(struct wfile *);
/* Write what is left, fsync if asked, rename into place; then WFILE_DONE. */
void wfile_commit(struct wfile *);
/* Close and remove the .part file; then WFILE_DONE. */
void wfile_abort(struct wfile *);
/* After WFILE_DONE of a commit: 0 if the file is in place, -1 if not. */
int wfile_ok(struct wfile *);
/* The final relative path once committed (a suffix may have been added). */
const char *wfile_path(struct wfile *);
/* The failure, once WFILE_FAILED or a failed WFILE_DONE was seen. */
const char *wfile_error(struct wfile *);
/* Whether the skip policy left an existing file in place. */
int wfile_skipped(struct wfile *);

#endif
