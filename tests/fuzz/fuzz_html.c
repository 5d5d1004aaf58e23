/*
 * libFuzzer harness for html_extract. The first input byte picks same_host
 * (bit 0) and the Content-Type (bits 1-3: none, no charset, UTF-8,
 * ISO-8859-1, windows-1252, Shift_JIS, UTF-16LE, an unknown name); the
 * rest is the page.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "html.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Extract from one input; everything it returns is freed. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = { NULL, "text/html",
		"text/html; charset=utf-8", "text/html; charset=ISO-8859-1",
		"text/html;charset=\"windows-1252\"",
		"text/html; charset=Shift_JIS", "text/html; charset=utf-16le",
		"text/html; charset=x-unknown" };
	struct html_found f;
	char *cause = NULL;

	if (size == 0)
		return 0;
	if (html_extract((const char *)data + 1, size - 1,
		"http://127.0.0.1:8080/pages/fuzz.html",
		types[(data[0] >> 1) & 7], data[0] & 1, &f, &cause) == 0)
		html_found_finish(&f);
	free(cause);
	return 0;
}
