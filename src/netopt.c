/*
 * The network as configured: which CAs a transfer trusts (ca_file,
 * ca_path), which client certificate it shows (client_cert, client_key),
 * where its credentials come from (netrc_file) and which proxy it goes
 * through (proxy, no_proxy, or a job's own).
 *
 * The daemon takes its proxy from its configuration only. libcurl reads
 * http_proxy, https_proxy, all_proxy and no_proxy from the environment
 * when no proxy is set on a handle; a service's environment is not where
 * its operator looks, so every transfer sets CURLOPT_PROXY and
 * CURLOPT_NOPROXY explicitly, to "" when none is configured, and the
 * environment never applies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "config.h"
#include "fetch.h"
#include "netopt.h"
#include "xmalloc.h"

/* A config string, or NULL when it is "". */
static const char *
netopt_str(const char *s)
{
	return s != NULL && *s != '\0' ? s : NULL;
}

/* Set the options common to all transfers. */
void
netopt_common(CURL *easy, const struct config *cfg)
{
	const char *ca_file = netopt_str(cfg->ca_file);
	const char *ca_path = netopt_str(cfg->ca_path);

	/* Either one replaces the system's CAs, for origins and proxies. */
	if (ca_file != NULL || ca_path != NULL) {
		curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file);
		curl_easy_setopt(easy, CURLOPT_CAPATH, ca_path);
		curl_easy_setopt(easy, CURLOPT_PROXY_CAINFO, ca_file);
		curl_easy_setopt(easy, CURLOPT_PROXY_CAPATH, ca_path);
	}
	if (netopt_str(cfg->client_cert) != NULL) {
		curl_easy_setopt(easy, CURLOPT_SSLCERT, cfg->client_cert);
		curl_easy_setopt(easy, CURLOPT_SSLKEY,
		    netopt_str(cfg->client_key) != NULL ? cfg->client_key
							: cfg->client_cert);
	}
	if (netopt_str(cfg->netrc_file) != NULL) {
		curl_easy_setopt(
		    easy, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		curl_easy_setopt(easy, CURLOPT_NETRC_FILE, cfg->netrc_file);
	} else
		curl_easy_setopt(easy, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
}

/* Set the options a job may change. */
void
netopt_transfer(
    CURL *easy, const struct config *cfg, const struct fetch_request *req)
{
	curl_easy_setopt(easy, CURLOPT_TIMEOUT,
	    req->timeout > 0 ? req->timeout : cfg->timeout);
	curl_easy_setopt(easy, CURLOPT_USERAGENT,
	    req->user_agent != NULL ? req->user_agent : cfg->user_agent);
	/* "" rather than NULL: libcurl would read the environment. */
	curl_easy_setopt(
	    easy, CURLOPT_PROXY, req->proxy != NULL ? req->proxy : cfg->proxy);
	curl_easy_setopt(easy, CURLOPT_NOPROXY,
	    req->no_proxy != NULL ? req->no_proxy : cfg->no_proxy);
}

/* The host of the transfer's current URL, or a copy of "?". */
static char *
netopt_host(CURL *easy)
{
	CURLU *h;
	char *url = NULL, *host = NULL, *ret;

	curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
	if (url == NULL || (h = curl_url()) == NULL)
		return xstrdup("?");
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		curl_url_cleanup(h);
		return xstrdup("?");
	}
	ret = xstrdup(host);
	curl_free(host);
	curl_url_cleanup(h);
	return ret;
}

/* A clearer message for a TLS, proxy or credentials failure, or NULL. */
char *
netopt_error(CURL *easy, CURLcode rc, const char *errbuf)
{
	const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
	char *host, *msg = NULL;

	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		host = netopt_host(easy);
		xasprintf(&msg,
		    "the TLS certificate of %s is not trusted "
		    "(%s)",
		    host, why);
		free(host);
		break;
	case CURLE_SSL_CACERT_BADFILE:
		xasprintf(&msg, "ca_file or ca_path cannot be used (%s)", why);
		break;
	case CURLE_SSL_CERTPROBLEM:
		xasprintf(&msg,
		    "client_cert or client_key cannot be used "
		    "(%s)",
		    why);
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_PROXY:
		xasprintf(&msg, "proxy failed: %s", why);
		break;
	default:
		break;
	}
	return msg;
}
