/* imgfetch status and ls: the daemon's status, a job with its items, and
 * the list of jobs, as text or as the API's JSON. */
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

/*
 * Print what a page, a duplicate or an unchanged image is: "page URL: K
 * images", "URL: duplicate of PATH", "PATH: unchanged"; 0 for any other
 * item, printed by the caller.
 */
static int
status_kind(json_t *item, const char *url, const char *path)
{
	const char *dup;
	long long images;

	dup = field_string(item, "duplicate_of", NULL);
	if (strcmp(field_string(item, "kind", "image"), "page") == 0) {
		printf("  page %s", output_clean(url));
		if (field_get(item, "images") != NULL) {
			images = field_int(item, "images", 0);
			printf(
			    ": %lld image%s", images, images == 1 ? "" : "s");
		}
		if (field_true(item, "unchanged"))
			printf(", unchanged");
	} else if (dup != NULL)
		printf("  %s: duplicate of %s", output_clean(url),
		    output_clean(dup));
	else if (field_true(item, "unchanged"))
		printf(
		    "  %s: unchanged", output_clean(path != NULL ? path : url));
	else
		return 0;
	return 1;
}

/* Print one item of a job. */
static void
status_item(json_t *item, int width)
{
	const char *state, *url, *path, *error;
	char bytes[32], size[32], text[80];
	long long n, got, want, code;

	n = field_int(item, "n", -1);
	state = field_string(item, "state", "?");
	url = field_string(item, "url", "?");
	path = field_string(item, "path", NULL);
	error = field_string(item, "error", NULL);
	got = field_int(item, "bytes", 0);
	want = field_int(item, "size", -1);
	code = field_int(item, "http_status", 0);

	output_bytes(bytes, sizeof bytes, (double)got);
	if (want >= 0 && want != got) {
		output_bytes(size, sizeof size, (double)want);
		snprintf(text, sizeof text, "%s of %s", bytes, size);
		printf("  %*lld  %-9s  %-20s", width, n, output_clean(state),
		    text);
	} else
		printf("  %*lld  %-9s  %-10s", width, n, output_clean(state),
		    bytes);
	if (!status_kind(item, url, path))
		printf("  %s", output_clean(path != NULL ? path : url));
	if (error != NULL) {
		if (path != NULL)
			printf(" (%s)", output_clean(url));
		printf(": %s", output_clean(error));
	} else if (code >= 400)
		printf(": HTTP %lld", code);
	putchar('\n');
}

/* Print a job and its items. */
static void
status_job(json_t *job)
{
	json_t *items;
	char bytes[32];
	const char *s;
	long long total;
	size_t i;
	int width;

	total = field_int(job, "total", 0);
	output_bytes(bytes, sizeof bytes, (double)field_int(job, "bytes", 0));
	printf("job %lld: %s, %lld/%lld done, %lld failed",
	    field_int(job, "id", -1),
	    output_clean(field_string(job, "state", "?")),
	    field_int(job, "done", 0), total, field_int(job, "failed", 0));
	if (field_int(job, "cancelled", 0) > 0)
		printf(", %lld cancelled", field_int(job, "cancelled", 0));
	printf(", %s\n", bytes);
	if ((s = field_string(job, "created", NULL)) != NULL)
		printf("created: %s\n", output_clean(s));
	if ((s = field_string(job, "dir", NULL)) != NULL)
		printf("dir: %s\n", output_clean(s));
	if ((s = field_string(job, "name", NULL)) != NULL)
		printf("name: %s\n", output_clean(s));
	if ((items = field_array(job, "items")) == NULL)
		return;
	width = snprintf(NULL, 0, "%lld", total > 0 ? total - 1 : 0);
	for (i = 0; i < json_array_size(items); i++)
		status_item(json_array_get(items, i), width);
}

/* Print one scalar JSON value as text. */
static void
status_value(json_t *v)
{
	char *text;

	if (json_is_string(v))
		printf("%s", output_clean(json_string_value(v)));
	else if ((text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) !=
	    NULL) {
		printf("%s", output_clean(text));
		free(text);
	}
}

/* Print the daemon's status. */
static void
status_daemon(json_t *st)
{
	static const char *const states[] = { "queued", "active", "done",
		"failed", "cancelled" };
	json_t *items, *limits, *v;
	const char *key;
	char buf[32];
	size_t i;

	output_duration(buf, sizeof buf, field_int(st, "uptime", 0));
	printf("imgfetchd %s, up %s\n",
	    output_clean(field_string(st, "version", "?")), buf);
	printf("jobs: %lld\n", field_int(st, "jobs", 0));
	if ((items = field_object(st, "items")) != NULL) {
		printf("items:");
		for (i = 0; i < nitems(states); i++)
			printf("%s %lld %s", i == 0 ? "" : ",",
			    field_int(items, states[i], 0), states[i]);
		putchar('\n');
	}
	output_bytes(buf, sizeof buf, (double)field_int(st, "bytes", 0));
	printf("bytes: %s\n", buf);
	if ((limits = field_object(st, "limits")) != NULL) {
		printf("limits:\n");
		json_object_foreach(limits, key, v)
		{
			printf("  %s: ", output_clean(key));
			status_value(v);
			putchar('\n');
		}
	}
}

/* Show the daemon's status, or one job's with id >= 0. */
int
cmd_status(struct cmd_ctx *ctx, long long id)
{
	json_t *reply;
	char path[64];

	if (id < 0)
		snprintf(path, sizeof path, "/status");
	else
		snprintf(path, sizeof path, "/jobs/%lld", id);
	if ((reply = client_call(ctx->client, "GET", path, NULL)) == NULL)
		return EXIT_ERROR;
	if (ctx->json)
		output_json(reply);
	else if (id < 0)
		status_daemon(reply);
	else
		status_job(reply);
	json_decref(reply);
	return EXIT_DONE;
}

/* List jobs, one a line, optionally only those in a state. */
int
cmd_ls(struct cmd_ctx *ctx, const char *state)
{
	json_t *reply, *jobs, *job;
	char *path = NULL, *esc, bytes[32], counts[96];
	size_t i, len;
	int rv = EXIT_ERROR;

	if (state != NULL) {
		if ((esc = client_escape(ctx->client, state)) == NULL)
			errx(EXIT_ERROR, "out of memory");
		len = strlen(esc) + sizeof "/jobs?state=";
		path = xrealloc(NULL, len);
		snprintf(path, len, "/jobs?state=%s", esc);
		free(esc);
	}
	reply = client_call(
	    ctx->client, "GET", path != NULL ? path : "/jobs", NULL);
	free(path);
	if (reply == NULL)
		return EXIT_ERROR;
	if (ctx->json) {
		output_json(reply);
		rv = EXIT_DONE;
		goto out;
	}
	if ((jobs = field_array(reply, "jobs")) == NULL) {
		warnx("malformed reply from the daemon: no jobs list");
		goto out;
	}
	for (i = 0; i < json_array_size(jobs); i++) {
		job = json_array_get(jobs, i);
		if (!json_is_integer(field_get(job, "id")))
			continue;
		output_bytes(
		    bytes, sizeof bytes, (double)field_int(job, "bytes", 0));
		snprintf(counts, sizeof counts, "%lld/%lld/%lld",
		    field_int(job, "done", 0), field_int(job, "failed", 0),
		    field_int(job, "total", 0));
		printf("%6lld  %-9s  %-14s  %10s  %s\n",
		    field_int(job, "id", -1),
		    output_clean(field_string(job, "state", "?")), counts,
		    bytes, output_clean(field_string(job, "created", "-")));
	}
	rv = EXIT_DONE;

out:
	json_decref(reply);
	return rv;
}
