/*
 * imgfetchd: options, wiring and signals. One libevent loop in this thread
 * runs the API, libcurl and the job scheduler; the writer pool does the
 * file I/O and the store thread keeps jobs in SQLite. SIGINT/SIGTERM stop
 * intake, give in-flight items a grace period, keep the rest resumable
 * and exit 0; SIGHUP reloads the configuration.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
#include "metrics.h"
#include "notify.h"
#include "queue.h"
#include "store.h"
#include "writer.h"
#include "xmalloc.h"

/* Seconds to wait for the writer and the store after transfers stopped. */
#define SHUTDOWN_DRAIN_SECONDS 5
/* How often shutdown looks whether it may go on, in milliseconds. */
#define SHUTDOWN_POLL_MS 50
/* Seconds between status lines to the service manager. */
#define STATUS_INTERVAL 5

struct daemon {
	struct event_base *base;
	struct config cfg;
	const char *conffile;
	struct writer *writer;
	struct fetcher *fetcher;
	struct store *store;
	struct jobs *jobs;
	struct api *api;
	struct queue *queue;
	struct metrics *metrics;
	struct event *sigint;
	struct event *sigterm;
	struct event *sighup;
	struct event *stop_ev;
	struct event *status_ev;
	int rootfd;
	int stopping; /* 1: grace period, 2: draining */
	struct timeval grace_end;
	struct timeval drain_end;
};

/* Print usage to f and exit with status. */
static void __attribute__((noreturn)) usage(FILE *f, int status)
{
	fprintf(f,
	    "usage: imgfetchd [-hnv] [-c file]\n"
	    "  -c file  configuration file (default: built-in defaults)\n"
	    "  -h       this help\n"
	    "  -n       check the configuration and exit\n"
	    "  -v       more logging (debug)\n");
	exit(status);
}

/* Whether the monotonic-ish loop time has passed tv. */
static int
daemon_passed(struct daemon *d, const struct timeval *tv)
{
	struct timeval now;

	event_base_gettimeofday_cached(d->base, &now);
	return timercmp(&now, tv, >=);
}

/*
 * Shutdown, polled: first the grace period, while in-flight items may
 * finish; then the rest are suspended (kept resumable) and the writer
 * drains; then the loop ends.
 */
static void
daemon_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = { 0, SHUTDOWN_POLL_MS * 1000 };
	struct timeval drain = { SHUTDOWN_DRAIN_SECONDS, 0 }, now;

	if (d->stopping == 1 &&
	    (jobs_active(d->jobs) == 0 || daemon_passed(d, &d->grace_end))) {
		if (jobs_active(d->jobs) > 0)
			log_info("shutdown: grace period over, keeping %zu "
				 "items resumable",
			    jobs_active(d->jobs));
		jobs_suspend_all(d->jobs);
		d->stopping = 2;
		event_base_gettimeofday_cached(d->base, &now);
		timeradd(&now, &drain, &d->drain_end);
	}
	if (d->stopping == 2 &&
	    ((fetcher_busy(d->fetcher) == 0 &&
		 writer_open_files(d->writer) == 0) ||
		daemon_passed(d, &d->drain_end))) {
		if (fetcher_busy(d->fetcher) != 0)
			log_warnx("shutdown: %zu transfers did not finish",
			    fetcher_busy(d->fetcher));
		event_base_loopbreak(d->base);
		return;
	}
	evtimer_add(d->stop_ev, &tv);
}

/* SIGINT/SIGTERM: stop intake; a second signal skips the grace period. */
static void
daemon_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval grace = { d->cfg.shutdown_grace, 0 }, now;

	if (d->stopping) {
		log_warnx("signal %d again: stopping transfers now", (int)sig);
		d->grace_end.tv_sec = 0;
		daemon_stop_cb(-1, 0, d);
		return;
	}
	d->stopping = 1;
	notify_stopping("stopping");
	log_info("signal %d: stopping (%zu items active, %zu pending; grace "
		 "%ld s)",
	    (int)sig, jobs_active(d->jobs), jobs_pending(d->jobs),
	    d->cfg.shutdown_grace);
	api_close(d->api);
	queue_stop(d->queue);
	jobs_stop_intake(d->jobs);
	event_base_gettimeofday_cached(d->base, &now);
	timeradd(&now, &grace, &d->grace_end);
	daemon_stop_cb(-1, 0, d);
}

/* SIGHUP: read the config again and apply it if it is valid. */
static void
daemon_reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct config new;
	char *cause = NULL;

	if (d->conffile == NULL) {
		log_info("SIGHUP: no configuration file to reload");
		return;
	}
	notify_reloading();
	config_init(&new);
	if (config_load(&new, d->conffile, &cause) == -1) {
		log_error(
		    "SIGHUP: %s; keeping the running configuration", cause);
		free(cause);
		config_finish(&new);
		notify_ready(jobs_status_line(d->jobs));
		return;
	}
	/* What is bound at start-up stays; say so rather than pretend. */
#define KEEP_STRING(f) \
	do { \
		if (strcmp(new.f, d->cfg.f) != 0) \
			log_warnx("SIGHUP: " #f " changes only on restart"); \
		free(new.f); \
		new.f = xstrdup(d->cfg.f); \
	} while (0)
#define KEEP_OPTIONAL(f) \
	do { \
		if ((new.f == NULL) != (d->cfg.f == NULL) || \
		    (new.f != NULL &&strcmp(new.f, d->cfg.f) != 0)) \
			log_warnx("SIGHUP: " #f " changes only on restart"); \
		free(new.f); \
		new.f = d->cfg.f != NULL ? xstrdup(d->cfg.f) : NULL; \
	} while (0)
#define KEEP_NUMBER(f) \
	do { \
		if (new.f != d->cfg.f) \
			log_warnx("SIGHUP: " #f " changes only on restart"); \
		new.f = d->cfg.f; \
	} while (0)
	KEEP_STRING(socket_path);
	KEEP_STRING(download_dir);
	KEEP_STRING(state_dir);
	KEEP_NUMBER(socket_mode);
	KEEP_NUMBER(workers);
	/* The queue and the metrics listener are bound at start-up too. */
	KEEP_OPTIONAL(queue);
	KEEP_OPTIONAL(metrics_listen);
	KEEP_STRING(queue_stream);
	KEEP_STRING(queue_group);
	KEEP_STRING(queue_results);
	KEEP_STRING(node);
#undef KEEP_OPTIONAL
#undef KEEP_STRING
#undef KEEP_NUMBER
	config_finish(&d->cfg);
	d->cfg = new;
	log_set_level(d->cfg.log_level);
	jobs_reconfigure(d->jobs);
	log_info("SIGHUP: configuration reloaded from %s (%d transfers, %d "
		 "per host, %zu headers)",
	    d->conffile, d->cfg.max_transfers, d->cfg.max_host_connections,
	    d->cfg.nheaders);
	notify_ready(jobs_status_line(d->jobs));
}

/* Tell the service manager how the queue stands. */
static void
daemon_status_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	if (!d->stopping)
		notify_status(jobs_status_line(d->jobs));
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

/* Read the options and the config, wire the parts up, run the loop. */
int
main(int argc, char **argv)
{
	struct daemon d;
	struct event_config *evcfg;
	char *cause = NULL;
	int ch, check = 0, verbose = 0, status = 1;

	memset(&d, 0, sizeof d);
	d.rootfd = -1;
	while ((ch = getopt(argc, argv, "c:nvh")) != -1) {
		switch (ch) {
		case 'c':
			d.conffile = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout, 0);
		default:
			usage(stderr, 2);
		}
	}
	if (optind != argc)
		usage(stderr, 2);

	log_init(LOG_LEVEL_INFO, "imgfetchd");
	config_init(&d.cfg);
	if (d.conffile != NULL &&
	    config_load(&d.cfg, d.conffile, &cause) == -1) {
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
	srandom((unsigned int)(time(NULL) ^ getpid()));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	if (evthread_use_pthreads() == -1)
		fatalx("evthread_use_pthreads failed");
	if ((evcfg = event_config_new()) == NULL ||
	    event_config_set_max_dispatch_interval(
		evcfg, NULL, EV_BULK_BATCH, EV_PRIO_BULK) == -1 ||
	    (d.base = event_base_new_with_config(evcfg)) == NULL ||
	    event_base_priority_init(d.base, EV_NPRIORITIES) == -1)
		fatalx("could not create the event loop");
	event_config_free(evcfg);

	if ((d.rootfd = daemon_open_root(d.cfg.download_dir)) == -1)
		goto out;
	if ((d.store = store_open(d.base, d.cfg.state_dir, &cause)) == NULL) {
		log_error("%s", cause);
		free(cause);
		goto out;
	}
	d.writer = writer_create(d.base, d.rootfd, d.cfg.workers);
	d.fetcher = fetcher_create(d.base, d.writer, &d.cfg);
	d.jobs = jobs_create(d.base, d.fetcher, d.writer, d.store, &d.cfg);
	if ((d.api = api_create(d.base, d.jobs, &d.cfg)) == NULL)
		goto out;
	d.metrics = metrics_create(
	    d.base, &d.cfg, d.jobs, d.fetcher, d.writer, d.store);
	api_set_metrics(d.api, d.metrics);
	if (d.cfg.metrics_listen != NULL &&
	    metrics_listen(d.metrics, d.cfg.metrics_listen) == -1)
		goto out;
	if (jobs_restore(d.jobs) == -1)
		goto out;
	/* Without queue nothing about Redis runs. */
	if (d.cfg.queue != NULL) {
		if ((d.queue = queue_create(d.base, d.jobs, &d.cfg)) == NULL)
			goto out;
		api_set_queue(d.api, d.queue);
		metrics_set_queue(d.metrics, d.queue);
	}

	d.sigint = evsignal_new(d.base, SIGINT, daemon_signal_cb, &d);
	d.sigterm = evsignal_new(d.base, SIGTERM, daemon_signal_cb, &d);
	d.sighup = evsignal_new(d.base, SIGHUP, daemon_reload_cb, &d);
	d.stop_ev = evtimer_new(d.base, daemon_stop_cb, &d);
	d.status_ev = event_new(d.base, -1, EV_PERSIST, daemon_status_cb, &d);
	evsignal_add(d.sigint, NULL);
	evsignal_add(d.sigterm, NULL);
	evsignal_add(d.sighup, NULL);
	{
		struct timeval tv = { STATUS_INTERVAL, 0 };

		event_add(d.status_ev, &tv);
	}
	notify_init(d.base);
	notify_ready(jobs_status_line(d.jobs));

	log_info("imgfetchd %s: downloads in %s, state in %s, %d transfers, "
		 "%d workers",
	    IMGFETCHD_VERSION, d.cfg.download_dir, d.cfg.state_dir,
	    d.cfg.max_transfers, d.cfg.workers);
	event_base_dispatch(d.base);
	status = 0;
	log_info("stopped");
out:
	api_destroy(d.api);
	/* Calls still waiting for Redis are answered (to nobody) here. */
	queue_destroy(d.queue);
	metrics_destroy(d.metrics);
	if (d.sigint != NULL) {
		event_free(d.sigint);
		event_free(d.sigterm);
		event_free(d.sighup);
		event_free(d.stop_ev);
		event_free(d.status_ev);
	}
	notify_finish();
	fetcher_destroy(d.fetcher);
	/* Writes every queued state change before the jobs go away. */
	store_close(d.store);
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
