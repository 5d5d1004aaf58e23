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
	WFILE_FAILED, /* a write failed; the owner must abort */
	WFILE_PREPARED, /* committed data is on disk, final name chosen */
	WFILE_DONE, /* renamed, suspended, aborted or probed; freed after */
};

/* Called on the loop thread. */
typedef void (*wfile_cb)(struct wfile *, enum wfile_event, void *arg);

struct wfile_spec {
	const char *relpath; /* final relative path wanted */
	const char *part; /* a .part to resume (relative), or NULL */
	unsigned long long offset; /* bytes of it to keep when resuming */
	enum exists_policy policy;
	int do_fsync;
	int hold; /* nothing touches the disk until wfile_release */
	int hash_first; /* never name early: wfile_sha256 is set at PREPARED */
};

/* Start nthreads workers writing below the directory rootfd (not taken). */
struct writer *writer_create(struct event_base *, int rootfd, int nthreads);
/* Stop and join the workers. Every wfile must have reached WFILE_DONE. */
void writer_destroy(struct writer *);
/* Files not yet done. */
size_t writer_open_files(struct writer *);
/* Bytes handed to the workers and not yet written, over all files. */
size_t writer_backlog(struct writer *);

/*
 * Begin a file for spec->relpath. Its .part name is claimed at once (a
 * numbered one if another file of the pool writes the same name); nothing
 * touches the disk until bytes or a commit reach a worker. Returns NULL if
 * the .part to resume is in use by another file.
 */
struct wfile *wfile_open(
    struct writer *, const struct wfile_spec *, wfile_cb, void *arg);
/* The .part file's relative path. */
const char *wfile_part(struct wfile *);
/* Let a file opened with hold reach the disk. */
void wfile_release(struct wfile *);
/* Copy bytes in; full chunks go to the pool at once. */
void wfile_write(struct wfile *, const void *, size_t);
/* Bytes given to wfile_write and not yet on disk. */
size_t wfile_pending(struct wfile *);
/* Ask for one WFILE_DRAINED once the pending bytes are low again. */
void wfile_want_drain(struct wfile *);
/*
 * Write what is left, fsync if asked, close and choose the final name
 * under the exists policy: then WFILE_PREPARED (wfile_path is the name),
 * after which the owner calls wfile_rename or wfile_abort. On failure
 * WFILE_DONE comes instead, with the .part removed.
 */
void wfile_commit(struct wfile *);
/* Rename a prepared file into place; then WFILE_DONE. */
void wfile_rename(struct wfile *);
/* Write what is buffered, close and keep the .part; then WFILE_DONE. */
void wfile_suspend(struct wfile *);
/* Close and remove the .part file; then WFILE_DONE. */
void wfile_abort(struct wfile *);
/* Find the size of an existing .part; WFILE_DONE, then wfile_size. */
struct wfile *wfile_probe(
    struct writer *, const char *part, wfile_cb, void *arg);

/* Remove a .part kept by an earlier attempt, unless a file is using it. */
void wfile_remove(struct writer *, const char *part);

/* After WFILE_DONE: 0 if the rename, suspend or probe worked, else -1. */
int wfile_ok(struct wfile *);
/* The final relative path (chosen at WFILE_PREPARED). */
const char *wfile_path(struct wfile *);
/* The failure, once WFILE_FAILED or a failed WFILE_DONE was seen. */
const char *wfile_error(struct wfile *);
/* Whether the skip policy left an existing file in place. */
int wfile_skipped(struct wfile *);
/* Bytes in the .part file after a suspend or probe. */
unsigned long long wfile_size(struct wfile *);
/*
 * The body's SHA-256 in hex once all of it is written: at WFILE_PREPARED
 * for a file opened with hash_first, else at WFILE_DONE. NULL before.
 */
const char *wfile_sha256(struct wfile *);
/* After PREPARED: rename to relpath instead (another directory is fine). */
void wfile_rename_to(struct wfile *, const char *relpath);
/*
 * After PREPARED: if path (relative to the root) is a regular file of the
 * same size, remove the .part (wfile_duplicate then says so); else rename
 * as wfile_rename would. Then WFILE_DONE.
 */
void wfile_dedup(struct wfile *, const char *path);
/* After WFILE_DONE: whether wfile_dedup dropped the file. */
int wfile_duplicate(struct wfile *);
/*
 * Run work(warg) on a worker thread, off the loop; then WFILE_DONE on the
 * loop thread. work must touch nothing but warg.
 */
struct wfile *wfile_task(struct writer *, void (*work)(void *), void *warg,
    wfile_cb, void *arg);

#endif
