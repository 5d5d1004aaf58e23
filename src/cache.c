/*
 * The URL cache: per URL, the validators and outcome of its last successful
 * fetch (ETag, Last-Modified, size, SHA-256, path; a page's images and
 * rel="next" pages), so that a job with if_changed asks the origin only
 * for what changed, and a dedup index from SHA-256 to a kept file. Both
 * live in memory on the loop thread (search trees: no query per item),
 * loaded from the job store at start-up and written through to it. The
 * cache is bounded: past max entries the least recently used go, here and
 * in the store.
 */
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "cache.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

struct centry {
	struct cache_entry e;
	TAILQ_ENTRY(centry) lru; /* least recently used first */
};
TAILQ_HEAD(centry_list, centry);

/* One kept file by its SHA-256. */
struct csha {
	char *sha256;
	char *path;
};

struct cache {
	struct store *store;
	long max;
	void *urls; /* tsearch tree of struct centry, by URL */
	void *shas; /* tsearch tree of struct csha, by SHA-256 */
	struct centry_list lru;
	size_t n;
	size_t since_prune; /* puts since the store was last pruned */
};

/* tsearch order of entries by URL. */
static int
cache_url_cmp(const void *a, const void *b)
{
	return strcmp(((const struct centry *)a)->e.url,
	    ((const struct centry *)b)->e.url);
}

/* tsearch order of SHA-256 records. */
static int
cache_sha_cmp(const void *a, const void *b)
{
	return strcmp(((const struct csha *)a)->sha256,
	    ((const struct csha *)b)->sha256);
}

/* A copy of a string that may be NULL. */
static char *
cache_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* Free an entry's strings. */
static void
cache_entry_clear(struct cache_entry *e)
{
	free(e->etag);
	free(e->last_modified);
	free(e->sha256);
	free(e->path);
	free(e->images);
	e->etag = e->last_modified = e->sha256 = e->path = e->images = NULL;
}

/* Set an entry's fields (not its URL) from another. */
static void
cache_entry_set(struct cache_entry *dst, const struct cache_entry *src)
{
	cache_entry_clear(dst);
	dst->etag = cache_strdup(src->etag);
	dst->last_modified = cache_strdup(src->last_modified);
	dst->size = src->size;
	dst->sha256 = cache_strdup(src->sha256);
	dst->path = cache_strdup(src->path);
	dst->images = cache_strdup(src->images);
	dst->used = src->used;
}

/* Free a SHA-256 record. */
static void
cache_sha_free(void *p)
{
	struct csha *c = p;

	free(c->sha256);
	free(c->path);
	free(c);
}

/* Index a kept file by its SHA-256, replacing an older path. */
void
cache_add_sha256(struct cache *c, const char *sha256, const char *path)
{
	struct csha *r, **slot;

	if (sha256 == NULL || path == NULL)
		return;
	r = xcalloc(1, sizeof *r);
	r->sha256 = xstrdup(sha256);
	r->path = xstrdup(path);
	if ((slot = tsearch(r, &c->shas, cache_sha_cmp)) == NULL)
		fatalx("%s: tsearch failed", __func__);
	if (*slot != r) {
		free((*slot)->path);
		(*slot)->path = r->path;
		r->path = NULL;
		cache_sha_free(r);
	}
}

/* The path kept for a SHA-256, or NULL. */
const char *
cache_find_sha256(struct cache *c, const char *sha256)
{
	struct csha key, **slot;

	key.sha256 = (char *)sha256;
	if ((slot = tfind(&key, &c->shas, cache_sha_cmp)) == NULL)
		return NULL;
	return (*slot)->path;
}

/* Forget a SHA-256 whose file is gone. */
void
cache_forget_sha256(struct cache *c, const char *sha256)
{
	struct csha key, **slot, *r;

	key.sha256 = (char *)sha256;
	if ((slot = tfind(&key, &c->shas, cache_sha_cmp)) == NULL)
		return;
	r = *slot;
	tdelete(r, &c->shas, cache_sha_cmp);
	cache_sha_free(r);
}

/* Drop the least recently used entries past max. */
static void
cache_trim(struct cache *c)
{
	struct centry *ce;

	while (c->n > (size_t)c->max && (ce = TAILQ_FIRST(&c->lru)) != NULL) {
		TAILQ_REMOVE(&c->lru, ce, lru);
		tdelete(ce, &c->urls, cache_url_cmp);
		cache_entry_clear(&ce->e);
		free(ce->e.url);
		free(ce);
		c->n--;
	}
}

/* Take one entry (start-up, or a new fetch); the newest goes last. */
static struct centry *
cache_insert(struct cache *c, const struct cache_entry *e)
{
	struct centry key, *ce, **slot;

	key.e.url = e->url;
	if ((slot = tfind(&key, &c->urls, cache_url_cmp)) != NULL) {
		ce = *slot;
		TAILQ_REMOVE(&c->lru, ce, lru);
	} else {
		ce = xcalloc(1, sizeof *ce);
		ce->e.url = xstrdup(e->url);
		if (tsearch(ce, &c->urls, cache_url_cmp) == NULL)
			fatalx("%s: tsearch failed", __func__);
		c->n++;
	}
	cache_entry_set(&ce->e, e);
	TAILQ_INSERT_TAIL(&c->lru, ce, lru);
	if (e->sha256 != NULL && e->path != NULL)
		cache_add_sha256(c, e->sha256, e->path);
	return ce;
}

/* store_load_cache: one stored entry. */
static void
cache_load_cb(void *arg, const struct store_cache *sc)
{
	struct cache_entry e;

	e.url = (char *)sc->url;
	e.etag = (char *)sc->etag;
	e.last_modified = (char *)sc->last_modified;
	e.size = sc->size;
	e.sha256 = (char *)sc->sha256;
	e.path = (char *)sc->path;
	e.images = (char *)sc->images;
	e.used = sc->used;
	cache_insert(arg, &e);
}

/* Create the cache from what the store holds. */
struct cache *
cache_create(struct store *store, long max)
{
	struct cache *c;

	c = xcalloc(1, sizeof *c);
	c->store = store;
	c->max = max;
	TAILQ_INIT(&c->lru);
	if (store != NULL && store_load_cache(store, cache_load_cb, c) == -1)
		log_warnx("cache_create: the stored cache could not be read");
	cache_trim(c);
	return c;
}

/* Free everything. */
void
cache_destroy(struct cache *c)
{
	struct centry *ce;

	if (c == NULL)
		return;
	while ((ce = TAILQ_FIRST(&c->lru)) != NULL) {
		TAILQ_REMOVE(&c->lru, ce, lru);
		tdelete(ce, &c->urls, cache_url_cmp);
		cache_entry_clear(&ce->e);
		free(ce->e.url);
		free(ce);
	}
	tdestroy(c->shas, cache_sha_free);
	free(c);
}

/* A new bound. */
void
cache_set_max(struct cache *c, long max)
{
	c->max = max;
	cache_trim(c);
	if (c->store != NULL)
		store_prune_cache(c->store, (size_t)max);
}

/* Look a URL up. */
const struct cache_entry *
cache_get(struct cache *c, const char *url)
{
	struct centry key, **slot;

	key.e.url = (char *)url;
	if ((slot = tfind(&key, &c->urls, cache_url_cmp)) == NULL)
		return NULL;
	return &(*slot)->e;
}

/* Write an entry to the store. */
static void
cache_store(struct cache *c, const struct cache_entry *e)
{
	struct store_cache sc;

	if (c->store == NULL)
		return;
	sc.url = e->url;
	sc.etag = e->etag;
	sc.last_modified = e->last_modified;
	sc.size = e->size;
	sc.sha256 = e->sha256;
	sc.path = e->path;
	sc.images = e->images;
	sc.used = e->used;
	store_put_cache(c->store, &sc);
	/* The store is pruned in batches, not on every put. */
	if (c->n >= (size_t)c->max && ++c->since_prune >= 1000) {
		c->since_prune = 0;
		store_prune_cache(c->store, (size_t)c->max);
	}
}

/* Record a fetch. */
void
cache_put(struct cache *c, const struct cache_entry *e)
{
	struct centry *ce;

	if (c->max == 0)
		return;
	ce = cache_insert(c, e);
	cache_store(c, &ce->e);
	cache_trim(c);
}

/* Mark an entry used now. */
void
cache_touch(struct cache *c, const char *url)
{
	struct centry key, **slot, *ce;

	key.e.url = (char *)url;
	if ((slot = tfind(&key, &c->urls, cache_url_cmp)) == NULL)
		return;
	ce = *slot;
	ce->e.used = time(NULL);
	TAILQ_REMOVE(&c->lru, ce, lru);
	TAILQ_INSERT_TAIL(&c->lru, ce, lru);
	cache_store(c, &ce->e);
}

/* Entries held. */
size_t
cache_size(struct cache *c)
{
	return c->n;
}
