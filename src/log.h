/* Leveled logging to stderr, one line per event. */
#ifndef LOG_H
#define LOG_H

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

void log_init(int level, const char *progname);
void log_set_level(int level);
int log_get_level(void);
/* "error", "warn", "info" or "debug" to a level; -1 if unknown. */
int log_level_parse(const char *);
const char *log_level_name(int);

/* log_warn and fatal append strerror(errno); the x forms do not. */
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
