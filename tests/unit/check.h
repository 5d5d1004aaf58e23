/* The unit tests' checks: each failure is printed with file:line. */
#ifndef CHECK_H
#define CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tests_run;
static int tests_failed;

/* Record one check; print where and why when it fails. */
static inline void __attribute__((format(printf, 4, 5)))
check_at(int ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tests_run++;
	if (ok)
		return;
	tests_failed++;
	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define CHECK(c) check_at(!!(c), __FILE__, __LINE__, "CHECK(%s) failed", #c)

/* Compare two strings, either of which may be NULL. */
static inline int
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

#define CHECK_STR(got, want) \
	do { \
		const char *g_ = (got), *w_ = (want); \
		check_at(same(g_, w_), __FILE__, __LINE__, \
		    "%s: got \"%s\", want \"%s\"", #got, g_ ? g_ : "(null)", \
		    w_ ? w_ : "(null)"); \
	} while (0)

#define CHECK_INT(got, want) \
	do { \
		long long g_ = (long long)(got), w_ = (long long)(want); \
		check_at(g_ == w_, __FILE__, __LINE__, \
		    "%s: got %lld, want %lld", #got, g_, w_); \
	} while (0)

/* Print the summary; the exit status for main. */
static inline int
check_summary(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, tests_run, tests_failed);
	return tests_failed == 0 ? 0 : 1;
}

#endif
