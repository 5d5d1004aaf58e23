/* Where the daemon may connect: allow and deny lists of networks (CIDR). */
#ifndef NETPOLICY_H
#define NETPOLICY_H

#include <stddef.h>

#include <sys/socket.h>

struct netpolicy;

/*
 * Check one network as written in the config: "ADDR/LEN" or a bare "ADDR"
 * (a single host), IPv4 or IPv6, with no bits set past the prefix.
 * Returns 0, or -1 with *why set to what is wrong (the caller frees it).
 */
int netpolicy_parse(const char *cidr, char **why);

/*
 * Build a policy from the allow and deny lists (each entry as
 * netpolicy_parse takes it). An address may be connected to when the
 * allow list is empty or holds it, and the deny list does not. NULL with
 * *why set if an entry is not valid.
 */
struct netpolicy *netpolicy_create(char *const *allow, size_t nallow,
    char *const *deny, size_t ndeny, char **why);
void netpolicy_destroy(struct netpolicy *);
/* Whether the policy lets anything be refused (either list non-empty). */
int netpolicy_active(const struct netpolicy *);

/*
 * Whether an address (AF_INET or AF_INET6; an IPv4-mapped IPv6 address
 * counts as its IPv4 address as well) may be connected to. Returns 0, or
 * -1 with the reason written into why: "address X is denied by
 * deny_networks" or "address X is not in allow_networks". Any other
 * family is refused.
 */
int netpolicy_check(
    const struct netpolicy *, const struct sockaddr *, char *why, size_t len);

#endif
