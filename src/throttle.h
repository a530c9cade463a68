/*
 * throttle.h -- the miss throttle of configuration downloads (SPEC 4).
 *
 * A "miss" is a request that names an unknown MAC or brings wrong
 * credentials: what a scanner harvesting SIP passwords produces.  Misses
 * are counted per source address in a fixed window; a source reaching the
 * threshold is blocked for a while and every request from it is refused
 * without being looked at.  The table is bounded: when full, the entry
 * seen least recently is reused.
 *
 * Thread-safe (one mutex); `now` is passed in (seconds).
 */
#ifndef HD_THROTTLE_H
#define HD_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct throttle_policy {
	int threshold; /* misses in one window before a block, >= 1 */
	int window;    /* seconds */
	int block;     /* seconds */
};

struct throttle;

/* capacity: sources remembered at once.  NULL when out of memory. */
struct throttle *throttle_new(size_t capacity);
void throttle_free(struct throttle *t);
void throttle_set_policy(struct throttle *t, const struct throttle_policy *p);

/* Whether the source is blocked now. */
bool throttle_blocked(struct throttle *t, const struct sockaddr *sa, long long now);
/* Counts one miss; returns true when this miss starts a block. */
bool throttle_miss(struct throttle *t, const struct sockaddr *sa, long long now);

/* The numeric address of sa ("" for others), for logs and events. */
void throttle_addr(const struct sockaddr *sa, char *buf, size_t len);

#endif
