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
		c->on_exists == EXISTS_SUFFIX && c->buffer_size == 524288 &&
		c->dedup == 0 && c->cache_max_entries == 100000 &&
		c->max_page_size == 8388608 &&
		c->queue == NULL && same(c->queue_stream, "imgfetch:jobs") &&
		same(c->queue_group, "imgfetchd") &&
		same(c->queue_results, "imgfetch:results") && c->node != NULL &&
		c->node[0] != '\0' && c->queue_batch == 1 &&
		c->queue_low_water == 64 && c->claim_idle == 60 &&
		c->metrics_listen == NULL &&
		c->private_jobs == 0 && c->ndeny_networks == 0 &&
		c->deny_networks == NULL && c->nallow_networks == 0 &&
		c->allow_networks == NULL && c->host_rate == 0,
	    file, line, "not the defaults (workers %d, user_agent \"%s\", ...)",
	    c->workers, c->user_agent ? c->user_agent : "(null)");
}

/* Check the network settings hold their built-in defaults. */
static void
check_network_defaults(const struct config *c, const char *file, int line)
{
	check_at(same(c->ca_file, "") && same(c->ca_path, "") &&
		same(c->client_cert, "") && same(c->client_key, "") &&
		same(c->proxy, "") && same(c->no_proxy, "") &&
		same(c->netrc_file, "") && c->max_job_timeout == 3600 &&
		c->max_job_retries == 10 && c->allow_job_proxy == 0,
	    file, line, "network settings not the defaults (proxy \"%s\")",
	    c->proxy ? c->proxy : "(null)");
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
	check_network_defaults(&c, __FILE__, __LINE__);
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
		check_network_defaults(&c, __FILE__, __LINE__);
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
		CHECK_STR(c.ca_file, "/etc/imgfetchd/ca.pem");
		CHECK_STR(c.ca_path, "/etc/imgfetchd/ca.d");
		CHECK_STR(c.client_cert, "/etc/imgfetchd/client.pem");
		CHECK_STR(c.client_key, "/etc/imgfetchd/client.key");
		CHECK_STR(c.proxy, "socks5h://user:pw@127.0.0.1:1080");
		CHECK_STR(c.no_proxy, "localhost,.internal,10.0.0.0/8");
		CHECK_STR(c.netrc_file, "/run/credentials/imgfetchd/netrc");
		CHECK_INT(c.max_job_timeout, 60);
		CHECK_INT(c.max_job_retries, 0);
		CHECK_INT(c.allow_job_proxy, 1);
		CHECK_STR(c.queue, "redis://10.0.0.5:6380/2");
		CHECK_STR(c.queue_stream, "s:jobs");
		CHECK_STR(c.queue_group, "g");
		CHECK_STR(c.queue_results, "s:results");
		CHECK_STR(c.node, "fetch-7");
		CHECK_INT(c.queue_batch, 5);
		CHECK_INT(c.queue_low_water, 500);
		CHECK_INT(c.claim_idle, 30);
		CHECK_STR(c.metrics_listen, "[::1]:9464");
		CHECK_INT(c.private_jobs, 1);
		CHECK_INT(c.ndeny_networks, 4);
		if (c.ndeny_networks == 4) {
			CHECK_STR(c.deny_networks[0], "127.0.0.0/8");
			CHECK_STR(c.deny_networks[1], "::1");
			CHECK_STR(c.deny_networks[3], "fe80::/10");
		}
		CHECK_INT(c.nallow_networks, 2);
		if (c.nallow_networks == 2)
			CHECK_STR(c.allow_networks[1], "2000::/3");
		CHECK(c.host_rate == 2.5);
	}
	config_finish(&c);

	if (load_ok(&c, "data/configs/valid-host-rate-int.conf", __LINE__) ==
	    0) {
		CHECK(c.host_rate == 10.0);
		CHECK_INT(c.ndeny_networks, 0);
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

	if (load_ok(&c, "data/configs/valid-scrape.conf", __LINE__) == 0) {
		CHECK_INT(c.dedup, 1);
		CHECK_INT(c.cache_max_entries, 0);
		CHECK_INT(c.max_page_size, 1073741824LL);
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

/* Queue addresses and listen addresses. */
static void
test_addresses(void)
{
	struct config_redis r;
	char *cause = NULL, *host = NULL;
	int port = 0;

	CHECK(config_parse_redis("redis://127.0.0.1:7000/3", &r, &cause) == 0);
	CHECK_STR(r.host, "127.0.0.1");
	CHECK_INT(r.port, 7000);
	CHECK_INT(r.db, 3);
	config_redis_finish(&r);
	CHECK(config_parse_redis("redis://[::1]", &r, &cause) == 0);
	CHECK_STR(r.host, "::1");
	CHECK_INT(r.port, 6379);
	CHECK_INT(r.db, 0);
	config_redis_finish(&r);
	CHECK(config_parse_redis("/run/redis.sock", &r, &cause) == 0);
	CHECK_STR(r.path, "/run/redis.sock");
	CHECK(r.host == NULL);
	config_redis_finish(&r);
	CHECK(config_parse_redis("unix:///run/r.sock?db=4", &r, &cause) == 0);
	CHECK_STR(r.path, "/run/r.sock");
	CHECK_INT(r.db, 4);
	config_redis_finish(&r);
	CHECK(config_parse_redis("redis://h:1/0?x=1", &r, &cause) == -1);
	CHECK_STR(cause, "redis:// takes no query");
	free(cause);
	cause = NULL;
	CHECK(config_parse_listen("[::1]:9464", &host, &port, &cause) == 0);
	CHECK_STR(host, "::1");
	CHECK_INT(port, 9464);
	free(host);
	CHECK(config_parse_listen("0.0.0.0:0", &host, &port, &cause) == -1);
	CHECK(host == NULL);
	free(cause);
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
	test_addresses();
	test_files();

	return check_summary("test_config");
}
