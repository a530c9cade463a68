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
 * A scanner with many addresses stays under any per-source threshold, so
 * misses that name an unknown MAC are also counted over all sources in
 * the same window length: reaching global_threshold "trips" the throttle
 * for `block` seconds.  Tripping blocks every source with a miss in its
 * current window, and while tripped any source is blocked at its first
 * miss.  Phones whose files exist never miss, so they are not affected;
 * a scan is slowed to one guess per address per block.
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
	int global_threshold; /* unknown-MAC misses of all sources in one
	                       * window that trip the throttle; 0 = off */
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

#define THROTTLE_BLOCK 1u   /* this miss starts a block of its source */
#define THROTTLE_TRIPPED 2u /* this miss trips the global limit */

/* Counts one miss that named an unknown MAC: per source as throttle_miss,
 * and towards the global limit.  Returns THROTTLE_* flags; when it trips,
 * *blocked (may be NULL) gets how many sources the trip blocked (this one
 * included). */
unsigned throttle_miss_unknown(struct throttle *t, const struct sockaddr *sa, long long now,
                               size_t *blocked);

/* Whether the global limit is tripped now. */
bool throttle_tripped(struct throttle *t, long long now);

/* The numeric address of sa ("" for others), for logs and events. */
void throttle_addr(const struct sockaddr *sa, char *buf, size_t len);

#endif
