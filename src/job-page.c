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

#include "cache.h"
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

/* A page being parsed off the loop, and what the parse found. */
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
 * Add what a page references as new items of its job: images not yet in
 * the job, and up to follow_next pages reached through rel="next".
 * Returns the number of images the page references.
 */
static size_t
job_add_found(struct item *page, char *const *images, size_t nimages,
    char *const *next, size_t nnext)
{
	struct job *j = page->job;
	struct jobs *js = j->jobs;
	struct store_item *sitems;
	struct item *it, *first;
	char **urls, *extra;
	size_t i, k, n = 0, nnew = 0;
	int *is_page;

	urls = xcalloc(nimages + nnext, sizeof *urls);
	is_page = xcalloc(nimages + nnext, sizeof *is_page);
	for (i = 0; i < nimages; i++) {
		if (j->seen != NULL && tfind(images[i], &j->seen, job_url_cmp))
			continue;
		urls[n] = xstrdup(images[i]);
		job_seen(j, urls[n++]);
	}
	for (i = 0; i < nnext && j->follow_next > 0; i++) {
		if (j->seen != NULL && tfind(next[i], &j->seen, job_url_cmp))
			continue;
		j->follow_next--;
		is_page[n] = 1;
		urls[n] = xstrdup(next[i]);
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
		it->page = it->next = is_page[k];
		nnew += !is_page[k];
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
	log_info("job %llu item %lu: page %s: %zu images, %zu new, %zu more "
		 "pages",
	    j->id, page->n, page->url, nimages, nnew, n - nnew);
out:
	free(urls);
	free(is_page);
	return nimages;
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

/* Writer: a page's parse ended. */
static void
parse_done_cb(struct wfile *f, enum wfile_event ev, void *arg)
{
	struct parse *p = arg;
	struct item *it = p->item;
	struct cache_entry ce;
	struct buf_join {
		char *s;
		size_t len;
	} joined = { NULL, 0 };
	size_t i, len;

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
	it->images = job_add_found(it, p->found.images, p->found.nimages,
	    p->found.next, p->found.nnext);
	if (it->job->if_changed) {
		/* The page's image list, for a 304 next time. */
		for (i = 0; i < p->found.nimages; i++) {
			len = strlen(p->found.images[i]);
			joined.s = xrealloc(joined.s, joined.len + len + 2);
			memcpy(joined.s + joined.len, p->found.images[i], len);
			joined.len += len;
			joined.s[joined.len++] = '\n';
			joined.s[joined.len] = '\0';
		}
		memset(&ce, 0, sizeof ce);
		ce.url = it->url;
		ce.etag = p->etag;
		ce.last_modified = p->last_modified;
		ce.size = (long long)it->bytes;
		ce.images = joined.s != NULL ? joined.s : (char *)"";
		ce.used = time(NULL);
		cache_put(it->job->jobs->cache, &ce);
		free(joined.s);
	}
	item_page_end(it, NULL);
	parse_free(p);
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

/* A page answered 304: its images are those the cache remembers. */
void
item_page_unchanged(struct item *it)
{
	const struct cache_entry *ce;
	char *copy = NULL, **urls;
	size_t n = 0;

	it->unchanged = 1;
	if ((ce = cache_get(it->job->jobs->cache, it->url)) != NULL &&
	    ce->images != NULL)
		copy = xstrdup(ce->images);
	urls = job_split_lines(copy, &n);
	it->images = job_add_found(it, urls, n, NULL, 0);
	cache_touch(it->job->jobs->cache, it->url);
	free(urls);
	free(copy);
	item_page_end(it, NULL);
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

/* A cancelled page: a parse still running goes on; its result is dropped. */
void
item_page_cancel(struct item *it)
{
	if (it->parse == NULL)
		return;
	it->parse->item = NULL;
	it->parse = NULL;
	it->task = NULL;
}
