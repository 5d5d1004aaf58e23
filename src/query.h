/* The API's query strings and job paths: pure parsing, fuzzed on its own. */
#ifndef QUERY_H
#define QUERY_H

struct evkeyvalq;

/*
 * Parse a query string ("a=1&b=2", may be NULL) into q (initialized here;
 * the caller clears it with evhttp_clear_headers). Every name must be one
 * of known (NULL-terminated) and given once; values are percent-decoded
 * and must be valid UTF-8 without NUL. Returns 0, or -1 with *cause set
 * (caller frees) and q left empty.
 */
int query_parse(const char *query, const char *const *known,
    struct evkeyvalq *q, char **cause);

/*
 * Parse what follows "/v1/jobs/" in a path: "ID" or "ID/events", ID a
 * decimal job id. Returns 0 with *id and *events set, or -1.
 */
int query_job_path(const char *rest, unsigned long long *id, int *events);

#endif
