/* Name templates and path safety: everything that turns input into names. */
#ifndef PATH_H
#define PATH_H

#include <stddef.h>
#include <time.h>

/*
 * Check a client-supplied relative path (the "dir" option, or the literal
 * parts of a "name" template): not absolute, no "." or ".." component, no
 * NUL or control character, no empty component except a trailing "/",
 * within the length limits. "what" names the field in the message.
 * Returns 0, or -1 with *cause set (caller frees).
 */
int path_check_relative(const char *s, const char *what, char **cause);

/* Check a name template: safe literal parts and only known {fields}. */
int path_check_template(const char *tmpl, char **cause);
/* Whether a checked template uses {sha256} or {sha256:N}. */
int path_template_has_sha256(const char *tmpl);

struct path_vars {
	const char *url; /* the item's URL (after redirects is fine) */
	const char *content_type; /* may be NULL */
	unsigned long long job; /* job id */
	unsigned long n; /* item index in the job */
	time_t now; /* for {date} and {time} */
	const char *sha256; /* the body's SHA-256 in hex, or NULL if unknown */
};

/*
 * Expand a checked template into a relative path; "dir" (may be NULL or
 * empty) is put in front. Field values are sanitized so that each becomes
 * a safe part of one component: percent-decoded, '/' and control
 * characters replaced, never "." or "..", each component at most
 * NAME_MAX_BYTES (keeping the extension). Fields: {name} last URL path
 * segment (fallback DEFAULT_FALLBACK_NAME, plus .ext from the type when it
 * has none), {stem} that segment without extension, {ext} the extension
 * from the URL, else from the Content-Type, else "bin", {host}, {job},
 * {n}, {date} (YYYY-MM-DD), {time} (HHMMSS), {sha256} (the body's SHA-256
 * in hex; {sha256:N} its first N digits; vars->sha256 must then be set).
 * A NULL tmpl means
 * DEFAULT_NAME_TEMPLATE. Returns a new string, or NULL with *cause set.
 */
char *path_expand(
    const char *dir, const char *tmpl, const struct path_vars *, char **cause);

/* The usual extension for an image Content-Type ("png"), or NULL. */
const char *path_ext_for_type(const char *content_type);

/* Is s[0..len) valid UTF-8? */
int path_is_utf8(const char *s, size_t len);
/*
 * A short printable copy of untrusted text for a message: valid UTF-8,
 * no control characters, cut with "..." when long. Caller frees.
 */
char *path_printable(const char *s, size_t len);

#endif
