/* The client's small utilities: allocation, byte buffers, string lists. */
#include <err.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imgfetch.h"

/* Resize memory or abort: the client has nothing useful to do without it. */
void *
xrealloc(void *p, size_t size)
{
	void *q;

	if ((q = realloc(p, size == 0 ? 1 : size)) == NULL)
		errx(EXIT_ERROR, "out of memory");
	return q;
}

/* Copy a string or abort. */
char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		errx(EXIT_ERROR, "out of memory");
	return p;
}

/* Append n bytes; -1 (and the buffer marked full) past limit. */
int
buf_add(struct buf *b, const void *p, size_t n, size_t limit)
{
	size_t size;

	if (n > limit || b->len > limit - n) {
		b->full = 1;
		return -1;
	}
	if (b->len + n + 1 > b->size) {
		size = b->size == 0 ? 4096 : b->size;
		while (size < b->len + n + 1)
			size *= 2;
		b->data = xrealloc(b->data, size);
		b->size = size;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* Drop the first n bytes. */
void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		if (b->data != NULL)
			b->data[0] = '\0';
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

/* Free the buffer's memory and empty it. */
void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

/* Add a copy of s to the list. */
void
strings_add(struct strings *l, const char *s)
{
	if (l->n == l->size) {
		l->size = l->size == 0 ? 16 : l->size * 2;
		l->v = xrealloc(l->v, l->size * sizeof *l->v);
	}
	l->v[l->n++] = xstrdup(s);
}

/* Free the list and its strings. */
void
strings_free(struct strings *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}
