/*
 * Where the daemon may connect. Networks are kept as an address of 4 or 16
 * bytes and a prefix length; an address matches a network of its family
 * whose first prefix bits it shares. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) matches the IPv6 networks as itself and the IPv4
 * networks as a.b.c.d, so that a name resolving to ::ffff:127.0.0.1 is
 * refused by a deny list holding 127.0.0.0/8.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netpolicy.h"
#include "xmalloc.h"

/* One network. */
struct netpolicy_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned int prefix; /* bits */
};

/* A list of networks. */
struct netpolicy_list {
	struct netpolicy_net *nets;
	size_t n;
};

struct netpolicy {
	struct netpolicy_list allow;
	struct netpolicy_list deny;
};

/* Parse "ADDR[/LEN]" into net; 0, or -1 with *why set. */
static int
netpolicy_parse_net(const char *cidr, struct netpolicy_net *net, char **why)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned int max, i, bits;
	unsigned long len;
	size_t n;

	memset(net, 0, sizeof *net);
	n = strlen(cidr);
	if (n == 0 || n >= sizeof buf) {
		xasprintf(why,
		    "\"%.64s\" is not a network like "
		    "\"10.0.0.0/8\" or \"fc00::/7\"",
		    cidr);
		return -1;
	}
	memcpy(buf, cidr, n + 1);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, net->addr) == 1) {
		net->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, net->addr) == 1) {
		net->family = AF_INET6;
		max = 128;
	} else {
		xasprintf(why, "\"%s\" is not an IPv4 or IPv6 address", buf);
		return -1;
	}
	net->prefix = max;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9' ||
		    (slash[1] == '0' && slash[2] != '\0')) {
			xasprintf(why,
			    "\"%s\": prefix length \"%s\" is not "
			    "a number",
			    cidr, slash + 1);
			return -1;
		}
		len = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || len > max) {
			xasprintf(why, "\"%s\": prefix length must be 0..%u",
			    cidr, max);
			return -1;
		}
		net->prefix = (unsigned int)len;
	}
	/* Bits past the prefix are most likely a typo: refuse them. */
	for (i = net->prefix; i < max; i++) {
		bits = net->addr[i / 8] & (0x80u >> (i % 8));
		if (bits != 0) {
			xasprintf(why,
			    "\"%s\" has address bits set past "
			    "the prefix length",
			    cidr);
			return -1;
		}
	}
	return 0;
}

/* Check one network as written in the config. */
int
netpolicy_parse(const char *cidr, char **why)
{
	struct netpolicy_net net;

	return netpolicy_parse_net(cidr, &net, why);
}

/* Fill a list from config strings; 0, or -1 with *why set. */
static int
netpolicy_fill(
    struct netpolicy_list *list, char *const *cidrs, size_t n, char **why)
{
	size_t i;

	list->nets = n == 0 ? NULL : xcalloc(n, sizeof *list->nets);
	list->n = n;
	for (i = 0; i < n; i++) {
		if (netpolicy_parse_net(cidrs[i], &list->nets[i], why) != 0)
			return -1;
	}
	return 0;
}

/* Build a policy from the two lists. */
struct netpolicy *
netpolicy_create(char *const *allow, size_t nallow, char *const *deny,
    size_t ndeny, char **why)
{
	struct netpolicy *np;

	np = xcalloc(1, sizeof *np);
	if (netpolicy_fill(&np->allow, allow, nallow, why) != 0 ||
	    netpolicy_fill(&np->deny, deny, ndeny, why) != 0) {
		netpolicy_destroy(np);
		return NULL;
	}
	return np;
}

/* Free a policy. */
void
netpolicy_destroy(struct netpolicy *np)
{
	if (np == NULL)
		return;
	free(np->allow.nets);
	free(np->deny.nets);
	free(np);
}

/* Whether either list has an entry. */
int
netpolicy_active(const struct netpolicy *np)
{
	return np != NULL && (np->allow.n > 0 || np->deny.n > 0);
}

/* Whether addr (of the net's family) lies in net. */
static int
netpolicy_net_has(const struct netpolicy_net *net, const unsigned char *addr)
{
	unsigned int full = net->prefix / 8, rest = net->prefix % 8;
	unsigned char mask;

	if (memcmp(net->addr, addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xffu << (8 - rest));
	return (net->addr[full] & mask) == (addr[full] & mask);
}

/* Whether the list holds the address (v4 and/or v6 form; either NULL). */
static int
netpolicy_list_has(const struct netpolicy_list *list, const unsigned char *v4,
    const unsigned char *v6)
{
	size_t i;

	for (i = 0; i < list->n; i++) {
		if (list->nets[i].family == AF_INET && v4 != NULL &&
		    netpolicy_net_has(&list->nets[i], v4))
			return 1;
		if (list->nets[i].family == AF_INET6 && v6 != NULL &&
		    netpolicy_net_has(&list->nets[i], v6))
			return 1;
	}
	return 0;
}

/* Whether an address may be connected to. */
int
netpolicy_check(const struct netpolicy *np, const struct sockaddr *sa,
    char *why, size_t len)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	const unsigned char *v4 = NULL, *v6 = NULL;
	char text[INET6_ADDRSTRLEN];

	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		v4 = (const unsigned char *)&sin->sin_addr;
		inet_ntop(AF_INET, v4, text, sizeof text);
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		v6 = (const unsigned char *)&sin6->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			v4 = v6 + 12;
		inet_ntop(AF_INET6, v6, text, sizeof text);
		break;
	default:
		snprintf(why, len, "address family %d is not IPv4 or IPv6",
		    (int)sa->sa_family);
		return -1;
	}
	if (np == NULL)
		return 0;
	if (np->allow.n > 0 && !netpolicy_list_has(&np->allow, v4, v6)) {
		snprintf(why, len, "address %s is not in allow_networks", text);
		return -1;
	}
	if (netpolicy_list_has(&np->deny, v4, v6)) {
		snprintf(
		    why, len, "address %s is denied by deny_networks", text);
		return -1;
	}
	return 0;
}
