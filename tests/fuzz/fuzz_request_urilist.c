/*
 * libFuzzer: request_parse_urilist. The input is "DIR\nNAME\nBODY": dir
 * and name as they come from the query string (an empty line is none),
 * then the text/uri-list body.
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

/* One input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct request_limits small = { 3, 40, 2, 24 };
	struct job_request req;
	char *copy, *field[3], *cause = NULL, *why = NULL;
	const char *dir, *name, *body;
	size_t i, len;
	int rc;

	copy = fuzz_strndup(data, size);
	fuzz_split(copy, field, 3);
	dir = field[0] != NULL && *field[0] != '\0' ? field[0] : NULL;
	name = field[1] != NULL && *field[1] != '\0' ? field[1] : NULL;
	/* The body is the rest of the input, NUL bytes and all. */
	body = field[2] != NULL ? (const char *)data + (field[2] - copy) : "";
	len = field[2] != NULL ? size - (size_t)(field[2] - copy) : 0;

	rc = request_parse_urilist(&req, body, len, dir, name, &cause);
	if (rc == 0) {
		FUZZ_ASSERT(req.nurls > 0 && req.nurls <= 100000);
		for (i = 0; i < req.nurls; i++)
			FUZZ_ASSERT(request_check_url(req.urls[i], &why) == 0);
		if (req.dir != NULL)
			FUZZ_ASSERT(
			    path_check_relative(req.dir, "dir", &why) == 0);
		request_finish(&req);
	} else {
		FUZZ_ASSERT(cause != NULL && fuzz_printable(cause));
		FUZZ_ASSERT(path_is_utf8(cause, strlen(cause)));
		free(cause);
	}
	cause = NULL;
	rc = request_parse_urilist_limits(
	    &req, body, len, dir, name, &small, &cause);
	if (rc == 0) {
		FUZZ_ASSERT(req.nurls > 0 && req.nurls <= small.max_job_items);
		for (i = 0; i < req.nurls; i++)
			FUZZ_ASSERT(
			    strlen(req.urls[i]) <= small.max_url_length);
		request_finish(&req);
	} else {
		FUZZ_ASSERT(cause != NULL && fuzz_printable(cause));
		free(cause);
	}
	free(copy);
	return 0;
}
