/*
 * The API's query strings and job paths. libevent's evhttp_parse_query_str
 * splits and percent-decodes a query; this file adds the rules: only known
 * names, each once, values printable UTF-8. Nothing here touches a request
 * or the loop, so the fuzzer (tests/fuzz/fuzz_query.c) calls it directly.
 */
#include <sys/queue.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "path.h"
#include "query.h"
#include "xmalloc.h"

/* Parse and check a query string. */
int
query_parse(const char *query, const char *const *known, struct evkeyvalq *q,
    char **cause)
{
	struct evkeyval *kv, *other;
	const char *s;
	char *p;
	size_t i;

	TAILQ_INIT(q);
	if (query == NULL)
		return 0;
	/* A decoded NUL would cut a value short without a word. */
	for (s = strchr(query, '%'); s != NULL; s = strchr(s + 1, '%')) {
		if (s[1] == '0' && s[2] == '0') {
			xasprintf(cause, "query string contains %%00");
			return -1;
		}
	}
	if (evhttp_parse_query_str(query, q) == -1) {
		xasprintf(cause, "malformed query string");
		goto fail;
	}
	TAILQ_FOREACH(kv, q, next) {
		for (i = 0; known[i] != NULL; i++) {
			if (strcmp(kv->key, known[i]) == 0)
				break;
		}
		if (known[i] == NULL) {
			p = path_printable(kv->key, strlen(kv->key));
			xasprintf(cause, "unknown query parameter \"%s\"", p);
			free(p);
			goto fail;
		}
		for (other = TAILQ_FIRST(q); other != kv;
		     other = TAILQ_NEXT(other, next)) {
			if (strcmp(other->key, kv->key) == 0) {
				xasprintf(
				    cause, "%s: given more than once", kv->key);
				goto fail;
			}
		}
		if (!path_is_utf8(kv->value, strlen(kv->value))) {
			xasprintf(cause, "%s: not valid UTF-8", kv->key);
			goto fail;
		}
	}
	return 0;
fail:
	evhttp_clear_headers(q);
	return -1;
}

/* Parse "ID" or "ID/events". */
int
query_job_path(const char *rest, unsigned long long *id, int *events)
{
	const char *p = rest;
	unsigned long long n = 0;
	unsigned d;

	for (; *p >= '0' && *p <= '9'; p++) {
		d = (unsigned)(*p - '0');
		if (n > (ULLONG_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	if (p == rest)
		return -1;
	if (*p == '\0')
		*events = 0;
	else if (strcmp(p, "/events") == 0)
		*events = 1;
	else
		return -1;
	*id = n;
	return 0;
}
