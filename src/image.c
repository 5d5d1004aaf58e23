/*
 * Image validation. A download counts as an image only if its Content-Type
 * is on the allowlist and its first bytes carry a known image signature, so
 * an error page served with 200 never lands under an image's name.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "image.h"

/* Whether one Content-Type matches one pattern. */
static int
image_type_match(const char *type, size_t len, const char *pattern)
{
	size_t plen = strlen(pattern);

	if (plen >= 2 && strcmp(pattern + plen - 2, "/*") == 0)
		return len > plen - 1 &&
		    strncasecmp(type, pattern, plen - 1) == 0;
	if (strcmp(pattern, "*") == 0 || strcmp(pattern, "*/*") == 0)
		return 1;
	return len == plen && strncasecmp(type, pattern, len) == 0;
}

/* Whether the Content-Type is allowed. */
int
image_type_allowed(
    const char *content_type, char *const *patterns, size_t npatterns)
{
	size_t i, len;

	if (content_type == NULL)
		return 0;
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	len = strcspn(content_type, "; \t");
	for (i = 0; i < npatterns; i++) {
		if (image_type_match(content_type, len, patterns[i]))
			return 1;
	}
	return 0;
}

/* Whether head starts with sig. */
static int
image_starts(
    const unsigned char *head, size_t len, const void *sig, size_t siglen)
{
	return len >= siglen && memcmp(head, sig, siglen) == 0;
}

/* Skip a UTF-8 byte order mark and white space. */
static size_t
image_skip_space(const unsigned char *head, size_t len)
{
	size_t i = 0;

	if (image_starts(head, len, "\xef\xbb\xbf", 3))
		i = 3;
	while (i < len && isspace(head[i]))
		i++;
	return i;
}

/* The format the body's signature names, or NULL. */
const char *
image_sniff(const unsigned char *head, size_t len, int allow_svg)
{
	static const char *const heif_brands[] = { "avif", "avis", "heic",
		"heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1" };
	size_t i;

	if (image_starts(head, len, "\x89PNG\r\n\x1a\n", 8))
		return "png";
	if (image_starts(head, len, "\xff\xd8\xff", 3))
		return "jpeg";
	if (image_starts(head, len, "GIF87a", 6) ||
	    image_starts(head, len, "GIF89a", 6))
		return "gif";
	if (len >= 12 && memcmp(head, "RIFF", 4) == 0 &&
	    memcmp(head + 8, "WEBP", 4) == 0)
		return "webp";
	if (len >= 12 && memcmp(head + 4, "ftyp", 4) == 0) {
		for (i = 0; i < sizeof heif_brands / sizeof *heif_brands; i++) {
			if (memcmp(head + 8, heif_brands[i], 4) == 0)
				return i < 2 ? "avif" : "heif";
		}
	}
	if (image_starts(head, len, "BM", 2) && len >= 14)
		return "bmp";
	if (image_starts(head, len, "II*\0", 4) ||
	    image_starts(head, len, "MM\0*", 4))
		return "tiff";
	if (image_starts(head, len, "\0\0\1\0", 4) ||
	    image_starts(head, len, "\0\0\2\0", 4))
		return "ico";
	if (allow_svg) {
		i = image_skip_space(head, len);
		if (image_starts(head + i, len - i, "<svg", 4) ||
		    image_starts(head + i, len - i, "<?xml", 5))
			return "svg";
	}
	return NULL;
}

/* Whether the body starts like an HTML page. */
int
image_looks_html(const unsigned char *head, size_t len)
{
	size_t i = image_skip_space(head, len);

	return (len - i >= 5 &&
		   strncasecmp((const char *)head + i, "<html", 5) == 0) ||
	    (len - i >= 9 &&
		strncasecmp((const char *)head + i, "<!doctype", 9) == 0);
}
