/*
 * throttle.c -- per-source miss counting with blocks (see throttle.h).
 *
 * Entries live in a fixed array searched linearly (only misses, and
 * requests while some source is blocked, search it), keyed by the 16-byte
 * address: IPv4 as IPv4-mapped IPv6, IPv6 by its /64 (one host can hold a
 * whole /64, so counting single IPv6 addresses would be no throttle).
 * Blocked sources are never evicted to make room for new ones.  A window
 * starts at a source's first miss; reaching the threshold inside it sets
 * blocked_until = now + block and restarts the count.
 *
 * The global count of unknown-MAC misses has one window of its own (it
 * starts at the first such miss after the previous one ended); reaching
 * global_threshold in it sets tripped_until = now + block, blocks the
 * sources with a miss in their current window, and restarts the count.
 */
#include "throttle.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lockorder.h"

struct entry {
	uint8_t addr[16];
	bool used;
	int misses;
	long long window_start;
	long long blocked_until;
	long long seen;
};

struct throttle {
	pthread_mutex_t mu;
	struct throttle_policy pol;
	struct entry *e;
	size_t cap;
	/* the latest blocked_until ever set: while now is past it nobody is
	 * blocked, and throttle_blocked answers without the lock or a search
	 * (the fast path of every phone request) */
	_Atomic long long horizon;
	int g_misses;            /* unknown-MAC misses in the global window */
	long long g_window_start;
	long long tripped_until; /* while now < this, one miss blocks */
};

struct throttle *
throttle_new(size_t capacity)
{
	struct throttle *t = calloc(1, sizeof(*t));

	if (t == NULL || (t->e = calloc(capacity ? capacity : 1, sizeof(*t->e))) == NULL) {
		free(t);
		return NULL;
	}
	t->cap = capacity ? capacity : 1;
	t->pol = (struct throttle_policy){ 20, 60, 300, 0 };
	pthread_mutex_init(&t->mu, NULL);
	lockorder_register(&t->mu, LOCK_THROTTLE, "throttle");
	return t;
}

void
throttle_free(struct throttle *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t->e);
	free(t);
}

void
throttle_set_policy(struct throttle *t, const struct throttle_policy *p)
{
	pthread_mutex_lock(&t->mu);
	t->pol = *p;
	pthread_mutex_unlock(&t->mu);
}

static bool
key(const struct sockaddr *sa, uint8_t a[16])
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		memset(a, 0, 10);
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &s4->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		if (memcmp(a, mapped, 12) != 0)
			memset(a + 8, 0, 8); /* the /64 */
		return true;
	}
	return false;
}

/* The entry of a, or NULL; with create, a new or recycled one. */
static struct entry *
find(struct throttle *t, const uint8_t a[16], bool create, long long now)
{
	struct entry *oldest = NULL;

	/* linear in capacity: the table is small (a few thousand sources)
	 * and only misses and blocked sources reach it on the fast path */
	for (size_t i = 0; i < t->cap; i++) {
		struct entry *e = &t->e[i];

		if (e->used && memcmp(e->addr, a, 16) == 0)
			return e;
		if (!e->used) {
			if (oldest == NULL || oldest->used)
				oldest = e;
		} else if (now >= e->blocked_until &&
		           (oldest == NULL || (oldest->used && e->seen < oldest->seen))) {
			oldest = e; /* a blocked source keeps its entry */
		}
	}
	if (!create || oldest == NULL)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	memcpy(oldest->addr, a, 16);
	oldest->used = true;
	oldest->seen = now;
	return oldest;
}

bool
throttle_blocked(struct throttle *t, const struct sockaddr *sa, long long now)
{
	uint8_t a[16];
	struct entry *e;
	bool blocked = false;

	if (!key(sa, a))
		return false;
	if (now >= atomic_load_explicit(&t->horizon, memory_order_acquire))
		return false;
	pthread_mutex_lock(&t->mu);
	if ((e = find(t, a, false, now)) != NULL)
		blocked = now < e->blocked_until;
	pthread_mutex_unlock(&t->mu);
	return blocked;
}

/* Blocks e from now on (lock held). */
static void
block(struct throttle *t, struct entry *e, long long now)
{
	e->blocked_until = now + t->pol.block;
	if (e->blocked_until > atomic_load(&t->horizon))
		atomic_store_explicit(&t->horizon, e->blocked_until, memory_order_release);
	e->misses = 0;
}

/* Counts a miss of e (lock held); true when it starts a block. */
static bool
count(struct throttle *t, struct entry *e, long long now)
{
	int threshold = now < t->tripped_until ? 1 : t->pol.threshold;

	e->seen = now;
	if (e->misses == 0 || now - e->window_start >= t->pol.window) {
		e->misses = 0;
		e->window_start = now;
	}
	if (++e->misses >= threshold && now >= e->blocked_until) {
		block(t, e, now);
		return true;
	}
	return false;
}

bool
throttle_miss(struct throttle *t, const struct sockaddr *sa, long long now)
{
	uint8_t a[16];
	struct entry *e;
	bool started = false;

	if (!key(sa, a))
		return false;
	pthread_mutex_lock(&t->mu);
	if ((e = find(t, a, true, now)) != NULL)
		started = count(t, e, now);
	pthread_mutex_unlock(&t->mu);
	return started;
}

/* Trips the global limit (lock held): blocks every source with a miss in
 * its current window.  Returns how many it blocked. */
static size_t
trip(struct throttle *t, long long now)
{
	size_t n = 0;

	t->tripped_until = now + t->pol.block;
	for (size_t i = 0; i < t->cap; i++) {
		struct entry *e = &t->e[i];

		if (e->used && e->misses > 0 && now - e->window_start < t->pol.window &&
		    now >= e->blocked_until) {
			block(t, e, now);
			n++;
		}
	}
	return n;
}

unsigned
throttle_miss_unknown(struct throttle *t, const struct sockaddr *sa, long long now,
                      size_t *blocked)
{
	uint8_t a[16];
	struct entry *e;
	unsigned flags = 0;
	bool have = key(sa, a);

	pthread_mutex_lock(&t->mu);
	if (have && (e = find(t, a, true, now)) != NULL && count(t, e, now))
		flags |= THROTTLE_BLOCK;
	if (t->pol.global_threshold > 0 && now >= t->tripped_until) {
		if (t->g_misses == 0 || now - t->g_window_start >= t->pol.window) {
			t->g_misses = 0;
			t->g_window_start = now;
		}
		if (++t->g_misses >= t->pol.global_threshold) {
			size_t n = trip(t, now) + ((flags & THROTTLE_BLOCK) ? 1 : 0);

			if (blocked != NULL)
				*blocked = n;
			t->g_misses = 0;
			flags |= THROTTLE_TRIPPED;
		}
	}
	pthread_mutex_unlock(&t->mu);
	return flags;
}

bool
throttle_tripped(struct throttle *t, long long now)
{
	bool r;

	pthread_mutex_lock(&t->mu);
	r = now < t->tripped_until;
	pthread_mutex_unlock(&t->mu);
	return r;
}

void
throttle_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	buf[0] = '\0';
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
		          (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
		          (socklen_t)len);
}
