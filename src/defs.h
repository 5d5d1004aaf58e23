/* Limits and protocol constants, in one place. */
#ifndef DEFS_H
#define DEFS_H

#ifndef IMGFETCHD_VERSION
#define IMGFETCHD_VERSION "0.0.0"
#endif

#define API_PREFIX "/v1"

/* Bytes a transfer hands the writer pool in one piece. */
#define CHUNK_SIZE (256 * 1024)
/*
 * A transfer whose unwritten bytes reach this is paused, and resumed once
 * the writer has brought them down to two thirds. Six times libcurl's
 * receive buffer (512 KiB), so that a transfer keeping up with the disk
 * never pauses: each pause and resume costs a window of TCP traffic, and
 * at 2 MiB and 1 MiB workload (c) of the benchmark took a third more CPU.
 */
#define PENDING_PAUSE_BYTES (12 * CHUNK_SIZE)
#define PENDING_RESUME_BYTES (8 * CHUNK_SIZE)
/* Full chunks kept for reuse, so big bodies do not fault in fresh pages. */
#define CHUNK_POOL_MAX 8
/*
 * A body starts in a buffer this big, which holds a typical small image
 * whole; up to SMALL_POOL_MAX of them are kept for reuse, because malloc
 * on the loop thread and free on a worker cost the allocator a lock and a
 * coalescing pass per image.
 */
#define SMALL_CHUNK_SIZE (16 * 1024)
#define SMALL_POOL_MAX 64
/* New items start only while the writer holds less than this unwritten ... */
#define WRITER_BACKLOG_BYTES (32 * 1024 * 1024)
/* ... and fewer than max_transfers times this items are still active. */
#define FINISHING_FACTOR 8

/* Events streams carry progress no more often than this. */
#define PROGRESS_INTERVAL_MS 250

/* One path component on disk, and a whole relative path. */
#define NAME_MAX_BYTES 255
/*
 * A file's own name: room is left for a "-N" suffix of up to
 * SUFFIX_DIGITS_MAX digits (an unsigned long long: it never runs out) and
 * ".part".
 */
#define SUFFIX_DIGITS_MAX 20
#define FILE_NAME_MAX_BYTES (NAME_MAX_BYTES - 1 - SUFFIX_DIGITS_MAX - 5)
#define RELPATH_MAX_BYTES 4000
/*
 * Longest URL accepted in a job, most URLs in one job and most headers a
 * job may add: the defaults of max_url_length, max_job_items and
 * max_job_headers (max_header_bytes defaults to REQUEST_HEADER_MAX_BYTES).
 */
#define URL_MAX_BYTES 8192
/* Longest no_proxy list, from the config or a job. */
#define NO_PROXY_MAX_BYTES 4096
/* Longest timeout in seconds: libcurl takes at most INT_MAX milliseconds. */
#define NET_TIMEOUT_MAX 2147483
/* Most extra attempts of an item, from the config or a job. */
#define NET_RETRIES_MAX 100

#define JOB_MAX_URLS 100000
#define JOB_MAX_HEADERS 64
/* The most those four settings may be raised to. */
#define URL_LENGTH_LIMIT 65536
#define JOB_ITEMS_LIMIT 1000000
#define JOB_HEADERS_LIMIT 1024
#define HEADER_BYTES_LIMIT 65536
/*
 * Names whose next free "-N" suffix the writer remembers, so that a run of
 * files all named alike costs O(1) each; past this the oldest is forgotten
 * and its next search gallops from 0 (O(log N) stats).
 */
#define NAME_HINT_MAX 4096

/* Pages one job may reach through rel="next", and the largest page. */
#define PAGE_FOLLOW_MAX 100
/* Found images made items per loop turn: a bound on the loop's stall. */
#define PAGE_ADD_BATCH 512
/* Marks a rel="next" page among a cached page's image URLs. */
#define CACHE_NEXT_PREFIX "next "
#define PAGE_SIZE_MAX (1024LL * 1024 * 1024)
#define PAGE_SIZE_DEFAULT (8LL * 1024 * 1024)
/* Entries of the URL cache kept by default. */
#define CACHE_MAX_ENTRIES_DEFAULT 100000

/* Bytes of a page searched for a <meta> charset declaration. */
#define HTML_CHARSET_SCAN_BYTES 1024
/*
 * Open elements a page may nest. The HTML parser scans its stack of open
 * elements for many tokens, so its time grows with size times depth; start
 * tags that would nest deeper than this are blanked before parsing.
 */
#define HTML_NESTING_MAX 512
/* Image and next-page URLs kept from one page, and a title's bytes. */
#define HTML_IMAGES_MAX 100000
#define HTML_NEXT_MAX 32
#define HTML_TITLE_MAX_BYTES 1024
/* Entries of deny_networks and of allow_networks at most. */
#define NETWORKS_MAX 1024
/* Largest host_rate, in requests per second. */
#define HOST_RATE_MAX 1000000

/* Seconds a client is told to wait when the queue is full. */
#define RETRY_AFTER_SECONDS 5

/*
 * Event priorities: the API and signals run at the default, the bulk of the
 * work (transfers, writer and store completions) below it, and the loop
 * looks for new events after EV_BULK_BATCH bulk callbacks, so a status
 * request is not kept waiting by a burst of finished transfers.
 */
#define EV_NPRIORITIES 3
#define EV_PRIO_BULK 2
#define EV_BULK_BATCH 8

/* The shared queue (queue.c): defaults and limits. */
#define QUEUE_STREAM_DEFAULT "imgfetch:jobs"
#define QUEUE_GROUP_DEFAULT "imgfetchd"
#define QUEUE_RESULTS_DEFAULT "imgfetch:results"
#define QUEUE_PORT_DEFAULT 6379
#define QUEUE_NAME_MAX_BYTES 200
#define QUEUE_BATCH_DEFAULT 1
#define QUEUE_BATCH_MAX 1000
#define QUEUE_LOW_WATER_DEFAULT 64
#define QUEUE_CLAIM_IDLE_DEFAULT 60
/* Milliseconds between polls of the stream while the daemon has room. */
#define QUEUE_POLL_MS 100
/* Reconnect backoff: first and longest wait, in milliseconds. */
#define QUEUE_BACKOFF_MIN_MS 100
#define QUEUE_BACKOFF_MAX_MS 5000
/* Seconds Redis may take to connect or answer, and how often it is checked. */
#define QUEUE_TIMEOUT_DEFAULT 10
#define QUEUE_WATCH_MS 250
/* Own pending entries read per XREADGROUP ... 0 after a (re)connect. */
#define QUEUE_RECOVER_COUNT 1000

/* Milliseconds between the loop-lag probe's timer firings (metrics.c). */
#define METRICS_LAG_INTERVAL_MS 250

#define DEFAULT_NAME_TEMPLATE "{host}/{name}"
#define DEFAULT_FALLBACK_NAME "index"

#endif
