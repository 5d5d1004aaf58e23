/* Image validation: the Content-Type allowlist and file signatures. */
#ifndef IMAGE_H
#define IMAGE_H

#include <stddef.h>

/* Bytes of a body's start that image_sniff wants to see, when there are. */
#define IMAGE_SNIFF_BYTES 64

/*
 * Whether content_type (may be NULL) matches one of the patterns: a full
 * type like "image/png", or a type with a star for any subtype. Matching
 * ignores case and parameters.
 */
int image_type_allowed(
    const char *content_type, char *const *patterns, size_t npatterns);

/*
 * The format whose signature the body starts with ("png", "jpeg", ...), or
 * NULL. SVG is recognised only when allow_svg is set.
 */
const char *image_sniff(const unsigned char *head, size_t len, int allow_svg);

/* Whether the body looks like an HTML page (for a clearer message). */
int image_looks_html(const unsigned char *head, size_t len);

#endif
