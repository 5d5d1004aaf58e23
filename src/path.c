/*
 * Name templates and path safety. Everything a client sends that ends up in
 * a file name passes through here: the "dir" option and the literal parts
 * of a "name" template are checked and refused if unsafe; values taken from
 * URLs and headers are never refused but sanitized, so that each becomes
 * part of exactly one path component. The joined result is checked again.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "defs.h"
#include "log.h"
#include "path.h"
#include "xmalloc.h"

/* Longest extension taken from a URL, without the dot. */
#define PATH_EXT_MAX 8
/* Untrusted text quoted in a message is cut after this many bytes. */
#define PATH_PRINTABLE_MAX 64

enum path_field {
	PATH_NAME,
	PATH_STEM,
	PATH_EXT,
	PATH_HOST,
	PATH_JOB,
	PATH_N,
	PATH_DATE,
	PATH_TIME,
	PATH_SHA256,
	PATH_NFIELDS
};

static const char *const path_fields[PATH_NFIELDS] = { "name", "stem", "ext",
	"host", "job", "n", "date", "time", "sha256" };

/* Hex digits of a SHA-256. */
#define PATH_SHA256_HEX 64

static const struct {
	const char *type;
	const char *ext;
} path_types[] = {
	{ "image/png", "png" },
	{ "image/jpeg", "jpg" },
	{ "image/gif", "gif" },
	{ "image/webp", "webp" },
	{ "image/avif", "avif" },
	{ "image/heic", "heic" },
	{ "image/bmp", "bmp" },
	{ "image/tiff", "tif" },
	{ "image/x-icon", "ico" },
	{ "image/vnd.microsoft.icon", "ico" },
	{ "image/svg+xml", "svg" },
};

/* A growing NUL-terminated string. */
struct path_buf {
	char *p;
	size_t len;
	size_t size;
};

/* What a URL contributes to a name, each value already sanitized. */
struct path_url {
	char *name;
	char *stem;
	char *host;
	const char *ext;
	char url_ext[PATH_EXT_MAX + 1];
};

/* Append n bytes to a buffer. */
static void
path_buf_add(struct path_buf *b, const char *s, size_t n)
{
	if (b->size - b->len <= n) {
		b->size = b->len + n + 64;
		b->p = xrealloc(b->p, b->size);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Append a string to a buffer. */
static void
path_buf_adds(struct path_buf *b, const char *s)
{
	path_buf_add(b, s, strlen(s));
}

/*
 * Decode the UTF-8 sequence at s into *cp. Returns its length, or 0 if the
 * bytes are not valid UTF-8 (overlong forms and surrogates included).
 */
static size_t
path_utf8_next(const char *s, size_t left, unsigned int *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned int c, min;
	size_t n, i;

	c = u[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		c &= 0x07;
		min = 0x10000;
	} else
		return 0;
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (u[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* Is this code point a C0 or C1 control character or DEL? */
static int
path_is_control(unsigned int cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Is this code point a bidirectional override that can disguise a name? */
static int
path_is_bidi(unsigned int cp)
{
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Is s[0..len) valid UTF-8? */
int
path_is_utf8(const char *s, size_t len)
{
	unsigned int cp;
	size_t i, n;

	for (i = 0; i < len; i += n) {
		if ((n = path_utf8_next(s + i, len - i, &cp)) == 0)
			return 0;
	}
	return 1;
}

/* Make a short printable copy of untrusted text for a message. */
char *
path_printable(const char *s, size_t len)
{
	struct path_buf b = { NULL, 0, 0 };
	unsigned int cp;
	size_t i, n;

	path_buf_add(&b, "", 0);
	for (i = 0; i < len; i += n) {
		if (b.len >= PATH_PRINTABLE_MAX) {
			path_buf_adds(&b, "...");
			break;
		}
		n = path_utf8_next(s + i, len - i, &cp);
		if (n == 0 || path_is_control(cp) || path_is_bidi(cp)) {
			path_buf_add(&b, "?", 1);
			if (n == 0)
				n = 1;
			continue;
		}
		path_buf_add(&b, s + i, n);
	}
	return b.p;
}

/*
 * Turn untrusted bytes into text safe inside one path component: '/', '\',
 * control characters, bidirectional overrides and invalid UTF-8 become '_',
 * and a leading '.' becomes '_' so the result is never "." or ".." or
 * hidden. NUL bytes in the input are replaced like any control character.
 */
static char *
path_sanitize(const char *s, size_t len)
{
	struct path_buf b = { NULL, 0, 0 };
	unsigned int cp;
	size_t i, n;

	path_buf_add(&b, "", 0);
	for (i = 0; i < len; i += n) {
		n = path_utf8_next(s + i, len - i, &cp);
		if (n == 0) {
			path_buf_add(&b, "_", 1);
			n = 1;
			continue;
		}
		if (cp == '/' || cp == '\\' || path_is_control(cp) ||
		    path_is_bidi(cp)) {
			path_buf_add(&b, "_", 1);
			continue;
		}
		path_buf_add(&b, s + i, n);
	}
	if (b.p[0] == '.')
		b.p[0] = '_';
	return b.p;
}

/* Is this byte an ASCII letter or digit? */
static int
path_is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* Lowercase an ASCII letter; other bytes are unchanged. */
static char
path_lower(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (char)(c - 'A' + 'a');
	return c;
}

/*
 * Find the extension of a name: after the last '.', which must not be the
 * first byte, 1 to PATH_EXT_MAX ASCII letters or digits. Returns 1 and the
 * offset of the dot in *dot, or 0 if there is none.
 */
static int
path_find_ext(const char *s, size_t len, size_t *dot)
{
	const char *p;
	size_t i, n;

	if ((p = memrchr(s, '.', len)) == NULL || p == s)
		return 0;
	n = len - (size_t)(p - s) - 1;
	if (n == 0 || n > PATH_EXT_MAX)
		return 0;
	for (i = 1; i <= n; i++) {
		if (!path_is_alnum(p[i]))
			return 0;
	}
	*dot = (size_t)(p - s);
	return 1;
}

/* Check a client-supplied relative path. */
int
path_check_relative(const char *s, const char *what, char **cause)
{
	unsigned int cp;
	size_t len, i, n, start;

	if (s == NULL || *s == '\0') {
		xasprintf(cause, "%s: empty", what);
		return -1;
	}
	len = strlen(s);
	if (len > RELPATH_MAX_BYTES) {
		xasprintf(
		    cause, "%s: longer than %d bytes", what, RELPATH_MAX_BYTES);
		return -1;
	}
	if (s[0] == '/') {
		xasprintf(cause, "%s: absolute path not allowed", what);
		return -1;
	}
	for (i = 0; i < len; i += n) {
		if ((n = path_utf8_next(s + i, len - i, &cp)) == 0) {
			xasprintf(cause, "%s: not valid UTF-8", what);
			return -1;
		}
		if (path_is_control(cp)) {
			xasprintf(
			    cause, "%s: control character not allowed", what);
			return -1;
		}
		if (cp == '\\') {
			xasprintf(cause, "%s: backslash not allowed", what);
			return -1;
		}
	}
	start = 0;
	for (i = 0; i <= len; i++) {
		if (i < len && s[i] != '/')
			continue;
		n = i - start;
		if (n == 0 && i == len)
			break;
		if (n == 0) {
			xasprintf(cause, "%s: empty component (\"//\")", what);
			return -1;
		}
		if ((n == 1 && s[start] == '.') ||
		    (n == 2 && s[start] == '.' && s[start + 1] == '.')) {
			xasprintf(cause, "%s: \"%.*s\" component not allowed",
			    what, (int)n, s + start);
			return -1;
		}
		if (n > NAME_MAX_BYTES) {
			xasprintf(cause, "%s: component longer than %d bytes",
			    what, NAME_MAX_BYTES);
			return -1;
		}
		start = i + 1;
	}
	return 0;
}

/*
 * Look up a field name; -1 if unknown. "sha256:N" is {sha256} cut to its
 * first N (1 to 64) hex digits, given back in *prefix (0: all of it).
 */
static int
path_field_find(const char *s, size_t len, size_t *prefix)
{
	size_t k, n = 0;
	int i;

	*prefix = 0;
	if (len > 7 && memcmp(s, "sha256:", 7) == 0) {
		for (k = 7; k < len && k < 10; k++) {
			if (s[k] < '0' || s[k] > '9')
				return -1;
			n = n * 10 + (size_t)(s[k] - '0');
		}
		if (k != len || n < 1 || n > PATH_SHA256_HEX)
			return -1;
		*prefix = n;
		return PATH_SHA256;
	}
	for (i = 0; i < PATH_NFIELDS; i++) {
		if (strlen(path_fields[i]) == len &&
		    memcmp(path_fields[i], s, len) == 0)
			return i;
	}
	return -1;
}

/*
 * Expand a template into a buffer. With values NULL every field becomes
 * "x", which gives the shape used to check the literal parts.
 */
static int
path_walk(const char *tmpl, const char *const *values, struct path_buf *b,
    char **cause)
{
	const char *s = tmpl, *end, *v;
	char *field;
	size_t n, prefix;
	int i;

	path_buf_add(b, "", 0);
	while (*s != '\0') {
		if ((s[0] == '{' && s[1] == '{') ||
		    (s[0] == '}' && s[1] == '}')) {
			path_buf_add(b, s, 1);
			s += 2;
			continue;
		}
		if (s[0] == '}') {
			xasprintf(cause,
			    "name: unbalanced \"}\" (write \"}}\" "
			    "for a literal brace)");
			return -1;
		}
		if (s[0] != '{') {
			path_buf_add(b, s, 1);
			s++;
			continue;
		}
		end = s + 1 + strcspn(s + 1, "{}");
		if (*end != '}') {
			xasprintf(cause,
			    "name: unbalanced \"{\" (write \"{{\" "
			    "for a literal brace)");
			return -1;
		}
		n = (size_t)(end - (s + 1));
		if ((i = path_field_find(s + 1, n, &prefix)) == -1) {
			field = path_printable(s + 1, n);
			xasprintf(cause, "name: unknown field \"{%s}\"", field);
			free(field);
			return -1;
		}
		v = values != NULL ? values[i] : "x";
		if (prefix > 0 && strlen(v) > prefix)
			path_buf_add(b, v, prefix);
		else
			path_buf_adds(b, v);
		s = end + 1;
	}
	return 0;
}

/* Whether a checked template names the body's SHA-256. */
int
path_template_has_sha256(const char *tmpl)
{
	const char *s;

	if (tmpl == NULL)
		return 0;
	for (s = tmpl; (s = strstr(s, "{sha256")) != NULL; s++) {
		/* "{{sha256}" is a literal brace and the word. */
		if (s == tmpl || s[-1] != '{' || (s - 1 > tmpl && s[-2] == '{'))
			return 1;
	}
	return 0;
}

/* Check a name template: safe literal parts and only known fields. */
int
path_check_template(const char *tmpl, char **cause)
{
	struct path_buf b = { NULL, 0, 0 };
	int rc = -1;

	if (tmpl == NULL || *tmpl == '\0') {
		xasprintf(cause, "name: empty template");
		return -1;
	}
	if (strlen(tmpl) > RELPATH_MAX_BYTES) {
		xasprintf(
		    cause, "name: longer than %d bytes", RELPATH_MAX_BYTES);
		return -1;
	}
	if (path_walk(tmpl, NULL, &b, cause) != 0)
		goto fail;
	if (path_check_relative(b.p, "name", cause) != 0)
		goto fail;
	if (b.p[b.len - 1] == '/') {
		xasprintf(cause, "name: must not end with \"/\"");
		goto fail;
	}
	rc = 0;
fail:
	free(b.p);
	return rc;
}

/* Map an image Content-Type to its usual extension. */
const char *
path_ext_for_type(const char *content_type)
{
	const char *s = content_type;
	size_t i, n;

	if (s == NULL)
		return NULL;
	s += strspn(s, " \t");
	n = strcspn(s, "; \t");
	for (i = 0; i < sizeof path_types / sizeof path_types[0]; i++) {
		if (strlen(path_types[i].type) == n &&
		    strncasecmp(path_types[i].type, s, n) == 0)
			return path_types[i].ext;
	}
	return NULL;
}

/* Free what a path_url holds. */
static void
path_url_free(struct path_url *u)
{
	free(u->name);
	free(u->stem);
	free(u->host);
}

/* Take a URL apart into sanitized {name}, {stem}, {ext} and {host}. */
static int
path_url_parse(
    const char *url, const char *content_type, struct path_url *u, char **cause)
{
	CURLU *h;
	char *host = NULL, *path = NULL, *dec = NULL, *name, *p;
	const char *seg, *type_ext;
	size_t hlen, i, dot = 0;
	int declen, has_ext, rc = -1;

	if (url == NULL) {
		xasprintf(cause, "url: missing");
		return -1;
	}
	if ((h = curl_url()) == NULL)
		fatalx("%s: curl_url failed", __func__);
	/* Accept whatever libcurl may have fetched: this only names it. */
	if (curl_url_set(h, CURLUPART_URL, url,
		CURLU_NON_SUPPORT_SCHEME | CURLU_ALLOW_SPACE) != CURLUE_OK) {
		xasprintf(cause, "url: cannot parse");
		goto fail;
	}
	if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    *host == '\0') {
		xasprintf(cause, "url: no host");
		goto fail;
	}
	if (curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		xasprintf(cause, "url: no path");
		goto fail;
	}

	/* The last segment, split before decoding so "%2f" stays in it. */
	seg = strrchr(path, '/');
	seg = (seg == NULL) ? path : seg + 1;
	if (strlen(seg) > INT_MAX) {
		xasprintf(cause, "url: too long");
		goto fail;
	}
	dec = curl_easy_unescape(NULL, seg, (int)strlen(seg), &declen);
	if (dec == NULL)
		fatalx("%s: curl_easy_unescape failed", __func__);

	type_ext = path_ext_for_type(content_type);
	has_ext = path_find_ext(dec, (size_t)declen, &dot);
	if (declen == 0) {
		u->name = xstrdup(DEFAULT_FALLBACK_NAME);
		u->stem = xstrdup(DEFAULT_FALLBACK_NAME);
	} else if (has_ext) {
		u->name = path_sanitize(dec, (size_t)declen);
		u->stem = path_sanitize(dec, dot);
		for (i = 0; dot + 1 + i < (size_t)declen; i++)
			u->url_ext[i] = path_lower(dec[dot + 1 + i]);
		u->url_ext[i] = '\0';
	} else {
		u->name = path_sanitize(dec, (size_t)declen);
		u->stem = xstrdup(u->name);
	}
	if (!has_ext && type_ext != NULL) {
		xasprintf(&name, "%s.%s", u->name, type_ext);
		free(u->name);
		u->name = name;
	}
	if (u->url_ext[0] != '\0')
		u->ext = u->url_ext;
	else if (type_ext != NULL)
		u->ext = type_ext;
	else
		u->ext = "bin";

	/* An IPv6 literal loses its brackets; host names are lowercased. */
	p = host;
	hlen = strlen(p);
	if (hlen >= 2 && p[0] == '[' && p[hlen - 1] == ']') {
		p++;
		hlen -= 2;
	}
	for (i = 0; i < hlen; i++)
		p[i] = path_lower(p[i]);
	u->host = path_sanitize(p, hlen);
	rc = 0;
fail:
	curl_free(dec);
	curl_free(path);
	curl_free(host);
	curl_url_cleanup(h);
	return rc;
}

/*
 * Append one component to a buffer, cut to max bytes if longer: the
 * extension is kept and the cut never splits a UTF-8 sequence.
 */
static void
path_add_component(struct path_buf *b, const char *s, size_t len, size_t max)
{
	size_t keep, dot, extlen = 0;

	if (len <= max) {
		path_buf_add(b, s, len);
		return;
	}
	if (path_find_ext(s, len, &dot))
		extlen = len - dot;
	if (extlen > max / 2)
		extlen = 0;
	keep = max - extlen;
	while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
		keep--;
	path_buf_add(b, s, keep);
	path_buf_add(b, s + len - extlen, extlen);
}

/* Expand a checked template into a relative path below dir. */
char *
path_expand(const char *dir, const char *tmpl, const struct path_vars *vars,
    char **cause)
{
	struct path_url u;
	struct path_buf raw = { NULL, 0, 0 }, out = { NULL, 0, 0 };
	const char *values[PATH_NFIELDS], *s, *slash;
	char job[32], n[32], date[64], hms[64];
	struct tm tm;
	size_t len;
	char *result = NULL;

	memset(&u, 0, sizeof u);
	if (tmpl == NULL)
		tmpl = DEFAULT_NAME_TEMPLATE;
	if (path_check_template(tmpl, cause) != 0)
		return NULL;
	if (dir != NULL && *dir != '\0' &&
	    path_check_relative(dir, "dir", cause) != 0)
		return NULL;
	if (path_url_parse(vars->url, vars->content_type, &u, cause) != 0)
		goto fail;

	snprintf(job, sizeof job, "%llu", vars->job);
	snprintf(n, sizeof n, "%lu", vars->n);
	if (localtime_r(&vars->now, &tm) == NULL ||
	    strftime(date, sizeof date, "%Y-%m-%d", &tm) == 0 ||
	    strftime(hms, sizeof hms, "%H%M%S", &tm) == 0) {
		xasprintf(
		    cause, "time: cannot convert %lld", (long long)vars->now);
		goto fail;
	}
	values[PATH_NAME] = u.name;
	values[PATH_STEM] = u.stem;
	values[PATH_EXT] = u.ext;
	values[PATH_HOST] = u.host;
	values[PATH_JOB] = job;
	values[PATH_N] = n;
	values[PATH_DATE] = date;
	values[PATH_TIME] = hms;
	values[PATH_SHA256] = vars->sha256 != NULL ? vars->sha256 : "";
	if (vars->sha256 == NULL && path_template_has_sha256(tmpl)) {
		xasprintf(cause, "name: {sha256} is not known before the body "
				 "is complete");
		goto fail;
	}
	if (path_walk(tmpl, values, &raw, cause) != 0)
		goto fail;

	path_buf_add(&out, "", 0);
	if (dir != NULL && *dir != '\0') {
		len = strlen(dir);
		if (dir[len - 1] == '/')
			len--;
		path_buf_add(&out, dir, len);
		path_buf_add(&out, "/", 1);
	}
	for (s = raw.p;; s = slash + 1) {
		if ((slash = strchr(s, '/')) == NULL) {
			/* Leave room for a "-N" suffix and ".part". */
			path_add_component(
			    &out, s, strlen(s), FILE_NAME_MAX_BYTES);
			break;
		}
		path_add_component(
		    &out, s, (size_t)(slash - s), NAME_MAX_BYTES);
		path_buf_add(&out, "/", 1);
	}

	if (path_check_relative(out.p, "path", cause) != 0)
		goto fail;
	if (out.p[out.len - 1] == '/') {
		xasprintf(cause, "path: ends with \"/\"");
		goto fail;
	}
	result = out.p;
	out.p = NULL;
fail:
	free(out.p);
	free(raw.p);
	path_url_free(&u);
	return result;
}
