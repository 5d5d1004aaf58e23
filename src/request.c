/*
 * Parsing of job submissions. A request is either a JSON object or a
 * text/uri-list; both end as the same struct job_request, with every URL,
 * path and header checked. Messages are short, start with the field name
 * (or "line N") and quote client text only through path_printable, so
 * they are always printable UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config.h"
#include "defs.h"
#include "log.h"
#include "path.h"
#include "request.h"
#include "xmalloc.h"

static const char *const request_fields[] = { "urls", "dir", "name", "headers",
	"pages", "if_changed", "dedup", "same_host", "follow_next",
	"max_page_size", "timeout", "retries", "proxy", "no_proxy",
	"user_agent" };

/* Check one URL of at most max bytes, with a handle used before or not. */
static int
request_check_url_with(CURLU *h, const char *url, size_t max, char **cause)
{
	CURLUcode uc;
	char *scheme = NULL, *host = NULL, *p;
	size_t len, i;
	unsigned char c, high = 0;
	int rc = -1;

	len = strlen(url);
	if (len == 0) {
		xasprintf(cause, "empty URL");
		return -1;
	}
	if (len > max) {
		xasprintf(cause, "longer than max_url_length (%zu bytes)", max);
		return -1;
	}
	for (i = 0; i < len; i++) {
		c = (unsigned char)url[i];
		if (c <= 0x20 || c == 0x7f) {
			xasprintf(
			    cause, "URL contains a space or control character");
			return -1;
		}
		high |= c;
	}
	/* ASCII is UTF-8: only a URL with a high byte needs the full check. */
	if ((high & 0x80) && !path_is_utf8(url, len)) {
		xasprintf(cause, "URL is not valid UTF-8");
		return -1;
	}

	/*
	 * Empty the handle first: curl resolves a relative URL against the one
	 * a handle holds, which would let "/x" or "?q" through. Only the
	 * verdict is used, never curl's copy of the URL, so its "../"
	 * normalisation (which refuses nothing) is skipped.
	 */
	curl_url_set(h, CURLUPART_URL, NULL, 0);
	uc = curl_url_set(
	    h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS);
	if (uc == CURLUE_BAD_SLASHES) {
		/* "javascript:x" and the like: ask again to name the cause. */
		uc = curl_url_set(h, CURLUPART_URL, url, CURLU_PATH_AS_IS);
	}
	switch (uc) {
	case CURLUE_OK:
		break;
	case CURLUE_UNSUPPORTED_SCHEME:
		xasprintf(cause, "unsupported scheme (only http and https)");
		goto fail;
	case CURLUE_BAD_SCHEME:
	case CURLUE_NO_SCHEME:
		xasprintf(cause, "not an absolute http or https URL");
		goto fail;
	case CURLUE_NO_HOST:
		xasprintf(cause, "URL has no host");
		goto fail;
	default:
		xasprintf(cause, "invalid URL: %s", curl_url_strerror(uc));
		goto fail;
	}
	if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		xasprintf(cause, "not an absolute http or https URL");
		goto fail;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		p = path_printable(scheme, strlen(scheme));
		xasprintf(cause,
		    "unsupported scheme \"%s\" (only http and "
		    "https)",
		    p);
		free(p);
		goto fail;
	}
	if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    *host == '\0') {
		xasprintf(cause, "URL has no host");
		goto fail;
	}
	rc = 0;
fail:
	curl_free(host);
	curl_free(scheme);
	return rc;
}

/* A URL handle for request_check_url_with. */
static CURLU *
request_url_handle(void)
{
	CURLU *h;

	if ((h = curl_url()) == NULL)
		fatalx("%s: curl_url failed", __func__);
	return h;
}

/* Check one URL: absolute, http or https, with a host. */
int
request_check_url(const char *url, char **cause)
{
	CURLU *h;
	int rc;

	h = request_url_handle();
	rc = request_check_url_with(h, url, URL_MAX_BYTES, cause);
	curl_url_cleanup(h);
	return rc;
}

/* Proxy schemes libcurl speaks. */
static const char *const request_proxy_schemes[] = { "http", "https", "socks4",
	"socks4a", "socks5", "socks5h" };

/* Check a proxy URL. */
int
request_check_proxy(const char *url, char **cause)
{
	CURLU *h;
	CURLUcode uc;
	char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL;
	size_t i, len = strlen(url);
	int rc = -1, known = 0;

	if (len > URL_MAX_BYTES) {
		xasprintf(cause, "longer than %d bytes", URL_MAX_BYTES);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f) {
			xasprintf(cause,
			    "contains a space or control "
			    "character");
			return -1;
		}
	}
	h = request_url_handle();
	uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (uc == CURLUE_OK)
		uc = curl_url_get(h, CURLUPART_SCHEME, &scheme, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(h, CURLUPART_HOST, &host, 0);
	if (uc != CURLUE_OK || *host == '\0') {
		xasprintf(cause,
		    "not a proxy URL like \"http://host:port\" or "
		    "\"socks5h://host:port\"");
		goto fail;
	}
	for (i = 0;
	     i < sizeof request_proxy_schemes / sizeof *request_proxy_schemes;
	     i++) {
		if (strcmp(scheme, request_proxy_schemes[i]) == 0)
			known = 1;
	}
	if (!known) {
		xasprintf(cause,
		    "scheme \"%.32s\" is not one of http, https, socks4, "
		    "socks4a, socks5, socks5h",
		    scheme);
		goto fail;
	}
	curl_url_get(h, CURLUPART_PATH, &path, 0);
	curl_url_get(h, CURLUPART_QUERY, &query, 0);
	if ((path != NULL && strcmp(path, "/") != 0) || query != NULL ||
	    strchr(url, '#') != NULL) {
		xasprintf(cause,
		    "a proxy URL has no path, query or fragment "
		    "(\"%s://host:port\")",
		    scheme);
		goto fail;
	}
	rc = 0;
fail:
	curl_free(query);
	curl_free(path);
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(h);
	return rc;
}

/* Check a no_proxy list. */
int
request_check_no_proxy(const char *list, char **cause)
{
	size_t i, len = strlen(list);

	if (len > NO_PROXY_MAX_BYTES) {
		xasprintf(cause, "longer than %d bytes", NO_PROXY_MAX_BYTES);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)list[i] < 0x20 || list[i] == 0x7f ||
		    (unsigned char)list[i] >= 0x80) {
			xasprintf(cause,
			    "expected hosts and domains separated by "
			    "commas, in ASCII");
			return -1;
		}
	}
	return 0;
}

/* A proxy URL without user and password; a copy of it if it has none. */
char *
request_proxy_redacted(const char *url)
{
	CURLU *h;
	char *out = NULL, *ret;

	h = request_url_handle();
	if (curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) !=
		CURLUE_OK ||
	    curl_url_set(h, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
	    curl_url_set(h, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_URL, &out, 0) != CURLUE_OK) {
		curl_url_cleanup(h);
		return xstrdup(*url == '\0' ? "" : "(unreadable)");
	}
	ret = xstrdup(out);
	curl_free(out);
	curl_url_cleanup(h);
	return ret;
}

/* Check a request's network options against the config's caps. */
int
request_check_limits(
    const struct job_request *req, const struct config *cfg, char **cause)
{
	if (req->timeout > cfg->max_job_timeout) {
		xasprintf(cause, "timeout: %ld is over max_job_timeout (%ld)",
		    req->timeout, cfg->max_job_timeout);
		return -1;
	}
	if (req->retries > cfg->max_job_retries) {
		xasprintf(cause, "retries: %d is over max_job_retries (%d)",
		    req->retries, cfg->max_job_retries);
		return -1;
	}
	if ((req->proxy != NULL || req->no_proxy != NULL) &&
	    !cfg->allow_job_proxy) {
		xasprintf(cause,
		    "%s: a job may not choose its proxy "
		    "(allow_job_proxy is false)",
		    req->proxy != NULL ? "proxy" : "no_proxy");
		return -1;
	}
	return 0;
}

/* Is this byte allowed in an RFC 7230 token? */
static int
request_is_tchar(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Check one extra header name and value, of at most max bytes. */
static int
request_check_header_max(
    const char *name, const char *value, size_t max, char **cause)
{
	size_t nlen, vlen, i;
	char *p;

	nlen = strlen(name);
	vlen = strlen(value);
	if (nlen == 0) {
		xasprintf(cause, "empty header name");
		return -1;
	}
	for (i = 0; i < nlen; i++) {
		if (!request_is_tchar(name[i])) {
			p = path_printable(name, nlen);
			xasprintf(
			    cause, "\"%s\" is not a valid header name", p);
			free(p);
			return -1;
		}
	}
	if (nlen + 2 + vlen > max) {
		xasprintf(cause,
		    "\"%.64s\": longer than max_header_bytes (%zu bytes)", name,
		    max);
		return -1;
	}
	for (i = 0; i < vlen; i++) {
		if (value[i] == '\r' || value[i] == '\n') {
			xasprintf(cause,
			    "\"%.64s\": value contains CR, LF or "
			    "NUL",
			    name);
			return -1;
		}
		if (((unsigned char)value[i] < 0x20 && value[i] != '\t') ||
		    value[i] == 0x7f) {
			xasprintf(cause,
			    "\"%.64s\": value contains a control "
			    "character",
			    name);
			return -1;
		}
	}
	return 0;
}

/* Check one extra header name and value. */
int
request_check_header(const char *name, const char *value, char **cause)
{
	return request_check_header_max(
	    name, value, REQUEST_HEADER_MAX_BYTES, cause);
}

/* Check a "Name: value" line. */
int
request_check_header_line(const char *line, char **cause)
{
	const char *colon, *value;
	char *name, *p;
	int rc;

	if ((colon = strchr(line, ':')) == NULL) {
		p = path_printable(line, strlen(line));
		xasprintf(cause, "\"%s\": expected \"Name: value\"", p);
		free(p);
		return -1;
	}
	name = xstrndup(line, (size_t)(colon - line));
	value = colon + 1 + strspn(colon + 1, " \t");
	rc = request_check_header(name, value, cause);
	free(name);
	return rc;
}

/* Free what the request owns and zero it. */
void
request_finish(struct job_request *req)
{
	size_t i;

	for (i = 0; i < req->nurls; i++)
		free(req->urls[i]);
	free(req->urls);
	for (i = 0; i < req->npages; i++)
		free(req->pages[i]);
	free(req->pages);
	for (i = 0; i < req->nheaders; i++)
		free(req->headers[i]);
	free(req->headers);
	free(req->dir);
	free(req->name);
	free(req->proxy);
	free(req->no_proxy);
	free(req->user_agent);
	free(req->queue_id);
	memset(req, 0, sizeof *req);
}

/* The built-in limits. */
void
request_limits_init(struct request_limits *lim)
{
	lim->max_job_items = JOB_MAX_URLS;
	lim->max_url_length = URL_MAX_BYTES;
	lim->max_job_headers = JOB_MAX_HEADERS;
	lim->max_header_bytes = REQUEST_HEADER_MAX_BYTES;
}

/* The options a request leaves to the configuration. */
void
request_init_options(struct job_request *req)
{
	req->if_changed = 0;
	req->dedup = -1;
	req->same_host = 0;
	req->follow_next = 0;
	req->max_page_size = 0;
	req->timeout = -1;
	req->retries = -1;
}

/* Take an array of URLs ("urls" or "pages") of a JSON request. */
static int
request_json_urls(const char *field, char ***urls, size_t *nurls, json_t *v,
    const struct request_limits *lim, char **cause)
{
	json_t *item;
	CURLU *h;
	const char *s;
	char *why;
	size_t i, n;
	int rc = -1;

	if (!json_is_array(v)) {
		xasprintf(cause, "%s: must be an array of strings", field);
		return -1;
	}
	if ((n = json_array_size(v)) == 0)
		return 0;
	if (n > lim->max_job_items) {
		xasprintf(cause, "%s[%zu]: more than max_job_items (%zu URLs)",
		    field, lim->max_job_items, lim->max_job_items);
		return -1;
	}
	*urls = xcalloc(n, sizeof **urls);
	h = request_url_handle();
	json_array_foreach(v, i, item)
	{
		if (!json_is_string(item)) {
			xasprintf(cause, "%s[%zu]: must be a string", field, i);
			goto fail;
		}
		s = json_string_value(item);
		if (strlen(s) != json_string_length(item)) {
			xasprintf(cause, "%s[%zu]: contains NUL", field, i);
			goto fail;
		}
		if (request_check_url_with(h, s, lim->max_url_length, &why) !=
		    0) {
			xasprintf(cause, "%s[%zu]: %s", field, i, why);
			free(why);
			goto fail;
		}
		(*urls)[(*nurls)++] = xstrdup(s);
	}
	rc = 0;
fail:
	curl_url_cleanup(h);
	return rc;
}

/* Take a string member that must not hold NUL. */
static const char *
request_json_string(json_t *v, const char *field, char **cause)
{
	const char *s;

	if (!json_is_string(v)) {
		xasprintf(cause, "%s: must be a string", field);
		return NULL;
	}
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v)) {
		xasprintf(cause, "%s: contains NUL", field);
		return NULL;
	}
	return s;
}

/* Take the "headers" object of a JSON request. */
static int
request_json_headers(struct job_request *req, json_t *v,
    const struct request_limits *lim, char **cause)
{
	json_t *value;
	const char *key, *s;
	char *why, *p;
	size_t n;

	if (!json_is_object(v)) {
		xasprintf(cause, "headers: must be an object of strings");
		return -1;
	}
	if ((n = json_object_size(v)) > lim->max_job_headers) {
		xasprintf(cause,
		    "headers: %zu headers, more than "
		    "max_job_headers (%zu)",
		    n, lim->max_job_headers);
		return -1;
	}
	req->headers = xcalloc(n, sizeof *req->headers);
	json_object_foreach(v, key, value)
	{
		if (!json_is_string(value)) {
			p = path_printable(key, strlen(key));
			xasprintf(cause,
			    "headers: \"%s\": value must be a "
			    "string",
			    p);
			free(p);
			return -1;
		}
		s = json_string_value(value);
		if (strlen(s) != json_string_length(value)) {
			p = path_printable(key, strlen(key));
			xasprintf(cause,
			    "headers: \"%s\": value contains CR, "
			    "LF or NUL",
			    p);
			free(p);
			return -1;
		}
		if (request_check_header_max(
			key, s, lim->max_header_bytes, &why) != 0) {
			xasprintf(cause, "headers: %s", why);
			free(why);
			return -1;
		}
		xasprintf(&req->headers[req->nheaders++], "%s: %s", key, s);
	}
	return 0;
}

/* Take a boolean member: 0 or 1 in *out, -1 with *cause if not a bool. */
static int
request_json_bool(json_t *root, const char *field, int *out, char **cause)
{
	json_t *v;

	if ((v = json_object_get(root, field)) == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		xasprintf(cause, "%s: must be true or false", field);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

/* Take an integer member within [min, max]; left alone when absent. */
static int
request_json_int(json_t *root, const char *field, long long min,
    long long max, long long *out, char **cause)
{
	json_t *v;

	if ((v = json_object_get(root, field)) == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		xasprintf(cause, "%s: must be an integer from %lld to %lld",
		    field, min, max);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

/* Take the scraping and caching options of a JSON request. */
static int
request_json_options(struct job_request *r, json_t *root, char **cause)
{
	long long n;

	if (request_json_bool(root, "if_changed", &r->if_changed, cause) != 0 ||
	    request_json_bool(root, "dedup", &r->dedup, cause) != 0 ||
	    request_json_bool(root, "same_host", &r->same_host, cause) != 0)
		return -1;
	n = r->follow_next;
	if (request_json_int(root, "follow_next", 0, PAGE_FOLLOW_MAX, &n,
		cause) != 0)
		return -1;
	r->follow_next = (int)n;
	if (request_json_int(root, "max_page_size", 1, PAGE_SIZE_MAX,
		&r->max_page_size, cause) != 0)
		return -1;
	if (r->npages == 0 &&
	    (json_object_get(root, "same_host") != NULL ||
		json_object_get(root, "follow_next") != NULL ||
		json_object_get(root, "max_page_size") != NULL)) {
		xasprintf(cause, "%s: only for a job with \"pages\"",
		    json_object_get(root, "same_host") != NULL ? "same_host"
		    : json_object_get(root, "follow_next") != NULL
			? "follow_next"
			: "max_page_size");
		return -1;
	}
	return 0;
}

/* Take the network options of a JSON request: timeout, proxy, ... */
static int
request_json_network(struct job_request *r, json_t *root, char **cause)
{
	long long n;
	const char *s;
	char *why;
	json_t *v;

	n = r->timeout;
	if (request_json_int(root, "timeout", 1, NET_TIMEOUT_MAX, &n, cause) !=
	    0)
		return -1;
	r->timeout = (long)n;
	n = r->retries;
	if (request_json_int(root, "retries", 0, NET_RETRIES_MAX, &n, cause) !=
	    0)
		return -1;
	r->retries = (int)n;
	if ((v = json_object_get(root, "proxy")) != NULL && !json_is_null(v)) {
		if ((s = request_json_string(v, "proxy", cause)) == NULL)
			return -1;
		if (*s != '\0' && request_check_proxy(s, &why) != 0) {
			xasprintf(cause, "proxy: %s", why);
			free(why);
			return -1;
		}
		r->proxy = xstrdup(s);
	}
	if ((v = json_object_get(root, "no_proxy")) != NULL &&
	    !json_is_null(v)) {
		if ((s = request_json_string(v, "no_proxy", cause)) == NULL)
			return -1;
		if (request_check_no_proxy(s, &why) != 0) {
			xasprintf(cause, "no_proxy: %s", why);
			free(why);
			return -1;
		}
		r->no_proxy = xstrdup(s);
	}
	if ((v = json_object_get(root, "user_agent")) != NULL &&
	    !json_is_null(v)) {
		if ((s = request_json_string(v, "user_agent", cause)) == NULL)
			return -1;
		if (request_check_header("User-Agent", s, &why) != 0) {
			xasprintf(cause, "user_agent: %s", why);
			free(why);
			return -1;
		}
		r->user_agent = xstrdup(s);
	}
	return 0;
}

/* Parse a JSON job submission within the built-in limits. */
int
request_parse_json(
    struct job_request *req, const char *body, size_t len, char **cause)
{
	struct request_limits lim;

	request_limits_init(&lim);
	return request_parse_json_limits(req, body, len, &lim, cause);
}

/* Parse a JSON job submission within the given limits. */
int
request_parse_json_limits(struct job_request *req, const char *body, size_t len,
    const struct request_limits *lim, char **cause)
{
	struct job_request r;
	json_error_t jerr;
	json_t *root, *v;
	const char *key, *s;
	char *p;
	size_t i;
	int known;

	memset(req, 0, sizeof *req);
	memset(&r, 0, sizeof r);
	request_init_options(&r);
	root = json_loadb(
	    body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		switch (json_error_code(&jerr)) {
		case json_error_null_character:
		case json_error_null_byte_in_key:
			p = xstrdup("\\u0000 not allowed");
			break;
		default:
			p = path_printable(jerr.text, strlen(jerr.text));
			break;
		}
		xasprintf(cause, "invalid JSON at line %d, column %d: %s",
		    jerr.line, jerr.column, p);
		free(p);
		return -1;
	}
	if (!json_is_object(root)) {
		xasprintf(cause, "body: must be a JSON object");
		goto fail;
	}
	json_object_foreach(root, key, v)
	{
		known = 0;
		for (i = 0; i < sizeof request_fields / sizeof *request_fields;
		     i++) {
			if (strcmp(key, request_fields[i]) == 0)
				known = 1;
		}
		if (!known) {
			p = path_printable(key, strlen(key));
			xasprintf(cause, "unknown field \"%s\"", p);
			free(p);
			goto fail;
		}
	}

	if ((v = json_object_get(root, "urls")) != NULL &&
	    request_json_urls("urls", &r.urls, &r.nurls, v, lim, cause) != 0)
		goto fail;
	if ((v = json_object_get(root, "pages")) != NULL &&
	    request_json_urls("pages", &r.pages, &r.npages, v, lim, cause) != 0)
		goto fail;
	if (r.nurls == 0 && r.npages == 0) {
		if (json_object_get(root, "urls") != NULL)
			xasprintf(cause, "urls: empty");
		else if (json_object_get(root, "pages") != NULL)
			xasprintf(cause, "pages: empty");
		else
			xasprintf(cause, "urls: missing (a job needs \"urls\" "
					 "or \"pages\")");
		goto fail;
	}
	if (r.nurls + r.npages > lim->max_job_items) {
		xasprintf(cause,
		    "pages[%zu]: more than max_job_items (%zu URLs of urls "
		    "and pages together)",
		    lim->max_job_items - r.nurls, lim->max_job_items);
		goto fail;
	}
	if (request_json_options(&r, root, cause) != 0 ||
	    request_json_network(&r, root, cause) != 0)
		goto fail;
	if ((v = json_object_get(root, "dir")) != NULL && !json_is_null(v)) {
		if ((s = request_json_string(v, "dir", cause)) == NULL)
			goto fail;
		if (path_check_relative(s, "dir", cause) != 0)
			goto fail;
		r.dir = xstrdup(s);
	}
	if ((v = json_object_get(root, "name")) != NULL && !json_is_null(v)) {
		if ((s = request_json_string(v, "name", cause)) == NULL)
			goto fail;
		if (path_check_template(s, cause) != 0)
			goto fail;
		r.name = xstrdup(s);
	}
	if ((v = json_object_get(root, "headers")) != NULL &&
	    !json_is_null(v)) {
		if (request_json_headers(&r, v, lim, cause) != 0)
			goto fail;
	}
	json_decref(root);
	*req = r;
	return 0;
fail:
	json_decref(root);
	request_finish(&r);
	return -1;
}

/* Parse a text/uri-list job submission within the built-in limits. */
int
request_parse_urilist(struct job_request *req, const char *body, size_t len,
    const char *dir, const char *name, char **cause)
{
	struct request_limits lim;

	request_limits_init(&lim);
	return request_parse_urilist_limits(
	    req, body, len, dir, name, &lim, cause);
}

/* Parse a text/uri-list job submission within the given limits. */
int
request_parse_urilist_limits(struct job_request *req, const char *body,
    size_t len, const char *dir, const char *name,
    const struct request_limits *lim, char **cause)
{
	struct job_request r;
	CURLU *h;
	const char *line, *end, *next;
	char *url, *why;
	size_t lineno, n, size = 0;

	memset(req, 0, sizeof *req);
	memset(&r, 0, sizeof r);
	request_init_options(&r);
	if (dir != NULL && path_check_relative(dir, "dir", cause) != 0)
		return -1;
	if (name != NULL && path_check_template(name, cause) != 0)
		return -1;

	h = request_url_handle();
	lineno = 0;
	for (line = body; line < body + len; line = next) {
		lineno++;
		end = memchr(line, '\n', (size_t)(body + len - line));
		if (end == NULL)
			end = body + len;
		next = (end == body + len) ? end : end + 1;
		if (end > line && end[-1] == '\r')
			end--;
		while (line < end && (*line == ' ' || *line == '\t'))
			line++;
		while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		n = (size_t)(end - line);
		if (n == 0 || *line == '#')
			continue;
		if (memchr(line, '\0', n) != NULL) {
			xasprintf(cause, "line %zu: contains NUL", lineno);
			goto fail;
		}
		if (r.nurls == lim->max_job_items) {
			xasprintf(cause,
			    "line %zu: more than max_job_items (%zu URLs)",
			    lineno, lim->max_job_items);
			goto fail;
		}
		url = xstrndup(line, n);
		if (request_check_url_with(h, url, lim->max_url_length, &why) !=
		    0) {
			xasprintf(cause, "line %zu: %s", lineno, why);
			free(why);
			free(url);
			goto fail;
		}
		if (r.nurls == size) {
			size = size == 0 ? 16 : size * 2;
			r.urls = xreallocarray(r.urls, size, sizeof *r.urls);
		}
		r.urls[r.nurls++] = url;
	}
	if (r.nurls == 0) {
		xasprintf(cause, "body: no URLs in the list");
		goto fail;
	}
	curl_url_cleanup(h);
	if (dir != NULL)
		r.dir = xstrdup(dir);
	if (name != NULL)
		r.name = xstrdup(name);
	*req = r;
	return 0;
fail:
	curl_url_cleanup(h);
	request_finish(&r);
	return -1;
}
