/* What the libFuzzer harnesses share: the entry point and invariants. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int LLVMFuzzerInitialize(int *, char ***);

/* A broken invariant: say which and abort, so libFuzzer keeps the input. */
#define FUZZ_ASSERT(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", \
			    __FILE__, __LINE__, #c); \
			abort(); \
		} \
	} while (0)

/* A NUL-terminated copy of data[0..size). */
static inline char *
fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/*
 * Cut s in place at the first n-1 newlines into n fields (the last takes
 * the rest); fields not present are NULL.
 */
static inline void
fuzz_split(char *s, char **field, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		field[i] = s;
		if (s == NULL || i == n - 1)
			continue;
		if ((s = strchr(s, '\n')) != NULL)
			*s++ = '\0';
	}
}

/* Whether a message is printable UTF-8: no control characters. */
static inline int
fuzz_printable(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	}
	return 1;
}

#endif
