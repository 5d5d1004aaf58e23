/* Unit tests for request.c: JSON and text/uri-list job submissions. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "defs.h"
#include "request.h"
#include "xmalloc.h"

#include "check.h"

/* Is the request all zero, as a refused parse must leave it? */
static int
is_empty(const struct job_request *req)
{
	return req->urls == NULL && req->nurls == 0 && req->dir == NULL &&
	    req->name == NULL && req->headers == NULL && req->nheaders == 0;
}

/* Parse a body that must be refused with a message containing want. */
static void
json_bad(const char *body, const char *want, const char *file, int line)
{
	struct job_request req;
	char *cause = NULL;
	int rc;

	memset(&req, 0xa5, sizeof req);
	rc = request_parse_json(&req, body, strlen(body), &cause);
	check_at(rc == -1 && cause != NULL && strstr(cause, want) != NULL, file,
	    line, "%s: rc %d, cause \"%s\", want \"%s\"", body, rc,
	    cause ? cause : "(null)", want);
	check_at(
	    is_empty(&req), file, line, "%s: request not left empty", body);
	if (rc == 0)
		request_finish(&req);
	free(cause);
}

/* Run the cases in data/requests/json-invalid.txt. */
static void
test_json_file(void)
{
	const char *file = "data/requests/json-invalid.txt";
	char line[4096], *tab;
	int lineno = 0, cases = 0;
	FILE *f;

	if ((f = fopen(file, "r")) == NULL) {
		check_at(0, __FILE__, __LINE__, "cannot open %s", file);
		return;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if ((tab = strchr(line, '\t')) == NULL) {
			check_at(0, file, lineno, "no tab");
			continue;
		}
		*tab = '\0';
		json_bad(tab + 1, line, file, lineno);
		cases++;
	}
	fclose(f);
	check_at(
	    cases > 80, __FILE__, __LINE__, "only %d cases in %s", cases, file);
}

/* A full valid JSON request and what it becomes. */
static void
test_json_valid(void)
{
	struct job_request req;
	const char *body;
	char *cause = NULL;

	body = "{\"urls\": [\"http://h/a.png\", \"HTTPS://H:8443/b?c=d#e\","
	       " \"http://[::1]/x\", \"http://h/caf\xc3\xa9.png\"],"
	       " \"dir\": \"photos/2023/\", \"name\": \"{host}/{n}-{name}\","
	       " \"headers\": {\"Referer\": \"http://h/\","
	       " \"X-Token\": \"a b\\tc\", \"Accept\": \"\"}}";
	CHECK(request_parse_json(&req, body, strlen(body), &cause) == 0);
	CHECK_STR(cause, NULL);
	CHECK_INT(req.nurls, 4);
	if (req.nurls == 4) {
		CHECK_STR(req.urls[0], "http://h/a.png");
		CHECK_STR(req.urls[1], "HTTPS://H:8443/b?c=d#e");
		CHECK_STR(req.urls[2], "http://[::1]/x");
		CHECK_STR(req.urls[3], "http://h/caf\xc3\xa9.png");
	}
	CHECK_STR(req.dir, "photos/2023/");
	CHECK_STR(req.name, "{host}/{n}-{name}");
	CHECK_INT(req.nheaders, 3);
	if (req.nheaders == 3) {
		CHECK_STR(req.headers[0], "Referer: http://h/");
		CHECK_STR(req.headers[1], "X-Token: a b\tc");
		CHECK_STR(req.headers[2], "Accept: ");
	}
	request_finish(&req);
	CHECK(is_empty(&req));

	/* Only urls; null optional fields are the same as absent ones. */
	body = "{\"urls\": [\"http://h/\"], \"dir\": null, \"name\": null,"
	       " \"headers\": null}";
	CHECK(request_parse_json(&req, body, strlen(body), &cause) == 0);
	CHECK_INT(req.nurls, 1);
	CHECK_STR(req.dir, NULL);
	CHECK_STR(req.name, NULL);
	CHECK_INT(req.nheaders, 0);
	request_finish(&req);

	/* Empty headers object. */
	body = "  {\"headers\": {}, \"urls\": [\"http://h/x\"]}\n";
	CHECK(request_parse_json(&req, body, strlen(body), &cause) == 0);
	CHECK_INT(req.nheaders, 0);
	request_finish(&req);

	/* The length given is what is parsed, not up to a NUL. */
	body = "{\"urls\": [\"http://h/x\"]}garbage";
	CHECK(request_parse_json(&req, body, 24, &cause) == 0);
	request_finish(&req);
	CHECK(request_parse_json(&req, body, 23, &cause) == -1);
	CHECK(cause != NULL && strncmp(cause, "invalid JSON", 12) == 0);
	free(cause);
	cause = NULL;
	CHECK(request_parse_json(&req, body, 0, &cause) == -1);
	free(cause);
}

/* Limits on the number of URLs and headers. */
static void
test_json_limits(void)
{
	static char body[(JOB_MAX_URLS + 1) * 24 + 64];
	struct job_request req;
	char *p, *cause = NULL;
	size_t n;

	/* JOB_MAX_URLS URLs are accepted, one more is refused. */
	for (n = JOB_MAX_URLS; n <= JOB_MAX_URLS + 1; n++) {
		p = body + sprintf(body, "{\"urls\": [");
		for (size_t i = 0; i < n; i++)
			p += sprintf(p, "%s\"http://h/%zu\"", i ? "," : "", i);
		sprintf(p, "]}");
		if (n == JOB_MAX_URLS) {
			CHECK(request_parse_json(
				  &req, body, strlen(body), &cause) == 0);
			CHECK_INT(req.nurls, JOB_MAX_URLS);
			CHECK(req.nurls > 0 &&
			    same(req.urls[req.nurls - 1], "http://h/99999"));
			request_finish(&req);
		} else {
			CHECK(request_parse_json(
				  &req, body, strlen(body), &cause) == -1);
			CHECK_STR(cause,
			    "urls[100000]: more than "
			    "max_job_items (100000 URLs)");
			free(cause);
			cause = NULL;
		}
	}

	/* JOB_MAX_HEADERS headers are accepted, one more is refused. */
	for (n = JOB_MAX_HEADERS; n <= JOB_MAX_HEADERS + 1; n++) {
		p = body +
		    sprintf(body,
			"{\"urls\": [\"http://h/\"], "
			"\"headers\": {");
		for (size_t i = 0; i < n; i++)
			p += sprintf(p, "%s\"X-H%zu\": \"v\"", i ? "," : "", i);
		sprintf(p, "}}");
		if (n == JOB_MAX_HEADERS) {
			CHECK(request_parse_json(
				  &req, body, strlen(body), &cause) == 0);
			CHECK_INT(req.nheaders, JOB_MAX_HEADERS);
			request_finish(&req);
		} else {
			CHECK(request_parse_json(
				  &req, body, strlen(body), &cause) == -1);
			CHECK_STR(cause,
			    "headers: 65 headers, more than "
			    "max_job_headers (64)");
			free(cause);
			cause = NULL;
		}
	}

	/* Over-long URL and header value. */
	p = body + sprintf(body, "{\"urls\": [\"http://h/");
	memset(p, 'a', URL_MAX_BYTES);
	strcpy(p + URL_MAX_BYTES, "\"]}");
	json_bad(body, "urls[0]: longer than max_url_length (8192 bytes)",
	    __FILE__, __LINE__);
	p = body +
	    sprintf(body,
		"{\"urls\": [\"http://h/\"], \"headers\": "
		"{\"X-A\": \"");
	memset(p, 'v', REQUEST_HEADER_MAX_BYTES);
	strcpy(p + REQUEST_HEADER_MAX_BYTES, "\"}}");
	json_bad(body,
	    "headers: \"X-A\": longer than max_header_bytes (8192 bytes)",
	    __FILE__, __LINE__);
}

/* Undo the escapes of a limits case body: \n, \r, \t and \\. */
static size_t
unescape(char *s)
{
	char *in, *out;

	for (in = out = s; *in != '\0'; in++) {
		if (*in != '\\' || in[1] == '\0') {
			*out++ = *in;
			continue;
		}
		in++;
		*out++ = *in == 'n' ? '\n'
		    : *in == 'r'    ? '\r'
		    : *in == 't'    ? '\t'
				    : *in;
	}
	*out = '\0';
	return (size_t)(out - s);
}

/* One case of data/requests/limits.txt; fields are split already. */
static void
limits_case(char **field, const char *file, int lineno)
{
	struct request_limits lim;
	struct job_request req;
	char *cause = NULL;
	size_t len, n;
	int rc;

	if (sscanf(field[0], "%zu,%zu,%zu,%zu", &lim.max_job_items,
		&lim.max_url_length, &lim.max_job_headers,
		&lim.max_header_bytes) != 4) {
		check_at(0, file, lineno, "bad limits \"%s\"", field[0]);
		return;
	}
	len = unescape(field[3]);
	memset(&req, 0xa5, sizeof req);
	if (strcmp(field[1], "json") == 0)
		rc = request_parse_json_limits(
		    &req, field[3], len, &lim, &cause);
	else if (strcmp(field[1], "urilist") == 0)
		rc = request_parse_urilist_limits(
		    &req, field[3], len, NULL, NULL, &lim, &cause);
	else {
		check_at(0, file, lineno, "bad form \"%s\"", field[1]);
		return;
	}
	if (sscanf(field[2], "ok %zu", &n) == 1) {
		check_at(rc == 0 && req.nurls + req.npages == n, file, lineno,
		    "rc %d, cause \"%s\", want %zu URLs", rc,
		    cause ? cause : "", n);
		if (rc == 0)
			request_finish(&req);
	} else {
		check_at(rc == -1 && cause != NULL && same(cause, field[2]),
		    file, lineno, "rc %d, cause \"%s\", want \"%s\"", rc,
		    cause ? cause : "(null)", field[2]);
		check_at(
		    is_empty(&req), file, lineno, "request not left empty");
	}
	free(cause);
}

/* Run the cases in data/requests/limits.txt. */
static void
test_limits_file(void)
{
	const char *file = "data/requests/limits.txt";
	char line[8192], *field[4], *p;
	int lineno = 0, cases = 0, i;
	FILE *f;

	if ((f = fopen(file, "r")) == NULL) {
		check_at(0, __FILE__, __LINE__, "cannot open %s", file);
		return;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		p = line;
		for (i = 0; i < 4 && p != NULL; i++)
			field[i] = strsep(&p, "\t");
		if (i < 4 || p != NULL) {
			check_at(
			    0, file, lineno, "want 4 tab-separated fields");
			continue;
		}
		limits_case(field, file, lineno);
		cases++;
	}
	fclose(f);
	check_at(
	    cases > 20, __FILE__, __LINE__, "only %d cases in %s", cases, file);
}

/* Network options: parsed, defaulted, and checked against the caps. */
static void
test_json_network(void)
{
	const char *full =
	    "{\"urls\": [\"http://h/a\"], \"timeout\": 30, \"retries\": 0,"
	    " \"proxy\": \"socks5h://u:p@127.0.0.1:1080\", \"no_proxy\":"
	    " \"localhost,.lan\", \"user_agent\": \"agent/1\"}";
	const char *body;
	struct job_request req;
	struct config cfg;
	char *cause = NULL, *p;

	body = "{\"urls\": [\"http://h/a\"]}";
	CHECK(request_parse_json(&req, body, strlen(body), &cause) == 0);
	CHECK_INT(req.timeout, -1);
	CHECK_INT(req.retries, -1);
	CHECK(req.proxy == NULL && req.no_proxy == NULL &&
	    req.user_agent == NULL);
	request_finish(&req);

	if (request_parse_json(&req, full, strlen(full), &cause) != 0) {
		check_at(0, __FILE__, __LINE__, "%s", cause);
		free(cause);
		return;
	}
	CHECK_INT(req.timeout, 30);
	CHECK_INT(req.retries, 0);
	CHECK_STR(req.proxy, "socks5h://u:p@127.0.0.1:1080");
	CHECK_STR(req.no_proxy, "localhost,.lan");
	CHECK_STR(req.user_agent, "agent/1");

	config_init(&cfg);
	cfg.allow_job_proxy = 1;
	CHECK(request_check_limits(&req, &cfg, &cause) == 0);
	cfg.max_job_timeout = 29;
	CHECK(request_check_limits(&req, &cfg, &cause) == -1);
	CHECK_STR(cause, "timeout: 30 is over max_job_timeout (29)");
	free(cause);
	cfg.max_job_timeout = 30;
	req.retries = 11;
	CHECK(request_check_limits(&req, &cfg, &cause) == -1);
	CHECK_STR(cause, "retries: 11 is over max_job_retries (10)");
	free(cause);
	req.retries = 10;
	cfg.allow_job_proxy = 0;
	CHECK(request_check_limits(&req, &cfg, &cause) == -1);
	CHECK_STR(cause,
	    "proxy: a job may not choose its proxy (allow_job_proxy is "
	    "false)");
	free(cause);
	config_finish(&cfg);

	p = request_proxy_redacted(req.proxy);
	CHECK_STR(p, "socks5h://127.0.0.1:1080/");
	free(p);
	request_finish(&req);

	/* "" is a direct connection, accepted as a proxy. */
	body = "{\"urls\": [\"http://h/a\"], \"proxy\": \"\"}";
	CHECK(request_parse_json(&req, body, strlen(body), &cause) == 0);
	CHECK_STR(req.proxy, "");
	request_finish(&req);

	CHECK(request_check_proxy("https://proxy.example:8443", &cause) == 0);
	CHECK(request_check_proxy("socks4a://h:1080/", &cause) == 0);
	CHECK(request_check_proxy("gopher://h:70", &cause) == -1);
	free(cause);
	CHECK(request_check_no_proxy("*", &cause) == 0);
	CHECK(request_check_no_proxy("h\x7f", &cause) == -1);
	free(cause);
}

/* request_check_url directly. */
static void
test_check_url(void)
{
	static const char *good[] = {
		"http://h/",
		"https://h",
		"http://h:8080/a/b.png?x=y#z",
		"http://user:pw@h/x",
		"http://127.0.0.1:1/x",
		"http://[::1]:8080/",
		"HTTP://EXAMPLE.COM/A.PNG",
		"http://h/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"http://h/caf\xc3\xa9",
	};
	static const char *bad[] = {
		"",
		"ftp://h/x",
		"file:///etc/passwd",
		"javascript:alert(1)",
		"/x",
		"x",
		"//h/x",
		"http://",
		"http://h/a b",
		"http://h/\x01",
		"http://h/\xff",
		"https://h:65536/",
		"data:,x",
		"ws://h/",
	};
	char *cause;
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		cause = NULL;
		check_at(request_check_url(good[i], &cause) == 0, __FILE__,
		    __LINE__, "%s refused: %s", good[i], cause ? cause : "");
		free(cause);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = NULL;
		check_at(request_check_url(bad[i], &cause) == -1 &&
			cause != NULL && *cause != '\0',
		    __FILE__, __LINE__, "\"%s\" accepted", bad[i]);
		free(cause);
	}
	cause = NULL;
	CHECK(request_check_url("http://h/\xff", &cause) == -1);
	CHECK_STR(cause, "URL is not valid UTF-8");
	free(cause);
}

/* request_check_header and request_check_header_line directly. */
static void
test_check_header(void)
{
	char *cause = NULL;

	CHECK(
	    request_check_header("X-Custom_1.a~!#$%&'*+^`|", "v", &cause) == 0);
	CHECK(request_check_header("Accept", "", &cause) == 0);
	CHECK(request_check_header("Accept", "a\tb \xc3\xa9", &cause) == 0);
	CHECK(request_check_header("A B", "v", &cause) == -1);
	CHECK_STR(cause, "\"A B\" is not a valid header name");
	free(cause);
	CHECK(request_check_header("A(", "v", &cause) == -1);
	free(cause);
	CHECK(request_check_header("A", "x\r\nB: y", &cause) == -1);
	CHECK_STR(cause, "\"A\": value contains CR, LF or NUL");
	free(cause);
	CHECK(request_check_header("A", "x\x7f", &cause) == -1);
	CHECK_STR(cause, "\"A\": value contains a control character");
	free(cause);

	CHECK(request_check_header_line("X-A: b", &cause) == 0);
	CHECK(request_check_header_line("X-A:b", &cause) == 0);
	CHECK(request_check_header_line("X-A:", &cause) == 0);
	CHECK(request_check_header_line("X-A b", &cause) == -1);
	CHECK_STR(cause, "\"X-A b\": expected \"Name: value\"");
	free(cause);
	CHECK(request_check_header_line(": b", &cause) == -1);
	CHECK_STR(cause, "empty header name");
	free(cause);
	CHECK(request_check_header_line("X-A : b", &cause) == -1);
	CHECK_STR(cause, "\"X-A \" is not a valid header name");
	free(cause);
	CHECK(request_check_header_line("X-A: b\nC: d", &cause) == -1);
	CHECK_STR(cause, "\"X-A\": value contains CR, LF or NUL");
	free(cause);
}

/* Read a whole file; NULL if it cannot be read. */
static char *
read_file(const char *path, size_t *len)
{
	char *buf = NULL;
	size_t size = 0, n;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	*len = 0;
	do {
		size += 4096;
		buf = xrealloc(buf, size + 1);
		n = fread(buf + *len, 1, size - *len, f);
		*len += n;
	} while (*len == size);
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

/* Run one uri-list file from data/requests. */
static void
urilist_file(const char *name)
{
	struct job_request req;
	char path[512], want[512], *body, *why, *cause = NULL;
	size_t len, i;
	long nurls;
	int rc;

	snprintf(path, sizeof path, "data/requests/%s", name);
	if ((body = read_file(path, &len)) == NULL) {
		check_at(0, path, 1, "cannot read");
		return;
	}
	rc = request_parse_urilist(&req, body, len, NULL, NULL, &cause);
	if (strncmp(name, "valid-", 6) == 0) {
		if (sscanf(body, "# urls: %ld", &nurls) != 1) {
			check_at(0, path, 1, "no \"# urls: N\" line");
			nurls = -1;
		}
		check_at(rc == 0 && (long)req.nurls == nurls, path, 1,
		    "rc %d, %zu URLs (want %ld), cause \"%s\"", rc,
		    rc == 0 ? req.nurls : 0, nurls, cause ? cause : "");
		for (i = 0; rc == 0 && i < req.nurls; i++) {
			why = NULL;
			check_at(request_check_url(req.urls[i], &why) == 0,
			    path, 1, "stored URL \"%s\" is bad", req.urls[i]);
			free(why);
		}
		if (rc == 0)
			request_finish(&req);
	} else {
		if (sscanf(body, "# expect: %511[^\r\n]", want) != 1) {
			check_at(0, path, 1, "no \"# expect: ...\" line");
			want[0] = '\0';
		}
		check_at(rc == -1 && cause != NULL && strcmp(cause, want) == 0,
		    path, 1, "rc %d, cause \"%s\", want \"%s\"", rc,
		    cause ? cause : "(null)", want);
		check_at(is_empty(&req), path, 1, "request not left empty");
	}
	free(cause);
	free(body);
}

/* Run every uri-list file in data/requests. */
static void
test_urilist_files(void)
{
	struct dirent *de;
	size_t len;
	int files = 0;
	DIR *d;

	if ((d = opendir("data/requests")) == NULL) {
		check_at(0, __FILE__, __LINE__, "cannot open data/requests");
		return;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 8 || strcmp(de->d_name + len - 8, ".urilist") != 0)
			continue;
		urilist_file(de->d_name);
		files++;
	}
	closedir(d);
	check_at(
	    files >= 10, __FILE__, __LINE__, "only %d uri-list files", files);
}

/* uri-list details the files cannot hold easily. */
static void
test_urilist(void)
{
	struct job_request req;
	const char *body;
	char *cause = NULL;

	body = "# c\nhttp://h/a.png\n  \n\thttps://h/b  \r\n#x\nhttp://h/c";
	CHECK(request_parse_urilist(
		  &req, body, strlen(body), "d/e", "{name}", &cause) == 0);
	CHECK_INT(req.nurls, 3);
	if (req.nurls == 3) {
		CHECK_STR(req.urls[0], "http://h/a.png");
		CHECK_STR(req.urls[1], "https://h/b");
		CHECK_STR(req.urls[2], "http://h/c");
	}
	CHECK_STR(req.dir, "d/e");
	CHECK_STR(req.name, "{name}");
	CHECK_INT(req.nheaders, 0);
	request_finish(&req);

	/* A NUL byte inside a line. */
	body = "http://h/a\nhttp://h/b\0/../x\n";
	CHECK(request_parse_urilist(&req, body, 24, NULL, NULL, &cause) == -1);
	CHECK_STR(cause, "line 2: contains NUL");
	CHECK(is_empty(&req));
	free(cause);

	/* Only the given length is read. */
	body = "http://h/a\nftp://h/b\n";
	CHECK(request_parse_urilist(&req, body, 11, NULL, NULL, &cause) == 0);
	CHECK_INT(req.nurls, 1);
	request_finish(&req);

	/* An empty body. */
	CHECK(request_parse_urilist(&req, "", 0, NULL, NULL, &cause) == -1);
	CHECK_STR(cause, "body: no URLs in the list");
	free(cause);

	/* dir and name from the query string are checked. */
	body = "http://h/a\n";
	CHECK(request_parse_urilist(
		  &req, body, strlen(body), "../x", NULL, &cause) == -1);
	CHECK_STR(cause, "dir: \"..\" component not allowed");
	CHECK(is_empty(&req));
	free(cause);
	CHECK(request_parse_urilist(
		  &req, body, strlen(body), NULL, "{x}", &cause) == -1);
	CHECK_STR(cause, "name: unknown field \"{x}\"");
	free(cause);
	CHECK(request_parse_urilist(
		  &req, body, strlen(body), "a\nb", NULL, &cause) == -1);
	CHECK_STR(cause, "dir: control character not allowed");
	free(cause);
	CHECK(request_parse_urilist(
		  &req, body, strlen(body), "\xff", NULL, &cause) == -1);
	CHECK_STR(cause, "dir: not valid UTF-8");
	free(cause);

	/* Invalid UTF-8 in a URL. */
	body = "http://h/a\nhttp://h/\xc3(\n";
	CHECK(request_parse_urilist(
		  &req, body, strlen(body), NULL, NULL, &cause) == -1);
	CHECK_STR(cause, "line 2: URL is not valid UTF-8");
	free(cause);

	/* request_finish on an empty request is harmless. */
	memset(&req, 0, sizeof req);
	request_finish(&req);
	CHECK(is_empty(&req));
}

/* Run every test, print a summary and fail if any check failed. */
int
main(void)
{
	test_json_file();
	test_json_valid();
	test_json_limits();
	test_json_network();
	test_limits_file();
	test_check_url();
	test_check_header();
	test_urilist_files();
	test_urilist();

	return check_summary("test_request");
}
