/* The network as configured: TLS, proxies and credentials on libcurl. */
#ifndef NETOPT_H
#define NETOPT_H

#include <curl/curl.h>

struct config;
struct fetch_request;

/* Set the options every transfer shares: CAs, client certificate, netrc. */
void netopt_common(CURL *, const struct config *);
/*
 * Set the options a job may change, each time a handle is used: timeout,
 * proxy, no_proxy, User-Agent (the job's, else the config's).
 */
void netopt_transfer(
    CURL *, const struct config *, const struct fetch_request *);
/*
 * A message for a failure that the network setup explains better than
 * libcurl's own text (an untrusted certificate, naming its host; a CA file
 * or client certificate that cannot be used; a proxy that fails), or NULL
 * for any other. The caller frees it.
 */
char *netopt_error(CURL *, CURLcode, const char *errbuf);

#endif
