/*
 * The connection to the daemon: HTTP/1.1 over its Unix socket with
 * libcurl, JSON replies parsed with jansson. Nothing the server sends is
 * trusted; error replies are shown with the API's own message.
 */
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"
#include "client.h"
#include "defs.h"
#include "field.h"
#include "imgfetch.h"
#include "output.h"

/* The connection to the daemon: one easy handle reused for every request. */
struct client {
	char *socket;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	int minimal; /* ask a POST to leave the job's items out of its reply */
};

/* A stream being read: the caller's callbacks and the reply's status. */
struct client_stream {
	struct client *client;
	client_data_fn data;
	client_tick_fn tick;
	void *arg;
	long status;
};

/* Open a connection to socket (copied); NULL if libcurl cannot. */
struct client *
client_create(const char *socket)
{
	struct client *c;

	c = xrealloc(NULL, sizeof *c);
	memset(c, 0, sizeof *c);
	if ((c->curl = curl_easy_init()) == NULL) {
		warnx("cannot initialise libcurl");
		free(c);
		return NULL;
	}
	c->socket = xstrdup(socket);
	return c;
}

/* Close the connection and free it. */
void
client_destroy(struct client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	free(c->socket);
	free(c);
}

/* The socket's path. */
const char *
client_socket(struct client *c)
{
	return c->socket;
}

/* Whether POSTs ask the daemon to leave the job's items out of the reply. */
void
client_set_minimal(struct client *c, int minimal)
{
	c->minimal = minimal;
}

/* A percent-encoded copy of s for a query (the caller frees it); NULL if
 * libcurl cannot encode it. */
char *
client_escape(struct client *c, const char *s)
{
	char *esc, *copy;

	if ((esc = curl_easy_escape(c->curl, s, 0)) == NULL)
		return NULL;
	copy = xstrdup(esc);
	curl_free(esc);
	return copy;
}

/* Point the handle at method and path (below the API prefix). */
static void
client_setup(struct client *c, const char *method, const char *path)
{
	char *url;
	size_t len;

	curl_easy_reset(c->curl);
	c->errbuf[0] = '\0';
	len = sizeof "http://localhost" API_PREFIX + strlen(path);
	url = xrealloc(NULL, len);
	snprintf(url, len, "http://localhost%s%s", API_PREFIX, path);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT);
	curl_easy_setopt(
	    c->curl, CURLOPT_USERAGENT, "imgfetch/" IMGFETCHD_VERSION);
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
}

/* Report a failed transfer: above all, a daemon that is not there. */
static void
client_warn(struct client *c, CURLcode code)
{
	const char *why;
	long oserr = 0;

	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
	if (c->errbuf[0] != '\0')
		why = c->errbuf;
	else
		why = curl_easy_strerror(code);
	if (code == CURLE_COULDNT_CONNECT ||
	    (code == CURLE_OPERATION_TIMEDOUT && oserr != 0)) {
		if (oserr != 0)
			why = strerror((int)oserr);
		warnx("cannot connect to %s: %s (is imgfetchd running?)",
		    c->socket, why);
		return;
	}
	if (code == CURLE_GOT_NOTHING) {
		warnx("%s: the daemon closed the connection without a reply",
		    c->socket);
		return;
	}
	warnx("%s: %s", c->socket, why);
}

/* Report an error reply: the API's own message when it sent one. */
void
client_warn_reply(long status, json_t *reply)
{
	const char *error;

	error = field_string(reply, "error", NULL);
	if (error != NULL)
		warnx("%ld: %s", status, output_clean(error));
	else
		warnx("%ld: unexpected reply from the daemon", status);
}

/* Collect a reply body. */
static size_t
client_write(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (buf_add(b, p, size * n, REPLY_MAX_BYTES) != 0)
		return 0;
	return size * n;
}

/*
 * Send one request with an optional body. On any HTTP answer returns 0 with
 * *status set and *reply the parsed body (NULL if it is not JSON); -1 if no
 * answer came, reported.
 */
int
client_request(struct client *c, const char *method, const char *path,
    const struct client_body *body, long *status, json_t **reply)
{
	struct curl_slist *headers = NULL, *h;
	struct buf b;
	char type[64];
	CURLcode code;
	int rv = -1;

	memset(&b, 0, sizeof b);
	*status = 0;
	*reply = NULL;
	client_setup(c, method, path);
	if (body != NULL) {
		snprintf(type, sizeof type, "Content-Type: %s", body->type);
		if ((h = curl_slist_append(headers, type)) == NULL)
			goto nomem;
		headers = h;
		if ((h = curl_slist_append(headers, "Expect:")) == NULL)
			goto nomem;
		headers = h;
		if (c->minimal) {
			h = curl_slist_append(
			    headers, "Prefer: return=minimal");
			if (h == NULL)
				goto nomem;
			headers = h;
		}
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)body->len);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body->data);
	}
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, client_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
	code = curl_easy_perform(c->curl);
	if (code != CURLE_OK) {
		if (b.full)
			warnx("%s: reply too large", c->socket);
		else
			client_warn(c, code);
		goto fail;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	if (b.len != 0)
		*reply = json_loadb(b.data, b.len, 0, NULL);
	rv = 0;
	goto fail;

nomem:
	warnx("out of memory");
fail:
	curl_slist_free_all(headers);
	buf_free(&b);
	return rv;
}

/*
 * The JSON object of a 2xx reply; NULL after reporting any other. Takes
 * the reply.
 */
json_t *
client_reply(long status, json_t *reply)
{
	if (status >= 200 && status <= 299) {
		if (json_is_object(reply))
			return reply;
		warnx("%ld: malformed reply from the daemon", status);
	} else
		client_warn_reply(status, reply);
	json_decref(reply);
	return NULL;
}

/*
 * Send one request and return the JSON object of a 2xx reply; NULL after
 * reporting any other outcome.
 */
json_t *
client_call(struct client *c, const char *method, const char *path,
    const struct client_body *body)
{
	json_t *reply;
	long status;

	if (client_request(c, method, path, body, &status, &reply) != 0)
		return NULL;
	return client_reply(status, reply);
}

/* Hand a piece of a streamed body on, with the reply's status. */
static size_t
client_stream_write(char *p, size_t size, size_t n, void *arg)
{
	struct client_stream *s = arg;

	n *= size;
	if (s->status == 0)
		curl_easy_getinfo(
		    s->client->curl, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->data(s->arg, s->status, p, n) != 0)
		return 0;
	return n;
}

/* Let the caller redraw or stop while the stream is open. */
static int
client_stream_tick(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	struct client_stream *s = arg;

	return s->tick(s->arg) != 0;
}

/*
 * GET path and hand its body to data as it comes, calling tick in between.
 * 0 once any HTTP answer came (*status set, whatever the status and however
 * the stream ended); -1 if none came, reported unless a callback stopped it.
 */
int
client_stream(struct client *c, const char *path, client_data_fn data,
    client_tick_fn tick, void *arg, long *status)
{
	struct client_stream s;
	CURLcode code;

	memset(&s, 0, sizeof s);
	s.client = c;
	s.data = data;
	s.tick = tick;
	s.arg = arg;
	client_setup(c, "GET", path);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, client_stream_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, client_stream_tick);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &s);
	code = curl_easy_perform(c->curl);
	if (s.status == 0)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &s.status);
	*status = s.status;
	if (s.status == 0) {
		if (code != CURLE_ABORTED_BY_CALLBACK)
			client_warn(c, code);
		return -1;
	}
	return 0;
}
