/*
 * test_lockorder.c -- the lock-order checker (lockorder.h).  Built with
 * -DHD_LOCK_ORDER (make asan): nesting in rank order passes, taking a lock
 * of a lower or equal rank while holding one aborts, a condition wait
 * gives its mutex up and takes it back, unregistered locks are not
 * checked.  Built without it (make test): the same calls are the
 * library's, in any order.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "testutil.h"
#include "lockorder.h"

static pthread_mutex_t outer = PTHREAD_MUTEX_INITIALIZER; /* LOCK_SERVICE */
static pthread_rwlock_t middle = PTHREAD_RWLOCK_INITIALIZER; /* LOCK_PUB */
static pthread_mutex_t inner = PTHREAD_MUTEX_INITIALIZER; /* LOCK_RESYNC */
static pthread_mutex_t twin = PTHREAD_MUTEX_INITIALIZER;  /* LOCK_RESYNC too */
static pthread_mutex_t plain = PTHREAD_MUTEX_INITIALIZER; /* not registered */

static void
rank_all(void)
{
	lockorder_register(&outer, LOCK_SERVICE, "test outer");
	lockorder_register(&middle, LOCK_PUB, "test middle");
	lockorder_register(&inner, LOCK_RESYNC, "test inner");
	lockorder_register(&twin, LOCK_RESYNC, "test twin");
}

TestSuite(lockorder, .init = rank_all);

Test(lockorder, nesting_in_rank_order_passes)
{
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(pthread_mutex_lock(&outer), 0);
		cr_assert_eq(pthread_rwlock_rdlock(&middle), 0);
		cr_assert_eq(pthread_mutex_lock(&inner), 0);
		cr_assert_eq(pthread_mutex_lock(&plain), 0);
		cr_assert_eq(pthread_mutex_unlock(&plain), 0);
		cr_assert_eq(pthread_mutex_unlock(&inner), 0);
		cr_assert_eq(pthread_rwlock_unlock(&middle), 0);
		cr_assert_eq(pthread_mutex_unlock(&outer), 0);
	}
	/* released out of order, then taken again from the outside */
	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	cr_assert_eq(pthread_rwlock_wrlock(&middle), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
	cr_assert_eq(pthread_rwlock_unlock(&middle), 0);
	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
}

Test(lockorder, a_condition_wait_gives_its_mutex_up)
{
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	struct timespec t;

	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	cr_assert_eq(pthread_mutex_lock(&inner), 0);
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_nsec += 1000000; /* 1 ms */
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	cr_assert_neq(pthread_cond_timedwait(&c, &inner, &t), 0, "nobody signals");
	cr_assert_eq(pthread_mutex_unlock(&inner), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
	/* the thread holds nothing now: outer is free to take */
	cr_assert_eq(pthread_mutex_trylock(&outer), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
}

#ifdef HD_LOCK_ORDER

Test(lockorder, a_lower_rank_under_a_higher_one_aborts, .signal = SIGABRT)
{
	pthread_mutex_lock(&inner);
	pthread_mutex_lock(&outer); /* resync, then service: never */
}

Test(lockorder, a_rwlock_under_a_higher_rank_aborts, .signal = SIGABRT)
{
	pthread_mutex_lock(&inner);
	pthread_rwlock_rdlock(&middle);
}

Test(lockorder, two_locks_of_one_rank_do_not_nest, .signal = SIGABRT)
{
	pthread_mutex_lock(&inner);
	pthread_mutex_lock(&twin);
}

Test(lockorder, a_forgotten_lock_is_not_checked)
{
	pthread_mutex_t m;

	pthread_mutex_init(&m, NULL);
	lockorder_register(&m, LOCK_SERVICE, "test forgotten");
	cr_assert_eq(pthread_mutex_destroy(&m), 0); /* forgets it */
	pthread_mutex_init(&m, NULL);
	cr_assert_eq(pthread_mutex_lock(&inner), 0);
	cr_assert_eq(pthread_mutex_lock(&m), 0);
	cr_assert_eq(pthread_mutex_unlock(&m), 0);
	cr_assert_eq(pthread_mutex_unlock(&inner), 0);
	pthread_mutex_destroy(&m);
}

#else

Test(lockorder, release_builds_check_nothing)
{
	/* the wrong order works (and costs nothing) without HD_LOCK_ORDER */
	cr_assert_eq(pthread_mutex_lock(&inner), 0);
	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
	cr_assert_eq(pthread_mutex_unlock(&inner), 0);
}

#endif
