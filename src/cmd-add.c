/*
 * imgfetch add and scrape: submit a job of image URLs or of pages to
 * scrape. A text/uri-list with dir and name in the query is sent when that
 * form carries the whole job, JSON otherwise (or when the daemon refuses
 * the list); with --wait the job is followed.
 */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "client.h"
#include "cmd.h"
#include "field.h"
#include "imgfetch.h"
#include "output.h"
#include "watch.h"

/* Add the URLs of a file (or stdin for "-"), one a line; -1 on error. */
int
add_read(struct strings *urls, const char *file)
{
	FILE *f;
	char *line = NULL, *p, *end;
	size_t size = 0;
	ssize_t len;
	int rv = -1;

	if (strcmp(file, "-") == 0)
		f = stdin;
	else if ((f = fopen(file, "r")) == NULL) {
		warn("%s", file);
		return -1;
	}
	while ((len = getline(&line, &size, f)) != -1) {
		p = line;
		end = line + len;
		while (end > p &&
		    (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' ||
			end[-1] == '\t'))
			end--;
		*end = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		strings_add(urls, p);
	}
	if (ferror(f)) {
		warn("%s", strcmp(file, "-") == 0 ? "stdin" : file);
		goto fail;
	}
	rv = 0;

fail:
	free(line);
	if (f != stdin)
		fclose(f);
	return rv;
}

/* Whether jansson takes s as a string: valid UTF-8 (ASCII always is). */
static int
add_utf8(const char *s)
{
	const unsigned char *p;
	json_t *v;

	p = (const unsigned char *)s;
	while (*p != '\0' && *p < 0x80)
		p++;
	if (*p == '\0')
		return 1;
	if ((v = json_string(s)) == NULL)
		return 0;
	json_decref(v);
	return 1;
}

/* Check the URLs, dir and name are UTF-8 before either form is sent. */
static int
add_check(struct add_opts *o)
{
	size_t i;

	for (i = 0; i < o->urls.n; i++) {
		if (!add_utf8(o->urls.v[i])) {
			warnx("not valid UTF-8: %s", o->urls.v[i]);
			return -1;
		}
	}
	if (o->dir != NULL && !add_utf8(o->dir)) {
		warnx("dir: not valid UTF-8: %s", o->dir);
		return -1;
	}
	if (o->name != NULL && !add_utf8(o->name)) {
		warnx("name: not valid UTF-8: %s", o->name);
		return -1;
	}
	return 0;
}

/* A string checked by add_check, as JSON. */
static json_t *
add_string(const char *s)
{
	json_t *v;

	if ((v = json_string_nocheck(s)) == NULL)
		errx(EXIT_ERROR, "out of memory");
	return v;
}

/* Add the request headers to the JSON job; -1 after reporting a bad one. */
static int
add_headers(json_t *body, struct strings *headers)
{
	json_t *hdrs, *v;
	char *copy, *value;
	size_t i;

	if (headers->n == 0)
		return 0;
	if ((hdrs = json_object()) == NULL)
		errx(EXIT_ERROR, "out of memory");
	for (i = 0; i < headers->n; i++) {
		copy = xstrdup(headers->v[i]);
		value = strchr(copy, ':');
		*value++ = '\0';
		value += strspn(value, " \t");
		if ((v = json_string(value)) == NULL) {
			warnx("%s: not valid UTF-8: %s", copy, value);
			free(copy);
			json_decref(hdrs);
			return -1;
		}
		json_object_set_new(hdrs, copy, v);
		free(copy);
	}
	json_object_set_new(body, "headers", hdrs);
	return 0;
}

/*
 * Add the caching and scraping options that were asked for. "if_changed"
 * goes only when on (off is every daemon's default); "dedup" whenever it
 * was given, as the daemon's own default is its configuration's.
 */
static void
add_options(json_t *body, struct add_opts *o)
{
	if (o->if_changed == 1)
		json_object_set_new(body, "if_changed", json_true());
	if (o->dedup != -1)
		json_object_set_new(body, "dedup", json_boolean(o->dedup));
	if (o->same_host)
		json_object_set_new(body, "same_host", json_true());
	if (o->follow_next != -1)
		json_object_set_new(
		    body, "follow_next", json_integer(o->follow_next));
	if (o->max_page_size != -1)
		json_object_set_new(
		    body, "max_page_size", json_integer(o->max_page_size));
	if (o->timeout != -1)
		json_object_set_new(body, "timeout", json_integer(o->timeout));
	if (o->retries != -1)
		json_object_set_new(body, "retries", json_integer(o->retries));
	if (o->proxy != NULL)
		json_object_set_new(body, "proxy", add_string(o->proxy));
	if (o->no_proxy != NULL)
		json_object_set_new(body, "no_proxy", add_string(o->no_proxy));
	if (o->user_agent != NULL)
		json_object_set_new(
		    body, "user_agent", add_string(o->user_agent));
	if (o->shared)
		json_object_set_new(body, "shared", json_true());
}

/* Build the JSON job body; NULL after reporting a bad header. */
static json_t *
add_body(struct add_opts *o)
{
	json_t *body, *list;
	size_t i;

	body = json_object();
	list = json_array();
	if (body == NULL || list == NULL)
		errx(EXIT_ERROR, "out of memory");
	json_object_set_new(body, o->scrape ? "pages" : "urls", list);
	for (i = 0; i < o->urls.n; i++)
		json_array_append_new(list, add_string(o->urls.v[i]));
	if (o->dir != NULL)
		json_object_set_new(body, "dir", add_string(o->dir));
	if (o->name != NULL)
		json_object_set_new(body, "name", add_string(o->name));
	if (add_headers(body, &o->headers) != 0) {
		json_decref(body);
		return NULL;
	}
	add_options(body, o);
	return body;
}

/*
 * Whether a text/uri-list carries the job exactly: it has no place for
 * pages, headers, the caching or the network options, and its parser
 * trims blanks, splits at LF and skips empty lines and lines starting with
 * '#', so such URLs must go as JSON (which refuses them with the message
 * the user has always seen).
 */
static int
add_listable(struct add_opts *o)
{
	const unsigned char *p;
	size_t i;

	if (o->scrape || o->headers.n != 0 || o->if_changed == 1 ||
	    o->dedup != -1 || o->timeout != -1 || o->retries != -1 ||
	    o->proxy != NULL || o->no_proxy != NULL || o->user_agent != NULL ||
	    o->shared)
		return 0;
	for (i = 0; i < o->urls.n; i++) {
		p = (const unsigned char *)o->urls.v[i];
		if (*p == '\0' || *p == '#')
			return 0;
		for (; *p != '\0'; p++) {
			if (*p <= 0x20 || *p == 0x7f)
				return 0;
		}
	}
	return 1;
}

/* Append "?key=value" or "&key=value", the value percent-encoded. */
static int
add_param(struct client *c, char **path, const char *key, const char *value)
{
	char *esc, *p;
	size_t len;

	if ((esc = client_escape(c, value)) == NULL) {
		warnx("cannot encode the request");
		return -1;
	}
	len = strlen(*path) + strlen(key) + strlen(esc) + 3;
	p = xrealloc(NULL, len);
	snprintf(p, len, "%s%c%s=%s", *path,
	    strchr(*path, '?') != NULL ? '&' : '?', key, esc);
	free(esc);
	free(*path);
	*path = p;
	return 0;
}

/* The URLs as a text/uri-list body: one a line, each ended by CRLF. */
static char *
add_list(struct strings *urls, size_t *len)
{
	char *text, *p;
	size_t i, n;

	*len = 0;
	for (i = 0; i < urls->n; i++)
		*len += strlen(urls->v[i]) + 2;
	p = text = xrealloc(NULL, *len + 1);
	for (i = 0; i < urls->n; i++) {
		n = strlen(urls->v[i]);
		memcpy(p, urls->v[i], n);
		p += n;
		*p++ = '\r';
		*p++ = '\n';
	}
	*p = '\0';
	return text;
}

/*
 * POST the job as a text/uri-list, dir and name in the query: 0 with the
 * answer in *status and *reply, -1 if none came (reported).
 */
static int
add_post_list(
    struct client *c, struct add_opts *o, long *status, json_t **reply)
{
	struct client_body body;
	char *path, *text = NULL;
	int rv = -1;

	path = xstrdup("/jobs");
	if (o->dir != NULL && add_param(c, &path, "dir", o->dir) != 0)
		goto out;
	if (o->name != NULL && add_param(c, &path, "name", o->name) != 0)
		goto out;
	body.type = "text/uri-list";
	body.data = text = add_list(&o->urls, &body.len);
	rv = client_request(c, "POST", path, &body, status, reply);
out:
	free(text);
	free(path);
	return rv;
}

/* POST the job as JSON; returns as add_post_list does. */
static int
add_post_json(
    struct client *c, struct add_opts *o, long *status, json_t **reply)
{
	struct client_body body;
	json_t *obj;
	char *text;
	int rv;

	if ((obj = add_body(o)) == NULL)
		return -1;
	text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (text == NULL) {
		warnx("cannot encode the request");
		return -1;
	}
	body.type = "application/json";
	body.data = text;
	body.len = strlen(text);
	rv = client_request(c, "POST", "/jobs", &body, status, reply);
	free(text);
	return rv;
}

/*
 * POST the job; the object of the 2xx reply, or NULL after reporting. A
 * text/uri-list with dir and name in the query is smaller than JSON and
 * much cheaper for the daemon to take in, so it goes whenever it carries
 * the whole job. If the daemon refuses it, the job is sent again as JSON,
 * whose refusals name urls[i] as the client has always shown them (the
 * list's would name a line of a body the user never saw).
 */
static json_t *
add_post(struct client *c, struct add_opts *o)
{
	json_t *reply;
	long status;

	if (add_listable(o)) {
		if (add_post_list(c, o, &status, &reply) != 0)
			return NULL;
		if (status != 400 && status != 413 && status != 415)
			return client_reply(status, reply);
		json_decref(reply);
	}
	if (add_post_json(c, o, &status, &reply) != 0)
		return NULL;
	return client_reply(status, reply);
}

/* Submit the job; its id, or -1 after reporting. The reply, minimal unless
 * only --json without --wait prints it, goes to *reply. */
static long long
add_submit(struct cmd_ctx *ctx, struct add_opts *o, json_t **reply)
{
	long long id;

	/* Only --json without --wait prints the job with its items. */
	client_set_minimal(ctx->client, o->wait || !ctx->json);
	*reply = add_post(ctx->client, o);
	client_set_minimal(ctx->client, 0);
	if (*reply == NULL)
		return -1;
	if ((id = field_int(*reply, "id", -1)) < 0) {
		warnx("malformed reply from the daemon: no job id");
		json_decref(*reply);
		*reply = NULL;
		return -1;
	}
	return id;
}

/* Say the job is queued: the whole reply with --json (unless waiting), a
 * line otherwise. */
static void
add_queued(struct cmd_ctx *ctx, struct add_opts *o, long long id, json_t *reply)
{
	long long total;

	if (ctx->json) {
		if (!o->wait)
			output_json(reply);
		return;
	}
	total = field_int(reply, "total", (long long)o->urls.n);
	printf("job %lld: %lld %s%s queued\n", id, total,
	    o->scrape ? "page" : "item", total == 1 ? "" : "s");
	fflush(stdout);
}

/*
 * Put a job on the shared queue: some daemon of the group runs it, so there
 * is no job here to follow; say which stream entry it is.
 */
static int
add_shared(struct cmd_ctx *ctx, struct add_opts *o)
{
	json_t *reply;

	if ((reply = add_post(ctx->client, o)) == NULL)
		return EXIT_ERROR;
	if (ctx->json)
		output_json(reply);
	else
		printf("queued on %s as %s\n",
		    field_string(reply, "stream", "?"),
		    field_string(reply, "queue_id", "?"));
	json_decref(reply);
	return EXIT_DONE;
}

/* Submit a job; with --wait, follow it to its end. */
static int
add_run(struct cmd_ctx *ctx, struct add_opts *o)
{
	json_t *reply;
	long long id;

	if (add_check(o) != 0)
		return EXIT_ERROR;
	if (o->shared) {
		if (o->wait) {
			warnx("--wait cannot follow a --shared job: another "
			      "daemon may run it");
			return EXIT_ERROR;
		}
		return add_shared(ctx, o);
	}
	if ((id = add_submit(ctx, o, &reply)) < 0)
		return EXIT_ERROR;
	add_queued(ctx, o, id, reply);
	json_decref(reply);
	if (o->wait)
		return watch_run(ctx->client, id, ctx->json, ctx->quiet);
	return EXIT_DONE;
}

/* imgfetch add: image URLs; conditional fetching and dedup only if asked. */
int
cmd_add(struct cmd_ctx *ctx, struct add_opts *o)
{
	o->scrape = 0;
	return add_run(ctx, o);
}

/* imgfetch scrape: pages; conditional fetching and dedup unless refused. */
int
cmd_scrape(struct cmd_ctx *ctx, struct add_opts *o)
{
	o->scrape = 1;
	if (o->if_changed == -1)
		o->if_changed = 1;
	if (o->dedup == -1)
		o->dedup = 1;
	return add_run(ctx, o);
}
