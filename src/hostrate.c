/*
 * Politeness: a bucket of one token per host, filled at host_rate tokens a
 * second. A start takes the token; without one, the caller's waiter joins
 * the host's FIFO and the host's timer fires when the next token is due.
 * So starts to one host are spaced 1/host_rate seconds apart, with no
 * burst after an idle spell beyond that one token, and a waiting host
 * costs one timer, not a poll. All of it runs on the loop thread.
 *
 * Hosts are found by key in a tsearch tree and also kept on a list; once
 * there are more than HOSTRATE_PRUNE hosts, those with no waiter whose
 * token is back (a fresh entry would behave the same) are dropped.
 */
#include <sys/queue.h>

#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "compat.h"
#include "defs.h"
#include "hostrate.h"
#include "log.h"
#include "xmalloc.h"

/* Hosts kept before idle ones are dropped. */
#define HOSTRATE_PRUNE 4096
/* A timer firing this early (seconds) still counts as on time. */
#define HOSTRATE_SLACK 0.001

struct hostrate_host;

struct hostrate_wait {
	struct hostrate_host *host;
	hostrate_cb cb;
	void *arg;
	TAILQ_ENTRY(hostrate_wait) entry;
};
TAILQ_HEAD(hostrate_waits, hostrate_wait);

struct hostrate_host {
	struct hostrate *hr;
	char *key;
	double next; /* monotonic seconds from which a start is free */
	struct hostrate_waits waits;
	struct event *ev;
	int granting; /* in its timer callback: not to be pruned */
	TAILQ_ENTRY(hostrate_host) entry;
};
TAILQ_HEAD(hostrate_hosts, hostrate_host);

struct hostrate {
	struct event_base *base;
	double rate;
	void *tree; /* tsearch root, by key */
	struct hostrate_hosts hosts;
	unsigned long nhosts;
};

/* Monotonic seconds. */
static double
hostrate_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* tsearch order: by key. */
static int
hostrate_cmp(const void *a, const void *b)
{
	return strcmp(((const struct hostrate_host *)a)->key,
	    ((const struct hostrate_host *)b)->key);
}

/* Create the limiter. */
struct hostrate *
hostrate_create(struct event_base *base, double rate)
{
	struct hostrate *hr;

	hr = xcalloc(1, sizeof *hr);
	hr->base = base;
	hr->rate = rate;
	TAILQ_INIT(&hr->hosts);
	return hr;
}

/* Forget a host; it has no waiter. */
static void
hostrate_host_free(struct hostrate_host *h)
{
	struct hostrate *hr = h->hr;
	struct hostrate_wait *w;

	while ((w = TAILQ_FIRST(&h->waits)) != NULL) {
		TAILQ_REMOVE(&h->waits, w, entry);
		free(w);
	}
	tdelete(h, &hr->tree, hostrate_cmp);
	TAILQ_REMOVE(&hr->hosts, h, entry);
	hr->nhosts--;
	event_free(h->ev);
	free(h->key);
	free(h);
}

/* Free the limiter and every waiter. */
void
hostrate_destroy(struct hostrate *hr)
{
	struct hostrate_host *h;

	if (hr == NULL)
		return;
	while ((h = TAILQ_FIRST(&hr->hosts)) != NULL)
		hostrate_host_free(h);
	free(hr);
}

/* Seconds between two starts to one host. */
static double
hostrate_interval(const struct hostrate *hr)
{
	return hr->rate > 0 ? 1.0 / hr->rate : 0;
}

/* A start is taken now: move the host's next free time on. */
static void
hostrate_use(struct hostrate_host *h, double now)
{
	double interval = hostrate_interval(h->hr);

	/*
	 * Count from the time the start was due when the timer is only a
	 * little late, so the average spacing stays 1/rate; after an idle
	 * spell, from now.
	 */
	if (now - h->next < interval)
		h->next += interval;
	else
		h->next = now + interval;
}

/* Arm the host's timer for its next free time. */
static void
hostrate_arm(struct hostrate_host *h, double now)
{
	struct timeval tv;
	double wait = h->next - now;

	if (wait < 0)
		wait = 0;
	tv.tv_sec = (time_t)wait;
	tv.tv_usec = (suseconds_t)((wait - (double)tv.tv_sec) * 1e6);
	evtimer_add(h->ev, &tv);
}

/* A host's timer: hand out the starts now due, in order. */
static void
hostrate_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hostrate_host *h = arg;
	struct hostrate_wait *w;
	hostrate_cb cb;
	void *cbarg;
	double now;

	h->granting = 1;
	for (;;) {
		now = hostrate_now();
		if ((w = TAILQ_FIRST(&h->waits)) == NULL)
			break;
		if (h->hr->rate > 0 && now + HOSTRATE_SLACK < h->next)
			break;
		TAILQ_REMOVE(&h->waits, w, entry);
		if (h->hr->rate > 0)
			hostrate_use(h, now);
		cb = w->cb;
		cbarg = w->arg;
		free(w);
		/* May take or cancel other starts of this host. */
		cb(cbarg);
	}
	h->granting = 0;
	if (!TAILQ_EMPTY(&h->waits))
		hostrate_arm(h, hostrate_now());
}

/* Change the rate; waiting hosts look again from the loop. */
void
hostrate_set_rate(struct hostrate *hr, double rate)
{
	struct hostrate_host *h;
	double now = hostrate_now();

	hr->rate = rate;
	TAILQ_FOREACH(h, &hr->hosts, entry) {
		if (h->next > now + hostrate_interval(hr))
			h->next = now + hostrate_interval(hr);
		if (!TAILQ_EMPTY(&h->waits))
			event_active(h->ev, EV_TIMEOUT, 0);
	}
}

/* Drop hosts that behave as new ones would: no waiter, token back. */
static void
hostrate_prune(struct hostrate *hr, double now)
{
	struct hostrate_host *h, *tmp;
	unsigned long before = hr->nhosts;

	TAILQ_FOREACH_SAFE(h, &hr->hosts, entry, tmp) {
		if (TAILQ_EMPTY(&h->waits) && !h->granting && h->next <= now)
			hostrate_host_free(h);
	}
	log_debug("hostrate: %lu of %lu hosts idle, dropped",
	    before - hr->nhosts, before);
}

/* Find a host, adding it. */
static struct hostrate_host *
hostrate_host_get(struct hostrate *hr, const char *key, double now)
{
	struct hostrate_host find, *h, **slot;

	find.key = (char *)key;
	slot = tfind(&find, &hr->tree, hostrate_cmp);
	if (slot != NULL)
		return *slot;
	if (hr->nhosts >= HOSTRATE_PRUNE)
		hostrate_prune(hr, now);
	h = xcalloc(1, sizeof *h);
	h->hr = hr;
	h->key = xstrdup(key);
	h->next = now;
	TAILQ_INIT(&h->waits);
	h->ev = evtimer_new(hr->base, hostrate_timer_cb, h);
	if (h->ev == NULL)
		fatalx("%s: evtimer_new failed", __func__);
	if (tsearch(h, &hr->tree, hostrate_cmp) == NULL)
		fatalx("%s: tsearch: out of memory", __func__);
	TAILQ_INSERT_TAIL(&hr->hosts, h, entry);
	hr->nhosts++;
	return h;
}

/* Take a start for host now, or queue a waiter. */
int
hostrate_take(struct hostrate *hr, const char *host, hostrate_cb cb, void *arg,
    struct hostrate_wait **wait)
{
	struct hostrate_host *h;
	struct hostrate_wait *w;
	double now;

	*wait = NULL;
	if (hr->rate <= 0)
		return 0;
	now = hostrate_now();
	h = hostrate_host_get(hr, host, now);
	if (TAILQ_EMPTY(&h->waits) && now + HOSTRATE_SLACK >= h->next) {
		hostrate_use(h, now);
		return 0;
	}
	w = xcalloc(1, sizeof *w);
	w->host = h;
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&h->waits, w, entry);
	if (!h->granting && !evtimer_pending(h->ev, NULL))
		hostrate_arm(h, now);
	*wait = w;
	return 1;
}

/* Stop waiting. */
void
hostrate_cancel(struct hostrate_wait *w)
{
	TAILQ_REMOVE(&w->host->waits, w, entry);
	free(w);
}

/* The key of a URL's host: "host:port", lower case. */
char *
hostrate_key(const char *url)
{
	char *host = NULL, *port = NULL, *key, *p;
	CURLU *u;

	if ((u = curl_url()) == NULL)
		fatalx("%s: curl_url failed", __func__);
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
		CURLUE_OK) {
		/* Not a URL libcurl takes: it fails alone, under its own key. */
		key = xstrdup(url);
	} else
		xasprintf(&key, "%s:%s", host, port);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	for (p = key; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return key;
}
