/*
 * imgfetchd: options, wiring and signals. One libevent loop in this thread
 * runs the API, libcurl and the job scheduler; the writer pool does the
 * file I/O. SIGINT/SIGTERM stop intake, cancel transfers (removing their
 * .part files), wait for the writer and exit 0.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "api.h"
#include "config.h"
#include "defs.h"
#include "fetch.h"
#include "job.h"
#include "log.h"
#include "writer.h"
#include "xmalloc.h"

/* Seconds to wait for cancelled transfers and the writer at shutdown. */
#define SHUTDOWN_GRACE_SECONDS 5

struct daemon {
	struct event_base *base;
	struct config cfg;
	struct writer *writer;
	struct fetcher *fetcher;
	struct jobs *jobs;
	struct api *api;
	struct event *sigint;
	struct event *sigterm;
	struct event *drain;
	int rootfd;
	int stopping;
	int drain_ticks;
};

/* Print usage and exit. */
static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: imgfetchd [-nv] [-c file]\n"
	    "  -c file  configuration file (default: built-in defaults)\n"
	    "  -n       check the configuration and exit\n"
	    "  -v       more logging (debug)\n");
	exit(2);
}

/* Shutdown: wait until every file is closed, then leave the loop. */
static void
daemon_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = { 0, 50000 };

	if (fetcher_busy(d->fetcher) == 0 ||
	    ++d->drain_ticks > SHUTDOWN_GRACE_SECONDS * 20) {
		if (fetcher_busy(d->fetcher) != 0)
			log_warnx("shutdown: %zu transfers did not finish",
			    fetcher_busy(d->fetcher));
		event_base_loopbreak(d->base);
		return;
	}
	evtimer_add(d->drain, &tv);
}

/* SIGINT/SIGTERM: stop intake and transfers. */
static void
daemon_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (d->stopping) {
		log_warnx("signal %d again: exiting now", (int)sig);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	log_info("signal %d: stopping (%zu items pending)", (int)sig,
	    jobs_pending(d->jobs));
	api_close(d->api);
	jobs_cancel_all(d->jobs);
	daemon_drain_cb(-1, 0, d);
}

/* Open (creating if needed) the download root. */
static int
daemon_open_root(const char *dir)
{
	char *copy, *p;
	int fd;

	/* Start-up only: mkdir -p of the root, before the loop runs. */
	copy = xstrdup(dir);
	for (p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) == -1 && errno != EEXIST) {
			log_warn("mkdir %s", copy);
			free(copy);
			return -1;
		}
		*p = '/';
	}
	free(copy);
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		log_warn("mkdir %s", dir);
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		log_warn("open download_dir %s", dir);
	return fd;
}

int
main(int argc, char **argv)
{
	struct daemon d;
	const char *conffile = NULL;
	char *cause = NULL;
	int ch, check = 0, verbose = 0, status = 1;

	memset(&d, 0, sizeof d);
	d.rootfd = -1;
	while ((ch = getopt(argc, argv, "c:nvh")) != -1) {
		switch (ch) {
		case 'c':
			conffile = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	log_init(LOG_LEVEL_INFO, "imgfetchd");
	config_init(&d.cfg);
	if (conffile != NULL && config_load(&d.cfg, conffile, &cause) == -1) {
		fprintf(stderr, "imgfetchd: %s\n", cause);
		free(cause);
		config_finish(&d.cfg);
		return 1;
	}
	if (check) {
		printf("configuration OK\n");
		config_finish(&d.cfg);
		return 0;
	}
	log_set_level(verbose > 0 ? LOG_LEVEL_DEBUG : d.cfg.log_level);

	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	if (evthread_use_pthreads() == -1)
		fatalx("evthread_use_pthreads failed");
	if ((d.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");

	if ((d.rootfd = daemon_open_root(d.cfg.download_dir)) == -1)
		goto out;
	d.writer = writer_create(d.base, d.rootfd, d.cfg.workers);
	d.fetcher = fetcher_create(d.base, d.writer, &d.cfg);
	d.jobs = jobs_create(d.base, d.fetcher, &d.cfg);
	if ((d.api = api_create(d.base, d.jobs, &d.cfg)) == NULL)
		goto out;

	d.sigint = evsignal_new(d.base, SIGINT, daemon_signal_cb, &d);
	d.sigterm = evsignal_new(d.base, SIGTERM, daemon_signal_cb, &d);
	d.drain = evtimer_new(d.base, daemon_drain_cb, &d);
	evsignal_add(d.sigint, NULL);
	evsignal_add(d.sigterm, NULL);

	log_info("imgfetchd %s: downloads in %s, %d transfers, %d workers",
	    IMGFETCHD_VERSION, d.cfg.download_dir, d.cfg.max_transfers,
	    d.cfg.workers);
	event_base_dispatch(d.base);
	status = 0;
	log_info("stopped");
out:
	api_destroy(d.api);
	if (d.sigint != NULL) {
		event_free(d.sigint);
		event_free(d.sigterm);
		event_free(d.drain);
	}
	/* Cancelled transfers are gone; free what is left. */
	fetcher_destroy(d.fetcher);
	jobs_destroy(d.jobs);
	writer_destroy(d.writer);
	if (d.rootfd != -1)
		close(d.rootfd);
	if (d.base != NULL)
		event_base_free(d.base);
	config_finish(&d.cfg);
	curl_global_cleanup();
	libevent_global_shutdown();
	return status;
}
