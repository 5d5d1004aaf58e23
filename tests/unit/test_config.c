/* Unit tests for config.c: defaults, valid and invalid config files. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "defs.h"
#include "log.h"
#include "request.h"

#include "check.h"

/* Check every value but the socket path is the built-in default. */
static void
check_defaults(const struct config *c, const char *file, int line)
{
	check_at(c->socket_mode == 0660 && same(c->download_dir, "downloads") &&
		c->workers == config_default_workers() &&
		c->workers >= WORKERS_DEFAULT_MIN &&
		c->workers <= WORKERS_DEFAULT_MAX && c->max_transfers == 64 &&
		c->max_host_connections == 0 && c->connect_timeout == 30 &&
		c->timeout == 0 && c->max_redirects == 10 &&
		same(c->user_agent, "imgfetchd/" IMGFETCHD_VERSION) &&
		c->headers == NULL && c->nheaders == 0 &&
		c->max_item_size == 0 && c->fsync == 0 &&
		c->queue_limit == 1000000 &&
		c->max_request_body == 16 * 1024 * 1024 &&
		c->log_level == LOG_LEVEL_INFO &&
		c->on_exists == EXISTS_SUFFIX && c->buffer_size == 524288,
	    file, line, "not the defaults (workers %d, user_agent \"%s\", ...)",
	    c->workers, c->user_agent ? c->user_agent : "(null)");
}

/* config_init, config_finish and config_exists_name. */
static void
test_defaults(void)
{
	struct config c;

	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	config_init(&c);
	CHECK_STR(c.socket_path, "/run/user/1000/imgfetchd.sock");
	check_defaults(&c, __FILE__, __LINE__);
	config_finish(&c);
	CHECK(c.socket_path == NULL && c.headers == NULL);

	setenv("XDG_RUNTIME_DIR", "", 1);
	config_init(&c);
	CHECK_STR(c.socket_path, "imgfetchd.sock");
	config_finish(&c);

	unsetenv("XDG_RUNTIME_DIR");
	config_init(&c);
	CHECK_STR(c.socket_path, "imgfetchd.sock");
	check_defaults(&c, __FILE__, __LINE__);
	config_finish(&c);

	CHECK_STR(config_exists_name(EXISTS_SUFFIX), "suffix");
	CHECK_STR(config_exists_name(EXISTS_OVERWRITE), "overwrite");
	CHECK_STR(config_exists_name(EXISTS_SKIP), "skip");
}

/* Load a file that must load cleanly over the defaults. */
static int
load_ok(struct config *c, const char *path, int line)
{
	char *cause = NULL;
	int rc;

	config_init(c);
	rc = config_load(c, path, &cause);
	check_at(rc == 0, __FILE__, line, "%s: %s", path,
	    cause ? cause : "(no cause)");
	free(cause);
	return rc;
}

/* The bundled config/imgfetchd.conf loads and holds the defaults. */
static void
test_bundled(void)
{
	struct config c;

	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	if (load_ok(&c, "../config/imgfetchd.conf", __LINE__) == 0) {
		CHECK_STR(c.socket_path, "imgfetchd.sock");
		check_defaults(&c, __FILE__, __LINE__);
	}
	config_finish(&c);
	unsetenv("XDG_RUNTIME_DIR");
}

/* Each valid file, with the values the interesting ones set. */
static void
test_valid(void)
{
	struct config c;

	if (load_ok(&c, "data/configs/valid-empty.conf", __LINE__) == 0) {
		CHECK_STR(c.socket_path, "imgfetchd.sock");
		check_defaults(&c, __FILE__, __LINE__);
	}
	config_finish(&c);

	if (load_ok(&c, "data/configs/valid-full.conf", __LINE__) == 0) {
		CHECK_STR(c.socket_path, "/tmp/imgfetchd-test.sock");
		CHECK_INT(c.socket_mode, 0600);
		CHECK_STR(c.download_dir, "/srv/images");
		CHECK_INT(c.workers, 8);
		CHECK_INT(c.max_transfers, 200);
		CHECK_INT(c.max_host_connections, 6);
		CHECK_INT(c.connect_timeout, 5);
		CHECK_INT(c.timeout, 600);
		CHECK_INT(c.max_redirects, 0);
		CHECK_STR(
		    c.user_agent, "test-agent/1.0 (+https://example.com/bot)");
		CHECK_INT(c.nheaders, 3);
		if (c.nheaders == 3) {
			CHECK_STR(c.headers[0], "Accept: image/*");
			CHECK_STR(c.headers[1], "X-Token: abc def");
			CHECK_STR(c.headers[2], "Cache-Control:");
		}
		CHECK_INT(c.max_item_size, 10000000000LL);
		CHECK_INT(c.fsync, 1);
		CHECK_INT(c.queue_limit, 50);
		CHECK_INT(c.max_request_body, 1024);
		CHECK_INT(c.log_level, LOG_LEVEL_DEBUG);
		CHECK_INT(c.on_exists, EXISTS_SKIP);
		CHECK_INT(c.buffer_size, 10485760);
	}
	config_finish(&c);

	if (load_ok(&c, "data/configs/valid-syntax.conf", __LINE__) == 0) {
		CHECK_INT(c.workers, 256);
		CHECK_INT(c.max_transfers, 1);
		CHECK_INT(c.max_host_connections, 10000);
		CHECK_INT(c.connect_timeout, 0);
		CHECK_INT(c.timeout, 2147483);
		CHECK_INT(c.max_redirects, 50);
		CHECK_INT(c.nheaders, 2);
		CHECK_INT(c.queue_limit, 0x7fffffff);
		CHECK_INT(c.max_request_body, 16777216);
		CHECK_INT(c.buffer_size, 1024);
		CHECK_INT(c.socket_mode, 0777);
		CHECK_INT(c.log_level, LOG_LEVEL_ERROR);
		CHECK_INT(c.on_exists, EXISTS_OVERWRITE);
		CHECK_INT(c.fsync, 0);
	}
	config_finish(&c);

	if (load_ok(&c, "data/configs/valid-include.conf", __LINE__) == 0) {
		CHECK_INT(c.workers, 3);
		CHECK_INT(c.max_transfers, 7);
	}
	config_finish(&c);
}

/* The job limits: defaults, values from a file, and as request limits. */
static void
test_limits(void)
{
	struct request_limits lim;
	struct config c;

	config_init(&c);
	config_request_limits(&c, &lim);
	CHECK_INT(lim.max_job_items, JOB_MAX_URLS);
	CHECK_INT(lim.max_url_length, URL_MAX_BYTES);
	CHECK_INT(lim.max_job_headers, JOB_MAX_HEADERS);
	CHECK_INT(lim.max_header_bytes, REQUEST_HEADER_MAX_BYTES);
	config_finish(&c);

	if (load_ok(&c, "data/configs/valid-limits.conf", __LINE__) == 0) {
		config_request_limits(&c, &lim);
		CHECK_INT(lim.max_job_items, 1000000);
		CHECK_INT(lim.max_url_length, 16);
		CHECK_INT(lim.max_job_headers, 0);
		CHECK_INT(lim.max_header_bytes, 65536);
	}
	config_finish(&c);
}

/* Loading over loaded values: a second file replaces what it sets. */
static void
test_reload(void)
{
	struct config c;
	char *cause = NULL;

	if (load_ok(&c, "data/configs/valid-full.conf", __LINE__) == 0) {
		CHECK(config_load(
			  &c, "data/configs/valid-syntax.conf", &cause) == 0);
		CHECK_STR(cause, NULL);
		CHECK_INT(c.nheaders, 2);
		if (c.nheaders == 2)
			CHECK_STR(c.headers[1], "B: 2");
		CHECK_STR(
		    c.user_agent, "test-agent/1.0 (+https://example.com/bot)");
		CHECK_INT(c.workers, 256);
		/* A failed load may change things, but leaks nothing. */
		CHECK(config_load(&c, "data/configs/invalid-header-name.conf",
			  &cause) == -1);
		free(cause);
	}
	config_finish(&c);
}

/* Files that cannot be read at all. */
static void
test_unreadable(void)
{
	struct config c;
	char *cause = NULL;

	config_init(&c);
	CHECK(
	    config_load(&c, "data/configs/does-not-exist.conf", &cause) == -1);
	CHECK_STR(cause,
	    "data/configs/does-not-exist.conf: No such file or directory");
	free(cause);
	cause = NULL;
	CHECK(config_load(&c, "data/configs", &cause) == -1);
	CHECK_STR(cause, "data/configs: Is a directory");
	free(cause);
	config_finish(&c);
}

/* Run one invalid-*.conf file against its "# expect: " line. */
static void
invalid_file(const char *name)
{
	struct config c;
	char path[512], want[1024], line[512], *cause = NULL;
	FILE *f;
	int rc;

	snprintf(path, sizeof path, "data/configs/%s", name);
	if ((f = fopen(path, "r")) == NULL) {
		check_at(0, path, 1, "cannot open");
		return;
	}
	if (fgets(line, sizeof line, f) == NULL ||
	    strncmp(line, "# expect: ", 10) != 0) {
		check_at(0, path, 1, "no \"# expect: \" first line");
		fclose(f);
		return;
	}
	fclose(f);
	line[strcspn(line, "\n")] = '\0';

	config_init(&c);
	rc = config_load(&c, path, &cause);
	if (line[10] == ':') {
		/* ":LINE: message" is the whole message after the path. */
		snprintf(want, sizeof want, "%s%s", path, line + 10);
		check_at(rc == -1 && same(cause, want), path, 1,
		    "rc %d, cause \"%s\", want \"%s\"", rc,
		    cause ? cause : "(null)", want);
	} else {
		check_at(rc == -1 && cause != NULL &&
			strstr(cause, line + 10) != NULL,
		    path, 1, "rc %d, cause \"%s\", want \"%s\"", rc,
		    cause ? cause : "(null)", line + 10);
	}
	free(cause);
	config_finish(&c);
}

/* Run every data/configs/invalid-*.conf and check all valid-*.conf load. */
static void
test_files(void)
{
	struct dirent *de;
	struct config c;
	char path[512];
	size_t len;
	int invalid = 0, valid = 0;
	DIR *d;

	if ((d = opendir("data/configs")) == NULL) {
		check_at(0, __FILE__, __LINE__, "cannot open data/configs");
		return;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		if (strncmp(de->d_name, "invalid-", 8) == 0) {
			invalid_file(de->d_name);
			invalid++;
		} else if (strncmp(de->d_name, "valid-", 6) == 0) {
			snprintf(
			    path, sizeof path, "data/configs/%s", de->d_name);
			load_ok(&c, path, __LINE__);
			config_finish(&c);
			valid++;
		}
	}
	closedir(d);
	check_at(invalid >= 40 && valid >= 4, __FILE__, __LINE__,
	    "only %d invalid and %d valid files", invalid, valid);
}

/* Run every test, print a summary and fail if any check failed. */
int
main(void)
{
	test_defaults();
	test_bundled();
	test_valid();
	test_limits();
	test_reload();
	test_unreadable();
	test_files();

	return check_summary("test_config");
}
