/*
 * Leveled logging to stderr, one line per event. Safe to call from the
 * writer threads: each line is formatted into a local buffer and written
 * with a single write(2), so lines from different threads never mix.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_level = LOG_LEVEL_INFO;
static const char *log_progname = "imgfetchd";
/* stderr goes to the journal: lines carry "<N>" priorities instead. */
static int log_journal;

/* syslog priorities of the levels, for the journal. */
static const int log_priorities[] = { 3, 4, 6, 7 };

static const char *const log_names[] = { "error", "warn", "info", "debug" };

/* Set the threshold and the name put before every line. */
void
log_init(int level, const char *progname)
{
	struct stat st;
	unsigned long long dev, ino;
	const char *js;

	log_level = level;
	if (progname != NULL)
		log_progname = progname;
	/* JOURNAL_STREAM names stderr's device and inode when systemd set it. */
	js = getenv("JOURNAL_STREAM");
	if (js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
	    fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino)
		log_journal = 1;
}

/* Change the threshold. */
void
log_set_level(int level)
{
	log_level = level;
}

/* Current threshold. */
int
log_get_level(void)
{
	return log_level;
}

/* Map a level name to its number. */
int
log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof log_names / sizeof log_names[0]; i++) {
		if (strcmp(s, log_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

/* Map a level number to its name. */
const char *
log_level_name(int level)
{
	if (level < 0 || level > LOG_LEVEL_DEBUG)
		return "?";
	return log_names[level];
}

/* Format and write one line. */
static void __attribute__((format(printf, 3, 0)))
log_vline(int level, int with_errno, const char *fmt, va_list ap)
{
	char line[2048];
	int saved = errno;
	size_t len;
	int n;

	if (level > log_level)
		return;
	if (log_journal)
		n = snprintf(line, sizeof line,
		    "<%d>%s: ", log_priorities[level], log_names[level]);
	else
		n = snprintf(line, sizeof line, "%s: %s: ", log_progname,
		    log_names[level]);
	if (n < 0)
		return;
	len = (size_t)n;
	n = vsnprintf(line + len, sizeof line - len, fmt, ap);
	if (n > 0)
		len += (size_t)n;
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	if (with_errno) {
		n = snprintf(
		    line + len, sizeof line - len, ": %s", strerror(saved));
		if (n > 0)
			len += (size_t)n;
		if (len > sizeof line - 2)
			len = sizeof line - 2;
	}
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
	errno = saved;
}

/* Warning with strerror(errno). */
void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LEVEL_WARN, 1, fmt, ap);
	va_end(ap);
}

/* Warning. */
void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LEVEL_WARN, 0, fmt, ap);
	va_end(ap);
}

/* Error that the daemon survives. */
void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
}

/* Informational event. */
void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LEVEL_INFO, 0, fmt, ap);
	va_end(ap);
}

/* Debugging detail. */
void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LEVEL_DEBUG, 0, fmt, ap);
	va_end(ap);
}

/* Log with strerror(errno) and exit. */
void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LEVEL_ERROR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

/* Log and exit. */
void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
