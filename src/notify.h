/*
 * systemd integration: readiness, status and stopping notifications, the
 * watchdog, and a listening socket passed by socket activation. Built
 * without libsystemd, every call does nothing and no socket is passed.
 */
#ifndef NOTIFY_H
#define NOTIFY_H

struct event_base;

/* Start pinging the watchdog if the service manager asked for it. */
void notify_init(struct event_base *);
/* Stop the watchdog timer. */
void notify_finish(void);
/* READY=1 with a status line. */
void notify_ready(const char *status);
/* STATUS= line. */
void notify_status(const char *status);
/* RELOADING=1 before a reload; notify_ready after it. */
void notify_reloading(void);
/* STOPPING=1 with a status line. */
void notify_stopping(const char *status);
/*
 * A listening Unix stream socket passed by the service manager (LISTEN_FDS),
 * or -1 when none was passed. Other passed descriptors are closed.
 */
int notify_listen_fd(void);

#endif
