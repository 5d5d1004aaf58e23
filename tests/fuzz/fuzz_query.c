/*
 * libFuzzer: the API's query strings and job paths. The first byte picks
 * the endpoint (POST /v1/jobs with dir and name, GET /v1/jobs with state,
 * the events stream with items); the rest is the query string, also tried
 * as what follows "/v1/jobs/" in a path. dir and name that pass go on to
 * request_parse_urilist, as the API sends them.
 */
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "fuzz.h"

#include "log.h"
#include "path.h"
#include "query.h"
#include "request.h"

/* Quiet logging. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(LOG_LEVEL_ERROR, "fuzz");
	return 0;
}

/* One input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const post[] = { "dir", "name", NULL };
	static const char *const list[] = { "state", NULL };
	static const char *const events[] = { "items", NULL };
	static const char *const *const known[] = { post, list, events };
	const char *const *k;
	struct job_request req;
	struct evkeyvalq q;
	struct evkeyval *kv;
	unsigned long long id;
	char *query, *cause = NULL;
	const char *dir, *name;
	int ev, n = 0;

	if (size == 0)
		return 0;
	k = known[data[0] % 3];
	query = fuzz_strndup(data + 1, size - 1);
	if (query_parse(query, k, &q, &cause) == 0) {
		TAILQ_FOREACH(kv, &q, next) {
			n++;
			FUZZ_ASSERT(path_is_utf8(kv->value, strlen(kv->value)));
		}
		if (k == post) {
			dir = evhttp_find_header(&q, "dir");
			name = evhttp_find_header(&q, "name");
			if (request_parse_urilist(&req, "http://h/a\n", 11, dir,
				name, &cause) == 0) {
				FUZZ_ASSERT(req.nurls == 1);
				request_finish(&req);
			} else {
				FUZZ_ASSERT(
				    cause != NULL && fuzz_printable(cause));
				free(cause);
			}
		}
		evhttp_clear_headers(&q);
	} else {
		FUZZ_ASSERT(cause != NULL && TAILQ_EMPTY(&q));
		FUZZ_ASSERT(path_is_utf8(cause, strlen(cause)));
		free(cause);
	}
	if (query_job_path(query, &id, &ev) == 0)
		FUZZ_ASSERT(ev == 0 || ev == 1);
	free(query);
	return 0;
}
