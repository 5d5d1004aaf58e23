/*
 * The daemon's configuration: built-in defaults, then a libconfig file read
 * over them. Every top-level setting must be known, of the right type and
 * in range; anything else is refused with "FILE:LINE: what is wrong" so a
 * reload can keep the old config.
 *
 * libconfig.h comes first: config.h maps our config_init() to
 * config_defaults(), and libconfig's own config_init() is called as
 * (config_init)(...) so that the macro does not apply.
 */
#include <libconfig.h>

#include <curl/curl.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "defs.h"
#include "log.h"
#include "netpolicy.h"
#include "path.h"
#include "request.h"
#include "xmalloc.h"

/* libcurl's receive buffer: its smallest and largest CURLOPT_BUFFERSIZE. */
#define CONFIG_BUFFER_MIN 1024
#define CONFIG_BUFFER_MAX (10 * 1024 * 1024)
/* Largest config file read. */
#define CONFIG_FILE_MAX (1024 * 1024)
/* libconfig's own limit on nested @include; it refuses deeper ones. */
#define CONFIG_INCLUDE_DEPTH 10
/* libcurl refuses timeouts above INT_MAX milliseconds. */
#define CONFIG_TIMEOUT_MAX (INT_MAX / 1000)

enum config_kind {
	CONFIG_STRING,
	CONFIG_INTEGER,
	CONFIG_BOOLEAN,
	CONFIG_MODE,
	CONFIG_LEVEL,
	CONFIG_EXISTS,
	CONFIG_HEADERS,
	CONFIG_TYPES,
	CONFIG_FILE, /* "" or an absolute path */
	CONFIG_PROXY, /* "" or a proxy URL */
	CONFIG_NOPROXY,
	CONFIG_REDIS,
	CONFIG_LISTEN,
	CONFIG_NETWORKS,
	CONFIG_RATE
};

/* The C type of a number field. */
enum config_ctype {
	CONFIG_INT,
	CONFIG_LONG,
	CONFIG_LLONG,
	CONFIG_DOUBLE,
	CONFIG_OTHER
};

/* One known setting: its type, range and where it goes in the config. */
struct config_key {
	const char *name;
	enum config_kind kind;
	long long min;
	long long max;
	size_t offset;
	enum config_ctype ctype;
};

#define CONFIG_FIELD(f, t) offsetof(struct config, f), t

static const struct config_key config_keys[] = {
	{ "socket_path", CONFIG_STRING, 1,
	    sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1,
	    CONFIG_FIELD(socket_path, CONFIG_OTHER) },
	{ "socket_mode", CONFIG_MODE, 0, 0777,
	    CONFIG_FIELD(socket_mode, CONFIG_INT) },
	{ "download_dir", CONFIG_STRING, 1, PATH_MAX - 1,
	    CONFIG_FIELD(download_dir, CONFIG_OTHER) },
	{ "workers", CONFIG_INTEGER, 1, 256,
	    CONFIG_FIELD(workers, CONFIG_INT) },
	{ "max_transfers", CONFIG_INTEGER, 1, 10000,
	    CONFIG_FIELD(max_transfers, CONFIG_INT) },
	{ "max_host_connections", CONFIG_INTEGER, 0, 10000,
	    CONFIG_FIELD(max_host_connections, CONFIG_INT) },
	{ "connect_timeout", CONFIG_INTEGER, 0, CONFIG_TIMEOUT_MAX,
	    CONFIG_FIELD(connect_timeout, CONFIG_LONG) },
	{ "timeout", CONFIG_INTEGER, 0, CONFIG_TIMEOUT_MAX,
	    CONFIG_FIELD(timeout, CONFIG_LONG) },
	{ "max_redirects", CONFIG_INTEGER, 0, 50,
	    CONFIG_FIELD(max_redirects, CONFIG_INT) },
	{ "user_agent", CONFIG_STRING, 0, REQUEST_HEADER_MAX_BYTES,
	    CONFIG_FIELD(user_agent, CONFIG_OTHER) },
	{ "headers", CONFIG_HEADERS, 0, JOB_MAX_HEADERS,
	    CONFIG_FIELD(headers, CONFIG_OTHER) },
	{ "max_item_size", CONFIG_INTEGER, 0, LLONG_MAX,
	    CONFIG_FIELD(max_item_size, CONFIG_LLONG) },
	{ "fsync", CONFIG_BOOLEAN, 0, 1, CONFIG_FIELD(fsync, CONFIG_INT) },
	{ "queue_limit", CONFIG_INTEGER, 1, INT_MAX,
	    CONFIG_FIELD(queue_limit, CONFIG_INT) },
	{ "max_request_body", CONFIG_INTEGER, 1024, LLONG_MAX,
	    CONFIG_FIELD(max_request_body, CONFIG_LLONG) },
	{ "log_level", CONFIG_LEVEL, 0, 0,
	    CONFIG_FIELD(log_level, CONFIG_INT) },
	{ "on_exists", CONFIG_EXISTS, 0, 0,
	    CONFIG_FIELD(on_exists, CONFIG_OTHER) },
	{ "buffer_size", CONFIG_INTEGER, CONFIG_BUFFER_MIN, CONFIG_BUFFER_MAX,
	    CONFIG_FIELD(buffer_size, CONFIG_LONG) },
	{ "state_dir", CONFIG_STRING, 1, PATH_MAX - 1,
	    CONFIG_FIELD(state_dir, CONFIG_OTHER) },
	{ "keep_finished", CONFIG_INTEGER, 0, INT_MAX,
	    CONFIG_FIELD(keep_finished, CONFIG_LONG) },
	{ "retries", CONFIG_INTEGER, 0, 100,
	    CONFIG_FIELD(retries, CONFIG_INT) },
	{ "retry_delay", CONFIG_INTEGER, 1, 3600000,
	    CONFIG_FIELD(retry_delay, CONFIG_LONG) },
	{ "retry_delay_max", CONFIG_INTEGER, 1, 86400000,
	    CONFIG_FIELD(retry_delay_max, CONFIG_LONG) },
	{ "retry_after_max", CONFIG_INTEGER, 0, 86400,
	    CONFIG_FIELD(retry_after_max, CONFIG_LONG) },
	{ "stall_speed", CONFIG_INTEGER, 0, INT_MAX,
	    CONFIG_FIELD(stall_speed, CONFIG_LONG) },
	{ "stall_time", CONFIG_INTEGER, 0, CONFIG_TIMEOUT_MAX,
	    CONFIG_FIELD(stall_time, CONFIG_LONG) },
	{ "allowed_types", CONFIG_TYPES, 1, 64,
	    CONFIG_FIELD(allowed_types, CONFIG_OTHER) },
	{ "allow_svg", CONFIG_BOOLEAN, 0, 1,
	    CONFIG_FIELD(allow_svg, CONFIG_INT) },
	{ "shutdown_grace", CONFIG_INTEGER, 0, 3600,
	    CONFIG_FIELD(shutdown_grace, CONFIG_LONG) },
	{ "dedup", CONFIG_BOOLEAN, 0, 1, CONFIG_FIELD(dedup, CONFIG_INT) },
	{ "cache_max_entries", CONFIG_INTEGER, 0, 100000000,
	    CONFIG_FIELD(cache_max_entries, CONFIG_LONG) },
	{ "max_page_size", CONFIG_INTEGER, 1, PAGE_SIZE_MAX,
	    CONFIG_FIELD(max_page_size, CONFIG_LLONG) },
	{ "ca_file", CONFIG_FILE, 0, PATH_MAX - 1,
	    CONFIG_FIELD(ca_file, CONFIG_OTHER) },
	{ "ca_path", CONFIG_FILE, 0, PATH_MAX - 1,
	    CONFIG_FIELD(ca_path, CONFIG_OTHER) },
	{ "client_cert", CONFIG_FILE, 0, PATH_MAX - 1,
	    CONFIG_FIELD(client_cert, CONFIG_OTHER) },
	{ "client_key", CONFIG_FILE, 0, PATH_MAX - 1,
	    CONFIG_FIELD(client_key, CONFIG_OTHER) },
	{ "proxy", CONFIG_PROXY, 0, URL_MAX_BYTES,
	    CONFIG_FIELD(proxy, CONFIG_OTHER) },
	{ "no_proxy", CONFIG_NOPROXY, 0, NO_PROXY_MAX_BYTES,
	    CONFIG_FIELD(no_proxy, CONFIG_OTHER) },
	{ "netrc_file", CONFIG_FILE, 0, PATH_MAX - 1,
	    CONFIG_FIELD(netrc_file, CONFIG_OTHER) },
	{ "max_job_timeout", CONFIG_INTEGER, 1, NET_TIMEOUT_MAX,
	    CONFIG_FIELD(max_job_timeout, CONFIG_LONG) },
	{ "max_job_retries", CONFIG_INTEGER, 0, NET_RETRIES_MAX,
	    CONFIG_FIELD(max_job_retries, CONFIG_INT) },
	{ "allow_job_proxy", CONFIG_BOOLEAN, 0, 1,
	    CONFIG_FIELD(allow_job_proxy, CONFIG_INT) },
	{ "max_api_connections", CONFIG_INTEGER, 1, 100000,
	    CONFIG_FIELD(max_api_connections, CONFIG_INT) },
	{ "api_idle_timeout", CONFIG_INTEGER, 1, 86400,
	    CONFIG_FIELD(api_idle_timeout, CONFIG_LONG) },
	{ "queue", CONFIG_REDIS, 1, PATH_MAX - 1,
	    CONFIG_FIELD(queue, CONFIG_OTHER) },
	{ "queue_stream", CONFIG_STRING, 1, QUEUE_NAME_MAX_BYTES,
	    CONFIG_FIELD(queue_stream, CONFIG_OTHER) },
	{ "queue_group", CONFIG_STRING, 1, QUEUE_NAME_MAX_BYTES,
	    CONFIG_FIELD(queue_group, CONFIG_OTHER) },
	{ "queue_results", CONFIG_STRING, 1, QUEUE_NAME_MAX_BYTES,
	    CONFIG_FIELD(queue_results, CONFIG_OTHER) },
	{ "node", CONFIG_STRING, 1, QUEUE_NAME_MAX_BYTES,
	    CONFIG_FIELD(node, CONFIG_OTHER) },
	{ "queue_batch", CONFIG_INTEGER, 1, QUEUE_BATCH_MAX,
	    CONFIG_FIELD(queue_batch, CONFIG_INT) },
	{ "queue_low_water", CONFIG_INTEGER, 1, INT_MAX,
	    CONFIG_FIELD(queue_low_water, CONFIG_INT) },
	{ "claim_idle", CONFIG_INTEGER, 1, 86400,
	    CONFIG_FIELD(claim_idle, CONFIG_LONG) },
	{ "queue_timeout", CONFIG_INTEGER, 1, 3600,
	    CONFIG_FIELD(queue_timeout, CONFIG_LONG) },
	{ "metrics_listen", CONFIG_LISTEN, 1, 300,
	    CONFIG_FIELD(metrics_listen, CONFIG_OTHER) },
	{ "private_jobs", CONFIG_BOOLEAN, 0, 1,
	    CONFIG_FIELD(private_jobs, CONFIG_INT) },
	{ "deny_networks", CONFIG_NETWORKS, 0, NETWORKS_MAX,
	    CONFIG_FIELD(deny_networks, CONFIG_OTHER) },
	{ "allow_networks", CONFIG_NETWORKS, 0, NETWORKS_MAX,
	    CONFIG_FIELD(allow_networks, CONFIG_OTHER) },
	{ "host_rate", CONFIG_RATE, 0, HOST_RATE_MAX,
	    CONFIG_FIELD(host_rate, CONFIG_DOUBLE) },
	{ "max_job_items", CONFIG_INTEGER, 1, JOB_ITEMS_LIMIT,
	    CONFIG_FIELD(max_job_items, CONFIG_LONG) },
	{ "max_url_length", CONFIG_INTEGER, 16, URL_LENGTH_LIMIT,
	    CONFIG_FIELD(max_url_length, CONFIG_LONG) },
	{ "max_job_headers", CONFIG_INTEGER, 0, JOB_HEADERS_LIMIT,
	    CONFIG_FIELD(max_job_headers, CONFIG_LONG) },
	{ "max_header_bytes", CONFIG_INTEGER, 16, HEADER_BYTES_LIMIT,
	    CONFIG_FIELD(max_header_bytes, CONFIG_LONG) },
};

static const char *const config_exists_names[] = {
	[EXISTS_SUFFIX] = "suffix",
	[EXISTS_OVERWRITE] = "overwrite",
	[EXISTS_SKIP] = "skip",
};

/*
 * Writer threads by default: one per CPU, so that small files do not cost
 * context switches among more writers than CPUs, but at least two, so that
 * one slow write does not hold every file up, and at most eight.
 */
int
config_default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < WORKERS_DEFAULT_MIN)
		n = WORKERS_DEFAULT_MIN;
	if (n > WORKERS_DEFAULT_MAX)
		n = WORKERS_DEFAULT_MAX;
	return (int)n;
}

/* The default node name: the host name, or "imgfetchd" without one. */
static char *
config_default_node(void)
{
	char host[256];

	if (gethostname(host, sizeof host) == -1 || host[0] == '\0')
		return xstrdup("imgfetchd");
	host[sizeof host - 1] = '\0';
	return xstrdup(host);
}

/* Fill in the built-in defaults. */
void
config_init(struct config *cfg)
{
	const char *runtime;

	memset(cfg, 0, sizeof *cfg);
	runtime = getenv("XDG_RUNTIME_DIR");
	if (runtime != NULL && *runtime != '\0')
		xasprintf(&cfg->socket_path, "%s/imgfetchd.sock", runtime);
	else
		cfg->socket_path = xstrdup("imgfetchd.sock");
	cfg->socket_mode = 0660;
	cfg->download_dir = xstrdup("downloads");
	cfg->workers = config_default_workers();
	cfg->max_transfers = 64;
	cfg->max_host_connections = 0;
	cfg->connect_timeout = 30;
	cfg->timeout = 0;
	cfg->max_redirects = 10;
	cfg->user_agent = xstrdup("imgfetchd/" IMGFETCHD_VERSION);
	cfg->headers = NULL;
	cfg->nheaders = 0;
	cfg->max_item_size = 0;
	cfg->fsync = 0;
	cfg->queue_limit = 1000000;
	cfg->max_request_body = 16 * 1024 * 1024;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->on_exists = EXISTS_SUFFIX;
	cfg->buffer_size = 524288;
	cfg->state_dir = xstrdup("state");
	cfg->keep_finished = 7 * 24 * 3600;
	cfg->retries = 3;
	cfg->retry_delay = 1000;
	cfg->retry_delay_max = 60000;
	cfg->retry_after_max = 300;
	cfg->stall_speed = 1024;
	cfg->stall_time = 30;
	cfg->allowed_types = xcalloc(1, sizeof *cfg->allowed_types);
	cfg->allowed_types[0] = xstrdup("image/*");
	cfg->nallowed_types = 1;
	cfg->allow_svg = 0;
	cfg->shutdown_grace = 10;
	cfg->dedup = 0;
	cfg->cache_max_entries = CACHE_MAX_ENTRIES_DEFAULT;
	cfg->max_page_size = PAGE_SIZE_DEFAULT;
	cfg->ca_file = xstrdup("");
	cfg->ca_path = xstrdup("");
	cfg->client_cert = xstrdup("");
	cfg->client_key = xstrdup("");
	cfg->proxy = xstrdup("");
	cfg->no_proxy = xstrdup("");
	cfg->netrc_file = xstrdup("");
	cfg->max_job_timeout = 3600;
	cfg->max_job_retries = 10;
	cfg->allow_job_proxy = 0;
	cfg->max_api_connections = 128;
	cfg->api_idle_timeout = 60;
	cfg->queue = NULL;
	cfg->queue_stream = xstrdup(QUEUE_STREAM_DEFAULT);
	cfg->queue_group = xstrdup(QUEUE_GROUP_DEFAULT);
	cfg->queue_results = xstrdup(QUEUE_RESULTS_DEFAULT);
	cfg->node = config_default_node();
	cfg->queue_batch = QUEUE_BATCH_DEFAULT;
	cfg->queue_low_water = QUEUE_LOW_WATER_DEFAULT;
	cfg->claim_idle = QUEUE_CLAIM_IDLE_DEFAULT;
	cfg->queue_timeout = QUEUE_TIMEOUT_DEFAULT;
	cfg->metrics_listen = NULL;
	cfg->private_jobs = 0;
	cfg->deny_networks = NULL;
	cfg->ndeny_networks = 0;
	cfg->allow_networks = NULL;
	cfg->nallow_networks = 0;
	cfg->host_rate = 0;
	cfg->max_job_items = JOB_MAX_URLS;
	cfg->max_url_length = URL_MAX_BYTES;
	cfg->max_job_headers = JOB_MAX_HEADERS;
	cfg->max_header_bytes = REQUEST_HEADER_MAX_BYTES;
}

/* The limits of one job submission under this config. */
void
config_request_limits(const struct config *cfg, struct request_limits *lim)
{
	lim->max_job_items = (size_t)cfg->max_job_items;
	lim->max_url_length = (size_t)cfg->max_url_length;
	lim->max_job_headers = (size_t)cfg->max_job_headers;
	lim->max_header_bytes = (size_t)cfg->max_header_bytes;
}

/* Free a list of headers. */
static void
config_free_headers(char **headers, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(headers[i]);
	free(headers);
}

/* Free everything the config owns. */
void
config_finish(struct config *cfg)
{
	free(cfg->socket_path);
	free(cfg->download_dir);
	free(cfg->user_agent);
	free(cfg->state_dir);
	free(cfg->ca_file);
	free(cfg->ca_path);
	free(cfg->client_cert);
	free(cfg->client_key);
	free(cfg->proxy);
	free(cfg->no_proxy);
	free(cfg->netrc_file);
	free(cfg->queue);
	free(cfg->queue_stream);
	free(cfg->queue_group);
	free(cfg->queue_results);
	free(cfg->node);
	free(cfg->metrics_listen);
	config_free_headers(cfg->headers, cfg->nheaders);
	config_free_headers(cfg->allowed_types, cfg->nallowed_types);
	config_free_headers(cfg->deny_networks, cfg->ndeny_networks);
	config_free_headers(cfg->allow_networks, cfg->nallow_networks);
	memset(cfg, 0, sizeof *cfg);
}

/* Name of an on_exists policy. */
const char *
config_exists_name(enum exists_policy policy)
{
	if ((size_t)policy >=
	    sizeof config_exists_names / sizeof config_exists_names[0])
		return "?";
	return config_exists_names[policy];
}

/* Set *cause to "FILE:LINE: " and a formatted message. */
static void __attribute__((format(printf, 4, 5))) config_error(
    char **cause, const char *file, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatal("%s: vasprintf", __func__);
	va_end(ap);
	xasprintf(cause, "%s:%u: %s", file, line, msg);
	free(msg);
}

/* Store a checked integer into a config field of its C type. */
static void
config_store_int(void *field, enum config_ctype ctype, long long value)
{
	switch (ctype) {
	case CONFIG_INT:
		*(int *)field = (int)value;
		break;
	case CONFIG_LONG:
		*(long *)field = (long)value;
		break;
	case CONFIG_LLONG:
		*(long long *)field = value;
		break;
	default:
		fatalx("%s: not an integer field", __func__);
	}
}

/* Parse "0660" into a mode; -1 if not 1 to 4 octal digits. */
static int
config_parse_mode(const char *s)
{
	size_t i, n;
	int mode = 0;

	n = strlen(s);
	if (n == 0 || n > 4)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			return -1;
		mode = mode * 8 + (s[i] - '0');
	}
	return mode;
}

/* Whether c may stand in a media type token. */
static int
config_type_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$&-^_.+", c) != NULL;
}

/* Check a media type pattern: a type and a subtype, or a type and a star. */
static int
config_check_type(const char *value, char **why)
{
	const char *slash = strchr(value, '/');
	size_t i;

	for (i = 0; value[i] != '\0'; i++) {
		if (!config_type_char(value[i]) && value[i] != '/' &&
		    value[i] != '*') {
			xasprintf(why,
			    "\"%.64s\" is not a media type like "
			    "\"image/*\"",
			    value);
			return -1;
		}
	}
	if (slash == NULL || slash == value || slash[1] == '\0' ||
	    strchr(slash + 1, '/') != NULL ||
	    (strchr(value, '*') != NULL && strcmp(slash + 1, "*") != 0)) {
		xasprintf(why,
		    "\"%.64s\" is not a media type like "
		    "\"image/*\"",
		    value);
		return -1;
	}
	return 0;
}

/* Read a list of strings, each checked, into *list and *count. */
static int
config_set_list(const struct config_key *key, char ***list, size_t *count,
    config_setting_t *s, const char *file, char **cause)
{
	config_setting_t *elem;
	const char *value;
	char **items, *why;
	unsigned int line;
	int i, n, rc;

	if (config_setting_type(s) != CONFIG_TYPE_LIST &&
	    config_setting_type(s) != CONFIG_TYPE_ARRAY) {
		config_error(cause, file, config_setting_source_line(s),
		    "%s: expected a list of %s", key->name,
		    key->kind == CONFIG_HEADERS ? "\"Name: value\" strings"
			: key->kind == CONFIG_NETWORKS
			? "networks like \"10.0.0.0/8\""
			: "media types like \"image/*\"");
		return -1;
	}
	n = config_setting_length(s);
	if (n > key->max || n < key->min) {
		config_error(cause, file, config_setting_source_line(s),
		    "%s: %d entries (%lld..%lld allowed)", key->name, n,
		    key->min, key->max);
		return -1;
	}
	items = n == 0 ? NULL : xcalloc((size_t)n, sizeof *items);
	for (i = 0; i < n; i++) {
		elem = config_setting_get_elem(s, (unsigned int)i);
		line = config_setting_source_line(elem);
		if (line == 0)
			line = config_setting_source_line(s);
		if (config_setting_type(elem) != CONFIG_TYPE_STRING) {
			config_error(cause, file, line,
			    "%s[%d]: expected a string", key->name, i);
			goto fail;
		}
		value = config_setting_get_string(elem);
		if (key->kind == CONFIG_HEADERS)
			rc = request_check_header_line(value, &why);
		else if (key->kind == CONFIG_NETWORKS)
			rc = netpolicy_parse(value, &why);
		else
			rc = config_check_type(value, &why);
		if (rc != 0) {
			config_error(
			    cause, file, line, "%s[%d]: %s", key->name, i, why);
			free(why);
			goto fail;
		}
		items[i] = xstrdup(value);
	}
	config_free_headers(*list, *count);
	*list = items;
	*count = (size_t)n;
	return 0;
fail:
	config_free_headers(items, (size_t)n);
	return -1;
}

/* Check a string setting and store a copy. */
static int
config_set_string(const struct config_key *key, char **field, const char *value,
    const char *file, unsigned int line, char **cause)
{
	size_t len, i;

	len = strlen(value);
	if ((long long)len < key->min) {
		config_error(
		    cause, file, line, "%s: must not be empty", key->name);
		return -1;
	}
	if ((long long)len > key->max) {
		config_error(cause, file, line, "%s: longer than %lld bytes",
		    key->name, key->max);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
			config_error(cause, file, line,
			    "%s: control character not allowed", key->name);
			return -1;
		}
	}
	free(*field);
	*field = xstrdup(value);
	return 0;
}

/*
 * Check a network string: a file is "" or an absolute path (the daemon
 * runs from /), a proxy "" or a proxy URL, no_proxy a host list.
 */
static int
config_set_net(const struct config_key *key, char **field, const char *value,
    const char *file, unsigned int line, char **cause)
{
	char *why = NULL;
	int rc = 0;

	if (*value == '\0')
		return config_set_string(key, field, value, file, line, cause);
	switch (key->kind) {
	case CONFIG_FILE:
		if (*value != '/')
			xasprintf(&why, "must be an absolute path (or \"\")");
		break;
	case CONFIG_PROXY:
		rc = request_check_proxy(value, &why);
		break;
	default:
		rc = request_check_no_proxy(value, &why);
		break;
	}
	if (rc != 0 || why != NULL) {
		config_error(cause, file, line, "%s: %s", key->name, why);
		free(why);
		return -1;
	}
	return config_set_string(key, field, value, file, line, cause);
}

/* Check a queue or listen address and store a copy. */
static int
config_set_address(const struct config_key *key, char **field,
    const char *value, const char *file, unsigned int line, char **cause)
{
	struct config_redis r;
	char *why = NULL, *host = NULL;
	int port, rc;

	if (config_set_string(key, field, value, file, line, cause) != 0)
		return -1;
	if (key->kind == CONFIG_REDIS) {
		rc = config_parse_redis(value, &r, &why);
		if (rc == 0)
			config_redis_finish(&r);
	} else {
		rc = config_parse_listen(value, &host, &port, &why);
		free(host);
	}
	if (rc != 0) {
		config_error(cause, file, line, "%s: %s", key->name, why);
		free(why);
		return -1;
	}
	return 0;
}

/* Parse a non-negative decimal number of at most max; -1 if it is not. */
static long
config_parse_number(const char *s, long max)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	return v;
}

/* Parse a queue address with libcurl's URL API. */
int
config_parse_redis(const char *s, struct config_redis *r, char **cause)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	char *query = NULL;
	long v = 0;
	int rc = -1;

	memset(r, 0, sizeof *r);
	if (s[0] == '/') {
		r->path = xstrdup(s);
		return 0;
	}
	/* unix://PATH[?db=N]: a path, not a host, follows the slashes. */
	if (strncmp(s, "unix://", 7) == 0) {
		s += 7;
		if (s[0] != '/' || s[1] == '\0' || s[1] == '?') {
			xasprintf(cause, "unix:// needs an absolute path");
			return -1;
		}
		r->path = xstrndup(s, strcspn(s, "?"));
		s += strlen(r->path);
		if (*s != '\0' &&
		    (strncmp(s, "?db=", 4) != 0 ||
			(v = config_parse_number(s + 4, 1000000)) == -1)) {
			xasprintf(
			    cause, "unix://: only ?db=N may follow the path");
			config_redis_finish(r);
			return -1;
		}
		if (*s != '\0')
			r->db = (int)v;
		return 0;
	}
	if ((u = curl_url()) == NULL)
		fatalx("%s: curl_url failed", __func__);
	if (curl_url_set(u, CURLUPART_URL, s, CURLU_NON_SUPPORT_SCHEME) !=
		CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		xasprintf(cause,
		    "\"%s\" is neither redis://HOST:PORT/DB nor a socket path",
		    s);
		goto out;
	}
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	if (strcmp(scheme, "redis") != 0) {
		xasprintf(cause, "scheme \"%s\" is not redis or unix", scheme);
		goto out;
	}
	if (query != NULL) {
		xasprintf(cause, "redis:// takes no query");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    host[0] == '\0') {
		xasprintf(cause, "redis:// needs a host");
		goto out;
	}
	r->port = QUEUE_PORT_DEFAULT;
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
		r->port = atoi(port);
	if (path != NULL && strcmp(path, "/") != 0 &&
	    (v = config_parse_number(path + 1, 1000000)) == -1) {
		xasprintf(cause, "database \"%s\" is not a number", path + 1);
		goto out;
	} else if (path != NULL && strcmp(path, "/") != 0)
		r->db = (int)v;
	/* hiredis wants an address without IPv6 brackets. */
	if (host[0] == '[') {
		host[strlen(host) - 1] = '\0';
		r->host = xstrdup(host + 1);
	} else
		r->host = xstrdup(host);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	if (rc != 0)
		config_redis_finish(r);
	return rc;
}

/* Free a parsed queue address. */
void
config_redis_finish(struct config_redis *r)
{
	free(r->host);
	free(r->path);
	memset(r, 0, sizeof *r);
}

/* Parse "HOST:PORT" for a TCP listener. */
int
config_parse_listen(const char *s, char **host, int *port, char **cause)
{
	const char *colon;
	long v;

	*host = NULL;
	if (s[0] == '[') {
		colon = strstr(s, "]:");
		if (colon == NULL || colon == s + 1)
			goto bad;
		*host = xstrndup(s + 1, (size_t)(colon - s - 1));
		colon++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || colon == s)
			goto bad;
		*host = xstrndup(s, (size_t)(colon - s));
	}
	if ((v = config_parse_number(colon + 1, 65535)) < 1)
		goto bad;
	*port = (int)v;
	return 0;
bad:
	free(*host);
	*host = NULL;
	xasprintf(cause, "\"%s\" is not HOST:PORT (port 1..65535)", s);
	return -1;
}

/* Can this byte be part of a libconfig setting name? */
static int
config_is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*';
}

/*
 * libconfig 1.5 reads an integer too big for 32 bits and written without
 * the L suffix as a wrapped-around int instead of refusing it. Find the
 * number as written after the setting's name on its line in text and
 * refuse the setting if libconfig read something else. A layout this does
 * not recognise is left alone.
 */
static int
config_check_wrapped(const struct config_key *key, config_setting_t *s,
    const char *text, const char *file, char **cause)
{
	unsigned int line = config_setting_source_line(s), l;
	const char *p = text, *start, *end, *q, *bad = NULL;
	long long value;
	size_t len = strlen(key->name);
	int base, badlen = 0, range = 0;
	char *ep;

	for (l = 1; l < line && p != NULL; l++) {
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	if (p == NULL)
		return 0;
	start = p;
	end = p + strcspn(p, "\n");
	for (q = start;
	     (q = memmem(q, (size_t)(end - q), key->name, len)) != NULL;
	     q += len) {
		if ((q != start && config_is_name_char(q[-1])) ||
		    config_is_name_char(q[len]))
			continue;
		p = q + len;
		p += strspn(p, " \t");
		if (*p != '=' && *p != ':')
			continue;
		p++;
		p += strspn(p, " \t");
		base = (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) ? 16 : 10;
		errno = 0;
		value = strtoll(p, &ep, base);
		if (ep == p || *ep == 'L')
			continue;
		if (errno != ERANGE && value == config_setting_get_int64(s))
			return 0;
		/* Prefer the number that wraps to what libconfig read. */
		if (bad == NULL ||
		    (errno != ERANGE &&
			(int)(unsigned int)value ==
			    config_setting_get_int(s))) {
			bad = p;
			badlen = (int)(ep - p);
			range = (errno == ERANGE);
		}
	}
	if (bad == NULL)
		return 0;
	if (range) {
		config_error(cause, file, line, "%s: %.*s out of range",
		    key->name, badlen, bad);
	} else {
		config_error(cause, file, line,
		    "%s: %.*s is too big for a "
		    "plain integer; write %.*sL",
		    key->name, badlen, bad, badlen, bad);
	}
	return -1;
}

/* Check one top-level setting and store its value. */
static int
config_set(struct config *cfg, const struct config_key *key,
    config_setting_t *s, const char *file, const char *text, char **cause)
{
	unsigned int line = config_setting_source_line(s);
	void *field = (char *)cfg + key->offset;
	const char *str;
	char *p;
	long long value;
	double rate;
	int type, v;

	type = config_setting_type(s);
	switch (key->kind) {
	case CONFIG_INTEGER:
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
			config_error(cause, file, line,
			    "%s: expected an integer", key->name);
			return -1;
		}
		if (type == CONFIG_TYPE_INT && text != NULL &&
		    config_check_wrapped(key, s, text, file, cause) != 0)
			return -1;
		value = config_setting_get_int64(s);
		if (value < key->min || value > key->max) {
			if (key->max == LLONG_MAX || key->max == INT_MAX) {
				config_error(cause, file, line,
				    "%s: %lld out of range (at least %lld)",
				    key->name, value, key->min);
			} else {
				config_error(cause, file, line,
				    "%s: %lld out of range (%lld..%lld)",
				    key->name, value, key->min, key->max);
			}
			return -1;
		}
		config_store_int(field, key->ctype, value);
		return 0;
	case CONFIG_BOOLEAN:
		if (type != CONFIG_TYPE_BOOL) {
			config_error(cause, file, line,
			    "%s: expected true or false", key->name);
			return -1;
		}
		*(int *)field = config_setting_get_bool(s) ? 1 : 0;
		return 0;
	case CONFIG_HEADERS:
		return config_set_list(
		    key, &cfg->headers, &cfg->nheaders, s, file, cause);
	case CONFIG_TYPES:
		return config_set_list(key, &cfg->allowed_types,
		    &cfg->nallowed_types, s, file, cause);
	case CONFIG_NETWORKS:
		if (field == (void *)&cfg->deny_networks)
			return config_set_list(key, &cfg->deny_networks,
			    &cfg->ndeny_networks, s, file, cause);
		return config_set_list(key, &cfg->allow_networks,
		    &cfg->nallow_networks, s, file, cause);
	case CONFIG_RATE:
		if (type == CONFIG_TYPE_FLOAT)
			rate = config_setting_get_float(s);
		else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
			rate = (double)config_setting_get_int64(s);
		else {
			config_error(cause, file, line, "%s: expected a number",
			    key->name);
			return -1;
		}
		if (!(rate >= (double)key->min && rate <= (double)key->max)) {
			config_error(cause, file, line,
			    "%s: %g out of range (%lld..%lld)", key->name, rate,
			    key->min, key->max);
			return -1;
		}
		*(double *)field = rate;
		return 0;
	default:
		break;
	}

	/* The rest are strings. */
	if (type != CONFIG_TYPE_STRING) {
		config_error(
		    cause, file, line, "%s: expected a string", key->name);
		return -1;
	}
	str = config_setting_get_string(s);
	switch (key->kind) {
	case CONFIG_STRING:
		return config_set_string(key, field, str, file, line, cause);
	case CONFIG_FILE:
	case CONFIG_PROXY:
	case CONFIG_NOPROXY:
		return config_set_net(key, field, str, file, line, cause);
	case CONFIG_REDIS:
	case CONFIG_LISTEN:
		return config_set_address(key, field, str, file, line, cause);
	case CONFIG_MODE:
		if ((v = config_parse_mode(str)) == -1) {
			config_error(cause, file, line,
			    "%s: expected octal "
			    "digits like \"0660\"",
			    key->name);
			return -1;
		}
		if (v > key->max) {
			config_error(cause, file, line,
			    "%s: \"%s\" out of "
			    "range (at most \"0777\")",
			    key->name, str);
			return -1;
		}
		*(int *)field = v;
		return 0;
	case CONFIG_LEVEL:
		if ((v = log_level_parse(str)) != -1) {
			*(int *)field = v;
			return 0;
		}
		p = path_printable(str, strlen(str));
		config_error(cause, file, line,
		    "%s: \"%s\" is not one of "
		    "error, warn, info, debug",
		    key->name, p);
		free(p);
		return -1;
	case CONFIG_EXISTS:
		for (v = 0; v < (int)(sizeof config_exists_names /
				    sizeof config_exists_names[0]);
		     v++) {
			if (strcmp(str, config_exists_names[v]) == 0) {
				*(enum exists_policy *)field =
				    (enum exists_policy)v;
				return 0;
			}
		}
		p = path_printable(str, strlen(str));
		config_error(cause, file, line,
		    "%s: \"%s\" is not one of "
		    "suffix, overwrite, skip",
		    key->name, p);
		free(p);
		return -1;
	default:
		fatalx("%s: bad kind %d", __func__, (int)key->kind);
	}
}

/* Read a whole config file into a string. */
static char *
config_read_text(const char *path, char **cause)
{
	char *buf = NULL;
	size_t len = 0, size = 0, n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (size - len < 4096) {
			size += 65536;
			buf = xrealloc(buf, size + 1);
		}
		n = fread(buf + len, 1, size - len, f);
		len += n;
		if (n == 0)
			break;
		if (len > CONFIG_FILE_MAX) {
			xasprintf(cause, "%s: larger than %d bytes", path,
			    CONFIG_FILE_MAX);
			goto fail;
		}
	}
	if (ferror(f)) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (memchr(buf, '\0', len) != NULL) {
		xasprintf(cause, "%s: contains a NUL byte", path);
		goto fail;
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
fail:
	free(buf);
	fclose(f);
	return NULL;
}

/* Whether path exists and is not a regular file. */
static int
config_not_regular(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

/*
 * Check the @include lines of a config text (file) before libconfig reads
 * it. libconfig 1.5's scanner calls exit() when it cannot read an included
 * file ("input in flex scanner failed": a directory, as @include ""
 * names), and would read a device or a FIFO for ever: so an included file
 * that exists must be a regular file, and so must its own includes. A name
 * with an escape is refused, as this check could not follow it; a missing
 * one is left to libconfig, which says so. dir is libconfig's include_dir.
 */
static int
config_check_includes(const char *text, const char *file, const char *dir,
    int depth, char **cause)
{
	const char *line, *end, *p, *q;
	char *name, *full, *sub, *why = NULL, *shown;
	unsigned int lineno = 0;
	int bad, rc = 0;

	for (line = text; rc == 0 && *line != '\0';
	     line = *end != '\0' ? end + 1 : end) {
		lineno++;
		end = line + strcspn(line, "\n");
		p = line + strspn(line, " \t");
		if (strncmp(p, "@include", 8) != 0 ||
		    (p[8] != ' ' && p[8] != '\t'))
			continue;
		p += 8 + strspn(p + 8, " \t");
		if (*p != '"' ||
		    (q = memchr(p + 1, '"', (size_t)(end - p - 1))) == NULL)
			continue; /* libconfig names the syntax error */
		name = xstrndup(p + 1, (size_t)(q - p - 1));
		shown = path_printable(name, strlen(name));
		if (dir != NULL)
			xasprintf(&full, "%s/%s", dir, name);
		else
			full = xstrdup(name);
		bad = config_not_regular(full) ||
		    (*name == '/' && config_not_regular(name));
		if (strchr(name, '\\') != NULL) {
			config_error(cause, file, lineno,
			    "@include \"%s\": no escapes in the file name",
			    shown);
			rc = -1;
		} else if (bad) {
			config_error(cause, file, lineno,
			    "@include \"%s\": not a regular file", shown);
			rc = -1;
		} else if (depth < CONFIG_INCLUDE_DEPTH &&
		    (sub = config_read_text(full, &why)) != NULL) {
			rc = config_check_includes(
			    sub, full, dir, depth + 1, cause);
			free(sub);
		}
		free(why);
		why = NULL;
		free(shown);
		free(full);
		free(name);
	}
	return rc;
}

/* Read a file over the values already in the config. */
int
config_load(struct config *cfg, const char *path, char **cause)
{
	config_t lc;
	config_setting_t *root, *s;
	const struct config_key *key;
	const char *file, *name, *inc_file = NULL;
	char *text, *inc_text = NULL, *why = NULL, *dir, *slash;
	size_t k;
	int i, n, rc = -1;

	if ((text = config_read_text(path, cause)) == NULL)
		return -1;
	(config_init)(&lc);
	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		slash[1] = '\0';
		config_set_include_dir(&lc, dir);
	}
	if (config_check_includes(
		text, path, slash != NULL ? dir : NULL, 1, cause) != 0)
		goto fail;
	if (config_read_string(&lc, text) != CONFIG_TRUE) {
		file = config_error_file(&lc);
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
			xasprintf(cause, "%s: %s", file != NULL ? file : path,
			    config_error_text(&lc));
		} else {
			config_error(cause, file != NULL ? file : path,
			    (unsigned int)config_error_line(&lc), "%s",
			    config_error_text(&lc));
		}
		goto fail;
	}

	root = config_root_setting(&lc);
	n = config_setting_length(root);
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(root, (unsigned int)i);
		name = config_setting_name(s);
		file = config_setting_source_file(s);
		key = NULL;
		for (k = 0; k < sizeof config_keys / sizeof config_keys[0];
		     k++) {
			if (strcmp(name, config_keys[k].name) == 0)
				key = &config_keys[k];
		}
		if (key == NULL) {
			config_error(cause, file != NULL ? file : path,
			    config_setting_source_line(s),
			    "unknown setting \"%s\"", name);
			goto fail;
		}
		if (file == NULL) {
			if (config_set(cfg, key, s, path, text, cause) != 0)
				goto fail;
			continue;
		}
		/* A setting from an @include file: check against its text. */
		if (inc_file == NULL || strcmp(inc_file, file) != 0) {
			free(inc_text);
			inc_text = config_read_text(file, &why);
			free(why);
			why = NULL;
			inc_file = file;
		}
		if (config_set(cfg, key, s, file, inc_text, cause) != 0)
			goto fail;
	}
	if (*cfg->client_key != '\0' && *cfg->client_cert == '\0') {
		xasprintf(cause, "%s: client_key is set but client_cert is not",
		    path);
		goto fail;
	}
	rc = 0;
fail:
	config_destroy(&lc);
	free(dir);
	free(inc_text);
	free(text);
	return rc;
}
