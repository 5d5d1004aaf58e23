/*
 * Pages to scrape. A job may also name pages: a page is an item too,
 * fetched into memory through the same slots, parsed for images on a
 * writer thread (html.c), and the images it yields become new items of
 * the job, with the page as their Referer; with follow_next, pages reached
 * through rel="next" are scraped too. With if_changed, a page that answers
 * 304 yields the images the cache kept from its last parse. A job that
 * scrapes keeps the set of its URLs, so no URL becomes an item twice.
 */
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "cache.h"
#include "defs.h"
#include "fetch.h"
#include "html.h"
#include "job.h"
#include "job-private.h"
#include "log.h"
#include "store.h"
#include "writer.h"
#include "xmalloc.h"

/* tsearch order of URLs. */
static int
job_url_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Note a URL as part of the job; 0 if it was already. */
int
job_seen(struct job *j, char *url)
{
	char **slot;

	if ((slot = tsearch(url, &j->seen, job_url_cmp)) == NULL)
		fatalx("%s: tsearch failed", __func__);
	return *slot == url;
}

/*
 * A page being parsed off the loop, and what the parse found. The found
 * URLs become items PAGE_ADD_BATCH at a time, one batch per loop turn,
 * so that a page naming a hundred thousand images does not hold the loop
 * (and every transfer and API client) while they are added.
 */
struct parse {
	struct item *item; /* NULL once the item was cancelled */
	char *body;
	size_t len;
	char *url; /* the page's final URL, for relative references */
	char *ctype;
	char *etag;
	char *last_modified;
	int same_host;
	int rc;
	char *error;
	struct html_found found;
	int from_cache; /* found is the cache's list: nothing to remember */
	struct event *add_ev; /* the next batch */
	size_t added; /* found images looked at so far */
	size_t nnew; /* new image items so far */
};

/* Writer thread: parse the page. Touches nothing but the parse. */
static void
parse_work(void *arg)
{
	struct parse *p = arg;

	p->rc = html_extract(p->body, p->len, p->url, p->ctype, p->same_host,
	    &p->found, &p->error);
	free(p->body);
	p->body = NULL;
}

/* Free a parse. */
static void
parse_free(struct parse *p)
{
	if (p->add_ev != NULL)
		event_free(p->add_ev);
	free(p->body);
	free(p->url);
	free(p->ctype);
	free(p->etag);
	free(p->last_modified);
	free(p->error);
	html_found_finish(&p->found);
	free(p);
}

/*
 * Add URLs a page references as new items of its job, skipping those the
 * job has; pages (rel="next") only while follow_next allows. Returns the
 * number of items added.
 */
static size_t
job_add_found(struct item *page, char *const *found, size_t nfound,
    int is_page)
{
	struct job *j = page->job;
	struct jobs *js = j->jobs;
	struct store_item *sitems;
	struct item *it, *first;
	char **urls, *extra;
	size_t i, k, n = 0;

	urls = xcalloc(nfound, sizeof *urls);
	for (i = 0; i < nfound; i++) {
		if (is_page && j->follow_next <= 0)
			break;
		if (j->seen != NULL && tfind(found[i], &j->seen, job_url_cmp))
			continue;
		if (is_page)
			j->follow_next--;
		urls[n] = xstrdup(found[i]);
		job_seen(j, urls[n++]);
	}
	if (n == 0)
		goto out;
	first = job_grow(j, n);
	sitems = xcalloc(n, sizeof *sitems);
	for (k = 0; k < n; k++) {
		it = &first[k];
		it->url = urls[k];
		it->state = ITEM_QUEUED;
		it->from = page->n + 1;
		it->page = it->next = is_page;
		sitems[k].n = it->n;
		sitems[k].url = it->url;
		sitems[k].state = STORE_ITEM_QUEUED;
		sitems[k].extra = item_extra(it);
		item_make_runnable(it);
	}
	j->count[ITEM_QUEUED] += n;
	js->count[ITEM_QUEUED] += n;
	if (js->store != NULL)
		store_add_items(js->store, j->id, sitems, n, NULL, NULL);
	for (k = 0; k < n; k++) {
		extra = (char *)sitems[k].extra;
		free(extra);
	}
	free(sitems);
out:
	free(urls);
	return n;
}

/* A page ended: its images are in the job, or it failed. */
static void
item_page_end(struct item *it, const char *error)
{
	struct job *j = it->job;

	if (error != NULL) {
		free(it->error);
		it->error = xstrdup(error);
		item_set_state(it, ITEM_FAILED);
		item_store(it, STORE_ITEM_FAILED);
		log_warnx("job %llu item %lu: page %s failed: %s", j->id, it->n,
		    it->url, error);
	} else {
		item_set_state(it, ITEM_DONE);
		item_store(it, STORE_ITEM_DONE);
		log_info("job %llu item %lu: page done %s (%lu images%s)",
		    j->id, it->n, it->url, it->images,
		    it->unchanged ? ", unchanged" : "");
	}
	j->bytes_done += it->bytes;
	j->jobs->bytes += it->bytes;
	item_emit(it);
	job_update(j);
	jobs_pump(j->jobs);
}

/* Split a newline-joined list in place into an array (caller frees). */
static char **
job_split_lines(char *s, size_t *n)
{
	char **v = NULL, *line;
	size_t cap = 0;

	*n = 0;
	while (s != NULL && (line = strsep(&s, "\n")) != NULL) {
		if (*line == '\0')
			continue;
		if (*n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			v = xreallocarray(v, cap, sizeof *v);
		}
		v[(*n)++] = line;
	}
	return v;
}

/*
 * Keep a parsed page's validators, images and rel="next" pages for a 304
 * next time: one URL a line, pages marked "next " (a found URL is always
 * absolute http(s), so no image line starts so).
 */
static void
parse_remember(struct parse *p)
{
	struct item *it = p->item;
	struct cache_entry ce;
	char *joined, *at;
	size_t i, total = 1;

	for (i = 0; i < p->found.nimages; i++)
		total += strlen(p->found.images[i]) + 1;
	for (i = 0; i < p->found.nnext; i++)
		total += strlen(CACHE_NEXT_PREFIX) + strlen(p->found.next[i]) + 1;
	at = joined = xmalloc(total);
	*at = '\0';
	for (i = 0; i < p->found.nimages; i++)
		at = stpcpy(stpcpy(at, p->found.images[i]), "\n");
	for (i = 0; i < p->found.nnext; i++)
		at = stpcpy(
		    stpcpy(stpcpy(at, CACHE_NEXT_PREFIX), p->found.next[i]),
		    "\n");
	memset(&ce, 0, sizeof ce);
	ce.url = it->url;
	ce.etag = p->etag;
	ce.last_modified = p->last_modified;
	ce.size = (long long)it->bytes;
	ce.images = joined;
	ce.used = time(NULL);
	cache_put(it->job->jobs->cache, &ce);
	free(joined);
}

/* Loop: the next batch of a page's images, and its end after the last. */
static void
parse_add_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval next_turn = { 0, 0 };
	struct parse *p = arg;
	struct item *it = p->item;
	struct job *j = it->job;
	size_t n, pages;

	n = p->found.nimages - p->added;
	if (n > PAGE_ADD_BATCH)
		n = PAGE_ADD_BATCH;
	p->nnew += job_add_found(it, p->found.images + p->added, n, 0);
	p->added += n;
	if (p->added < p->found.nimages) {
		evtimer_add(p->add_ev, &next_turn);
		jobs_pump(j->jobs);
		return;
	}
	pages = job_add_found(it, p->found.next, p->found.nnext, 1);
	if (p->nnew + pages > 0)
		log_info("job %llu item %lu: page %s: %zu images, %zu new, %zu "
			 "more pages",
		    j->id, it->n, it->url, p->found.nimages, p->nnew, pages);
	if (!p->from_cache && j->if_changed)
		parse_remember(p);
	it->parse = NULL;
	parse_free(p);
	item_page_end(it, NULL);
}

/* Start adding what a page references: a first batch now. */
static void
parse_add(struct parse *p)
{
	struct item *it = p->item;

	it->images = p->found.nimages;
	it->parse = p;
	if ((p->add_ev = evtimer_new(it->job->jobs->base, parse_add_cb, p)) ==
	    NULL)
		fatalx("%s: evtimer_new failed", __func__);
	parse_add_cb(-1, 0, p);
}

/* Writer: a page's parse ended. */
static void
parse_done_cb(struct wfile *f, enum wfile_event ev, void *arg)
{
	struct parse *p = arg;
	struct item *it = p->item;

	if (ev != WFILE_DONE)
		return;
	if (it == NULL) {
		parse_free(p);
		return;
	}
	it->task = NULL;
	it->parse = NULL;
	if (p->rc != 0) {
		item_page_end(it, p->error != NULL ? p->error : "cannot parse");
		parse_free(p);
		return;
	}
	parse_add(p);
}

/* A page's body is in: parse it on a writer thread. */
void
item_page_parse(struct item *it, const struct fetch_result *res)
{
	struct parse *p;

	p = xcalloc(1, sizeof *p);
	p->item = it;
	p->body = fetch_take_body(res);
	p->len = res->body_len;
	p->url = xstrdup(res->effective_url != NULL ? res->effective_url
						    : it->url);
	p->ctype = res->content_type != NULL ? xstrdup(res->content_type)
					     : NULL;
	p->etag = res->etag != NULL ? xstrdup(res->etag) : NULL;
	p->last_modified =
	    res->last_modified != NULL ? xstrdup(res->last_modified) : NULL;
	p->same_host = it->job->same_host;
	it->bytes = res->body_len;
	it->parse = p;
	it->task = wfile_task(
	    it->job->jobs->writer, parse_work, p, parse_done_cb, p);
}

/* A page answered 304: its images and next pages are those the cache
 * remembers. */
void
item_page_unchanged(struct item *it)
{
	const struct cache_entry *ce;
	struct parse *p;
	char *copy = NULL, **lines;
	size_t i, n = 0, plen = strlen(CACHE_NEXT_PREFIX);

	it->unchanged = 1;
	if ((ce = cache_get(it->job->jobs->cache, it->url)) != NULL &&
	    ce->images != NULL)
		copy = xstrdup(ce->images);
	cache_touch(it->job->jobs->cache, it->url);
	lines = job_split_lines(copy, &n);
	p = xcalloc(1, sizeof *p);
	p->item = it;
	p->from_cache = 1;
	p->found.images = xcalloc(n, sizeof *p->found.images);
	p->found.next = xcalloc(n, sizeof *p->found.next);
	for (i = 0; i < n; i++) {
		if (strncmp(lines[i], CACHE_NEXT_PREFIX, plen) == 0)
			p->found.next[p->found.nnext++] =
			    xstrdup(lines[i] + plen);
		else
			p->found.images[p->found.nimages++] =
			    xstrdup(lines[i]);
	}
	free(lines);
	free(copy);
	parse_add(p);
}

/* A page turned out to be an image: fetch it as one. */
void
item_page_is_image(struct item *it)
{
	struct job *j = it->job;
	struct item *img;
	struct store_item si;
	char *extra;

	img = job_grow(j, 1);
	img->url = xstrdup(it->url);
	img->state = ITEM_QUEUED;
	img->from = it->n + 1;
	j->count[ITEM_QUEUED]++;
	j->jobs->count[ITEM_QUEUED]++;
	if (j->jobs->store != NULL) {
		memset(&si, 0, sizeof si);
		si.n = img->n;
		si.url = img->url;
		si.state = STORE_ITEM_QUEUED;
		si.extra = extra = item_extra(img);
		store_add_items(j->jobs->store, j->id, &si, 1, NULL, NULL);
		free(extra);
	}
	item_make_runnable(img);
	it->images = 1;
	log_info("job %llu item %lu: page %s is an image; fetching it as one",
	    j->id, it->n, it->url);
	item_page_end(it, NULL);
}

/*
 * A cancelled or freed page: a parse still running goes on and its result
 * is dropped; images still to be added are not.
 */
void
item_page_cancel(struct item *it)
{
	struct parse *p = it->parse;

	if (p == NULL)
		return;
	it->parse = NULL;
	if (it->task != NULL) {
		/* On a writer thread: parse_done_cb frees it. */
		p->item = NULL;
		it->task = NULL;
		return;
	}
	parse_free(p);
}
