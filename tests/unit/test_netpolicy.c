/* Unit tests for netpolicy.c: CIDR parsing and address matching. */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netpolicy.h"

#include "check.h"

/* Whether text is accepted as a network. */
static int
parses(const char *text)
{
	char *why = NULL;
	int rc;

	rc = netpolicy_parse(text, &why);
	check_at((rc == 0) == (why == NULL), __FILE__, __LINE__,
	    "%s: rc %d but why %s", text, rc, why ? why : "(null)");
	free(why);
	return rc == 0;
}

/* Check an address against a policy; the reason, or "" when allowed. */
static const char *
verdict(const struct netpolicy *np, const char *addr)
{
	static char why[128];
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		return "(bad test address)";
	why[0] = '\0';
	if (netpolicy_check(np, (struct sockaddr *)&ss, why, sizeof why) == 0)
		return "";
	return why;
}

/* What is and is not a network. */
static void
test_parse(void)
{
	CHECK(parses("10.0.0.0/8"));
	CHECK(parses("0.0.0.0/0"));
	CHECK(parses("127.0.0.1"));
	CHECK(parses("127.0.0.1/32"));
	CHECK(parses("::/0"));
	CHECK(parses("::"));
	CHECK(parses("::1/128"));
	CHECK(parses("fe80::/10"));
	CHECK(parses("fc00::/7"));
	CHECK(parses("::ffff:0:0/96"));
	CHECK(parses("::ffff:127.0.0.0/104"));

	CHECK(!parses(""));
	CHECK(!parses("/8"));
	CHECK(!parses("10.0.0.0/"));
	CHECK(!parses("10.0.0.0/33"));
	CHECK(!parses("10.0.0.0/-1"));
	CHECK(!parses("10.0.0.0/08"));
	CHECK(!parses("10.0.0.0/8x"));
	CHECK(!parses("10.0.0.0/ 8"));
	CHECK(!parses("10.0.0/8"));
	CHECK(!parses("10.0.0.1/8")); /* host bits set */
	CHECK(!parses("fe80::1/10"));
	CHECK(!parses("::/129"));
	CHECK(!parses("localhost"));
	CHECK(!parses("10.0.0.0/8/8"));
	CHECK(!parses(" 10.0.0.0/8"));
	CHECK(!parses("fe80::1%lo/128"));
}

/* The messages name the address and the list. */
static void
test_messages(void)
{
	char *why = NULL;

	CHECK(netpolicy_parse("10.0.0.1/8", &why) == -1);
	CHECK_STR(
	    why, "\"10.0.0.1/8\" has address bits set past the prefix length");
	free(why);
	why = NULL;
	CHECK(netpolicy_parse("10.0.0.0/40", &why) == -1);
	CHECK_STR(why, "\"10.0.0.0/40\": prefix length must be 0..32");
	free(why);
	why = NULL;
	CHECK(netpolicy_parse("example.com", &why) == -1);
	CHECK_STR(why, "\"example.com\" is not an IPv4 or IPv6 address");
	free(why);
}

/* The deny list the installed service uses. */
static void
test_deny(void)
{
	char *deny[] = { "127.0.0.0/8", "::1/128", "169.254.0.0/16",
		"fe80::/10", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
		"fc00::/7", "224.0.0.0/4", "ff00::/8", "0.0.0.0/8", "::/128" };
	struct netpolicy *np;
	char *why = NULL;

	np =
	    netpolicy_create(NULL, 0, deny, sizeof deny / sizeof deny[0], &why);
	CHECK(np != NULL && why == NULL);
	if (np == NULL)
		return;
	CHECK(netpolicy_active(np));
	CHECK_STR(verdict(np, "127.0.0.1"),
	    "address 127.0.0.1 is denied by deny_networks");
	CHECK_STR(verdict(np, "127.255.255.254"),
	    "address 127.255.255.254 is denied by deny_networks");
	CHECK_STR(verdict(np, "::1"), "address ::1 is denied by deny_networks");
	CHECK_STR(verdict(np, "169.254.169.254"),
	    "address 169.254.169.254 is denied by deny_networks");
	CHECK_STR(verdict(np, "fe80::1"),
	    "address fe80::1 is denied by deny_networks");
	CHECK_STR(verdict(np, "febf:ffff::1"),
	    "address febf:ffff::1 is denied by deny_networks");
	CHECK_STR(verdict(np, "fec0::1"), "");
	CHECK_STR(verdict(np, "10.1.2.3"),
	    "address 10.1.2.3 is denied by deny_networks");
	CHECK_STR(verdict(np, "172.31.255.255"),
	    "address 172.31.255.255 is denied by deny_networks");
	CHECK_STR(verdict(np, "172.32.0.0"), "");
	CHECK_STR(verdict(np, "172.15.255.255"), "");
	CHECK_STR(verdict(np, "192.168.1.1"),
	    "address 192.168.1.1 is denied by deny_networks");
	CHECK_STR(verdict(np, "192.169.0.1"), "");
	CHECK_STR(verdict(np, "fd12:3456::1"),
	    "address fd12:3456::1 is denied by deny_networks");
	CHECK_STR(verdict(np, "239.1.1.1"),
	    "address 239.1.1.1 is denied by deny_networks");
	CHECK_STR(verdict(np, "ff02::1"),
	    "address ff02::1 is denied by deny_networks");
	CHECK_STR(verdict(np, "0.0.0.0"),
	    "address 0.0.0.0 is denied by deny_networks");
	CHECK_STR(verdict(np, "::"), "address :: is denied by deny_networks");
	/* IPv4-mapped IPv6 counts as its IPv4 address. */
	CHECK_STR(verdict(np, "::ffff:127.0.0.1"),
	    "address ::ffff:127.0.0.1 is denied by deny_networks");
	CHECK_STR(verdict(np, "::ffff:169.254.169.254"),
	    "address ::ffff:169.254.169.254 is denied by deny_networks");
	CHECK_STR(verdict(np, "::ffff:10.0.0.1"),
	    "address ::ffff:10.0.0.1 is denied by deny_networks");
	CHECK_STR(verdict(np, "::ffff:93.184.216.34"), "");
	/* Public addresses pass. */
	CHECK_STR(verdict(np, "93.184.216.34"), "");
	CHECK_STR(verdict(np, "2606:2800:220:1::1"), "");
	CHECK_STR(verdict(np, "8.8.8.8"), "");
	netpolicy_destroy(np);
}

/* allow_networks first, then deny_networks. */
static void
test_allow(void)
{
	char *allow[] = { "127.0.0.0/8", "2001:db8::/32" };
	char *deny[] = { "127.0.0.2/32", "2001:db8:1::/48" };
	char *bad[] = { "127.0.0.0/8", "nonsense" };
	struct netpolicy *np;
	char *why = NULL;

	np = netpolicy_create(allow, 2, deny, 2, &why);
	CHECK(np != NULL);
	if (np == NULL)
		return;
	CHECK_STR(verdict(np, "127.0.0.1"), "");
	CHECK_STR(verdict(np, "127.0.0.3"), "");
	CHECK_STR(verdict(np, "127.0.0.2"),
	    "address 127.0.0.2 is denied by deny_networks");
	CHECK_STR(verdict(np, "::ffff:127.0.0.1"), "");
	CHECK_STR(verdict(np, "::ffff:127.0.0.2"),
	    "address ::ffff:127.0.0.2 is denied by deny_networks");
	CHECK_STR(verdict(np, "10.0.0.1"),
	    "address 10.0.0.1 is not in allow_networks");
	CHECK_STR(verdict(np, "::1"), "address ::1 is not in allow_networks");
	CHECK_STR(verdict(np, "2001:db8:2::1"), "");
	CHECK_STR(verdict(np, "2001:db8:1:ffff::1"),
	    "address 2001:db8:1:ffff::1 is denied by deny_networks");
	netpolicy_destroy(np);

	/* Odd prefix lengths: /0, /1, /31, /127. */
	{
		char *a0[] = { "0.0.0.0/0", "2001:db8::/126" },
		     *d1[] = { "128.0.0.0/1", "10.0.0.2/31", "2001:db8::/127" };

		np = netpolicy_create(a0, 2, d1, 3, &why);
		CHECK(np != NULL);
		if (np != NULL) {
			CHECK_STR(verdict(np, "127.255.255.255"), "");
			CHECK_STR(verdict(np, "128.0.0.0"),
			    "address 128.0.0.0 is denied by deny_networks");
			CHECK_STR(verdict(np, "10.0.0.3"),
			    "address 10.0.0.3 is denied by deny_networks");
			CHECK_STR(verdict(np, "10.0.0.4"), "");
			CHECK_STR(verdict(np, "10.0.0.1"), "");
			CHECK_STR(verdict(np, "2001:db8::1"),
			    "address 2001:db8::1 is denied by deny_networks");
			CHECK_STR(verdict(np, "2001:db8::2"), "");
			CHECK_STR(verdict(np, "2001:db8::4"),
			    "address 2001:db8::4 is not in allow_networks");
			CHECK_STR(verdict(np, "::1"),
			    "address ::1 is not in allow_networks");
			netpolicy_destroy(np);
		}
	}

	/* An empty policy allows everything. */
	np = netpolicy_create(NULL, 0, NULL, 0, &why);
	CHECK(np != NULL && !netpolicy_active(np));
	CHECK_STR(verdict(np, "127.0.0.1"), "");
	CHECK_STR(verdict(np, "::1"), "");
	netpolicy_destroy(np);

	/* A bad entry fails the whole policy, naming it. */
	why = NULL;
	np = netpolicy_create(NULL, 0, bad, 2, &why);
	CHECK(np == NULL);
	CHECK_STR(why, "\"nonsense\" is not an IPv4 or IPv6 address");
	free(why);
}

int
main(void)
{
	test_parse();
	test_messages();
	test_deny();
	test_allow();
	return check_summary("test_netpolicy");
}
