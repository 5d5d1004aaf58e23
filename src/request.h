/* Parsing of job submissions: JSON bodies and text/uri-list bodies. */
#ifndef REQUEST_H
#define REQUEST_H

#include <stddef.h>

struct job_request {
	char **urls; /* checked absolute http(s) URLs */
	size_t nurls;
	char *dir; /* checked relative dir, or NULL */
	char *name; /* checked name template, or NULL */
	char **headers; /* "Name: value", checked, or none */
	size_t nheaders;
	char **pages; /* checked http(s) URLs of pages to scrape */
	size_t npages;
	int if_changed; /* conditional requests from the URL cache */
	int dedup; /* 0, 1, or -1 for the config's dedup */
	int same_host; /* keep only images on a page's own host */
	int follow_next; /* pages reached through rel="next" to scrape too */
	long long max_page_size; /* bytes, 0 for the config's */
	/* Network options; -1 or NULL for the config's (request_limit). */
	long timeout; /* seconds per item */
	int retries; /* extra attempts */
	char *proxy; /* checked proxy URL, "" for a direct connection */
	char *no_proxy; /* hosts that bypass the proxy */
	char *user_agent; /* checked User-Agent */
	/* Set by the shared queue (queue.c), never from a request body: */
	char *queue_id; /* the stream entry the job came from, or NULL */
	int skip_existing; /* keep files already there (a claimed entry) */
};

/* What one job submission may hold: the config's max_* settings. */
struct request_limits {
	size_t max_job_items; /* URLs of urls and pages together */
	size_t max_url_length; /* bytes of one URL */
	size_t max_job_headers; /* headers one job adds */
	size_t max_header_bytes; /* bytes of one "Name: value" header */
};

/* The built-in limits (JOB_MAX_URLS, URL_MAX_BYTES, ... in defs.h). */
void request_limits_init(struct request_limits *);

/*
 * Parse {"urls": [...], "pages": [...], "dir": "...", "name": "...",
 * "headers": {...}, "if_changed", "dedup", "same_host": bool,
 * "follow_next": N, "max_page_size": bytes, "timeout": s, "retries": N,
 * "proxy": URL, "no_proxy": hosts, "user_agent": string}; urls or pages
 * or both.
 * Unknown fields, wrong types, bad URLs (message gives the index), unsafe
 * dir/name and bad headers are refused: -1 with *cause set (caller frees),
 * the request left empty. On success the request owns its strings. The
 * request is overwritten, not freed, first. A null dir, name or headers is
 * the same as none.
 */
int request_parse_json(
    struct job_request *, const char *body, size_t len, char **cause);
/*
 * The same within the given limits; going past one is refused naming the
 * field, its index and the limit: "urls[3]: longer than max_url_length
 * (8192 bytes)". request_parse_json uses the built-in limits.
 */
int request_parse_json_limits(struct job_request *, const char *body,
    size_t len, const struct request_limits *, char **cause);

/*
 * Parse a text/uri-list body: one URL per line, CRLF or LF, '#' comments
 * and blank lines skipped; a bad URL is refused naming its line number.
 * dir and name (either may be NULL) come from the query string.
 */
int request_parse_urilist(struct job_request *, const char *body, size_t len,
    const char *dir, const char *name, char **cause);
/* The same within the given limits ("line N: ..." past one). */
int request_parse_urilist_limits(struct job_request *, const char *body,
    size_t len, const char *dir, const char *name,
    const struct request_limits *, char **cause);

/* Check one URL: absolute, http or https, with a host. */
int request_check_url(const char *url, char **cause);

/*
 * Check a proxy URL: "scheme://host[:port]" with a scheme libcurl speaks to
 * proxies (http, https, socks4, socks4a, socks5, socks5h), user and
 * password allowed, nothing after the port but "/".
 */
int request_check_proxy(const char *url, char **cause);
/* Check a no_proxy list: "*" or comma-separated hosts and domains. */
int request_check_no_proxy(const char *list, char **cause);
/* A copy of a proxy URL without its user and password, to show. */
char *request_proxy_redacted(const char *url);

struct config;
/*
 * Check a parsed request's network options against the config's caps
 * (max_job_timeout, max_job_retries, allow_job_proxy): -1 with *cause
 * naming the field and the cap.
 */
int request_check_limits(
    const struct job_request *, const struct config *, char **cause);

/* Longest "Name: value" header accepted from a job or the config. */
#define REQUEST_HEADER_MAX_BYTES 8192

/*
 * Check one extra header: the name an RFC 7230 token, the value without
 * CR, LF, NUL or other control characters (tab is allowed).
 */
int request_check_header(const char *name, const char *value, char **cause);
/* Check a "Name: value" line as found in the config file. */
int request_check_header_line(const char *line, char **cause);

/* Set the options to "not given": the config decides. */
void request_init_options(struct job_request *);

/* Free what the request owns and zero it. */
void request_finish(struct job_request *);

#endif
