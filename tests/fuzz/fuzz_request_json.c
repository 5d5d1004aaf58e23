/*
 * libFuzzer: request_parse_json on any body, with the built-in limits and
 * with small ones. What it accepts must be what the checks accept; what
 * it refuses must come with a printable UTF-8 message and an empty request.
 */
#include "fuzz.h"

#include "log.h"
#include "path.h"
#include "request.h"

/* Quiet logging. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(LOG_LEVEL_ERROR, "fuzz");
	return 0;
}

/* Check a parse's outcome against what the request promises. */
static void
check_result(int rc, struct job_request *req, char *cause,
    const struct request_limits *lim)
{
	char *why = NULL;
	size_t i;

	if (rc != 0) {
		FUZZ_ASSERT(rc == -1 && cause != NULL);
		FUZZ_ASSERT(path_is_utf8(cause, strlen(cause)));
		FUZZ_ASSERT(fuzz_printable(cause));
		FUZZ_ASSERT(req->urls == NULL && req->nurls == 0 &&
		    req->pages == NULL && req->headers == NULL &&
		    req->dir == NULL && req->name == NULL);
		free(cause);
		return;
	}
	FUZZ_ASSERT(req->nurls + req->npages > 0);
	FUZZ_ASSERT(req->nurls + req->npages <= lim->max_job_items);
	FUZZ_ASSERT(req->nheaders <= lim->max_job_headers);
	for (i = 0; i < req->nurls; i++) {
		FUZZ_ASSERT(strlen(req->urls[i]) <= lim->max_url_length);
		FUZZ_ASSERT(request_check_url(req->urls[i], &why) == 0);
	}
	for (i = 0; i < req->npages; i++)
		FUZZ_ASSERT(request_check_url(req->pages[i], &why) == 0);
	for (i = 0; i < req->nheaders; i++) {
		FUZZ_ASSERT(strlen(req->headers[i]) <= lim->max_header_bytes);
		FUZZ_ASSERT(
		    request_check_header_line(req->headers[i], &why) == 0);
	}
	if (req->dir != NULL)
		FUZZ_ASSERT(path_check_relative(req->dir, "dir", &why) == 0);
	if (req->name != NULL)
		FUZZ_ASSERT(path_check_template(req->name, &why) == 0);
	request_finish(req);
}

/* One input: the body of a POST /v1/jobs. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct request_limits small = { 3, 40, 2, 24 };
	struct request_limits lim;
	struct job_request req;
	char *cause = NULL;
	int rc;

	request_limits_init(&lim);
	rc = request_parse_json(&req, (const char *)data, size, &cause);
	check_result(rc, &req, cause, &lim);
	cause = NULL;
	rc = request_parse_json_limits(
	    &req, (const char *)data, size, &small, &cause);
	check_result(rc, &req, cause, &small);
	return 0;
}
