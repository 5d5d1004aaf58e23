/* The daemon's configuration: built-in defaults, then a libconfig file. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>

enum exists_policy { EXISTS_SUFFIX, EXISTS_OVERWRITE, EXISTS_SKIP };

struct config {
	char *socket_path; /* socket_path */
	int socket_mode; /* socket_mode, written as a string "0660" */
	char *download_dir; /* download_dir */
	int workers; /* workers: writer threads, 1..64 */
	int max_transfers; /* max_transfers: across all jobs, 1..10000 */
	int max_host_connections; /* max_host_connections: 0 = no cap */
	long connect_timeout; /* connect_timeout: seconds, 0 = libcurl's */
	long timeout; /* timeout: seconds per item, 0 = none */
	int max_redirects; /* max_redirects: 0 = do not follow */
	char *user_agent; /* user_agent */
	char **headers; /* headers: list of "Name: value" */
	size_t nheaders;
	long long max_item_size; /* max_item_size: bytes, 0 = no cap */
	int fsync; /* fsync: bool */
	int queue_limit; /* queue_limit: items not yet ended */
	long long max_request_body; /* max_request_body: bytes */
	int log_level; /* log_level: "error".."debug" */
	enum exists_policy
	    on_exists; /* on_exists: "suffix"|"overwrite"|"skip" */
	long buffer_size; /* buffer_size: libcurl receive buffer */
	char *state_dir; /* state_dir: the job store */
	long keep_finished; /* keep_finished: seconds ended jobs stay */
	int retries; /* retries: extra attempts, 0..100 */
	long retry_delay; /* retry_delay: first backoff, ms */
	long retry_delay_max; /* retry_delay_max: backoff cap, ms */
	long retry_after_max; /* retry_after_max: Retry-After cap, s */
	long stall_speed; /* stall_speed: bytes/s, 0 = no check */
	long stall_time; /* stall_time: seconds below stall_speed */
	char **allowed_types; /* allowed_types: Content-Type patterns */
	size_t nallowed_types;
	int allow_svg; /* allow_svg: bool */
	long shutdown_grace; /* shutdown_grace: seconds */
	int max_api_connections; /* max_api_connections */
	long api_idle_timeout; /* api_idle_timeout: seconds */
	int dedup; /* dedup: bool, keep each body once */
	long cache_max_entries; /* cache_max_entries: URL cache size */
	long long max_page_size; /* max_page_size: bytes of a scraped page */
	/* The network: TLS, proxies and credentials; "" for none. */
	char *ca_file; /* ca_file: PEM bundle instead of the system's */
	char *ca_path; /* ca_path: OpenSSL hashed directory of CAs */
	char *client_cert; /* client_cert: PEM, for mutual TLS */
	char *client_key; /* client_key: PEM, unencrypted */
	char *proxy; /* proxy: URL; "" connects directly */
	char *no_proxy; /* no_proxy: hosts and domains past the proxy */
	char *netrc_file; /* netrc_file: credentials by host */
	long max_job_timeout; /* max_job_timeout: cap of a job's timeout, s */
	int max_job_retries; /* max_job_retries: cap of a job's retries */
	int allow_job_proxy; /* allow_job_proxy: bool */
	char *queue; /* queue: Redis address, NULL = no shared queue */
	char *queue_stream; /* queue_stream: the jobs stream */
	char *queue_group; /* queue_group: the consumer group */
	char *queue_results; /* queue_results: the results stream */
	char *node; /* node: consumer name, default the host name */
	int queue_batch; /* queue_batch: entries per XREADGROUP */
	int queue_low_water; /* queue_low_water: read below these items */
	long claim_idle; /* claim_idle: seconds before a claim */
	long queue_timeout; /* queue_timeout: seconds to connect or answer */
	char *metrics_listen; /* metrics_listen: "HOST:PORT", or NULL */
	int private_jobs; /* private_jobs: bool, others' jobs hidden */
	char **deny_networks; /* deny_networks: CIDR strings */
	size_t ndeny_networks;
	char **allow_networks; /* allow_networks: CIDR strings, empty = all */
	size_t nallow_networks;
	double
	    host_rate; /* host_rate: item starts per second per host, 0 = no limit */
	long max_job_items; /* max_job_items: URLs in one job */
	long max_url_length; /* max_url_length: bytes of one URL */
	long max_job_headers; /* max_job_headers: headers one job adds */
	long max_header_bytes; /* max_header_bytes: bytes of one of them */
};

/* Where the shared queue's Redis is: TCP host and port, or a socket. */
struct config_redis {
	char *host; /* NULL for a Unix socket */
	int port;
	char *path; /* the Unix socket, or NULL */
	int db;
};

/*
 * libconfig exports a config_init() of its own and calls it while reading
 * a file, so ours must not take that symbol: config_init(c) is
 * config_defaults(c). Include <libconfig.h> before this header, if at all.
 */
#define config_init(c) config_defaults(c)

/* Bounds of the default number of writer threads: the CPUs, within these. */
#define WORKERS_DEFAULT_MIN 2
#define WORKERS_DEFAULT_MAX 8
int config_default_workers(void);

/* Fill in the built-in defaults (socket under $XDG_RUNTIME_DIR, ...). */
void config_init(struct config *);
/*
 * Read a file over the values already in the config. On error returns -1
 * and sets *cause to one message "FILE:LINE: what is wrong"; the config
 * may then be partly changed and should be discarded.
 */
int config_load(struct config *, const char *path, char **cause);
/* Free everything the config owns. */
void config_finish(struct config *);
struct request_limits;
/* The limits of one job submission under this config. */
void config_request_limits(const struct config *, struct request_limits *);
const char *config_exists_name(enum exists_policy);
/*
 * Parse a queue address: "redis://HOST[:PORT][/DB]" or an absolute Unix
 * socket path ("/run/redis.sock", "unix:///run/redis.sock?db=N" too).
 * Returns -1 with *cause set; on success the caller frees the strings
 * with config_redis_finish.
 */
int config_parse_redis(const char *, struct config_redis *, char **cause);
void config_redis_finish(struct config_redis *);
/* Parse "HOST:PORT" (IPv6 as "[::1]:PORT"); -1 with *cause set. */
int config_parse_listen(const char *, char **host, int *port, char **cause);

#endif
