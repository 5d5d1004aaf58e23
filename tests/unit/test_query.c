/* Unit tests for query.c: the API's query strings and job paths. */
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "query.h"

#include "check.h"

static const char *const known[] = { "dir", "name", NULL };

/* A query that must parse; returns the value of dir and name joined. */
static void
query_ok(const char *query, const char *dir, const char *name, int line)
{
	struct evkeyvalq q;
	char *cause = NULL;
	const char *d, *n;

	if (query_parse(query, known, &q, &cause) != 0) {
		check_at(0, __FILE__, line, "\"%s\": refused: %s", query,
		    cause ? cause : "(null)");
		free(cause);
		return;
	}
	d = evhttp_find_header(&q, "dir");
	n = evhttp_find_header(&q, "name");
	check_at(same(d, dir) && same(n, name), __FILE__, line,
	    "\"%s\": dir \"%s\" name \"%s\"", query, d ? d : "(null)",
	    n ? n : "(null)");
	evhttp_clear_headers(&q);
}

/* A query that must be refused with exactly this message. */
static void
query_bad(const char *query, const char *want, int line)
{
	struct evkeyvalq q;
	char *cause = NULL;
	int rc;

	rc = query_parse(query, known, &q, &cause);
	check_at(rc == -1 && same(cause, want) && TAILQ_EMPTY(&q), __FILE__,
	    line, "\"%s\": rc %d, cause \"%s\", want \"%s\"", query, rc,
	    cause ? cause : "(null)", want);
	if (rc == 0)
		evhttp_clear_headers(&q);
	free(cause);
}

/* query_parse. */
static void
test_parse(void)
{
	query_ok(NULL, NULL, NULL, __LINE__);
	query_ok("", NULL, NULL, __LINE__);
	query_ok("dir=a%2Fb&name=%7Bn%7D.png", "a/b", "{n}.png", __LINE__);
	query_ok("name=caf%C3%A9", NULL, "caf\xc3\xa9", __LINE__);
	query_ok("dir=", "", NULL, __LINE__);
	query_bad("colour=red", "unknown query parameter \"colour\"", __LINE__);
	query_bad(
	    "dir=a&colour=%0a", "unknown query parameter \"colour\"", __LINE__);
	/* libevent decodes values, not names. */
	query_bad(
	    "c%0Aolour=1", "unknown query parameter \"c%0Aolour\"", __LINE__);
	query_bad("dir=a&dir=b", "dir: given more than once", __LINE__);
	query_bad("dir=a%00b", "query string contains %00", __LINE__);
	query_bad("dir=%ff", "dir: not valid UTF-8", __LINE__);
	query_bad("name=%C3", "name: not valid UTF-8", __LINE__);
}

/* query_job_path. */
static void
test_job_path(void)
{
	unsigned long long id = 0;
	int events = -1;

	CHECK(
	    query_job_path("12", &id, &events) == 0 && id == 12 && events == 0);
	CHECK(query_job_path("7/events", &id, &events) == 0 && id == 7 &&
	    events == 1);
	CHECK(query_job_path("18446744073709551615", &id, &events) == 0 &&
	    id == 18446744073709551615ULL);
	CHECK(query_job_path("18446744073709551616", &id, &events) == -1);
	CHECK(query_job_path("", &id, &events) == -1);
	CHECK(query_job_path("/events", &id, &events) == -1);
	CHECK(query_job_path("12/", &id, &events) == -1);
	CHECK(query_job_path("12/eventsx", &id, &events) == -1);
	CHECK(query_job_path("-1", &id, &events) == -1);
	CHECK(query_job_path("1a", &id, &events) == -1);
}

/* Run every test, print a summary and fail if any check failed. */
int
main(void)
{
	test_parse();
	test_job_path();
	return check_summary("test_query");
}
