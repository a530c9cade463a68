/*
 * lockorder.c -- the debug-build checker of the lock order (lockorder.h).
 *
 * Owns: the table of registered locks (address, rank, name; an array of
 * locks of one rank is one entry) and, per thread, the registered locks
 * it holds, in the order it took them.
 * Taking a registered lock while holding one of an equal or higher rank
 * is a broken invariant: both names go to stderr and the process aborts
 * (the sanitizer build turns that into a failed test).  Without
 * HD_LOCK_ORDER this file compiles to nothing.
 */
#define LOCKORDER_IMPL
#include "lockorder.h"

#ifdef HD_LOCK_ORDER

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define LOCKORDER_MAX 1024 /* registered locks at once */
#define HELD_MAX 16        /* registered locks one thread holds at once */

/* One lock as held (lock: its own address). */
struct lock_entry {
	const void *lock;
	int rank;
	const char *name;
};

/* A registered lock, or n locks stride bytes apart from lock on. */
struct table_entry {
	struct lock_entry e;
	size_t n, stride;
};

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct table_entry table[LOCKORDER_MAX];
static size_t ntable;

static _Thread_local struct lock_entry held[HELD_MAX];
static _Thread_local size_t nheld;

void
lockorder_register_array(const void *first, size_t n, size_t stride, enum lockorder_rank rank,
                         const char *name)
{
	struct table_entry t = { { first, (int)rank, name }, n > 0 ? n : 1, stride };

	pthread_mutex_lock(&table_mu);
	for (size_t i = 0; i < ntable; i++) {
		if (table[i].e.lock == first) {
			table[i] = t;
			pthread_mutex_unlock(&table_mu);
			return;
		}
	}
	if (ntable == LOCKORDER_MAX) {
		fprintf(stderr, "lockorder: more than %d locks registered\n", LOCKORDER_MAX);
		abort();
	}
	table[ntable++] = t;
	pthread_mutex_unlock(&table_mu);
}

void
lockorder_register(const void *lock, enum lockorder_rank rank, const char *name)
{
	lockorder_register_array(lock, 1, 0, rank, name);
}

void
lockorder_forget(const void *lock)
{
	pthread_mutex_lock(&table_mu);
	for (size_t i = 0; i < ntable; i++) {
		if (table[i].e.lock == lock) {
			table[i] = table[--ntable];
			break;
		}
	}
	pthread_mutex_unlock(&table_mu);
}

/* Whether t names lock: its address, or one of its array's. */
static bool
names(const struct table_entry *t, const void *lock)
{
	uintptr_t a = (uintptr_t)lock, b = (uintptr_t)t->e.lock;

	if (t->n == 1)
		return a == b;
	return a >= b && (a - b) % t->stride == 0 && (a - b) / t->stride < t->n;
}

/* The registered entry of lock, or lock = NULL when it is not registered. */
static struct lock_entry
lookup(const void *lock)
{
	struct lock_entry e = { NULL, 0, NULL };

	pthread_mutex_lock(&table_mu);
	for (size_t i = 0; i < ntable; i++) {
		if (names(&table[i], lock)) {
			e = table[i].e;
			e.lock = lock;
		}
	}
	pthread_mutex_unlock(&table_mu);
	return e;
}

/* Before waiting for lock: aborts when a held lock ranks equal or higher. */
static struct lock_entry
check(const void *lock)
{
	struct lock_entry e = lookup(lock);

	if (e.lock == NULL)
		return e;
	for (size_t i = 0; i < nheld; i++) {
		if (held[i].rank >= e.rank) {
			fprintf(stderr, "lockorder: taking %s (rank %d) while holding %s (rank %d)\n",
			        e.name, e.rank, held[i].name, held[i].rank);
			abort();
		}
	}
	return e;
}

static void
push(struct lock_entry e)
{
	if (e.lock == NULL)
		return;
	if (nheld == HELD_MAX) {
		fprintf(stderr, "lockorder: more than %d locks held by one thread\n", HELD_MAX);
		abort();
	}
	held[nheld++] = e;
}

/* Forgets the most recent hold of lock by this thread (any order). */
static void
pop(const void *lock)
{
	for (size_t i = nheld; i-- > 0;) {
		if (held[i].lock == lock) {
			for (size_t j = i; j + 1 < nheld; j++)
				held[j] = held[j + 1];
			nheld--;
			return;
		}
	}
}

/* After the real call: the lock is held when it succeeded. */
static int
taken(struct lock_entry e, int rc)
{
	if (rc == 0)
		push(e);
	return rc;
}

int
lockorder_mutex_lock(pthread_mutex_t *m)
{
	struct lock_entry e = check(m);

	return taken(e, pthread_mutex_lock(m));
}

int
lockorder_mutex_timedlock(pthread_mutex_t *m, const struct timespec *t)
{
	struct lock_entry e = check(m); /* it waits: in order, as a lock */

	return taken(e, pthread_mutex_timedlock(m, t));
}

int
lockorder_mutex_trylock(pthread_mutex_t *m)
{
	/* cannot deadlock: no order needed */
	return taken(lookup(m), pthread_mutex_trylock(m));
}

int
lockorder_mutex_unlock(pthread_mutex_t *m)
{
	pop(m);
	return pthread_mutex_unlock(m);
}

int
lockorder_mutex_destroy(pthread_mutex_t *m)
{
	lockorder_forget(m);
	return pthread_mutex_destroy(m);
}

int
lockorder_rwlock_rdlock(pthread_rwlock_t *l)
{
	struct lock_entry e = check(l);

	return taken(e, pthread_rwlock_rdlock(l));
}

int
lockorder_rwlock_wrlock(pthread_rwlock_t *l)
{
	struct lock_entry e = check(l);

	return taken(e, pthread_rwlock_wrlock(l));
}

int
lockorder_rwlock_unlock(pthread_rwlock_t *l)
{
	pop(l);
	return pthread_rwlock_unlock(l);
}

int
lockorder_rwlock_destroy(pthread_rwlock_t *l)
{
	lockorder_forget(l);
	return pthread_rwlock_destroy(l);
}

/* A condition wait gives m up and takes it back: checked like a new lock
 * of m (the mutex is held again when the wait returns, whatever rc). */
static struct lock_entry
wait_begins(pthread_mutex_t *m)
{
	pop(m);
	return check(m);
}

int
lockorder_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
	struct lock_entry e = wait_begins(m);
	int rc = pthread_cond_wait(c, m);

	push(e);
	return rc;
}

int
lockorder_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t)
{
	struct lock_entry e = wait_begins(m);
	int rc = pthread_cond_timedwait(c, m, t);

	push(e);
	return rc;
}

#else

/* ISO C wants a translation unit to declare something. */
typedef int lockorder_empty;

#endif /* HD_LOCK_ORDER */
