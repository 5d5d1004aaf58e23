/* Politeness: at most host_rate item starts per second to one host. */
#ifndef HOSTRATE_H
#define HOSTRATE_H

struct event_base;
struct hostrate;
struct hostrate_wait;

/* A start for the waiter's host is due: called from the loop. */
typedef void (*hostrate_cb)(void *arg);

/* rate: starts per second per host, 0 for no limit. */
struct hostrate *hostrate_create(struct event_base *, double rate);
/* Free; every waiter is dropped without a call. */
void hostrate_destroy(struct hostrate *);
/* Change the rate (a reload); waiters are looked at again from the loop. */
void hostrate_set_rate(struct hostrate *, double rate);

/*
 * The key of a URL's host: its lower-case host name (or address) and port,
 * as "example.com:443". Returns a new string.
 */
char *hostrate_key(const char *url);

/*
 * Take a start for host now. Returns 0 when one is free (or there is no
 * limit); else 1 with *wait set: cb(arg) is called from the loop once the
 * start is due (the start is then taken), unless hostrate_cancel(*wait)
 * comes first. Waiters of one host are served in order.
 */
int hostrate_take(struct hostrate *, const char *host, hostrate_cb cb,
    void *arg, struct hostrate_wait **wait);
/* Stop waiting; the wait is freed. */
void hostrate_cancel(struct hostrate_wait *);

#endif
