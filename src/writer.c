/*
 * DESIGN
 *
 * The writer pool does all file I/O for downloads so that a slow disk never
 * stalls the event loop: mkdir, open of NAME.part, write, fsync, stat,
 * rename and unlink all run on one of a fixed number of worker threads.
 *
 * What crosses the thread boundary, and who owns what:
 * - A struct wfile is created and freed on the loop thread. Its "loop" part
 *   (the chunk being filled, the callback, the .part claim) is touched only
 *   there; its "worker" part (directory fd, file fd, chosen name, sizes)
 *   only by the one worker holding the file, and by the loop thread once
 *   the file is reported PREPARED or DONE (nothing is queued for it then);
 *   the "shared" part (op queue, flags, pending byte count, error) only
 *   under writer->lock.
 * - A directory is opened once for all the files in flight in it: a
 *   struct wdir, found by path in writer->dirs and counted, both under
 *   writer->lock; its fd never changes while a file holds it, and the last
 *   file to let go closes it.
 * - A file opened with hold (its job not yet in the job store) gets ops
 *   queued but is not put on the ready queue until wfile_release; an
 *   abort meanwhile drops its ops unrun, so nothing of it reaches the disk.
 * - A chunk is filled on the loop thread, then handed over inside an op;
 *   from then on the worker owns it and frees it once written.
 * - Ops of one file run in order: a file is on the ready queue at most once
 *   and held by at most one worker, which takes all its queued ops and runs
 *   them with the lock released. Different files run in parallel.
 * - Workers report back by putting the file on the completion queue and
 *   activating a libevent event (evthread_use_pthreads is on); the loop
 *   thread drains that queue and calls the owners' callbacks. Workers never
 *   touch libevent otherwise, nor libcurl, nor job state.
 * - Commit is two steps so that the owner can record the chosen final name
 *   (in the job store) before the rename makes it visible: COMMIT writes,
 *   fsyncs, closes and picks the name (PREPARED); RENAME renames (DONE).
 *   Without fsync, a worker that finds COMMIT queued picks the name and
 *   reports PREPARED before it runs the writes ahead of it, so the record
 *   and the writes proceed together; from then on the worker leaves the
 *   name alone until RENAME, and a failure waits for RENAME (or ABORT) too.
 * - The worker holding a file hashes its bytes (SHA-256, OpenSSL's EVP) as
 *   it writes them, reading back a resumed .part's kept bytes first; the
 *   digest is final after COMMIT. A file opened with hash_first is never
 *   named early, so its digest is known at PREPARED: the owner can then
 *   drop it as a duplicate (DEDUP) or have it renamed to a name made from
 *   the digest (RENAME with a target, set on the loop thread between
 *   PREPARED and the op, when no worker holds the file).
 * - RENAME, DEDUP, SUSPEND, ABORT, PROBE and TASK are the last op of a
 *   file; once a worker has run one it never touches the file again, and
 *   the loop frees it after WFILE_DONE. A TASK file is no file at all: the
 *   worker runs a function of the owner's (the parse of a scraped page)
 *   that touches only its argument.
 * - Free names: the loop thread claims each .part name in writer->parts,
 *   starting at the suffix after the last one claimed for the same wanted
 *   name (writer->part_hints, kept while files of that name are open).
 *   Workers choose final names by stat on disk, starting at the suffix
 *   after the last one taken for that name (writer->name_hints, a bounded
 *   table under writer->lock, the oldest forgotten first): a run of files
 *   all named alike costs O(1) each, and the stat still finds files that
 *   were there before or that others made.
 * Workers block all signals, so only the main thread sees them.
 */
#include <sys/queue.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <search.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "defs.h"
#include "log.h"
#include "writer.h"
#include "xmalloc.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

enum op_type {
	OP_WRITE,
	OP_COMMIT,
	OP_RENAME,
	OP_SUSPEND,
	OP_ABORT,
	OP_PROBE,
	OP_DEDUP,
	OP_TASK
};

struct op {
	enum op_type type;
	char *data;
	size_t len;
	size_t cap; /* of data: CHUNK_SIZE ones go back to the pool */
	TAILQ_ENTRY(op) entry;
};
TAILQ_HEAD(op_list, op);

/*
 * An open directory shared by the files in flight in it, so that a job's
 * thousands of files do not each open and close their directory. Found by
 * path in writer->dirs (under writer->lock) and closed when its last file
 * is done: a directory is never held longer than files are being written
 * into it.
 */
struct wdir {
	char *path; /* relative to the root; never "" */
	int fd;
	int refs;
	int stale; /* out of writer->dirs: gone from the disk */
};

/*
 * Loop thread: the next .part suffix to try for a wanted name, kept while
 * live open files hold a claim made from it.
 */
struct part_hint {
	char *key; /* dirpart "/" base */
	unsigned long long next;
	size_t live;
};

/* Under writer->lock: the next final-name suffix to try for a name. */
struct name_hint {
	char *key; /* directory "/" base, relative to the root */
	unsigned long long next;
};

struct wfile {
	struct writer *writer;
	/* Set at open, read-only afterwards. */
	char *relpath;
	char *dirpart; /* directory part of relpath, "" for the root */
	char *base; /* final base name wanted */
	char *part; /* relative path of the .part, claimed */
	char *partbase; /* its base name inside the directory */
	unsigned long long offset;
	int resume;
	enum exists_policy policy;
	int do_fsync;
	int hash_first; /* no early naming: the digest is known at PREPARED */
	wfile_cb cb;
	void *arg;
	void (*task)(void *); /* OP_TASK's work, and its argument */
	void *task_arg;

	/* Loop thread only. */
	char *buf;
	size_t buflen;
	size_t bufcap;
	int big; /* a full chunk was sent: the next ones are full size */
	int closing;
	int claimed;
	struct part_hint *phint; /* the claim was made from it */

	/* Shared, under writer->lock. */
	struct op_list ops;
	int queued; /* on the ready queue */
	int running; /* held by a worker */
	int held; /* ops wait for wfile_release */
	int in_done; /* on the completion queue */
	size_t pending;
	int want_drain;
	int ev_drained;
	int ev_failed;
	int ev_prepared;
	int ev_done;
	char *error;
	TAILQ_ENTRY(wfile) ready_entry;
	TAILQ_ENTRY(wfile) done_entry;

	/* Worker (then loop thread once PREPARED or DONE). */
	int dirfd; /* the root's, or dir's */
	struct wdir *dir; /* NULL for the root */
	int fd;
	char *final; /* chosen base name */
	unsigned long long suffix; /* its "-N" */
	char *finalpath; /* relative path of the final name */
	unsigned long long size;
	int opened;
	int failed;
	EVP_MD_CTX *md; /* SHA-256 of the bytes so far */
	unsigned long long hashed; /* bytes in md */
	char sha256[2 * 32 + 1]; /* hex, once final; "" before */
	/*
	 * A file named early reports PREPARED while its worker still writes
	 * and hashes: the loop reads sha256 only once it has seen hash_done
	 * (set under writer->lock after sha256) while draining its events.
	 */
	int hash_done; /* under lock */
	int hash_seen; /* loop */
	char *target; /* RENAME: a relative path elsewhere, set by the loop */
	char *dup_of; /* DEDUP: the kept file this one repeats */
	int duplicate; /* dropped as a duplicate of dup_of */
	int ok;
	int skipped;
	int named; /* PREPARED went out before the last writes ran */
};
TAILQ_HEAD(wfile_list, wfile);

struct writer {
	int rootfd;
	int nthreads;
	pthread_t *threads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct wfile_list ready;
	struct wfile_list done;
	int stopping;
	size_t backlog; /* bytes queued in ops, all files */
	size_t nready; /* files on the ready queue */
	int idle; /* workers waiting for work */
	int waking; /* of those, signalled but not yet running */
	int ncpu; /* most workers one kick wakes */
	char *pool[CHUNK_POOL_MAX]; /* free CHUNK_SIZE buffers */
	size_t npool;
	char *small[SMALL_POOL_MAX]; /* free SMALL_CHUNK_SIZE buffers */
	size_t nsmall;
	struct event *done_ev;
	struct event *kick_ev;
	/* Loop thread only. */
	int kicked;
	size_t open_files;
	void *parts; /* tsearch tree: .part paths claimed by open files */
	void *part_hints; /* tsearch tree of struct part_hint, by key */
	/* Shared, under lock. */
	void *dirs; /* tsearch tree of struct wdir, by path */
	void *name_hints; /* tsearch tree of struct name_hint, by key */
	struct name_hint *hint_ring[NAME_HINT_MAX]; /* in order of creation */
	size_t hint_pos; /* the oldest, replaced next */
};

static void *writer_main(void *);
static int wfile_walk_path(struct wfile *, const char *, int);
static void wfile_do_move(struct wfile *);
static void wfile_do_rename(struct wfile *);
static void writer_done_cb(evutil_socket_t, short, void *);
static void writer_kick_cb(evutil_socket_t, short, void *);
static void writer_dir_free(void *);

/* Start the pool. */
struct writer *
writer_create(struct event_base *base, int rootfd, int nthreads)
{
	struct writer *w;
	sigset_t all, old;
	char name[32];
	int i, error;

	w = xcalloc(1, sizeof *w);
	w->rootfd = rootfd;
	w->nthreads = nthreads;
	w->ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (w->ncpu < 1)
		w->ncpu = 1;
	TAILQ_INIT(&w->ready);
	TAILQ_INIT(&w->done);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->done_ev = event_new(base, -1, 0, writer_done_cb, w);
	w->kick_ev = event_new(base, -1, 0, writer_kick_cb, w);
	if (w->done_ev == NULL || w->kick_ev == NULL)
		fatalx("writer_create: event_new failed");
	event_priority_set(w->done_ev, EV_PRIO_BULK);
	event_priority_set(w->kick_ev, EV_PRIO_BULK);
	w->threads = xcalloc((size_t)nthreads, sizeof *w->threads);

	/* Workers inherit a full signal mask: only the main thread handles signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		error = pthread_create(&w->threads[i], NULL, writer_main, w);
		if (error != 0) {
			errno = error;
			fatal("writer_create: pthread_create");
		}
		/* For top -H and ps -L; names over 15 bytes are refused. */
		snprintf(name, sizeof name, "writer-%d", i);
		pthread_setname_np(w->threads[i], name);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	log_debug("writer: %d worker threads", nthreads);
	return w;
}

/* tdestroy: the nodes' keys are owned elsewhere. */
static void
writer_free_nothing(void *p)
{
}

/* tdestroy: free a struct part_hint. */
static void
writer_part_hint_free(void *p)
{
	struct part_hint *h = p;

	free(h->key);
	free(h);
}

/* Stop and join the workers, then free the pool. */
void
writer_destroy(struct writer *w)
{
	size_t j;
	int i;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	if (w->open_files != 0)
		log_warnx(
		    "writer_destroy: %zu files still open", w->open_files);
	while (w->npool > 0)
		free(w->pool[--w->npool]);
	while (w->nsmall > 0)
		free(w->small[--w->nsmall]);
	event_free(w->done_ev);
	event_free(w->kick_ev);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	/* The paths belong to files that were never finished. */
	tdestroy(w->parts, writer_free_nothing);
	tdestroy(w->part_hints, writer_part_hint_free);
	tdestroy(w->dirs, writer_dir_free);
	/* Every name hint is in the ring. */
	tdestroy(w->name_hints, writer_free_nothing);
	for (j = 0; j < NAME_HINT_MAX; j++) {
		if (w->hint_ring[j] != NULL) {
			free(w->hint_ring[j]->key);
			free(w->hint_ring[j]);
		}
	}
	free(w->threads);
	free(w);
}

/* Files not yet done. */
size_t
writer_open_files(struct writer *w)
{
	return w->open_files;
}

/* Bytes not yet written, over all files. */
size_t
writer_backlog(struct writer *w)
{
	size_t n;

	pthread_mutex_lock(&w->lock);
	n = w->backlog;
	pthread_mutex_unlock(&w->lock);
	return n;
}

/* A CHUNK_SIZE or SMALL_CHUNK_SIZE buffer, from a pool when there is one. */
static char *
writer_chunk_get(struct writer *w, size_t cap)
{
	char *p = NULL;

	pthread_mutex_lock(&w->lock);
	if (cap == CHUNK_SIZE && w->npool > 0)
		p = w->pool[--w->npool];
	else if (cap == SMALL_CHUNK_SIZE && w->nsmall > 0)
		p = w->small[--w->nsmall];
	pthread_mutex_unlock(&w->lock);
	return p != NULL ? p : xmalloc(cap);
}

/* Give a written chunk back (lock held); only pool sizes are kept. */
static void
writer_chunk_put_locked(struct writer *w, char *p, size_t cap)
{
	if (cap == CHUNK_SIZE && w->npool < CHUNK_POOL_MAX)
		w->pool[w->npool++] = p;
	else if (cap == SMALL_CHUNK_SIZE && w->nsmall < SMALL_POOL_MAX)
		w->small[w->nsmall++] = p;
	else
		free(p);
}

/* Name base with suffix k before its extension: "a.png", 2 -> "a-2.png". */
static char *
wfile_suffixed(const char *base, unsigned long long k)
{
	const char *dot;
	char *s;

	if (k == 0)
		return xstrdup(base);
	dot = strrchr(base, '.');
	if (dot == NULL || dot == base)
		xasprintf(&s, "%s-%llu", base, k);
	else
		xasprintf(&s, "%.*s-%llu%s", (int)(dot - base), base, k, dot);
	return s;
}

/* tsearch order of part hints, by key. */
static int
writer_part_hint_cmp(const void *a, const void *b)
{
	const struct part_hint *x = a, *y = b;

	return strcmp(x->key, y->key);
}

/* Loop thread: the part hint for the file's wanted name, made if new. */
static struct part_hint *
writer_part_hint(struct writer *w, struct wfile *f)
{
	struct part_hint *h, **slot;

	h = xcalloc(1, sizeof *h);
	xasprintf(&h->key, "%s/%s", f->dirpart, f->base);
	if ((slot = tsearch(h, &w->part_hints, writer_part_hint_cmp)) == NULL)
		fatalx("%s: tsearch failed", __func__);
	if (*slot != h) {
		writer_part_hint_free(h);
		h = *slot;
	}
	return h;
}

/* tsearch order of claimed .part paths. */
static int
writer_part_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Whether another open file has claimed this .part path. */
static int
writer_part_used(struct writer *w, const char *part)
{
	return tfind(part, &w->parts, writer_part_cmp) != NULL;
}

/* Claim a .part path for the file: the given one, or a free one. */
static int
wfile_claim(struct wfile *f, const char *want)
{
	struct writer *w = f->writer;
	struct part_hint *h;
	const char *slash;
	char *cand, *name;
	unsigned long long k;

	if (want != NULL) {
		if (writer_part_used(w, want))
			return -1;
		name = xstrdup(want);
	} else {
		/* Past the last claim for this name while any is open. */
		h = writer_part_hint(w, f);
		for (k = h->next;; k++) {
			cand = wfile_suffixed(f->base, k);
			xasprintf(&name, "%s%s%s.part", f->dirpart,
			    *f->dirpart != '\0' ? "/" : "", cand);
			free(cand);
			if (!writer_part_used(w, name))
				break;
			free(name);
		}
		h->next = k + 1;
		h->live++;
		f->phint = h;
	}
	if (tsearch(name, &w->parts, writer_part_cmp) == NULL)
		fatalx("%s: tsearch failed", __func__);
	f->part = name;
	slash = strrchr(name, '/');
	f->partbase = xstrdup(slash != NULL ? slash + 1 : name);
	f->claimed = 1;
	return 0;
}

/* Give the .part claim back. */
static void
wfile_unclaim(struct wfile *f)
{
	struct part_hint *h = f->phint;

	if (!f->claimed)
		return;
	tdelete(f->part, &f->writer->parts, writer_part_cmp);
	f->claimed = 0;
	f->phint = NULL;
	/* The last open file of its name: the next one starts from 0. */
	if (h != NULL && --h->live == 0) {
		tdelete(h, &f->writer->part_hints, writer_part_hint_cmp);
		writer_part_hint_free(h);
	}
}

/* Allocate a file for relpath. */
static struct wfile *
wfile_new(struct writer *w, const char *relpath, wfile_cb cb, void *arg)
{
	struct wfile *f;
	const char *slash;

	f = xcalloc(1, sizeof *f);
	f->writer = w;
	f->relpath = xstrdup(relpath);
	f->cb = cb;
	f->arg = arg;
	f->dirfd = -1;
	f->fd = -1;
	TAILQ_INIT(&f->ops);
	if ((slash = strrchr(relpath, '/')) != NULL) {
		f->dirpart = xstrndup(relpath, (size_t)(slash - relpath));
		f->base = xstrdup(slash + 1);
	} else {
		f->dirpart = xstrdup("");
		f->base = xstrdup(relpath);
	}
	w->open_files++;
	return f;
}

/* Free a finished file. */
static void
wfile_free(struct wfile *f)
{
	struct op *op;

	wfile_unclaim(f);
	while ((op = TAILQ_FIRST(&f->ops)) != NULL) {
		TAILQ_REMOVE(&f->ops, op, entry);
		free(op->data);
		free(op);
	}
	free(f->buf);
	free(f->relpath);
	free(f->dirpart);
	free(f->base);
	free(f->part);
	free(f->partbase);
	free(f->final);
	free(f->finalpath);
	free(f->error);
	free(f->target);
	free(f->dup_of);
	EVP_MD_CTX_free(f->md);
	free(f);
}

/* Begin a file; nothing touches the disk yet. */
struct wfile *
wfile_open(
    struct writer *w, const struct wfile_spec *spec, wfile_cb cb, void *arg)
{
	struct wfile *f;

	f = wfile_new(w, spec->relpath, cb, arg);
	f->policy = spec->policy;
	f->do_fsync = spec->do_fsync;
	f->hash_first = spec->hash_first;
	f->held = spec->hold;
	if (spec->part != NULL) {
		f->resume = 1;
		f->offset = spec->offset;
	}
	if (wfile_claim(f, spec->part) == -1) {
		w->open_files--;
		wfile_free(f);
		return NULL;
	}
	return f;
}

/* The .part file's relative path. */
const char *
wfile_part(struct wfile *f)
{
	return f->part;
}

/*
 * Loop thread: have workers look at the ready queue after this loop pass.
 * Once per pass for all that it queued, rather than once per op: far
 * fewer context switches when many small files finish at once.
 */
static void
writer_kick(struct writer *w)
{
	if (!w->kicked) {
		w->kicked = 1;
		event_active(w->kick_ev, 0, 0);
	}
}

/* Put a file with ops on the ready queue, unless held or already there. */
static void
wfile_ready_locked(struct wfile *f)
{
	struct writer *w = f->writer;

	if (f->queued || f->running || f->held || TAILQ_EMPTY(&f->ops))
		return;
	f->queued = 1;
	w->nready++;
	TAILQ_INSERT_TAIL(&w->ready, f, ready_entry);
}

/* Let a held file's ops run. */
void
wfile_release(struct wfile *f)
{
	struct writer *w = f->writer;

	pthread_mutex_lock(&w->lock);
	f->held = 0;
	wfile_ready_locked(f);
	pthread_mutex_unlock(&w->lock);
	writer_kick(w);
}

/* Queue an op for the file and make sure a worker will see it. */
static void
wfile_push(
    struct wfile *f, enum op_type type, char *data, size_t len, size_t cap)
{
	struct writer *w = f->writer;
	struct op *op;

	op = xcalloc(1, sizeof *op);
	op->type = type;
	op->data = data;
	op->len = len;
	op->cap = cap;
	pthread_mutex_lock(&w->lock);
	TAILQ_INSERT_TAIL(&f->ops, op, entry);
	f->pending += len;
	w->backlog += len;
	wfile_ready_locked(f);
	pthread_mutex_unlock(&w->lock);
	writer_kick(w);
}

/* Wake one more idle worker if a ready file has none coming for it. */
static int
writer_wake_locked(struct writer *w)
{
	if (w->nready <= (size_t)w->waking || w->idle <= w->waking)
		return 0;
	w->waking++;
	pthread_cond_signal(&w->cond);
	return 1;
}

/*
 * Loop thread, after a pass that queued work: wake workers, at most one
 * per CPU. Each worker that takes a file wakes another while files wait,
 * so a disk that blocks writers still gets a worker per file, quickly,
 * but a fast one does not get a herd of threads fighting for two CPUs.
 */
static void
writer_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct writer *w = arg;
	int n;

	w->kicked = 0;
	pthread_mutex_lock(&w->lock);
	for (n = 0; n < w->ncpu && writer_wake_locked(w); n++)
		;
	pthread_mutex_unlock(&w->lock);
}

/* Hand the chunk being filled to the pool. */
static void
wfile_flush(struct wfile *f)
{
	if (f->buflen == 0)
		return;
	wfile_push(f, OP_WRITE, f->buf, f->buflen, f->bufcap);
	f->buf = NULL;
	f->buflen = f->bufcap = 0;
}

/* Copy bytes into chunks; full chunks go to the pool. */
void
wfile_write(struct wfile *f, const void *data, size_t len)
{
	const char *p = data;
	size_t n, want;

	while (len > 0) {
		if (f->buflen == f->bufcap) {
			if (f->bufcap == CHUNK_SIZE) {
				wfile_flush(f);
				f->big = 1;
			}
			if (f->big) {
				/* A big body: whole chunks, from the pool. */
				f->buf =
				    writer_chunk_get(f->writer, CHUNK_SIZE);
				f->bufcap = CHUNK_SIZE;
				goto copy;
			}
			/* Grow in steps so small images do not cost a whole chunk. */
			want = f->buflen + len;
			if (want < SMALL_CHUNK_SIZE)
				want = SMALL_CHUNK_SIZE;
			if (want < f->bufcap * 2)
				want = f->bufcap * 2;
			if (want > CHUNK_SIZE)
				want = CHUNK_SIZE;
			if (f->buf == NULL && want == SMALL_CHUNK_SIZE)
				f->buf = writer_chunk_get(f->writer, want);
			else
				f->buf = xrealloc(f->buf, want);
			f->bufcap = want;
		}
copy:
		n = f->bufcap - f->buflen;
		if (n > len)
			n = len;
		memcpy(f->buf + f->buflen, p, n);
		f->buflen += n;
		p += n;
		len -= n;
	}
	if (f->buflen == CHUNK_SIZE)
		wfile_flush(f);
}

/* Bytes not yet on disk. */
size_t
wfile_pending(struct wfile *f)
{
	size_t n;

	pthread_mutex_lock(&f->writer->lock);
	n = f->pending;
	pthread_mutex_unlock(&f->writer->lock);
	return n + f->buflen;
}

/* Put the file on the completion queue (lock held). */
static void
wfile_report_locked(struct wfile *f)
{
	if (!f->in_done) {
		f->in_done = 1;
		TAILQ_INSERT_TAIL(&f->writer->done, f, done_entry);
	}
}

/* Ask for WFILE_DRAINED once the pending bytes are low again. */
void
wfile_want_drain(struct wfile *f)
{
	struct writer *w = f->writer;
	int now = 0;

	pthread_mutex_lock(&w->lock);
	if (f->pending + f->buflen <= PENDING_RESUME_BYTES) {
		/* Already low: report through the queue, never re-entrantly. */
		now = 1;
		f->ev_drained = 1;
		wfile_report_locked(f);
	} else
		f->want_drain = 1;
	pthread_mutex_unlock(&w->lock);
	if (now)
		event_active(w->done_ev, 0, 0);
}

/* Mark the file closing; a second close is a bug in the caller. */
static void
wfile_closing(struct wfile *f, const char *what)
{
	if (f->closing)
		fatalx("%s: %s closed twice", what, f->relpath);
	f->closing = 1;
}

/* Write the rest, close and choose the final name. */
void
wfile_commit(struct wfile *f)
{
	wfile_closing(f, "wfile_commit");
	wfile_flush(f);
	wfile_push(f, OP_COMMIT, NULL, 0, 0);
}

/* Rename a prepared file into place. */
void
wfile_rename(struct wfile *f)
{
	wfile_push(f, OP_RENAME, NULL, 0, 0);
}

/* Write what is buffered and keep the .part. */
void
wfile_suspend(struct wfile *f)
{
	wfile_closing(f, "wfile_suspend");
	wfile_flush(f);
	/* Kept for a resume: a held file goes to the disk after all. */
	wfile_release(f);
	wfile_push(f, OP_SUSPEND, NULL, 0, 0);
}

/* Drop the file and its .part. */
void
wfile_abort(struct wfile *f)
{
	struct writer *w = f->writer;
	struct op *op;

	/* Allowed after PREPARED, which already set closing. */
	f->closing = 1;
	free(f->buf);
	f->buf = NULL;
	f->buflen = f->bufcap = 0;
	pthread_mutex_lock(&w->lock);
	if (f->held) {
		/* Nothing reached the disk: forget the bytes, not write them. */
		while ((op = TAILQ_FIRST(&f->ops)) != NULL) {
			TAILQ_REMOVE(&f->ops, op, entry);
			f->pending -= op->len;
			w->backlog -= op->len;
			if (op->data != NULL)
				writer_chunk_put_locked(w, op->data, op->cap);
			free(op);
		}
		f->held = 0;
	}
	pthread_mutex_unlock(&w->lock);
	wfile_push(f, OP_ABORT, NULL, 0, 0);
}

/* Find the size of an existing .part. */
struct wfile *
wfile_probe(struct writer *w, const char *part, wfile_cb cb, void *arg)
{
	struct wfile *f;

	f = wfile_new(w, part, cb, arg);
	f->closing = 1;
	wfile_push(f, OP_PROBE, NULL, 0, 0);
	return f;
}

/* Nobody waits for a removal. */
static void
wfile_remove_cb(struct wfile *f, enum wfile_event ev, void *arg)
{
}

/* Remove a .part kept by an earlier attempt. */
void
wfile_remove(struct writer *w, const char *part)
{
	struct wfile *f;
	const char *slash;

	if (writer_part_used(w, part))
		return;
	f = wfile_new(w, part, wfile_remove_cb, NULL);
	f->resume = 1;
	f->closing = 1;
	f->part = xstrdup(part);
	slash = strrchr(part, '/');
	f->partbase = xstrdup(slash != NULL ? slash + 1 : part);
	wfile_push(f, OP_ABORT, NULL, 0, 0);
}

/* Whether the last step worked. */
int
wfile_ok(struct wfile *f)
{
	return f->ok ? 0 : -1;
}

/* The final relative path. */
const char *
wfile_path(struct wfile *f)
{
	return f->finalpath != NULL ? f->finalpath : f->relpath;
}

/* The failure text. */
const char *
wfile_error(struct wfile *f)
{
	const char *e;

	pthread_mutex_lock(&f->writer->lock);
	e = f->error;
	pthread_mutex_unlock(&f->writer->lock);
	return e != NULL ? e : "unknown error";
}

/* Whether an existing file was left in place. */
int
wfile_skipped(struct wfile *f)
{
	return f->skipped;
}

/* Bytes in the .part. */
unsigned long long
wfile_size(struct wfile *f)
{
	return f->size;
}

/* The body's SHA-256 in hex, or NULL while it is not final. */
const char *
wfile_sha256(struct wfile *f)
{
	return f->hash_seen ? f->sha256 : NULL;
}

/* Whether the file was dropped as a duplicate. */
int
wfile_duplicate(struct wfile *f)
{
	return f->duplicate;
}

/* Rename a prepared file to another relative path, under its policy. */
void
wfile_rename_to(struct wfile *f, const char *relpath)
{
	/* No worker holds a prepared file: its fields are the loop's. */
	free(f->target);
	f->target = xstrdup(relpath);
	wfile_push(f, OP_RENAME, NULL, 0, 0);
}

/* Drop a prepared file if path holds the same bytes; else rename it. */
void
wfile_dedup(struct wfile *f, const char *path)
{
	free(f->dup_of);
	f->dup_of = xstrdup(path);
	wfile_push(f, OP_DEDUP, NULL, 0, 0);
}

/* Run work(warg) on a worker; then WFILE_DONE on the loop thread. */
struct wfile *
wfile_task(struct writer *w, void (*work)(void *), void *warg, wfile_cb cb,
    void *arg)
{
	struct wfile *f;

	f = wfile_new(w, "-", cb, arg);
	f->closing = 1;
	f->task = work;
	f->task_arg = warg;
	wfile_push(f, OP_TASK, NULL, 0, 0);
	return f;
}

/* Loop thread: deliver worker reports to the owners. */
static void
writer_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct writer *w = arg;
	struct wfile_list list;
	struct wfile *f;
	int drained, failed, prepared, done;

	TAILQ_INIT(&list);
	pthread_mutex_lock(&w->lock);
	TAILQ_CONCAT(&list, &w->done, done_entry);
	pthread_mutex_unlock(&w->lock);

	while ((f = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, f, done_entry);
		pthread_mutex_lock(&w->lock);
		f->in_done = 0;
		drained = f->ev_drained;
		failed = f->ev_failed;
		prepared = f->ev_prepared;
		done = f->ev_done;
		f->hash_seen = f->hash_done;
		f->ev_drained = f->ev_failed = f->ev_prepared = 0;
		pthread_mutex_unlock(&w->lock);

		if (done) {
			w->open_files--;
			wfile_unclaim(f);
			f->cb(f, WFILE_DONE, f->arg);
			wfile_free(f);
			continue;
		}
		if (prepared)
			f->cb(f, WFILE_PREPARED, f->arg);
		else if (failed)
			f->cb(f, WFILE_FAILED, f->arg);
		else if (drained)
			f->cb(f, WFILE_DRAINED, f->arg);
	}
}

/* Worker: record the first failure of a file, naming a relative path. */
static void
wfile_fail_path(struct wfile *f, const char *what, const char *path, int error)
{
	char *msg;

	xasprintf(&msg, "%s %s: %s", what, path, strerror(error));
	log_debug("writer: %s", msg);
	pthread_mutex_lock(&f->writer->lock);
	if (f->error == NULL)
		f->error = msg;
	else
		free(msg);
	pthread_mutex_unlock(&f->writer->lock);
	f->failed = 1;
}

/* Worker: record the first failure of a file, for a name in its directory. */
static void
wfile_fail(struct wfile *f, const char *what, const char *name, int error)
{
	char *path;

	xasprintf(
	    &path, "%s%s%s", f->dirpart, *f->dirpart != '\0' ? "/" : "", name);
	wfile_fail_path(f, what, path, error);
	free(path);
}

/* Worker: a failure on the first len bytes of the file's directory path. */
static void
wfile_fail_dir(struct wfile *f, const char *what, size_t len, int error)
{
	char *path;

	path = xstrndup(f->dirpart, len);
	wfile_fail_path(f, what, path, error);
	free(path);
}

/* tsearch order of open directories, by path. */
static int
writer_dir_cmp(const void *a, const void *b)
{
	const struct wdir *x = a, *y = b;

	return strcmp(x->path, y->path);
}

/* Close and free a directory no file holds any more. */
static void
writer_dir_free(void *p)
{
	struct wdir *d = p;

	close(d->fd);
	free(d->path);
	free(d);
}

/* Worker: open each directory of the file's path, creating if asked. */
static int
wfile_walk_dir(struct wfile *f, int create)
{
	return wfile_walk_path(f, f->dirpart, create);
}

/* Worker: open each directory of a relative path, creating if asked. */
static int
wfile_walk_path(struct wfile *f, const char *dirpath, int create)
{
	char *copy, *p, *comp;
	int fd, next;

	/* fd is the root (not ours to close) until the first component. */
	fd = f->writer->rootfd;
	copy = xstrdup(dirpath);
	for (p = copy; (comp = strsep(&p, "/")) != NULL;) {
		if (*comp == '\0')
			continue;
		next = openat(
		    fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next == -1 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0755) == -1 && errno != EEXIST) {
				wfile_fail_dir(f, "mkdir",
				    comp - copy + strlen(comp), errno);
				goto fail;
			}
			next = openat(fd, comp,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next == -1) {
			wfile_fail_dir(f, "open directory",
			    comp - copy + strlen(comp), errno);
			goto fail;
		}
		if (fd != f->writer->rootfd)
			close(fd);
		fd = next;
	}
	free(copy);
	if (fd == f->writer->rootfd && (fd = dup(fd)) == -1) {
		wfile_fail(f, "open", ".", errno);
		return -1;
	}
	return fd;
fail:
	free(copy);
	if (fd != f->writer->rootfd)
		close(fd);
	return -1;
}

/* Worker: get the file's directory, shared with the other files in it. */
static int
wfile_open_dir(struct wfile *f, int create)
{
	struct writer *w = f->writer;
	struct wdir key, *d, **slot;
	int fd;

	if (f->dirfd != -1)
		return 0;
	if (*f->dirpart == '\0') {
		f->dirfd = w->rootfd;
		return 0;
	}
	key.path = f->dirpart;
	pthread_mutex_lock(&w->lock);
	if ((slot = tfind(&key, &w->dirs, writer_dir_cmp)) != NULL) {
		d = *slot;
		d->refs++;
		pthread_mutex_unlock(&w->lock);
		goto out;
	}
	pthread_mutex_unlock(&w->lock);

	/* Opened without the lock: a slow disk must not hold up the others. */
	if ((fd = wfile_walk_dir(f, create)) == -1)
		return -1;
	d = xcalloc(1, sizeof *d);
	d->path = xstrdup(f->dirpart);
	d->fd = fd;
	d->refs = 1;
	pthread_mutex_lock(&w->lock);
	if ((slot = tsearch(d, &w->dirs, writer_dir_cmp)) == NULL)
		fatalx("%s: tsearch failed", __func__);
	if (*slot != d) {
		/* Another worker opened it meanwhile: share theirs. */
		(*slot)->refs++;
		writer_dir_free(d);
		d = *slot;
	}
	pthread_mutex_unlock(&w->lock);
out:
	f->dir = d;
	f->dirfd = d->fd;
	return 0;
}

/* Worker: the file is done with its directory. */
static void
wfile_close_dir(struct wfile *f)
{
	struct writer *w = f->writer;
	struct wdir *d = f->dir;
	int last;

	f->dirfd = -1;
	f->dir = NULL;
	if (d == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	last = --d->refs == 0;
	if (last && !d->stale)
		tdelete(d, &w->dirs, writer_dir_cmp);
	pthread_mutex_unlock(&w->lock);
	if (last)
		writer_dir_free(d);
}

/*
 * Worker: the directory was removed while open. Later files must not find
 * it, so that they make it anew; those holding it finish with it.
 */
static void
wfile_forget_dir(struct wfile *f)
{
	struct writer *w = f->writer;

	pthread_mutex_lock(&w->lock);
	if (!f->dir->stale) {
		f->dir->stale = 1;
		tdelete(f->dir, &w->dirs, writer_dir_cmp);
	}
	pthread_mutex_unlock(&w->lock);
	wfile_close_dir(f);
}

/* Worker: start the SHA-256 of a new file. */
static void
wfile_hash_start(struct wfile *f)
{
	if ((f->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(f->md, EVP_sha256(), NULL) != 1)
		fatalx("%s: cannot start a SHA-256", __func__);
	f->hashed = 0;
}

/* Worker: hash the bytes a resumed .part keeps, reading them back. */
static int
wfile_hash_kept(struct wfile *f)
{
	char buf[65536];
	unsigned long long off = 0;
	ssize_t n;
	int fd;

	wfile_hash_start(f);
	if (f->offset == 0)
		return 0;
	fd = openat(f->dirfd, f->partbase, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return -1;
	while (off < f->offset) {
		n = pread(fd, buf,
		    f->offset - off < sizeof buf ? (size_t)(f->offset - off)
						 : sizeof buf,
		    (off_t)off);
		if (n <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			close(fd);
			if (n == 0)
				errno = EIO;
			return -1;
		}
		EVP_DigestUpdate(f->md, buf, (size_t)n);
		off += (unsigned long long)n;
	}
	f->hashed = off;
	close(fd);
	return 0;
}

/* Worker: the digest is complete: keep it in hex. */
static void
wfile_hash_end(struct wfile *f)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;

	if (f->md == NULL || f->failed ||
	    EVP_DigestFinal_ex(f->md, md, &len) != 1 || len != 32)
		return;
	for (i = 0; i < len; i++) {
		f->sha256[2 * i] = hex[md[i] >> 4];
		f->sha256[2 * i + 1] = hex[md[i] & 0xf];
	}
	f->sha256[2 * len] = '\0';
	EVP_MD_CTX_free(f->md);
	f->md = NULL;
	pthread_mutex_lock(&f->writer->lock);
	f->hash_done = 1;
	pthread_mutex_unlock(&f->writer->lock);
}

/* Worker: make sure the .part file is open (and cut to offset on resume). */
static int
wfile_ensure_open(struct wfile *f)
{
	struct stat st;

	if (f->fd != -1)
		return 0;
	if (f->failed || wfile_open_dir(f, 1) == -1)
		return -1;
	if (!f->resume) {
		f->fd = openat(f->dirfd, f->partbase,
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0644);
		if (f->fd == -1 && errno == ENOENT && f->dir != NULL) {
			/* Removed since another file opened it: make it anew. */
			wfile_forget_dir(f);
			if (wfile_open_dir(f, 1) == -1)
				return -1;
			f->fd = openat(f->dirfd, f->partbase,
			    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
				O_CLOEXEC,
			    0644);
		}
		if (f->fd == -1) {
			wfile_fail(f, "open", f->partbase, errno);
			return -1;
		}
		f->opened = 1;
		wfile_hash_start(f);
		return 0;
	}
	f->fd =
	    openat(f->dirfd, f->partbase, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (f->fd == -1) {
		wfile_fail(f, "resume", f->partbase, errno);
		return -1;
	}
	f->opened = 1;
	/* Keep exactly the bytes the server was asked to continue after. */
	if (fstat(f->fd, &st) == -1) {
		wfile_fail(f, "resume", f->partbase, errno);
		return -1;
	}
	if ((unsigned long long)st.st_size < f->offset) {
		wfile_fail(
		    f, "resume: shorter than expected:", f->partbase, ERANGE);
		return -1;
	}
	if (ftruncate(f->fd, (off_t)f->offset) == -1 ||
	    lseek(f->fd, 0, SEEK_END) == -1) {
		wfile_fail(f, "resume", f->partbase, errno);
		return -1;
	}
	if (wfile_hash_kept(f) == -1) {
		wfile_fail(f, "resume: read", f->partbase, errno);
		return -1;
	}
	return 0;
}

/* Worker: write one chunk fully. */
static void
wfile_do_write(struct wfile *f, const char *data, size_t len)
{
	ssize_t n;

	if (wfile_ensure_open(f) == -1)
		return;
	if (f->md != NULL &&
	    EVP_DigestUpdate(f->md, data, len) == 1)
		f->hashed += len;
	while (len > 0) {
		n = write(f->fd, data, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			wfile_fail(f, "write", f->partbase, errno);
			return;
		}
		data += n;
		len -= (size_t)n;
	}
}

/* Worker: close the file and remove the .part. */
static void
wfile_do_abort(struct wfile *f)
{
	if (f->fd != -1) {
		close(f->fd);
		f->fd = -1;
	}
	/* Nothing on disk to remove if it was never opened. */
	if ((f->opened || f->resume) && wfile_open_dir(f, 0) == 0 &&
	    unlinkat(f->dirfd, f->partbase, 0) == -1 && errno != ENOENT)
		log_warn("writer: unlink %s", f->part);
}

/* tsearch order of name hints, by key. */
static int
writer_name_hint_cmp(const void *a, const void *b)
{
	const struct name_hint *x = a, *y = b;

	return strcmp(x->key, y->key);
}

/*
 * Worker: the suffix to try first for base in dir (relative to the root):
 * the remembered one, moved on past it so that another worker tries the
 * next; 0 when none is remembered.
 */
static unsigned long long
writer_hint_take(struct writer *w, const char *dir, const char *base)
{
	struct name_hint key, **slot;
	unsigned long long k = 0;

	xasprintf(&key.key, "%s/%s", dir, base);
	pthread_mutex_lock(&w->lock);
	if ((slot = tfind(&key, &w->name_hints, writer_name_hint_cmp)) != NULL)
		k = (*slot)->next++;
	pthread_mutex_unlock(&w->lock);
	free(key.key);
	return k;
}

/*
 * Worker: remember that suffix k of base in dir is taken. A new name
 * replaces the oldest one once NAME_HINT_MAX are kept.
 */
static void
writer_hint_note(
    struct writer *w, const char *dir, const char *base, unsigned long long k)
{
	struct name_hint *h, *old, **slot;

	h = xcalloc(1, sizeof *h);
	xasprintf(&h->key, "%s/%s", dir, base);
	h->next = k + 1;
	pthread_mutex_lock(&w->lock);
	if ((slot = tsearch(h, &w->name_hints, writer_name_hint_cmp)) == NULL)
		fatalx("%s: tsearch failed", __func__);
	if (*slot != h) {
		if ((*slot)->next < k + 1)
			(*slot)->next = k + 1;
		pthread_mutex_unlock(&w->lock);
		free(h->key);
		free(h);
		return;
	}
	if ((old = w->hint_ring[w->hint_pos]) != NULL)
		tdelete(old, &w->name_hints, writer_name_hint_cmp);
	w->hint_ring[w->hint_pos] = h;
	w->hint_pos = (w->hint_pos + 1) % NAME_HINT_MAX;
	pthread_mutex_unlock(&w->lock);
	if (old != NULL) {
		free(old->key);
		free(old);
	}
}

/* Worker: whether base with suffix k is in the directory dirfd. */
static int
wfile_name_taken(int dirfd, const char *base, unsigned long long k)
{
	struct stat st;
	char *name;
	int taken;

	name = wfile_suffixed(base, k);
	taken = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	free(name);
	return taken;
}

/*
 * Worker: a suffix at or after start that base does not have in dirfd.
 * Taken ones are passed in doubling steps, then the gap is halved, so a
 * run of n names already there (from before, or made by others) costs
 * O(log n) stats. The name is free, not always the lowest free one.
 */
static unsigned long long
wfile_free_suffix(int dirfd, const char *base, unsigned long long start)
{
	unsigned long long lo = start, hi, mid, step = 1;

	if (!wfile_name_taken(dirfd, base, lo))
		return lo;
	for (;; step *= 2) {
		hi = lo + step;
		if (!wfile_name_taken(dirfd, base, hi))
			break;
		lo = hi;
	}
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (wfile_name_taken(dirfd, base, mid))
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

/* Worker: a free suffix for base in dir (dirfd), remembered for the next. */
static unsigned long long
wfile_pick_suffix(struct wfile *f, int dirfd, const char *dir, const char *base)
{
	unsigned long long k;

	k = wfile_free_suffix(
	    dirfd, base, writer_hint_take(f->writer, dir, base));
	/* A name nobody else wants needs no hint. */
	if (k > 0)
		writer_hint_note(f->writer, dir, base, k);
	return k;
}

/* Worker: set the final name to base with suffix k in the file's directory. */
static void
wfile_set_final(struct wfile *f, unsigned long long k)
{
	free(f->final);
	free(f->finalpath);
	f->suffix = k;
	f->final = wfile_suffixed(f->base, k);
	xasprintf(&f->finalpath, "%s%s%s", f->dirpart,
	    *f->dirpart != '\0' ? "/" : "", f->final);
}

/* Worker: choose the final name as the policy says. */
static void
wfile_do_name(struct wfile *f)
{
	unsigned long long k = 0;

	if (f->policy == EXISTS_SUFFIX)
		k = wfile_pick_suffix(f, f->dirfd, f->dirpart, f->base);
	else if (f->policy == EXISTS_SKIP &&
	    wfile_name_taken(f->dirfd, f->base, 0))
		f->skipped = 1;
	wfile_set_final(f, k);
}

/* Worker: fsync (if asked) and close the .part. */
static int
wfile_do_close(struct wfile *f)
{
	int error;

	if (f->do_fsync && fsync(f->fd) == -1) {
		wfile_fail(f, "fsync", f->partbase, errno);
		return -1;
	}
	error = close(f->fd);
	f->fd = -1;
	if (error == -1) {
		wfile_fail(f, "close", f->partbase, errno);
		return -1;
	}
	return 0;
}

/*
 * Worker: name a file whose COMMIT is already queued behind its last
 * writes, so that the owner's record of the name (one more disk write, in
 * the job store) goes on while they run. The record carries the size, by
 * which a restart tells a complete .part from one the writes did not
 * finish. Not with fsync, where the record must follow the data.
 */
static int
wfile_name_early(struct wfile *f, struct op_list *ops)
{
	if (f->do_fsync || f->hash_first || f->failed || f->final != NULL ||
	    TAILQ_LAST(ops, op_list)->type != OP_COMMIT)
		return 0;
	/* An empty body still makes an empty file. */
	if (wfile_ensure_open(f) == -1)
		return 0; /* COMMIT finds the failure */
	wfile_do_name(f);
	f->named = 1;
	return 1;
}

/* Worker: write, fsync, close; choose the final name unless named early. */
static void
wfile_do_commit(struct wfile *f)
{
	if (f->named) {
		/* PREPARED is out: a failure waits for the RENAME. */
		if (!f->failed && wfile_do_close(f) == 0)
			wfile_hash_end(f);
		return;
	}
	/* An empty body still makes an empty file. */
	if (wfile_ensure_open(f) == -1 || f->failed ||
	    wfile_do_close(f) == -1) {
		wfile_do_abort(f);
		return;
	}
	wfile_do_name(f);
	wfile_hash_end(f);
}

/* Worker: rename the .part to name, never replacing unless overwrite. */
static int
wfile_try_rename(struct wfile *f, const char *name, int noreplace)
{
	if (!noreplace)
		return renameat(f->dirfd, f->partbase, f->dirfd, name);
	if (renameat2(
		f->dirfd, f->partbase, f->dirfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* File systems without RENAME_NOREPLACE: link fails on EEXIST too. */
	if (linkat(f->dirfd, f->partbase, f->dirfd, name, 0) == -1)
		return -1;
	if (unlinkat(f->dirfd, f->partbase, 0) == -1)
		log_warn("writer: unlink %s", f->part);
	return 0;
}

/*
 * Worker: rename the prepared file to f->target, a path in another
 * directory (made as needed), choosing the name there under the policy.
 */
static void
wfile_do_move(struct wfile *f)
{
	const char *slash;
	char *dir, *base, *name;
	unsigned long long k = 0;
	int tfd, rc;

	slash = strrchr(f->target, '/');
	dir = slash != NULL ? xstrndup(f->target, (size_t)(slash - f->target))
			    : xstrdup("");
	base = xstrdup(slash != NULL ? slash + 1 : f->target);
	if ((tfd = wfile_walk_path(f, dir, 1)) == -1) {
		wfile_do_abort(f);
		goto out;
	}
	if (f->policy == EXISTS_SKIP && wfile_name_taken(tfd, base, 0)) {
		f->skipped = 1;
		wfile_do_abort(f);
	} else if (f->policy == EXISTS_SUFFIX)
		k = wfile_pick_suffix(f, tfd, dir, base);
	for (;;) {
		name = wfile_suffixed(base, k);
		if (f->skipped)
			break;
		if (f->policy == EXISTS_OVERWRITE)
			rc = renameat(f->dirfd, f->partbase, tfd, name);
		else
			rc = renameat2(
			    f->dirfd, f->partbase, tfd, name, RENAME_NOREPLACE);
		if (rc == 0)
			break;
		if (errno != EEXIST || f->policy != EXISTS_SUFFIX) {
			wfile_fail_path(f, "rename to", f->target, errno);
			free(name);
			wfile_do_abort(f);
			close(tfd);
			goto out;
		}
		/* Someone took the name since it was chosen: the next one. */
		free(name);
		writer_hint_note(f->writer, dir, base, k);
		k = wfile_pick_suffix(f, tfd, dir, base);
	}
	free(f->finalpath);
	xasprintf(&f->finalpath, "%s%s%s", dir, *dir != '\0' ? "/" : "", name);
	free(f->final);
	f->final = name;
	if (f->do_fsync && fsync(tfd) == -1)
		log_warn("writer: fsync directory %s", dir);
	close(tfd);
	f->ok = 1;
out:
	free(dir);
	free(base);
}

/* Worker: drop the file if dup_of holds as many bytes; else rename it. */
static void
wfile_do_dedup(struct wfile *f)
{
	struct stat st;

	if (!f->failed &&
	    fstatat(f->writer->rootfd, f->dup_of, &st, AT_SYMLINK_NOFOLLOW) ==
		0 &&
	    S_ISREG(st.st_mode) && (unsigned long long)st.st_size == f->hashed) {
		wfile_do_abort(f);
		f->duplicate = 1;
		f->ok = 1;
		return;
	}
	wfile_do_rename(f);
}

/* Worker: rename the prepared file into place. */
static void
wfile_do_rename(struct wfile *f)
{
	if (f->failed) {
		/* Named early, then a write or the close failed. */
		wfile_do_abort(f);
		return;
	}
	if (f->target != NULL) {
		wfile_do_move(f);
		return;
	}
	if (f->skipped) {
		/* The existing file stays; ours is dropped. */
		wfile_do_abort(f);
		f->ok = 1;
		return;
	}
	for (;;) {
		if (wfile_try_rename(
			f, f->final, f->policy != EXISTS_OVERWRITE) == 0)
			break;
		if (errno != EEXIST || f->policy != EXISTS_SUFFIX) {
			wfile_fail(f, "rename to", f->final, errno);
			wfile_do_abort(f);
			return;
		}
		/* Someone took the name since it was chosen: the next one. */
		writer_hint_note(f->writer, f->dirpart, f->base, f->suffix);
		wfile_set_final(
		    f, wfile_pick_suffix(f, f->dirfd, f->dirpart, f->base));
	}
	if (f->do_fsync && fsync(f->dirfd) == -1)
		log_warn("writer: fsync directory %s", f->dirpart);
	f->ok = 1;
}

/* Worker: close and keep the .part, noting its size. */
static void
wfile_do_suspend(struct wfile *f)
{
	struct stat st;

	if (f->fd == -1) {
		/* Nothing was ever written: there is no .part to keep. */
		f->size = f->resume ? f->offset : 0;
		f->ok = !f->failed && f->resume;
		return;
	}
	if (fstat(f->fd, &st) == 0)
		f->size = (unsigned long long)st.st_size;
	if (close(f->fd) == -1)
		wfile_fail(f, "close", f->partbase, errno);
	f->fd = -1;
	f->ok = !f->failed;
}

/* Worker: the size of an existing .part, never following links. */
static void
wfile_do_probe(struct wfile *f)
{
	struct stat st;

	if (wfile_open_dir(f, 0) == -1)
		return;
	if (fstatat(f->dirfd, f->base, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		wfile_fail(f, "stat", f->base, errno);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		wfile_fail(f, "stat", f->base, EINVAL);
		return;
	}
	f->size = (unsigned long long)st.st_size;
	f->ok = 1;
}

/* Worker thread: take files off the ready queue and run their ops. */
static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct wfile *f;
	struct op_list ops;
	struct op *op;
	size_t written;
	int was_failed, finished, prepared, notify;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (TAILQ_EMPTY(&w->ready) && !w->stopping) {
			w->idle++;
			pthread_cond_wait(&w->cond, &w->lock);
			w->idle--;
			if (w->waking > 0)
				w->waking--;
		}
		if ((f = TAILQ_FIRST(&w->ready)) == NULL)
			break;
		TAILQ_REMOVE(&w->ready, f, ready_entry);
		w->nready--;
		writer_wake_locked(w);
		f->queued = 0;
		f->running = 1;
		TAILQ_INIT(&ops);
		TAILQ_CONCAT(&ops, &f->ops, entry);
		pthread_mutex_unlock(&w->lock);

		if (wfile_name_early(f, &ops)) {
			pthread_mutex_lock(&w->lock);
			f->ev_prepared = 1;
			wfile_report_locked(f);
			pthread_mutex_unlock(&w->lock);
			event_active(w->done_ev, 0, 0);
		}
		was_failed = f->failed;
		written = 0;
		finished = prepared = 0;
		while ((op = TAILQ_FIRST(&ops)) != NULL) {
			TAILQ_REMOVE(&ops, op, entry);
			switch (op->type) {
			case OP_WRITE:
				if (!f->failed)
					wfile_do_write(f, op->data, op->len);
				written += op->len;
				break;
			case OP_COMMIT:
				wfile_do_commit(f);
				if (f->named)
					break;
				if (f->failed)
					finished = 1;
				else
					prepared = 1;
				break;
			case OP_RENAME:
				wfile_do_rename(f);
				finished = 1;
				break;
			case OP_SUSPEND:
				wfile_do_suspend(f);
				finished = 1;
				break;
			case OP_ABORT:
				wfile_do_abort(f);
				finished = 1;
				break;
			case OP_PROBE:
				wfile_do_probe(f);
				finished = 1;
				break;
			case OP_DEDUP:
				wfile_do_dedup(f);
				finished = 1;
				break;
			case OP_TASK:
				f->task(f->task_arg);
				f->ok = 1;
				finished = 1;
				break;
			}
			if (op->data != NULL) {
				pthread_mutex_lock(&w->lock);
				writer_chunk_put_locked(w, op->data, op->cap);
				pthread_mutex_unlock(&w->lock);
			}
			free(op);
		}
		if (finished)
			wfile_close_dir(f);

		pthread_mutex_lock(&w->lock);
		f->running = 0;
		f->pending -= written;
		w->backlog -= written;
		notify = 0;
		if (finished) {
			f->ev_done = 1;
			notify = 1;
		} else {
			if (prepared) {
				f->ev_prepared = 1;
				notify = 1;
			} else if (f->failed && !was_failed && !f->named) {
				f->ev_failed = 1;
				notify = 1;
			}
			if (f->want_drain &&
			    f->pending <= PENDING_RESUME_BYTES) {
				f->want_drain = 0;
				f->ev_drained = 1;
				notify = 1;
			}
			wfile_ready_locked(f);
		}
		if (notify) {
			wfile_report_locked(f);
			pthread_mutex_unlock(&w->lock);
			event_active(w->done_ev, 0, 0);
			pthread_mutex_lock(&w->lock);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}
