/* Image references in an HTML page, found with a real HTML parser. */
#ifndef HTML_H
#define HTML_H

#include <stddef.h>

struct html_found {
	char *
	    *images; /* absolute http(s) URLs, document order, no duplicates */
	size_t nimages;
	char **next; /* rel="next" page URLs, absolute http(s), no duplicates */
	size_t nnext;
	char *
	    title; /* the first <title>'s text, white space collapsed, or NULL */
};

/*
 * Parse body[0..len) as HTML and collect the images it references: <img>
 * src, srcset (its largest candidate), data-src, data-srcset, data-original
 * and data-lazy-src; <picture><source> srcset; og:image and twitter:image
 * <meta>; <link rel=image_src>; <a href> to an image file name. page_url is
 * the page's final URL (after redirects), content_type its Content-Type
 * header (may be NULL; its charset parameter is used). same_host: keep only
 * images whose host equals page_url's host (next pages are not filtered).
 * Returns 0 with *out filled (the caller finishes it), or -1 with *cause set
 * (caller frees) when nothing can be parsed at all. Thread-safe: no global
 * state.
 */
int html_extract(const char *body, size_t len, const char *page_url,
    const char *content_type, int same_host, struct html_found *out,
    char **cause);
/* Free what html_extract filled in. */
void html_found_finish(struct html_found *);

#endif
