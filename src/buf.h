/*
 * The client's small utilities: allocation that exits on out-of-memory, a
 * growing byte buffer with a limit, and a list of strings.
 */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>

/* A growing byte buffer, always NUL-terminated once used. */
struct buf {
	char *data;
	size_t len;
	size_t size;
	int full; /* an append went past the limit */
};

/* A list of strings the list owns. */
struct strings {
	char **v;
	size_t n;
	size_t size;
};

void *xrealloc(void *, size_t);
char *xstrdup(const char *);

int buf_add(struct buf *, const void *, size_t, size_t);
void buf_consume(struct buf *, size_t);
void buf_free(struct buf *);

void strings_add(struct strings *, const char *);
void strings_free(struct strings *);

#endif
