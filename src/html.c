/*
 * Image references in an HTML page. The page is converted to UTF-8 (iconv),
 * parsed by gumbo (the HTML5 parsing algorithm, so broken markup is read the
 * way a browser reads it), and its tree is walked for the elements and
 * attributes that name images; every URL is resolved and normalised by
 * libcurl's URL API. Everything here is pure and reentrant: it runs on a
 * worker thread and keeps no global state.
 *
 * gumbo's time grows with the page's size times its nesting depth (it scans
 * its stack of open elements for many tokens), so a page of nothing but
 * "<div>" would take hours. Before parsing, html_flatten walks the start and
 * end tags with gumbo's tokenizer rules and blanks every start tag that
 * would open an element deeper than HTML_NESTING_MAX. Its depth count pops
 * an element only when the end tag names the innermost one, so it never
 * counts less than gumbo nests: no input gets past it deeper.
 */
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <gumbo.h>

#include "defs.h"
#include "html.h"
#include "xmalloc.h"

/* A set of strings (owned elsewhere) for finding duplicates. */
struct html_set {
	const char **slots;
	size_t cap; /* a power of two */
	size_t n;
};

/* A list of URLs in the order found, with its duplicate set. */
struct html_list {
	char **v;
	size_t n, cap, max;
	struct html_set seen;
};

/* One extraction's state. */
struct html_ctx {
	CURLU *page;
	CURLU *base;
	char *host; /* page_url's host, for same_host */
	int same_host;
	struct html_list images;
	struct html_list next;
	char *title;
};

/* The open elements html_flatten counts: names in the buffer. */
struct html_open {
	const char *name;
	size_t len;
};

static const char *const html_void_tags[] = { "area", "base", "basefont",
	"bgsound", "br", "col", "embed", "frame", "hr", "image", "img", "input",
	"keygen", "link", "meta", "param", "source", "track", "wbr" };
static const char *const html_raw_tags[] = { "iframe", "noembed", "noframes",
	"script", "style", "textarea", "title", "xmp" };
static const char *const html_image_exts[] = { "jpg", "jpeg", "png", "gif",
	"webp", "avif", "bmp", "tif", "tiff", "ico", "svg" };
static const char *const html_meta_names[] = { "og:image", "og:image:url",
	"og:image:secure_url", "twitter:image", "twitter:image:src" };

#define HTML_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ASCII lower case, whatever the locale. */
static int
html_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Whether c is ASCII white space as HTML defines it. */
static int
html_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* Compare a[0..alen) and b[0..blen) ignoring ASCII case. */
static int
html_same(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++) {
		if (html_lower((unsigned char)a[i]) !=
		    html_lower((unsigned char)b[i]))
			return 0;
	}
	return 1;
}

/* Whether name[0..len) is one of the words, ignoring ASCII case. */
static int
html_among(const char *name, size_t len, const char *const *words, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (html_same(name, len, words[i], strlen(words[i])))
			return 1;
	}
	return 0;
}

/* Find "</name" followed by the end of a tag name at or after p. */
static const char *
html_find_end_tag(const char *p, const char *end, const char *name, size_t len)
{
	const char *q;

	while ((q = memchr(p, '<', end - p)) != NULL) {
		if ((size_t)(end - q) >= len + 3 && q[1] == '/' &&
		    html_same(q + 2, len, name, len) &&
		    (html_space((unsigned char)q[len + 2]) ||
			q[len + 2] == '/' || q[len + 2] == '>'))
			return q;
		p = q + 1;
	}
	return end;
}

/*
 * Skip a tag's attributes the way the tokenizer does, from just after its
 * name; the position after its '>', or NULL at the end of input (where the
 * tokenizer drops the tag). *selfclosing tells whether it ended in "/>".
 */
static const char *
html_skip_attributes(const char *p, const char *end, int *selfclosing)
{
	enum { BEFORE, NAME, AFTER, VALUE, DQ, SQ, UNQ, QUOTED } st = BEFORE;
	int c;

	*selfclosing = 0;
	for (; p < end; p++) {
		c = (unsigned char)*p;
		switch (st) {
		case BEFORE:
		case QUOTED:
			if (c == '>')
				return p + 1;
			if (c == '/') {
				if (p + 1 < end && p[1] == '>') {
					*selfclosing = 1;
					return p + 2;
				}
				st = BEFORE;
			} else if (html_space(c))
				st = BEFORE;
			else
				st = NAME;
			break;
		case NAME:
		case AFTER:
			if (c == '>')
				return p + 1;
			if (c == '=')
				st = VALUE;
			else if (c == '/')
				p--, st = BEFORE;
			else if (html_space(c))
				st = AFTER;
			else
				st = NAME;
			break;
		case VALUE:
			if (c == '>')
				return p + 1;
			if (c == '"')
				st = DQ;
			else if (c == '\'')
				st = SQ;
			else if (!html_space(c))
				st = UNQ;
			break;
		case DQ:
			if (c == '"')
				st = QUOTED;
			break;
		case SQ:
			if (c == '\'')
				st = QUOTED;
			break;
		case UNQ:
			if (c == '>')
				return p + 1;
			if (html_space(c))
				st = BEFORE;
			break;
		}
	}
	return NULL;
}

/* Skip a comment or other "<!" markup from its '<'; NULL at the end. */
static const char *
html_skip_markup(const char *p, const char *end)
{
	const char *q;

	if (end - p >= 4 && p[2] == '-' && p[3] == '-') {
		for (q = p + 2; q + 3 <= end; q++) {
			if (q[0] == '-' && q[1] == '-' && q[2] == '>')
				return q + 3;
			if (q + 4 <= end && memcmp(q, "--!>", 4) == 0)
				return q + 4;
		}
		return NULL;
	}
	q = memchr(p, '>', end - p);
	return q != NULL ? q + 1 : NULL;
}

/*
 * Blank (with spaces, in place) every start tag of buf[0..len) that would
 * open an element deeper than HTML_NESTING_MAX; see the top of the file.
 * Returns the number of tags blanked. With buf read-only (write 0), only
 * counts them.
 */
static size_t
html_flatten(char *buf, size_t len, int write)
{
	struct html_open *open;
	const char *p = buf, *end = buf + len, *name, *q;
	size_t depth = 0, foreign = 0, nlen, blanked = 0;
	int closing, selfclosing;

	open = xcalloc(HTML_NESTING_MAX, sizeof(*open));
	while ((q = memchr(p, '<', end - p)) != NULL) {
		p = q + 1;
		if (p == end)
			break;
		if (*p == '!' || *p == '?') {
			if ((p = html_skip_markup(q, end)) == NULL)
				break;
			continue;
		}
		closing = *p == '/';
		if (closing)
			p++;
		if (p == end)
			break;
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
			if (closing && (p = memchr(p, '>', end - p)) == NULL)
				break;
			continue;
		}
		name = p;
		while (p < end && !html_space((unsigned char)*p) && *p != '/' &&
		    *p != '>')
			p++;
		nlen = p - name;
		if ((p = html_skip_attributes(p, end, &selfclosing)) == NULL)
			break;
		if (closing) {
			if (depth > 0 &&
			    html_same(open[depth - 1].name, open[depth - 1].len,
				name, nlen)) {
				depth--;
				if (html_among(name, nlen,
					(const char *const[]){ "svg", "math" },
					2))
					foreign--;
			}
			continue;
		}
		if (foreign == 0 &&
		    html_among(
			name, nlen, html_void_tags, HTML_NELEM(html_void_tags)))
			continue;
		if (foreign > 0 && selfclosing)
			continue;
		if (depth == HTML_NESTING_MAX) {
			blanked++;
			if (write)
				memset((char *)q, ' ', p - q);
			continue;
		}
		open[depth].name = name;
		open[depth].len = nlen;
		depth++;
		if (html_among(
			name, nlen, (const char *const[]){ "svg", "math" }, 2))
			foreign++;
		if (foreign > 0)
			continue;
		if (html_same(name, nlen, "plaintext", 9))
			break;
		if (html_among(
			name, nlen, html_raw_tags, HTML_NELEM(html_raw_tags)))
			p = html_find_end_tag(p, end, name, nlen);
	}
	free(open);
	return blanked;
}

/* Whether buf[0..len) is valid UTF-8. */
static int
html_valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			n = 1, cp = s[i] & 0x1f;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			n = 2, cp = s[i] & 0x0f;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			n = 3, cp = s[i] & 0x07;
		else
			return 0;
		if (len - i <= n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 &&
			(cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += n + 1;
	}
	return 1;
}

/*
 * The charset named in a Content-Type value or a <meta> content attribute
 * (the HTML spec's "extracting a character encoding from a meta element"),
 * copied into out; 0 if there is none or it is not a plausible name.
 */
static int
html_charset_param(const char *s, size_t len, char *out, size_t outsize)
{
	const char *end = s + len, *v;
	size_t n;
	char quote = 0;

	while (end - s >= 7) {
		if (!html_same(s, 7, "charset", 7)) {
			s++;
			continue;
		}
		s += 7;
		while (s < end && html_space((unsigned char)*s))
			s++;
		if (s == end || *s != '=')
			continue;
		s++;
		while (s < end && html_space((unsigned char)*s))
			s++;
		if (s < end && (*s == '"' || *s == '\''))
			quote = *s++;
		for (v = s; s < end; s++) {
			if (quote
				? *s == quote
				: (*s == ';' || html_space((unsigned char)*s)))
				break;
		}
		if (quote && s == end)
			return 0;
		n = s - v;
		if (n == 0 || n >= outsize)
			return 0;
		for (s = v; s < v + n; s++) {
			if (!((*s >= 'a' && *s <= 'z') ||
				(*s >= 'A' && *s <= 'Z') ||
				(*s >= '0' && *s <= '9') || *s == '-' ||
				*s == '_' || *s == '.' || *s == ':'))
				return 0;
		}
		memcpy(out, v, n);
		out[n] = '\0';
		return 1;
	}
	return 0;
}

/* The value of a gumbo element's attribute, or NULL. */
static const char *
html_attr(const GumboNode *node, const char *name)
{
	const GumboAttribute *a;

	a = gumbo_get_attribute(&node->v.element.attributes, name);
	return a != NULL ? a->value : NULL;
}

/* The children of a node that has them, else NULL (template contents too). */
static const GumboVector *
html_children(const GumboNode *node)
{
	if (node->type == GUMBO_NODE_DOCUMENT)
		return &node->v.document.children;
	if (node->type == GUMBO_NODE_ELEMENT)
		return &node->v.element.children;
	return NULL;
}

/*
 * The next node after node in tree order within root, or NULL. Iterative,
 * so a deep tree costs no stack.
 */
static const GumboNode *
html_walk_next(const GumboNode *root, const GumboNode *node)
{
	const GumboVector *c;
	const GumboNode *parent;
	size_t i;

	if ((c = html_children(node)) != NULL && c->length > 0)
		return c->data[0];
	while (node != root && (parent = node->parent) != NULL) {
		c = html_children(parent);
		i = node->index_within_parent;
		if (c == NULL || i >= c->length || c->data[i] != node)
			return NULL;
		if (i + 1 < c->length)
			return c->data[i + 1];
		node = parent;
	}
	return NULL;
}

/* Whether node is an HTML element with this tag. */
static int
html_is(const GumboNode *node, GumboTag tag)
{
	return node->type == GUMBO_NODE_ELEMENT &&
	    node->v.element.tag_namespace == GUMBO_NAMESPACE_HTML &&
	    node->v.element.tag == tag;
}

/* Whether node is a <picture> (a tag gumbo does not know by name). */
static int
html_is_picture(const GumboNode *node)
{
	GumboStringPiece name;

	if (node == NULL || !html_is(node, GUMBO_TAG_UNKNOWN))
		return 0;
	name = node->v.element.original_tag;
	gumbo_tag_from_original_text(&name);
	return html_same(name.data, name.length, "picture", 7);
}

/* Whether the space-separated token list s holds word (ASCII case-blind). */
static int
html_has_token(const char *s, const char *word)
{
	const char *t;

	if (s == NULL)
		return 0;
	for (;;) {
		while (html_space((unsigned char)*s))
			s++;
		if (*s == '\0')
			return 0;
		for (t = s; *s != '\0' && !html_space((unsigned char)*s); s++)
			;
		if (html_same(t, s - t, word, strlen(word)))
			return 1;
	}
}

/* FNV-1a of a string. */
static size_t
html_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return (size_t)h;
}

/* Add s to the set unless it is there; 1 if added. */
static int
html_set_add(struct html_set *set, const char *s)
{
	const char **old;
	size_t i, j, oldcap;

	if (set->n * 2 >= set->cap) {
		old = set->slots;
		oldcap = set->cap;
		set->cap = oldcap == 0 ? 64 : oldcap * 2;
		set->slots = xcalloc(set->cap, sizeof(*set->slots));
		for (i = 0; i < oldcap; i++) {
			if (old[i] == NULL)
				continue;
			j = html_hash(old[i]) & (set->cap - 1);
			while (set->slots[j] != NULL)
				j = (j + 1) & (set->cap - 1);
			set->slots[j] = old[i];
		}
		free(old);
	}
	i = html_hash(s) & (set->cap - 1);
	while (set->slots[i] != NULL) {
		if (strcmp(set->slots[i], s) == 0)
			return 0;
		i = (i + 1) & (set->cap - 1);
	}
	set->slots[i] = s;
	set->n++;
	return 1;
}

/* Append url (taken) to the list unless it is a duplicate or full. */
static void
html_list_add(struct html_list *l, char *url)
{
	if (l->n >= l->max || !html_set_add(&l->seen, url)) {
		free(url);
		return;
	}
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 16 : l->cap * 2;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = url;
}

/*
 * Resolve an attribute's URL against base: white space trimmed (and tabs
 * and newlines inside removed, as the URL standard does), spaces and
 * non-ASCII percent-encoded, the fragment dropped. The normalised absolute
 * http(s) URL, or NULL. With same_host set, NULL for another host too.
 */
static char *
html_resolve(const struct html_ctx *ctx, CURLU *base, const char *raw,
    size_t rawlen, int same_host)
{
	CURLU *h = NULL;
	char *clean = NULL, *scheme = NULL, *host = NULL, *url = NULL;
	char *result = NULL;
	const char *end = raw + rawlen;
	size_t n = 0;

	while (raw < end && html_space((unsigned char)*raw))
		raw++;
	while (end > raw && html_space((unsigned char)end[-1]))
		end--;
	if (raw == end || (size_t)(end - raw) > URL_MAX_BYTES)
		return NULL;
	clean = xmalloc((end - raw) * 3 + 1);
	for (; raw < end; raw++) {
		if (*raw == '\t' || *raw == '\n' || *raw == '\r')
			continue;
		if (*raw == ' ') {
			memcpy(clean + n, "%20", 3);
			n += 3;
		} else if (*raw != '\0')
			clean[n++] = *raw;
	}
	clean[n] = '\0';
	if ((h = curl_url_dup(base)) == NULL)
		goto out;
	if (curl_url_set(h, CURLUPART_URL, clean, CURLU_URLENCODE) !=
		CURLUE_OK ||
	    curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		goto out;
	if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (same_host &&
	    !html_same(host, strlen(host), ctx->host, strlen(ctx->host)))
		goto out;
	if (curl_url_get(h, CURLUPART_URL, &url, CURLU_NO_DEFAULT_PORT) !=
		CURLUE_OK ||
	    strlen(url) > URL_MAX_BYTES)
		goto out;
	result = xstrdup(url);
out:
	curl_free(url);
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(h);
	free(clean);
	return result;
}

/* Resolve an attribute's URL and add it to the images. */
static void
html_add_image(struct html_ctx *ctx, const char *raw, size_t len)
{
	char *url;

	if ((url = html_resolve(ctx, ctx->base, raw, len, ctx->same_host)))
		html_list_add(&ctx->images, url);
}

/* Resolve a rel=next URL and add it to the next pages. */
static void
html_add_next(struct html_ctx *ctx, const char *raw)
{
	char *url;

	if (raw != NULL &&
	    (url = html_resolve(ctx, ctx->base, raw, strlen(raw), 0)) != NULL)
		html_list_add(&ctx->next, url);
}

/*
 * Parse one srcset descriptor list entry (the HTML spec's rules): 1 and
 * its size (width in w, or density in x) if valid, else 0.
 */
static int
html_srcset_descriptors(const char *s, const char *end, double *w, double *x)
{
	const char *t, *v, *num_end;
	char buf[64];
	int have_w = 0, have_x = 0, have_h = 0, in_parens;
	double d;
	char *ep;

	*w = 0;
	*x = 1;
	while (s < end) {
		while (s < end && html_space((unsigned char)*s))
			s++;
		if (s == end)
			break;
		in_parens = 0;
		for (t = s; s < end; s++) {
			if (*s == '(')
				in_parens = 1;
			else if (*s == ')')
				in_parens = 0;
			else if (!in_parens && html_space((unsigned char)*s))
				break;
		}
		num_end = s - 1;
		if ((size_t)(num_end - t) >= sizeof(buf) || num_end == t)
			return 0;
		memcpy(buf, t, num_end - t);
		buf[num_end - t] = '\0';
		switch (*num_end) {
		case 'w':
		case 'h':
			for (v = buf; *v != '\0'; v++) {
				if (*v < '0' || *v > '9')
					return 0;
			}
			d = strtod(buf, NULL);
			if (d <= 0)
				return 0;
			if (*num_end == 'w') {
				if (have_w || have_x)
					return 0;
				have_w = 1;
				*w = d;
			} else {
				if (have_h || have_x)
					return 0;
				have_h = 1;
			}
			break;
		case 'x':
			if (have_w || have_x || have_h)
				return 0;
			v = buf;
			if (*v == '-')
				v++;
			if (*v < '0' || *v > '9')
				return 0;
			errno = 0;
			d = strtod(buf, &ep);
			if (*ep != '\0' || errno != 0 || d < 0 ||
			    strpbrk(buf, "xXpPnN") != NULL)
				return 0;
			have_x = 1;
			*x = d;
			break;
		default:
			return 0;
		}
	}
	return !(have_h && !have_w);
}

/*
 * The largest candidate of a srcset attribute (the HTML spec's parsing
 * rules: a URL is a run of non-space characters, trailing commas ending it;
 * descriptors up to the next comma outside parentheses). Candidates with a
 * w descriptor rank by width above all others, the rest by density (none
 * is 1x); the first of equals wins. Sets *url and *len; 0 if none.
 */
static int
html_srcset_largest(const char *s, const char **url, size_t *len)
{
	const char *u, *uend, *d, *dend;
	double w, x, best_w = -1, best_x = -1;
	int found = 0, in_parens;

	for (;;) {
		while (html_space((unsigned char)*s) || *s == ',')
			s++;
		if (*s == '\0')
			break;
		for (u = s; *s != '\0' && !html_space((unsigned char)*s); s++)
			;
		uend = s;
		if (uend[-1] == ',') {
			while (uend > u && uend[-1] == ',')
				uend--;
			d = dend = s;
		} else {
			in_parens = 0;
			for (d = s; *s != '\0'; s++) {
				if (*s == '(')
					in_parens = 1;
				else if (*s == ')')
					in_parens = 0;
				else if (*s == ',' && !in_parens)
					break;
			}
			dend = s;
			if (*s == ',')
				s++;
		}
		if (uend == u || !html_srcset_descriptors(d, dend, &w, &x))
			continue;
		if (w > best_w || (w == best_w && x > best_x)) {
			best_w = w;
			best_x = x;
			*url = u;
			*len = uend - u;
			found = 1;
		}
	}
	return found;
}

/* Add the largest candidate of a srcset attribute (may be NULL). */
static void
html_add_srcset(struct html_ctx *ctx, const char *srcset)
{
	const char *url;
	size_t len;

	if (srcset != NULL && html_srcset_largest(srcset, &url, &len))
		html_add_image(ctx, url, len);
}

/* Add an attribute's URL (may be NULL) to the images. */
static void
html_add_attr(struct html_ctx *ctx, const char *value)
{
	if (value != NULL)
		html_add_image(ctx, value, strlen(value));
}

/* Whether an <a href>'s URL names an image file, by its extension. */
static int
html_image_link(const struct html_ctx *ctx, const char *href)
{
	char *url, *path = NULL;
	const char *slash, *dot;
	CURLU *h;
	int yes = 0;

	if ((url = html_resolve(ctx, ctx->base, href, strlen(href), 0)) == NULL)
		return 0;
	if ((h = curl_url()) != NULL &&
	    curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
		slash = strrchr(path, '/');
		dot = strrchr(slash != NULL ? slash : path, '.');
		if (dot != NULL)
			yes = html_among(dot + 1, strlen(dot + 1),
			    html_image_exts, HTML_NELEM(html_image_exts));
	}
	curl_free(path);
	curl_url_cleanup(h);
	free(url);
	return yes;
}

/* The text of a <title>, white space collapsed and trimmed, or NULL. */
static char *
html_title(const GumboNode *node)
{
	const GumboVector *c = &node->v.element.children;
	const GumboNode *child;
	const char *s;
	char *t;
	size_t i, n = 0, k;
	int space = 0;

	t = xmalloc(HTML_TITLE_MAX_BYTES + 1);
	for (i = 0; i < c->length; i++) {
		child = c->data[i];
		if (child->type != GUMBO_NODE_TEXT &&
		    child->type != GUMBO_NODE_WHITESPACE &&
		    child->type != GUMBO_NODE_CDATA)
			continue;
		for (s = child->v.text.text; *s != '\0'; s++) {
			if (html_space((unsigned char)*s)) {
				space = n > 0;
				continue;
			}
			if (space && n < HTML_TITLE_MAX_BYTES)
				t[n++] = ' ';
			space = 0;
			if (n < HTML_TITLE_MAX_BYTES)
				t[n++] = *s;
		}
	}
	/* Do not end in the middle of a UTF-8 sequence. */
	if (n == HTML_TITLE_MAX_BYTES) {
		k = n;
		while (k > 0 && ((unsigned char)t[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0 && (unsigned char)t[k - 1] >= 0xc0) {
			size_t need = (unsigned char)t[k - 1] >= 0xf0 ? 4
			    : (unsigned char)t[k - 1] >= 0xe0	      ? 3
								      : 2;
			if (n - (k - 1) < need)
				n = k - 1;
		}
	}
	t[n] = '\0';
	if (n == 0) {
		free(t);
		return NULL;
	}
	return t;
}

/* Collect what one element references. */
static void
html_visit(struct html_ctx *ctx, const GumboNode *node)
{
	const char *v, *rel;

	if (node->type != GUMBO_NODE_ELEMENT ||
	    node->v.element.tag_namespace != GUMBO_NAMESPACE_HTML)
		return;
	switch (node->v.element.tag) {
	case GUMBO_TAG_IMG:
		html_add_attr(ctx, html_attr(node, "src"));
		html_add_srcset(ctx, html_attr(node, "srcset"));
		html_add_attr(ctx, html_attr(node, "data-src"));
		html_add_srcset(ctx, html_attr(node, "data-srcset"));
		html_add_attr(ctx, html_attr(node, "data-original"));
		html_add_attr(ctx, html_attr(node, "data-lazy-src"));
		break;
	case GUMBO_TAG_SOURCE:
		if (!html_is_picture(node->parent))
			break;
		html_add_srcset(ctx, html_attr(node, "srcset"));
		html_add_srcset(ctx, html_attr(node, "data-srcset"));
		break;
	case GUMBO_TAG_META:
		v = html_attr(node, "property");
		if (v == NULL ||
		    !html_among(v, strlen(v), html_meta_names,
			HTML_NELEM(html_meta_names)))
			v = html_attr(node, "name");
		if (v != NULL &&
		    html_among(v, strlen(v), html_meta_names,
			HTML_NELEM(html_meta_names)))
			html_add_attr(ctx, html_attr(node, "content"));
		break;
	case GUMBO_TAG_LINK:
		rel = html_attr(node, "rel");
		if (html_has_token(rel, "image_src"))
			html_add_attr(ctx, html_attr(node, "href"));
		if (html_has_token(rel, "next"))
			html_add_next(ctx, html_attr(node, "href"));
		break;
	case GUMBO_TAG_A:
		if ((v = html_attr(node, "href")) == NULL)
			break;
		if (html_has_token(html_attr(node, "rel"), "next"))
			html_add_next(ctx, v);
		if (html_image_link(ctx, v))
			html_add_attr(ctx, v);
		break;
	case GUMBO_TAG_TITLE:
		if (ctx->title == NULL)
			ctx->title = html_title(node);
		break;
	default:
		break;
	}
}

/*
 * The page's encoding as an iconv name, or NULL for UTF-8. Sets *skip to
 * the length of a byte order mark.
 */
static const char *
html_encoding(const char *body, size_t len, const char *content_type,
    char *label, size_t labelsize, size_t *skip)
{
	static const char *const latin1[] = { "iso-8859-1", "iso8859-1",
		"iso_8859-1", "latin1", "l1", "cp819", "ibm819", "us-ascii",
		"ascii", "windows-1252", "cp1252", "x-cp1252" };
	static const char *const utf8[] = { "utf-8", "utf8",
		"unicode-1-1-utf-8" };
	GumboOptions options = kGumboDefaultOptions;
	GumboOutput *output;
	const GumboNode *node;
	const char *v;
	char meta[80];
	int found = 0, from_meta = 0;

	*skip = 0;
	if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0) {
		*skip = 3;
		return NULL;
	}
	if (len >= 2 && memcmp(body, "\xfe\xff", 2) == 0) {
		*skip = 2;
		return "UTF-16BE";
	}
	if (len >= 2 && memcmp(body, "\xff\xfe", 2) == 0) {
		*skip = 2;
		return "UTF-16LE";
	}
	if (content_type != NULL)
		found = html_charset_param(
		    content_type, strlen(content_type), label, labelsize);
	if (!found) {
		/* The first bytes, parsed as HTML, for a <meta> charset. */
		options.max_errors = 0;
		output = gumbo_parse_with_options(&options, body,
		    len < HTML_CHARSET_SCAN_BYTES ? len
						  : HTML_CHARSET_SCAN_BYTES);
		node = output != NULL ? output->document : NULL;
		for (; node != NULL && !found;
		     node = html_walk_next(output->document, node)) {
			if (!html_is(node, GUMBO_TAG_META))
				continue;
			if ((v = html_attr(node, "charset")) != NULL) {
				snprintf(
				    meta, sizeof(meta), "charset=%.60s", v);
				found = html_charset_param(
				    meta, strlen(meta), label, labelsize);
			} else if ((v = html_attr(node, "http-equiv")) !=
				NULL &&
			    html_same(v, strlen(v), "content-type", 12) &&
			    (v = html_attr(node, "content")) != NULL)
				found = html_charset_param(
				    v, strlen(v), label, labelsize);
		}
		if (output != NULL)
			gumbo_destroy_output(&options, output);
		from_meta = found;
	}
	if (found) {
		while (html_space((unsigned char)*label))
			memmove(label, label + 1, strlen(label));
		while (*label != '\0' &&
		    html_space((unsigned char)label[strlen(label) - 1]))
			label[strlen(label) - 1] = '\0';
		if (html_among(label, strlen(label), utf8, HTML_NELEM(utf8)))
			return NULL;
		/* A <meta> cannot really say UTF-16: the spec reads UTF-8. */
		if (from_meta && html_same(label, 6, "utf-16", 6))
			return NULL;
		if (html_among(
			label, strlen(label), latin1, HTML_NELEM(latin1)))
			return "WINDOWS-1252";
		if (*label != '\0')
			return label;
	}
	if (html_valid_utf8((const unsigned char *)body, len))
		return NULL;
	return "WINDOWS-1252";
}

/*
 * Convert s[0..len) from the iconv encoding to UTF-8, each invalid byte
 * becoming U+FFFD. A new buffer and its length in *outlen, or NULL if
 * iconv does not know the encoding.
 */
static char *
html_to_utf8(const char *s, size_t len, const char *encoding, size_t *outlen)
{
	iconv_t cd;
	char *out, *in = (char *)s, *o;
	size_t cap = len * 2 + 16, inleft = len, oleft, used;

	if ((cd = iconv_open("UTF-8", encoding)) == (iconv_t)-1)
		return NULL;
	out = xmalloc(cap);
	o = out;
	oleft = cap;
	while (inleft > 0) {
		if (iconv(cd, &in, &inleft, &o, &oleft) != (size_t)-1)
			break;
		if (errno == E2BIG || oleft < 4) {
			used = o - out;
			cap *= 2;
			out = xrealloc(out, cap);
			o = out + used;
			oleft = cap - used;
			continue;
		}
		/* EILSEQ or EINVAL: a bad or cut-off sequence. */
		memcpy(o, "\xef\xbf\xbd", 3);
		o += 3;
		oleft -= 3;
		in++;
		inleft--;
		if (errno != EILSEQ)
			break;
	}
	if (oleft < 16) {
		used = o - out;
		out = xrealloc(out, cap + 16);
		o = out + used;
		oleft += 16;
	}
	iconv(cd, NULL, NULL, &o, &oleft);
	*outlen = o - out;
	iconv_close(cd);
	return out;
}

/* Clean up a list. */
static void
html_list_free(struct html_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->seen.slots);
}

/* Parse a page and collect its image references. */
int
html_extract(const char *body, size_t len, const char *page_url,
    const char *content_type, int same_host, struct html_found *out,
    char **cause)
{
	struct html_ctx ctx;
	GumboOptions options = kGumboDefaultOptions;
	GumboOutput *output = NULL;
	const GumboNode *node;
	const char *encoding, *href;
	char label[64], *copy = NULL;
	size_t skip, copylen;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&ctx, 0, sizeof(ctx));
	ctx.same_host = same_host;
	ctx.images.max = HTML_IMAGES_MAX;
	ctx.next.max = HTML_NEXT_MAX;
	if (body == NULL)
		len = 0;
	if ((ctx.page = curl_url()) == NULL ||
	    curl_url_set(ctx.page, CURLUPART_URL, page_url, CURLU_URLENCODE) !=
		CURLUE_OK ||
	    curl_url_get(ctx.page, CURLUPART_HOST, &ctx.host, 0) != CURLUE_OK) {
		xasprintf(cause, "page URL \"%.200s\" is not a valid URL",
		    page_url != NULL ? page_url : "(null)");
		goto out;
	}
	ctx.base = ctx.page;

	encoding = html_encoding(body != NULL ? body : "", len, content_type,
	    label, sizeof(label), &skip);
	if (encoding != NULL)
		copy =
		    html_to_utf8(body + skip, len - skip, encoding, &copylen);
	if (copy == NULL && encoding != NULL && strcmp(encoding, label) == 0) {
		/* An encoding iconv does not know: UTF-8 or windows-1252. */
		encoding = html_valid_utf8((const unsigned char *)body, len)
		    ? NULL
		    : "WINDOWS-1252";
		if (encoding != NULL)
			copy = html_to_utf8(body, len, encoding, &copylen);
	}
	if (copy == NULL) {
		copylen = len - skip;
		if (html_flatten((char *)body + skip, copylen, 0) > 0) {
			copy = xmalloc(copylen + 1);
			memcpy(copy, body + skip, copylen);
		}
	}
	if (copy != NULL)
		html_flatten(copy, copylen, 1);

	/* Errors are not used: keep none. */
	options.max_errors = 0;
	output = gumbo_parse_with_options(&options,
	    copy != NULL ? copy : (body != NULL ? body + skip : ""),
	    copy != NULL ? copylen : len - skip);
	if (output == NULL || output->document == NULL) {
		xasprintf(cause, "page could not be parsed as HTML");
		goto out;
	}

	/* The first <base href> sets the base URL for the whole page. */
	for (node = output->document; node != NULL;
	     node = html_walk_next(output->document, node)) {
		if (!html_is(node, GUMBO_TAG_BASE) ||
		    (href = html_attr(node, "href")) == NULL)
			continue;
		ctx.base = curl_url_dup(ctx.page);
		if (ctx.base == NULL ||
		    curl_url_set(ctx.base, CURLUPART_URL, href,
			CURLU_URLENCODE) != CURLUE_OK) {
			curl_url_cleanup(ctx.base);
			ctx.base = ctx.page;
		}
		break;
	}
	for (node = output->document; node != NULL;
	     node = html_walk_next(output->document, node))
		html_visit(&ctx, node);

	out->images = ctx.images.v;
	out->nimages = ctx.images.n;
	out->next = ctx.next.v;
	out->nnext = ctx.next.n;
	out->title = ctx.title;
	ctx.images.v = ctx.next.v = NULL;
	ctx.images.n = ctx.next.n = 0;
	ctx.title = NULL;
	rc = 0;
out:
	if (output != NULL)
		gumbo_destroy_output(&options, output);
	html_list_free(&ctx.images);
	html_list_free(&ctx.next);
	free(ctx.title);
	free(copy);
	if (ctx.base != ctx.page)
		curl_url_cleanup(ctx.base);
	curl_url_cleanup(ctx.page);
	curl_free(ctx.host);
	return rc;
}

/* Free what html_extract filled in. */
void
html_found_finish(struct html_found *f)
{
	size_t i;

	for (i = 0; i < f->nimages; i++)
		free(f->images[i]);
	free(f->images);
	for (i = 0; i < f->nnext; i++)
		free(f->next[i]);
	free(f->next);
	free(f->title);
	memset(f, 0, sizeof(*f));
}
