/*
 * libcurl's multi socket interface on the libevent loop, in the shape of
 * curl's hiperfifo example: libcurl tells us which sockets to watch and
 * when to wake it (sock_cb, timer_cb); libevent tells libcurl which socket
 * became ready; after every curl_multi_socket_action finished transfers
 * are collected with curl_multi_info_read. Body bytes go straight into a
 * writer file; a transfer whose writer falls behind is paused and resumed
 * when the writer reports it drained, so memory stays bounded.
 */
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "config.h"
#include "defs.h"
#include "fetch.h"
#include "log.h"
#include "writer.h"
#include "xmalloc.h"

struct transfer {
	struct fetcher *fetcher;
	CURL *easy;
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
	const struct transfer_ops *ops; /* NULL once cancelled */
	void *arg;
	struct wfile *file;
	char *error;       /* our own reason, before libcurl's */
	long status;
	unsigned long long bytes;
	long long size;
	int in_multi;
	int paused;
	int closing;       /* commit or abort sent to the writer */
	TAILQ_ENTRY(transfer) entry;
};
TAILQ_HEAD(transfer_list, transfer);

struct fetcher {
	struct event_base *base;
	struct writer *writer;
	const struct config *cfg;
	CURLM *multi;
	struct event *timer;
	struct transfer_list transfers;
	size_t busy;
};

struct sockinfo {
	struct fetcher *fetcher;
	curl_socket_t fd;
	struct event *ev;
};

static void fetch_check_done(struct fetcher *);
static void transfer_file_cb(struct wfile *, enum wfile_event, void *);

/* libevent: a socket libcurl watches is ready. */
static void
fetch_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *fe = arg;
	int action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(fe->multi, fd, action, &running);
	fetch_check_done(fe);
	if (running <= 0)
		evtimer_del(fe->timer);
}

/* libevent: libcurl's timeout expired. */
static void
fetch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *fe = arg;
	int running;

	curl_multi_socket_action(fe->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	fetch_check_done(fe);
}

/* libcurl: wake me in timeout_ms (-1: never). */
static int
fetch_multi_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct fetcher *fe = arg;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(fe->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	/* Zero fires on the next loop turn: never call libcurl from here. */
	evtimer_add(fe->timer, &tv);
	return 0;
}

/* libcurl: watch this socket for what, or stop watching it. */
static int
fetch_sock_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
	struct fetcher *fe = arg;
	struct sockinfo *si = sockp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (si != NULL) {
			event_free(si->ev);
			free(si);
		}
		return 0;
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (si == NULL) {
		si = xcalloc(1, sizeof *si);
		si->fetcher = fe;
		si->fd = s;
		curl_multi_assign(fe->multi, s, si);
	} else
		event_free(si->ev);
	si->ev = event_new(fe->base, s, kind, fetch_event_cb, fe);
	if (si->ev == NULL)
		fatalx("fetch_sock_cb: event_new failed");
	event_add(si->ev, NULL);
	return 0;
}

/* Create the fetcher and its multi handle. */
struct fetcher *
fetcher_create(struct event_base *base, struct writer *writer,
    const struct config *cfg)
{
	struct fetcher *fe;

	fe = xcalloc(1, sizeof *fe);
	fe->base = base;
	fe->writer = writer;
	fe->cfg = cfg;
	TAILQ_INIT(&fe->transfers);
	if ((fe->multi = curl_multi_init()) == NULL)
		fatalx("fetcher_create: curl_multi_init failed");
	fe->timer = evtimer_new(base, fetch_timer_cb, fe);
	curl_multi_setopt(fe->multi, CURLMOPT_SOCKETFUNCTION, fetch_sock_cb);
	curl_multi_setopt(fe->multi, CURLMOPT_SOCKETDATA, fe);
	curl_multi_setopt(fe->multi, CURLMOPT_TIMERFUNCTION,
	    fetch_multi_timer_cb);
	curl_multi_setopt(fe->multi, CURLMOPT_TIMERDATA, fe);
	curl_multi_setopt(fe->multi, CURLMOPT_PIPELINING,
	    (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(fe->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)cfg->max_host_connections);
	/* Keep enough idle connections around to reuse them all. */
	curl_multi_setopt(fe->multi, CURLMOPT_MAXCONNECTS,
	    (long)cfg->max_transfers * 2);
	return fe;
}

/* Free a transfer that has no file and no handle in the multi. */
static void
transfer_free(struct transfer *t)
{
	struct fetcher *fe = t->fetcher;

	TAILQ_REMOVE(&fe->transfers, t, entry);
	fe->busy--;
	curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	free(t->error);
	free(t);
}

/* Take the transfer's handle out of the multi. */
static void
transfer_detach(struct transfer *t)
{
	if (!t->in_multi)
		return;
	curl_multi_remove_handle(t->fetcher->multi, t->easy);
	t->in_multi = 0;
}

/* Tear everything down; the writer must already be idle. */
void
fetcher_destroy(struct fetcher *fe)
{
	struct transfer *t;

	if (fe == NULL)
		return;
	while ((t = TAILQ_FIRST(&fe->transfers)) != NULL) {
		transfer_detach(t);
		if (t->file != NULL)
			log_warnx("fetcher_destroy: a file is still open");
		transfer_free(t);
	}
	curl_multi_cleanup(fe->multi);
	event_free(fe->timer);
	free(fe);
}

/* Transfers still holding a file or a connection. */
size_t
fetcher_busy(struct fetcher *fe)
{
	return fe->busy;
}

/* Report the end of a transfer to its owner and free it. */
static void
transfer_finish(struct transfer *t, int ok, const char *path, int skipped)
{
	struct fetch_result res;

	if (t->ops != NULL) {
		memset(&res, 0, sizeof res);
		res.ok = ok;
		res.http_status = t->status;
		res.error = t->error != NULL ? t->error : "unknown error";
		res.path = path;
		res.skipped = skipped;
		res.bytes = t->bytes;
		t->ops->done(t->arg, &res);
	}
	transfer_free(t);
}

/* Set the transfer's failure reason unless it has one. */
static void
transfer_set_error(struct transfer *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
transfer_set_error(struct transfer *t, const char *fmt, ...)
{
	va_list ap;

	if (t->error != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&t->error, fmt, ap) == -1)
		fatal("transfer_set_error");
	va_end(ap);
}

/* Open the transfer's file, naming it from the response. */
static int
transfer_open_file(struct transfer *t)
{
	const struct config *cfg = t->fetcher->cfg;
	char *url = NULL, *type = NULL, *path, *cause = NULL;

	curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url);
	curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type);
	path = t->ops->name(t->arg, url, type, &cause);
	if (path == NULL) {
		transfer_set_error(t, "%s", cause != NULL ? cause : "no name");
		free(cause);
		return -1;
	}
	t->file = wfile_open(t->fetcher->writer, path, cfg->on_exists,
	    cfg->fsync, transfer_file_cb, t);
	free(path);
	return 0;
}

/* Whether the last response was a 2xx. */
static int
transfer_status_ok(struct transfer *t)
{
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
	return t->status >= 200 && t->status < 300;
}

/* libcurl: body bytes arrived. */
static size_t
transfer_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct transfer *t = arg;
	const struct config *cfg = t->fetcher->cfg;
	size_t len = size * nmemb;
	curl_off_t cl;

	if (t->ops == NULL || t->closing)
		return 0;
	if (t->file == NULL) {
		if (!transfer_status_ok(t)) {
			transfer_set_error(t, "HTTP status %ld", t->status);
			return 0;
		}
		if (curl_easy_getinfo(t->easy,
		    CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
		    cl >= 0)
			t->size = cl;
		if (transfer_open_file(t) == -1)
			return 0;
	}
	if (cfg->max_item_size > 0 &&
	    t->bytes + len > (unsigned long long)cfg->max_item_size) {
		transfer_set_error(t, "body larger than max_item_size (%lld "
		    "bytes)", cfg->max_item_size);
		return 0;
	}
	if (wfile_pending(t->file) + len > PENDING_PAUSE_BYTES &&
	    wfile_pending(t->file) > 0) {
		/* The writer is behind: libcurl keeps the bytes until resumed. */
		t->paused = 1;
		wfile_want_drain(t->file);
		return CURL_WRITEFUNC_PAUSE;
	}
	wfile_write(t->file, data, len);
	t->bytes += len;
	return len;
}

/* libcurl finished the transfer with result. */
static void
transfer_curl_done(struct transfer *t, CURLcode result)
{
	int ok;

	transfer_detach(t);
	ok = transfer_status_ok(t);
	if (result != CURLE_OK) {
		if (result == CURLE_HTTP_RETURNED_ERROR)
			transfer_set_error(t, "HTTP status %ld", t->status);
		else if (t->errbuf[0] != '\0')
			transfer_set_error(t, "%s", t->errbuf);
		else
			transfer_set_error(t, "%s", curl_easy_strerror(result));
		ok = 0;
	} else if (!ok)
		transfer_set_error(t, "HTTP status %ld", t->status);

	if (ok && t->file == NULL && transfer_open_file(t) == -1)
		ok = 0;
	if (t->file == NULL) {
		transfer_finish(t, 0, NULL, 0);
		return;
	}
	t->closing = 1;
	if (ok)
		wfile_commit(t->file);
	else {
		transfer_set_error(t, "transfer failed");
		wfile_abort(t->file);
	}
}

/* Collect the transfers libcurl has finished. */
static void
fetch_check_done(struct fetcher *fe)
{
	struct transfer *t;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(fe->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
		transfer_curl_done(t, msg->data.result);
	}
}

/* Writer: the transfer's file drained, failed or is done. */
static void
transfer_file_cb(struct wfile *f, enum wfile_event ev, void *arg)
{
	struct transfer *t = arg;
	int ok;

	switch (ev) {
	case WFILE_DRAINED:
		if (t->paused && t->in_multi) {
			t->paused = 0;
			curl_easy_pause(t->easy, CURLPAUSE_CONT);
		}
		break;
	case WFILE_FAILED:
		if (t->closing)
			break;
		/* The disk failed: stop receiving and drop the file. */
		transfer_set_error(t, "%s", wfile_error(f));
		transfer_detach(t);
		t->closing = 1;
		wfile_abort(f);
		break;
	case WFILE_DONE:
		t->file = NULL;
		ok = t->error == NULL && wfile_ok(f) == 0;
		if (t->error == NULL && !ok)
			transfer_set_error(t, "%s", wfile_error(f));
		transfer_finish(t, ok, ok ? wfile_path(f) : NULL,
		    wfile_skipped(f));
		break;
	}
}

/* Start a transfer. */
struct transfer *
fetch_start(struct fetcher *fe, const char *url, char *const *headers,
    size_t nheaders, const struct transfer_ops *ops, void *arg)
{
	const struct config *cfg = fe->cfg;
	struct transfer *t;
	CURLMcode mc;
	size_t i;

	t = xcalloc(1, sizeof *t);
	t->fetcher = fe;
	t->ops = ops;
	t->arg = arg;
	t->size = -1;
	if ((t->easy = curl_easy_init()) == NULL)
		fatalx("fetch_start: curl_easy_init failed");
	for (i = 0; i < cfg->nheaders; i++)
		t->headers = curl_slist_append(t->headers, cfg->headers[i]);
	for (i = 0; i < nheaders; i++)
		t->headers = curl_slist_append(t->headers, headers[i]);

	curl_easy_setopt(t->easy, CURLOPT_URL, url);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, transfer_write_cb);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION,
	    cfg->max_redirects > 0 ? 1L : 0L);
	curl_easy_setopt(t->easy, CURLOPT_MAXREDIRS, (long)cfg->max_redirects);
	curl_easy_setopt(t->easy, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT, cfg->connect_timeout);
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT, cfg->timeout);
	curl_easy_setopt(t->easy, CURLOPT_USERAGENT, cfg->user_agent);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(t->easy, CURLOPT_BUFFERSIZE, cfg->buffer_size);
	curl_easy_setopt(t->easy, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS);
	/* Wait for a connection to multiplex on rather than open another. */
	curl_easy_setopt(t->easy, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(t->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	if (cfg->max_item_size > 0)
		curl_easy_setopt(t->easy, CURLOPT_MAXFILESIZE_LARGE,
		    (curl_off_t)cfg->max_item_size);

	TAILQ_INSERT_TAIL(&fe->transfers, t, entry);
	fe->busy++;
	if ((mc = curl_multi_add_handle(fe->multi, t->easy)) != CURLM_OK) {
		log_warnx("fetch_start: %s", curl_multi_strerror(mc));
		t->ops = NULL;
		transfer_free(t);
		return NULL;
	}
	t->in_multi = 1;
	return t;
}

/* Stop a transfer without telling its owner. */
void
fetch_cancel(struct transfer *t)
{
	t->ops = NULL;
	transfer_detach(t);
	if (t->file == NULL) {
		transfer_free(t);
		return;
	}
	if (!t->closing) {
		t->closing = 1;
		wfile_abort(t->file);
	}
	/* Freed when the writer reports the file done. */
}

/* Body bytes so far. */
unsigned long long
transfer_bytes(const struct transfer *t)
{
	return t->bytes;
}

/* Content-Length or -1. */
long long
transfer_size(const struct transfer *t)
{
	return t->size;
}
