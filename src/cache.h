/* The URL cache and the dedup index, on the loop thread. */
#ifndef CACHE_H
#define CACHE_H

#include <stddef.h>
#include <time.h>

struct store;
struct cache;

/* What the last successful fetch of a URL gave; strings may be NULL. */
struct cache_entry {
	char *url;
	char *etag;
	char *last_modified;
	long long size;
	char *sha256; /* hex */
	char *path; /* relative to the download root */
	char *images; /* a page's image URLs, then "next " pages; a line each */
	time_t used;
};

/*
 * Load the store's cache (start-up, before the loop); store may be NULL.
 * At most max entries are kept, the least recently used going first.
 */
struct cache *cache_create(struct store *, long max);
void cache_destroy(struct cache *);
/* Apply a reloaded cache_max_entries. */
void cache_set_max(struct cache *, long max);
/* The entry of a URL, or NULL (borrowed: valid until the next cache_put). */
const struct cache_entry *cache_get(struct cache *, const char *url);
/*
 * Record a URL's fetch (strings copied), in the store too, and index its
 * SHA-256 for dedup. An entry that is not new is refreshed.
 */
void cache_put(struct cache *, const struct cache_entry *);
/* Mark a URL's entry used now (a 304 confirmed it). */
void cache_touch(struct cache *, const char *url);
/* The path of a file kept with this SHA-256, or NULL. */
const char *cache_find_sha256(struct cache *, const char *sha256);
/* Index a kept file by its SHA-256 (strings copied). */
void cache_add_sha256(struct cache *, const char *sha256, const char *path);
/* Forget a SHA-256 whose file turned out to be gone. */
void cache_forget_sha256(struct cache *, const char *sha256);
/* Entries held. */
size_t cache_size(struct cache *);

#endif
