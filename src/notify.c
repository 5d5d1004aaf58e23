/*
 * systemd integration through libsystemd: sd_notify for READY=1, STATUS=,
 * RELOADING=1, STOPPING=1 and WATCHDOG=1, and sd_listen_fds for socket
 * activation. Without libsystemd (HAVE_LIBSYSTEMD unset) these are no-ops,
 * so the daemon runs the same everywhere else.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"
#include "notify.h"

#ifdef HAVE_LIBSYSTEMD
static struct event *notify_watchdog_ev;

/* Tell the watchdog we are alive; the loop only gets here if it runs. */
static void
notify_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
}

/* Start pinging the watchdog at half its interval. */
void
notify_init(struct event_base *base)
{
	struct timeval tv;
	uint64_t usec;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return;
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	notify_watchdog_ev =
	    event_new(base, -1, EV_PERSIST, notify_watchdog_cb, NULL);
	if (notify_watchdog_ev == NULL)
		fatalx("notify_init: event_new failed");
	event_add(notify_watchdog_ev, &tv);
	log_info("systemd watchdog: pinging every %llu ms",
	    (unsigned long long)(usec / 1000));
}

/* Stop the watchdog timer. */
void
notify_finish(void)
{
	if (notify_watchdog_ev != NULL) {
		event_free(notify_watchdog_ev);
		notify_watchdog_ev = NULL;
	}
}

/* Send one notification with a STATUS line. */
static void
notify_send(const char *what, const char *status)
{
	char buf[512];

	snprintf(buf, sizeof buf, "%s%sSTATUS=%s", what != NULL ? what : "",
	    what != NULL ? "\n" : "", status != NULL ? status : "");
	sd_notify(0, buf);
}

/* READY=1. */
void
notify_ready(const char *status)
{
	notify_send("READY=1", status);
}

/* STATUS=. */
void
notify_status(const char *status)
{
	notify_send(NULL, status);
}

/* RELOADING=1. */
void
notify_reloading(void)
{
	notify_send("RELOADING=1", "reloading the configuration");
}

/* STOPPING=1. */
void
notify_stopping(const char *status)
{
	notify_send("STOPPING=1", status);
}

/* The passed listening socket, or -1. */
int
notify_listen_fd(void)
{
	int n, i, fd = -1;

	if ((n = sd_listen_fds(1)) <= 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (fd == -1 &&
		    sd_is_socket_unix(
			SD_LISTEN_FDS_START + i, SOCK_STREAM, 1, NULL, 0) > 0)
			fd = SD_LISTEN_FDS_START + i;
		else {
			log_warnx(
			    "systemd: ignoring passed descriptor %d (not a "
			    "listening Unix stream socket)",
			    SD_LISTEN_FDS_START + i);
			close(SD_LISTEN_FDS_START + i);
		}
	}
	return fd;
}
#else
void
notify_init(struct event_base *base)
{
	(void)base;
}
void
notify_finish(void)
{
}
void
notify_ready(const char *status)
{
	(void)status;
}
void
notify_status(const char *status)
{
	(void)status;
}
void
notify_reloading(void)
{
}
void
notify_stopping(const char *status)
{
	(void)status;
}
int
notify_listen_fd(void)
{
	return -1;
}
#endif
