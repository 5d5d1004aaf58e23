/*
 * libFuzzer: image checks. The input is "CONTENT-TYPE\nPATTERNS\nBODY":
 * image_type_allowed of the type against the space-separated patterns,
 * image_sniff and image_looks_html of the body (with SVG on and off).
 */
#include "fuzz.h"

#include "image.h"
#include "log.h"

#define FUZZ_PATTERNS_MAX 16

/* Quiet logging. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(LOG_LEVEL_ERROR, "fuzz");
	return 0;
}

/* One input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy, *field[3], *patterns[FUZZ_PATTERNS_MAX], *p, *tok;
	const unsigned char *body;
	const char *fmt, *svg;
	size_t n = 0, len;

	copy = fuzz_strndup(data, size);
	fuzz_split(copy, field, 3);
	for (p = field[1]; p != NULL && n < FUZZ_PATTERNS_MAX;) {
		tok = strsep(&p, " ");
		if (*tok != '\0')
			patterns[n++] = tok;
	}
	image_type_allowed(field[0], patterns, n);
	image_type_allowed(NULL, patterns, n);

	body = field[2] != NULL ? data + (field[2] - copy) : data;
	len = field[2] != NULL ? size - (size_t)(field[2] - copy) : size;
	fmt = image_sniff(body, len, 0);
	svg = image_sniff(body, len, 1);
	/* SVG only adds a format: without it, the same or none. */
	FUZZ_ASSERT(fmt == NULL || (svg != NULL && strcmp(fmt, svg) == 0));
	if (fmt != NULL)
		FUZZ_ASSERT(strcmp(fmt, "svg") != 0);
	image_looks_html(body, len);
	free(copy);
	return 0;
}
