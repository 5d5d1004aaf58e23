/*
 * libcurl's multi socket interface on the libevent loop, in the shape of
 * curl's hiperfifo example: libcurl tells us which sockets to watch and
 * when to wake it (sock_cb, timer_cb); libevent tells libcurl which socket
 * became ready; after every curl_multi_socket_action finished transfers
 * are collected with curl_multi_info_read.
 *
 * A transfer checks that the response is an image (status, Content-Type,
 * the body's first bytes) before any byte reaches the disk, then streams
 * the body into a writer file. A transfer whose writer falls behind is
 * paused and resumed when the writer reports it drained, so memory stays
 * bounded. A transient failure keeps the .part (when the server gave a
 * validator) so the next attempt can continue with Range and If-Range; a
 * server that answers such a request with 200 gets a clean restart.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "config.h"
#include "defs.h"
#include "fetch.h"
#include "image.h"
#include "log.h"
#include "netopt.h"
#include "netpolicy.h"
#include "writer.h"
#include "xmalloc.h"

struct transfer {
	struct fetcher *fetcher;
	CURL *easy; /* NULL once libcurl is done with the transfer */
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
	const struct transfer_ops *ops; /* NULL once cancelled */
	void *arg;
	struct wfile *file;
	unsigned int easy_gen; /* fetcher->gen when easy was set up */

	/* What the owner asked for. */
	char *path; /* final path of an earlier attempt */
	char *part; /* .part to resume */
	unsigned long long want_offset;
	char *validator;

	/* What the response said. */
	long status;
	long retry_after; /* seconds from Retry-After, or -1 */
	char *etag;
	char *last_modified;
	long long range_start; /* from Content-Range, -1 if none */
	unsigned long long offset; /* bytes kept from the .part */
	unsigned long long bytes; /* body bytes of this attempt */
	long long size;
	unsigned char head[IMAGE_SNIFF_BYTES];
	size_t headlen;
	int status_checked; /* status and type checked */
	int checked; /* and the signature: the file is open */

	/* How it ends. */
	char *error;
	char denied[128]; /* why deny_networks refused an address, or "" */
	int permanent; /* a failure that retrying cannot fix */
	int keep_part; /* suspend rather than abort on failure */
	int in_multi;
	int paused;
	int closing; /* commit, suspend or abort sent to the writer */
	int deferred; /* on the deferred list */
	int hold; /* the file waits for fetch_release */
	int hash_first;
	int skip_existing; /* on_exists "skip" for this transfer */
	int conditional; /* sent If-None-Match or If-Modified-Since */
	int not_modified; /* and got 304 */
	int duplicate;
	char *sha256;

	/* A page's body, in memory. */
	int page;
	int page_is_image;
	long long max_body;
	char *body;
	size_t body_len;
	size_t body_cap;
	TAILQ_ENTRY(transfer) entry;
	TAILQ_ENTRY(transfer) defer_entry;
};
TAILQ_HEAD(transfer_list, transfer);

struct fetcher {
	struct event_base *base;
	struct writer *writer;
	const struct config *cfg;
	CURLM *multi;
	struct event *timer;
	struct event *defer_ev;
	struct transfer_list transfers;
	struct transfer_list deferred;
	size_t busy;
	/*
	 * Easy handles kept for reuse, with their common options set: no
	 * curl_easy_init per transfer. (libcurl 7.88 still allocates the
	 * receive buffer for each transfer and frees it at the end.)
	 */
	CURL **idle;
	size_t nidle;
	size_t idle_max;
	unsigned int gen; /* config generation of the kept handles */
	struct sockinfo **socks; /* by fd */
	size_t nsocks;
	struct netpolicy *policy; /* deny_networks and allow_networks */
};

/*
 * A socket libcurl has told us about, found by its fd in fetcher->socks.
 * When libcurl stops watching a connection it keeps for reuse, the event
 * stays registered for reads ("parked"): the next transfer on it asks for
 * reads again, and that then costs no epoll_ctl. A parked socket that
 * becomes readable (the server closed it) is unregistered at once; libcurl
 * finds it dead when it next checks.
 *
 * Only connection sockets, which libcurl opens and closes through
 * fetch_open_cb and fetch_close_cb, are parked: the event goes before the
 * socket is closed, so a new socket with the same fd never meets a stale
 * registration. Others (the threaded resolver's socketpair, which libcurl
 * closes itself) lose their event as soon as libcurl stops watching.
 */
struct sockinfo {
	struct fetcher *fetcher;
	struct event ev; /* assigned anew when the interest changes */
	short kind; /* EV_READ and EV_WRITE registered; 0: not added */
	int owned; /* opened by fetch_open_cb: closed by fetch_close_cb */
	int parked; /* libcurl no longer watches it */
};

static void fetch_check_done(struct fetcher *);
static size_t transfer_header_cb(char *, size_t, size_t, void *);
static size_t transfer_write_cb(char *, size_t, size_t, void *);
static void transfer_file_cb(struct wfile *, enum wfile_event, void *);
static void transfer_finish(
    struct transfer *, int ok, const char *path, int skipped);

/* libevent: a socket libcurl watches, or a parked one, is ready. */
static void
fetch_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sockinfo *si = arg;
	struct fetcher *fe = si->fetcher;
	int action = 0, running;

	if (si->parked) {
		event_del(&si->ev);
		si->kind = 0;
		return;
	}
	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	/* This may park or close the socket: si is not used after it. */
	curl_multi_socket_action(fe->multi, fd, action, &running);
	/*
	 * No evtimer_del when nothing runs: finishing transfers here may start
	 * new ones whose timeout libcurl has just set, and libcurl says -1
	 * through fetch_multi_timer_cb itself when it wants no timer.
	 */
	fetch_check_done(fe);
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

/* The sockinfo of fd, or NULL. */
static struct sockinfo *
fetch_sock_find(struct fetcher *fe, curl_socket_t s)
{
	if (s < 0 || (size_t)s >= fe->nsocks)
		return NULL;
	return fe->socks[s];
}

/* A new sockinfo for fd, in the table. */
static struct sockinfo *
fetch_sock_new(struct fetcher *fe, curl_socket_t s)
{
	struct sockinfo *si;
	size_t n;

	if ((size_t)s >= fe->nsocks) {
		n = fe->nsocks < 64 ? 64 : fe->nsocks;
		while (n <= (size_t)s)
			n *= 2;
		fe->socks = xreallocarray(fe->socks, n, sizeof *fe->socks);
		memset(fe->socks + fe->nsocks, 0,
		    (n - fe->nsocks) * sizeof *fe->socks);
		fe->nsocks = n;
	}
	si = xcalloc(1, sizeof *si);
	si->fetcher = fe;
	fe->socks[s] = si;
	return si;
}

/* Unregister and forget fd's sockinfo, if it has one. */
static void
fetch_sock_free(struct fetcher *fe, curl_socket_t s)
{
	struct sockinfo *si;

	if ((si = fetch_sock_find(fe, s)) == NULL)
		return;
	if (si->kind != 0)
		event_del(&si->ev);
	fe->socks[s] = NULL;
	free(si);
}

/* libcurl: watch this socket for what, or stop watching it. */
static int
fetch_sock_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
	struct fetcher *fe = arg;
	struct sockinfo *si;
	short kind;

	si = fetch_sock_find(fe, s);
	if (what == CURL_POLL_REMOVE) {
		if (si == NULL)
			return 0;
		if (!si->owned) {
			fetch_sock_free(fe, s);
			return 0;
		}
		/* Reads are quiet on an idle connection; writes are not. */
		if (si->kind & EV_WRITE) {
			event_del(&si->ev);
			si->kind = 0;
		}
		si->parked = 1;
		return 0;
	}
	kind = ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (si == NULL)
		si = fetch_sock_new(fe, s);
	si->parked = 0;
	if (si->kind == kind)
		return 0;
	if (si->kind != 0)
		event_del(&si->ev);
	/* The struct event lives in sockinfo: no allocation per change. */
	event_assign(
	    &si->ev, fe->base, s, EV_PERSIST | kind, fetch_event_cb, si);
	event_priority_set(&si->ev, EV_PRIO_BULK);
	event_add(&si->ev, NULL);
	si->kind = kind;
	return 0;
}

/*
 * libcurl: open a connection's socket, once the address is known to be
 * allowed. libcurl calls this for every address it tries, for the first
 * request and for each redirect, after its own resolving: the check is on
 * the address actually connected to, so a name that resolves to a denied
 * address (at any time, DNS rebinding included) is refused. A refusal is
 * kept for the transfer's error; libcurl reports it as
 * CURLE_COULDNT_CONNECT once no address is left.
 */
static curl_socket_t
fetch_open_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct transfer *t = arg;
	struct fetcher *fe;
	curl_socket_t s;

	if (t == NULL)
		return CURL_SOCKET_BAD;
	fe = t->fetcher;
	if (netpolicy_active(fe->policy) &&
	    netpolicy_check(
		fe->policy, &addr->addr, t->denied, sizeof t->denied) != 0) {
		log_info("fetch: %s", t->denied);
		return CURL_SOCKET_BAD;
	}
	s = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
	if (s == CURL_SOCKET_BAD)
		return s;
	fetch_sock_free(fe, s); /* stale: closed without fetch_close_cb */
	fetch_sock_new(fe, s)->owned = 1;
	return s;
}

/* libcurl: close a connection's socket; its event goes first. */
static int
fetch_close_cb(void *arg, curl_socket_t s)
{
	fetch_sock_free(arg, s);
	return close(s) == 0 ? 0 : 1;
}

/* Finish transfers that ended without a file, outside the caller's stack. */
static void
fetch_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *fe = arg;
	struct transfer *t;

	while ((t = TAILQ_FIRST(&fe->deferred)) != NULL) {
		TAILQ_REMOVE(&fe->deferred, t, defer_entry);
		t->deferred = 0;
		transfer_finish(t, 0, NULL, 0);
	}
}

/* Create the fetcher and its multi handle. */
struct fetcher *
fetcher_create(
    struct event_base *base, struct writer *writer, const struct config *cfg)
{
	struct fetcher *fe;

	fe = xcalloc(1, sizeof *fe);
	fe->base = base;
	fe->writer = writer;
	fe->cfg = cfg;
	TAILQ_INIT(&fe->transfers);
	TAILQ_INIT(&fe->deferred);
	if ((fe->multi = curl_multi_init()) == NULL)
		fatalx("fetcher_create: curl_multi_init failed");
	fe->timer = evtimer_new(base, fetch_timer_cb, fe);
	fe->defer_ev = event_new(base, -1, 0, fetch_defer_cb, fe);
	event_priority_set(fe->timer, EV_PRIO_BULK);
	event_priority_set(fe->defer_ev, EV_PRIO_BULK);
	curl_multi_setopt(fe->multi, CURLMOPT_SOCKETFUNCTION, fetch_sock_cb);
	curl_multi_setopt(fe->multi, CURLMOPT_SOCKETDATA, fe);
	curl_multi_setopt(
	    fe->multi, CURLMOPT_TIMERFUNCTION, fetch_multi_timer_cb);
	curl_multi_setopt(fe->multi, CURLMOPT_TIMERDATA, fe);
	curl_multi_setopt(
	    fe->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	fetcher_reconfigure(fe);
	return fe;
}

/* Apply the caps and the network policy of the current config. */
void
fetcher_reconfigure(struct fetcher *fe)
{
	const struct config *cfg = fe->cfg;
	struct netpolicy *np;
	char *why = NULL;

	/* config_load has checked every entry. */
	np = netpolicy_create(cfg->allow_networks, cfg->nallow_networks,
	    cfg->deny_networks, cfg->ndeny_networks, &why);
	if (np == NULL)
		fatalx("fetcher_reconfigure: %s", why);
	netpolicy_destroy(fe->policy);
	fe->policy = np;
	curl_multi_setopt(fe->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)fe->cfg->max_host_connections);
	/* Keep enough idle connections around to reuse them all. */
	curl_multi_setopt(
	    fe->multi, CURLMOPT_MAXCONNECTS, (long)fe->cfg->max_transfers * 2);
	fe->idle_max = (size_t)fe->cfg->max_transfers;
	fe->idle = xreallocarray(fe->idle, fe->idle_max, sizeof *fe->idle);
	/* Kept handles carry the old config's options: make new ones. */
	while (fe->nidle > 0)
		curl_easy_cleanup(fe->idle[--fe->nidle]);
	fe->gen++;
}

/* A handle with the options common to all transfers set. */
static CURL *
fetch_easy_get(struct fetcher *fe)
{
	const struct config *cfg = fe->cfg;
	CURL *easy;

	if (fe->nidle > 0)
		return fe->idle[--fe->nidle];
	if ((easy = curl_easy_init()) == NULL)
		fatalx("%s: curl_easy_init failed", __func__);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, transfer_write_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, transfer_header_cb);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, fetch_open_cb);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, NULL);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, fetch_close_cb);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, fe);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(
	    easy, CURLOPT_FOLLOWLOCATION, cfg->max_redirects > 0 ? 1L : 0L);
	curl_easy_setopt(easy, CURLOPT_MAXREDIRS, (long)cfg->max_redirects);
	curl_easy_setopt(easy, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, cfg->connect_timeout);
	if (cfg->stall_time > 0) {
		curl_easy_setopt(
		    easy, CURLOPT_LOW_SPEED_LIMIT, cfg->stall_speed);
		curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, cfg->stall_time);
	}
	netopt_common(easy, cfg);
	curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, cfg->buffer_size);
	curl_easy_setopt(
	    easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	if (cfg->max_item_size > 0)
		curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
		    (curl_off_t)cfg->max_item_size);
	return easy;
}

/* Give the transfer's handle, out of the multi, back for reuse. */
static void
transfer_put_easy(struct transfer *t)
{
	struct fetcher *fe = t->fetcher;

	if (t->easy == NULL)
		return;
	if (t->easy_gen == fe->gen && fe->nidle < fe->idle_max) {
		/*
		 * No curl_easy_reset: the common options stay as they are and
		 * fetch_start sets every per-transfer one. These point into the
		 * transfer, which is about to go.
		 */
		curl_easy_setopt(t->easy, CURLOPT_PRIVATE, NULL);
		curl_easy_setopt(t->easy, CURLOPT_OPENSOCKETDATA, NULL);
		curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, NULL);
		curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, NULL);
		curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(t->easy, CURLOPT_REFERER, NULL);
		fe->idle[fe->nidle++] = t->easy;
	} else
		curl_easy_cleanup(t->easy);
	t->easy = NULL;
}

/* Free a transfer that has no file and no handle in the multi. */
static void
transfer_free(struct transfer *t)
{
	struct fetcher *fe = t->fetcher;

	TAILQ_REMOVE(&fe->transfers, t, entry);
	fe->busy--;
	transfer_put_easy(t);
	curl_slist_free_all(t->headers);
	free(t->path);
	free(t->part);
	free(t->validator);
	free(t->etag);
	free(t->last_modified);
	free(t->error);
	free(t->sha256);
	free(t->body);
	free(t);
}

/* Take the transfer's handle out of the multi, freeing its slot. */
static void
transfer_detach(struct transfer *t)
{
	if (!t->in_multi)
		return;
	curl_multi_remove_handle(t->fetcher->multi, t->easy);
	t->in_multi = 0;
	if (t->ops != NULL && t->ops->released != NULL)
		t->ops->released(t->arg);
}

/* Tear everything down; the writer must already be idle. */
void
fetcher_destroy(struct fetcher *fe)
{
	struct transfer *t;
	size_t i;

	if (fe == NULL)
		return;
	while ((t = TAILQ_FIRST(&fe->transfers)) != NULL) {
		t->ops = NULL;
		transfer_detach(t);
		if (t->file != NULL)
			log_warnx("fetcher_destroy: a file is still open");
		transfer_free(t);
	}
	while (fe->nidle > 0)
		curl_easy_cleanup(fe->idle[--fe->nidle]);
	free(fe->idle);
	curl_multi_cleanup(fe->multi);
	/* Sockets libcurl left open (none, normally) lose their events. */
	for (i = 0; i < fe->nsocks; i++)
		fetch_sock_free(fe, (curl_socket_t)i);
	free(fe->socks);
	event_free(fe->timer);
	event_free(fe->defer_ev);
	netpolicy_destroy(fe->policy);
	free(fe);
}

/* Transfers still holding a file or a connection. */
size_t
fetcher_busy(struct fetcher *fe)
{
	return fe->busy;
}

/* The validator for If-Range: a strong ETag, else Last-Modified. */
static const char *
transfer_validator(struct transfer *t)
{
	if (t->etag != NULL && strncmp(t->etag, "W/", 2) != 0)
		return t->etag;
	return t->last_modified;
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
		res.path = path != NULL ? path : t->path;
		res.skipped = skipped;
		res.bytes = t->offset + t->bytes;
		res.retryable = !ok && !t->permanent;
		res.retry_after = -1;
		if (!ok && t->part != NULL) {
			/* A .part stays on disk: the owner resumes or removes it. */
			res.part = t->part;
			res.part_size = t->want_offset;
			res.validator = transfer_validator(t) != NULL
			    ? transfer_validator(t)
			    : t->validator;
		}
		res.retry_after = t->retry_after;
		res.not_modified = t->not_modified;
		res.etag = t->etag;
		res.last_modified = t->last_modified;
		res.sha256 = t->sha256;
		res.duplicate = t->duplicate;
		if (t->page) {
			curl_easy_getinfo(
			    t->easy, CURLINFO_CONTENT_TYPE, &res.content_type);
			curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL,
			    &res.effective_url);
			res.body = t->body;
			res.body_len = t->body_len;
			res.page_is_image = t->page_is_image;
		}
		t->ops->done(t->arg, &res);
	}
	transfer_free(t);
}

/* Set the transfer's failure reason unless it has one. */
static void __attribute__((format(printf, 3, 4)))
transfer_fail(struct transfer *t, int permanent, const char *fmt, ...)
{
	va_list ap;

	if (t->error != NULL)
		return;
	t->permanent = permanent;
	va_start(ap, fmt);
	if (vasprintf(&t->error, fmt, ap) == -1)
		fatal("transfer_fail");
	va_end(ap);
}

/* Report a transfer without a file from the loop, not the caller's stack. */
static void
transfer_defer(struct transfer *t)
{
	if (t->deferred)
		return;
	t->deferred = 1;
	TAILQ_INSERT_TAIL(&t->fetcher->deferred, t, defer_entry);
	event_active(t->fetcher->defer_ev, 0, 0);
}

/* libcurl: one header line of a response. */
static size_t
transfer_header_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * n, vlen;
	const char *v;
	char **field = NULL;

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* A new response (after a redirect): forget the last one's. */
		free(t->etag);
		free(t->last_modified);
		t->etag = t->last_modified = NULL;
		t->range_start = -1;
		return len;
	}
	if (len > 5 && strncasecmp(buf, "ETag:", 5) == 0) {
		field = &t->etag;
		v = buf + 5;
	} else if (len > 14 && strncasecmp(buf, "Last-Modified:", 14) == 0) {
		field = &t->last_modified;
		v = buf + 14;
	} else if (len > 14 && strncasecmp(buf, "Content-Range:", 14) == 0) {
		v = buf + 14;
		while (v < buf + len && (*v == ' ' || *v == '\t'))
			v++;
		if (buf + len - v > 6 && strncasecmp(v, "bytes ", 6) == 0)
			t->range_start = strtoll(v + 6, NULL, 10);
		return len;
	} else
		return len;
	while (v < buf + len && (*v == ' ' || *v == '\t'))
		v++;
	vlen = (size_t)(buf + len - v);
	while (vlen > 0 &&
	    (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	free(*field);
	*field = vlen > 0 && vlen < 1024 ? xstrndup(v, vlen) : NULL;
	return len;
}

/* Check the status of the response whose body starts; decide on resume. */
static int
transfer_check_status(struct transfer *t)
{
	const struct config *cfg = t->fetcher->cfg;
	curl_off_t cl;
	char *type = NULL;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
	if (t->status == 206 && t->want_offset > 0 &&
	    t->range_start == (long long)t->want_offset)
		t->offset = t->want_offset;
	else if (t->status == 206) {
		transfer_fail(t, 0,
		    "unexpected partial response (Content-Range "
		    "does not start at %llu)",
		    t->want_offset);
		return -1;
	} else if (t->status < 200 || t->status >= 300) {
		transfer_fail(t, 0, "HTTP status %ld", t->status);
		return -1;
	} else if (t->want_offset > 0) {
		/* The server ignored Range or the file changed: start over. */
		log_debug("fetch: %s: got %ld to a range request, restarting",
		    t->path != NULL ? t->path : "?", t->status);
		free(t->part);
		t->part = NULL;
	}
	if (curl_easy_getinfo(
		t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
	    cl >= 0)
		t->size = (long long)t->offset + cl;
	if (t->offset > 0)
		return 0;
	curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type);
	if (!image_type_allowed(
		type, cfg->allowed_types, cfg->nallowed_types)) {
		transfer_fail(t, 1,
		    "not an image: Content-Type \"%.100s\" is "
		    "not in allowed_types",
		    type != NULL ? type : "(none)");
		return -1;
	}
	return 0;
}

/* Check the body's first bytes carry an image signature. */
static int
transfer_check_head(struct transfer *t)
{
	const struct config *cfg = t->fetcher->cfg;

	if (t->offset > 0)
		return 0;
	if (t->headlen == 0) {
		transfer_fail(t, 1, "not an image: the body is empty");
		return -1;
	}
	if (image_sniff(t->head, t->headlen, cfg->allow_svg) != NULL)
		return 0;
	if (image_looks_html(t->head, t->headlen))
		transfer_fail(t, 1, "not an image: the body is an HTML page");
	else
		transfer_fail(t, 1,
		    "not an image: the body starts with no "
		    "known image signature");
	return -1;
}

/* Open the transfer's file, naming it from the response. */
static int
transfer_open_file(struct transfer *t)
{
	const struct config *cfg = t->fetcher->cfg;
	struct wfile_spec spec;
	char *url = NULL, *type = NULL, *path, *cause = NULL;

	if (t->path != NULL)
		path = xstrdup(t->path);
	else {
		curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url);
		curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type);
		path = t->ops->name(t->arg, url, type, &cause);
		if (path == NULL) {
			transfer_fail(
			    t, 1, "%s", cause != NULL ? cause : "no name");
			free(cause);
			return -1;
		}
		t->path = xstrdup(path);
	}
	memset(&spec, 0, sizeof spec);
	spec.relpath = path;
	spec.part = t->offset > 0 ? t->part : NULL;
	spec.offset = t->offset;
	spec.policy = t->skip_existing ? EXISTS_SKIP : cfg->on_exists;
	spec.do_fsync = cfg->fsync;
	spec.hold = t->hold;
	spec.hash_first = t->hash_first;
	t->file = wfile_open(t->fetcher->writer, &spec, transfer_file_cb, t);
	free(path);
	if (t->file == NULL) {
		transfer_fail(t, 0, "%s is in use by another item", t->part);
		return -1;
	}
	/* A body that is being written can be resumed if it has a validator. */
	t->keep_part = transfer_validator(t) != NULL;
	if (t->ops->opened != NULL)
		t->ops->opened(t->arg, t->path, wfile_part(t->file),
		    transfer_validator(t), t->size);
	return 0;
}

/* Pass body bytes to the file, pausing while the writer is behind. */
static size_t
transfer_write(struct transfer *t, const char *data, size_t len)
{
	size_t pending = wfile_pending(t->file);

	if (pending > 0 && pending + len > PENDING_PAUSE_BYTES) {
		/* libcurl keeps the bytes and offers them again on resume. */
		t->paused = 1;
		wfile_want_drain(t->file);
		return CURL_WRITEFUNC_PAUSE;
	}
	wfile_write(t->file, data, len);
	t->bytes += len;
	return len;
}

/* Check status and type once, when the body (or its end) arrives. */
static int
transfer_check_once(struct transfer *t)
{
	if (t->status_checked)
		return 0;
	t->status_checked = 1;
	return transfer_check_status(t);
}

/* Check the collected head, open the file and write the head out. */
static int
transfer_begin_file(struct transfer *t)
{
	if (transfer_check_head(t) == -1 || transfer_open_file(t) == -1)
		return -1;
	t->checked = 1;
	if (t->headlen > 0) {
		wfile_write(t->file, t->head, t->headlen);
		t->bytes += t->headlen;
	}
	return 0;
}

/* Whether a Content-Type is that of an HTML page. */
static int
fetch_type_is_html(const char *type)
{
	size_t n;

	if (type == NULL)
		return 0;
	type += strspn(type, " \t");
	n = strcspn(type, "; \t");
	return (n == 9 && strncasecmp(type, "text/html", 9) == 0) ||
	    (n == 21 && strncasecmp(type, "application/xhtml+xml", 21) == 0);
}

/* Check a page's status and type when its body starts. */
static int
transfer_check_page(struct transfer *t)
{
	char *type = NULL;
	curl_off_t cl;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
	if (t->status < 200 || t->status >= 300) {
		transfer_fail(t, 0, "HTTP status %ld", t->status);
		return -1;
	}
	curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type);
	if (type != NULL && strncasecmp(type, "image/", 6) == 0) {
		/* Not a page but a picture: the owner fetches it as one. */
		t->page_is_image = 1;
		return -1;
	}
	if (type != NULL && !fetch_type_is_html(type)) {
		transfer_fail(t, 1,
		    "not an HTML page: Content-Type \"%.100s\"", type);
		return -1;
	}
	if (curl_easy_getinfo(
		t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
	    cl > t->max_body) {
		transfer_fail(t, 1,
		    "page larger than max_page_size (%lld bytes): "
		    "Content-Length %lld",
		    t->max_body, (long long)cl);
		return -1;
	}
	return 0;
}

/* A page's body bytes: kept in memory up to max_body. */
static size_t
transfer_page_write(struct transfer *t, const char *data, size_t len)
{
	size_t cap;

	if (!t->status_checked) {
		t->status_checked = 1;
		if (transfer_check_page(t) == -1)
			return 0;
	}
	if ((long long)(t->body_len + len) > t->max_body) {
		transfer_fail(t, 1, "page larger than max_page_size (%lld bytes)",
		    t->max_body);
		return 0;
	}
	if (t->body_len + len + 1 > t->body_cap) {
		cap = t->body_cap == 0 ? 65536 : t->body_cap;
		while (cap < t->body_len + len + 1)
			cap *= 2;
		t->body = xrealloc(t->body, cap);
		t->body_cap = cap;
	}
	memcpy(t->body + t->body_len, data, len);
	t->body_len += len;
	t->body[t->body_len] = '\0';
	t->bytes += len;
	return len;
}

/* libcurl: body bytes arrived. */
static size_t
transfer_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct transfer *t = arg;
	const struct config *cfg = t->fetcher->cfg;
	size_t len = size * nmemb, n = 0;

	if (t->ops == NULL || t->closing || t->error != NULL ||
	    t->page_is_image)
		return 0;
	if (t->page)
		return transfer_page_write(t, data, len);
	/* Before the file opens, the head is not yet counted in bytes. */
	if (cfg->max_item_size > 0 &&
	    t->offset + t->bytes + (t->checked ? 0 : t->headlen) + len >
		(unsigned long long)cfg->max_item_size) {
		transfer_fail(t, 1,
		    "body larger than max_item_size (%lld "
		    "bytes)",
		    cfg->max_item_size);
		return 0;
	}
	if (t->checked)
		return transfer_write(t, data, len);

	if (transfer_check_once(t) == -1)
		return 0;
	if (t->offset == 0) {
		/* Collect the first bytes before anything reaches the disk. */
		n = IMAGE_SNIFF_BYTES - t->headlen;
		if (n > len)
			n = len;
		memcpy(t->head + t->headlen, data, n);
		t->headlen += n;
		if (t->headlen < IMAGE_SNIFF_BYTES)
			return len;
	}
	if (transfer_begin_file(t) == -1)
		return 0;
	/* A new file has nothing pending: the rest is taken whole. */
	if (len > n) {
		wfile_write(t->file, data + n, len - n);
		t->bytes += len - n;
	}
	return len;
}

/* Whether a libcurl result is worth another attempt. */
static int
transfer_transient(CURLcode rc, long status)
{
	switch (rc) {
	case CURLE_HTTP_RETURNED_ERROR:
		return status == 408 || status == 429 || status == 500 ||
		    status == 502 || status == 503 || status == 504;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

/* Fail the transfer with libcurl's result, said as clearly as we can. */
static void
transfer_fail_curl(struct transfer *t, CURLcode result)
{
	char *msg;

	if ((msg = netopt_error(t->easy, result, t->errbuf)) != NULL) {
		transfer_fail(
		    t, !transfer_transient(result, t->status), "%s", msg);
		free(msg);
		return;
	}
	transfer_fail(t, !transfer_transient(result, t->status), "%s",
	    t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(result));
}

/* End the transfer's file: keep it for a resume, or remove it. */
static void
transfer_close_file(struct transfer *t)
{
	t->closing = 1;
	if (t->keep_part && !t->permanent && t->offset + t->bytes > 0)
		wfile_suspend(t->file);
	else
		wfile_abort(t->file);
}

/* libcurl finished the transfer with result. */
static void
transfer_curl_done(struct transfer *t, CURLcode result)
{
	curl_off_t ra = -1;

	transfer_detach(t);
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
	if (curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK &&
	    ra > 0)
		t->retry_after = (long)ra;
	/* No address was allowed: that is the reason, and it is final. */
	if (result == CURLE_COULDNT_CONNECT && t->denied[0] != '\0')
		transfer_fail(t, 1, "%s", t->denied);
	if (result == CURLE_OK && t->status == 304 && t->conditional) {
		/* Unchanged since the cached fetch: nothing to write. */
		t->not_modified = 1;
		transfer_finish(t, 1, NULL, 0);
		return;
	}
	if (t->page) {
		if (t->page_is_image)
			transfer_finish(t, 1, NULL, 0);
		else if (result == CURLE_OK && !t->status_checked &&
		    transfer_check_page(t) == -1 && t->page_is_image)
			transfer_finish(t, 1, NULL, 0);
		else if (result == CURLE_OK && t->error == NULL)
			transfer_finish(t, 1, NULL, 0);
		else {
			if (t->error == NULL && result == CURLE_HTTP_RETURNED_ERROR)
				transfer_fail(t, !transfer_transient(result, t->status),
				    "HTTP status %ld", t->status);
			else if (t->error == NULL)
				transfer_fail_curl(t, result);
			transfer_finish(t, 0, NULL, 0);
		}
		return;
	}
	if (result != CURLE_OK) {
		if (result == CURLE_HTTP_RETURNED_ERROR && t->status == 416 &&
		    t->want_offset > 0) {
			/* The kept .part no longer fits the file: start over. */
			free(t->part);
			t->part = NULL;
			transfer_fail(t, 0,
			    "HTTP status 416 to a resume request; "
			    "starting over");
		} else if (result == CURLE_HTTP_RETURNED_ERROR)
			transfer_fail(t, !transfer_transient(result, t->status),
			    "HTTP status %ld", t->status);
		else
			transfer_fail_curl(t, result);
	} else if (!t->checked) {
		/* A body shorter than the sniffed head, or none at all. */
		if (transfer_check_once(t) == 0)
			transfer_begin_file(t);
	}

	if (t->file == NULL) {
		transfer_finish(t, 0, NULL, 0);
		return;
	}
	/*
	 * The network part is over: the handle goes back now, not when the
	 * file is in place, so items still being written hold none.
	 */
	transfer_put_easy(t);
	if (t->error != NULL) {
		transfer_close_file(t);
		return;
	}
	t->closing = 1;
	wfile_commit(t->file);
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

/* Writer: the transfer's file drained, failed, is prepared or done. */
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
		transfer_fail(t, 1, "%s", wfile_error(f));
		transfer_detach(t);
		t->closing = 1;
		wfile_abort(f);
		break;
	case WFILE_PREPARED:
		if (t->ops == NULL) {
			wfile_abort(f);
			break;
		}
		free(t->path);
		t->path = xstrdup(wfile_path(f));
		if (wfile_sha256(f) != NULL) {
			free(t->sha256);
			t->sha256 = xstrdup(wfile_sha256(f));
		}
		if (t->ops->prepared != NULL)
			t->ops->prepared(
			    t->arg, t, wfile_path(f), wfile_part(f));
		else
			wfile_rename(f);
		break;
	case WFILE_DONE:
		t->file = NULL;
		if (wfile_sha256(f) != NULL && t->sha256 == NULL)
			t->sha256 = xstrdup(wfile_sha256(f));
		t->duplicate = wfile_duplicate(f);
		if (t->error != NULL && wfile_ok(f) == 0 && t->keep_part &&
		    t->ops != NULL) {
			/* Suspended: hand the .part to the owner for a resume. */
			free(t->part);
			t->part = xstrdup(wfile_part(f));
			t->want_offset = wfile_size(f);
			transfer_finish(t, 0, NULL, 0);
			break;
		}
		ok = t->error == NULL && wfile_ok(f) == 0;
		if (t->error == NULL && !ok)
			transfer_fail(t, 1, "%s", wfile_error(f));
		if (!ok) {
			free(t->part);
			t->part = NULL;
		}
		transfer_finish(
		    t, ok, ok ? wfile_path(f) : NULL, wfile_skipped(f));
		break;
	}
}

/* Start a transfer. */
struct transfer *
fetch_start(struct fetcher *fe, const struct fetch_request *req,
    const struct transfer_ops *ops, void *arg)
{
	const struct config *cfg = fe->cfg;
	struct transfer *t;
	CURLMcode mc;
	char range[32], *rangep = NULL, *ifrange;
	size_t i;

	t = xcalloc(1, sizeof *t);
	t->retry_after = -1;
	t->fetcher = fe;
	t->ops = ops;
	t->arg = arg;
	t->size = -1;
	t->range_start = -1;
	t->hold = req->hold;
	t->hash_first = req->hash_first;
	t->skip_existing = req->skip_existing;
	t->page = req->page;
	t->max_body = req->max_body > 0 ? req->max_body : PAGE_SIZE_DEFAULT;
	t->easy = fetch_easy_get(fe);
	t->easy_gen = fe->gen;
	for (i = 0; i < cfg->nheaders; i++)
		t->headers = curl_slist_append(t->headers, cfg->headers[i]);
	for (i = 0; i < req->nheaders; i++)
		t->headers = curl_slist_append(t->headers, req->headers[i]);
	if (req->path != NULL)
		t->path = xstrdup(req->path);
	if (req->part != NULL && req->validator != NULL && req->offset > 0) {
		/* Continue the .part only if the file is still the same. */
		t->part = xstrdup(req->part);
		t->validator = xstrdup(req->validator);
		t->want_offset = req->offset;
		snprintf(range, sizeof range, "%llu-", req->offset);
		rangep = range;
		xasprintf(&ifrange, "If-Range: %s", req->validator);
		t->headers = curl_slist_append(t->headers, ifrange);
		free(ifrange);
	}

	if (rangep == NULL && req->if_none_match != NULL) {
		xasprintf(&ifrange, "If-None-Match: %s", req->if_none_match);
		t->headers = curl_slist_append(t->headers, ifrange);
		free(ifrange);
		t->conditional = 1;
	}
	if (rangep == NULL && req->if_modified_since != NULL) {
		xasprintf(
		    &ifrange, "If-Modified-Since: %s", req->if_modified_since);
		t->headers = curl_slist_append(t->headers, ifrange);
		free(ifrange);
		t->conditional = 1;
	}

	/* Every option that differs between transfers, each time. */
	curl_easy_setopt(t->easy, CURLOPT_URL, req->url);
	curl_easy_setopt(t->easy, CURLOPT_REFERER, req->referer);
	curl_easy_setopt(t->easy, CURLOPT_RANGE, rangep);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(t->easy, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	netopt_transfer(t->easy, cfg, req);
	/*
	 * Over https, wait for a connection that may multiplex (HTTP/2)
	 * rather than open another; over plain http there is no HTTP/2 to
	 * wait for, and waiting would queue every transfer to a host behind
	 * its first response.
	 */
	curl_easy_setopt(t->easy, CURLOPT_PIPEWAIT,
	    strncasecmp(req->url, "https:", 6) == 0 ? 1L : 0L);

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

/* After ops->prepared: rename into place, unless cancelled meanwhile. */
void
fetch_commit(struct transfer *t)
{
	if (t->file == NULL)
		return;
	if (t->ops == NULL)
		wfile_abort(t->file);
	else
		wfile_rename(t->file);
}

/* After ops->prepared: rename to another path, unless cancelled. */
void
fetch_commit_as(struct transfer *t, const char *relpath)
{
	if (t->file == NULL)
		return;
	if (t->ops == NULL)
		wfile_abort(t->file);
	else
		wfile_rename_to(t->file, relpath);
}

/* After ops->prepared: drop a copy of path, or rename. */
void
fetch_dedup(struct transfer *t, const char *path)
{
	if (t->file == NULL)
		return;
	if (t->ops == NULL)
		wfile_abort(t->file);
	else
		wfile_dedup(t->file, path);
}

/* The owner's argument, or NULL once cancelled. */
void *
transfer_owner(const struct transfer *t)
{
	return t->ops != NULL ? t->arg : NULL;
}

/* The digest known at prepared, or NULL. */
const char *
transfer_sha256(const struct transfer *t)
{
	return t->sha256;
}

/* Take a page's body out of a result. */
char *
fetch_take_body(const struct fetch_result *res)
{
	char *p;

	/* The body belongs to the transfer, which is freed after done. */
	if (res->body == NULL)
		return NULL;
	p = xmalloc(res->body_len + 1);
	memcpy(p, res->body, res->body_len + 1);
	return p;
}

/* Let the transfer's file reach the disk, now or once it is opened. */
void
fetch_release(struct transfer *t)
{
	if (!t->hold)
		return;
	t->hold = 0;
	if (t->file != NULL)
		wfile_release(t->file);
}

/* Stop a transfer without telling its owner. */
void
fetch_cancel(struct transfer *t)
{
	t->ops = NULL;
	transfer_detach(t);
	if (t->deferred) {
		/* Already ending: fetch_defer_cb frees it. */
		return;
	}
	if (t->file == NULL) {
		transfer_free(t);
		return;
	}
	/*
	 * A closing file is aborted after PREPARED (fetch_commit), but a held
	 * one never gets there: abort it now, its queued commit unrun.
	 */
	if (!t->closing || t->hold) {
		t->closing = 1;
		wfile_abort(t->file);
	}
	/* Freed when the writer reports the file done. */
}

/* Stop a transfer, keeping its .part when it can be resumed. */
void
fetch_suspend(struct transfer *t)
{
	if (t->closing || t->deferred)
		return;
	transfer_detach(t);
	transfer_fail(t, 0, "stopped by shutdown");
	if (t->file == NULL) {
		transfer_defer(t);
		return;
	}
	transfer_close_file(t);
}

/* Body bytes so far. */
unsigned long long
transfer_bytes(const struct transfer *t)
{
	return t->offset + t->bytes;
}

/* Whole size or -1. */
long long
transfer_size(const struct transfer *t)
{
	return t->size;
}
