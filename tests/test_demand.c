/*
 * test_demand.c -- whether a *30 move is under way (demand.h): a move
 * counts from its begin to its end and for the grace after it, not while
 * it checks its code; begin twice counts once, an end without a begin
 * does nothing; a thread that settles ahead ends its move once settled;
 * a move on one thread is seen from another; a job's wait ends with the
 * move, and at its bound while a move never ends.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "demand.h"

/* Sleeps past the grace after a move's end. */
static void
past_grace(void)
{
	struct timespec t = { 0, (long)(3 * DEMAND_MOVE_GRACE_NS) };

	nanosleep(&t, NULL);
}

Test(demand, no_move_no_demand)
{
	cr_assert_not(demand_move_now());
	demand_move_end(); /* without a begin: nothing */
	demand_move_pause();
	demand_move_resume();
	cr_assert_not(demand_move_now(), "an end without a begin counts nothing");
	demand_move_wait(1000000000ull); /* returns at once */
}

Test(demand, a_move_counts_until_its_end_and_its_grace)
{
	demand_move_begin();
	cr_assert(demand_move_now());
	demand_move_end();
	past_grace();
	cr_assert_not(demand_move_now(), "over once the grace is past");
}

Test(demand, a_code_check_is_not_a_move)
{
	demand_move_begin();
	demand_move_pause();
	cr_assert_not(demand_move_now(), "checking its code, a move leaves the CPUs");
	demand_move_resume();
	cr_assert(demand_move_now());
	demand_move_pause();
	demand_move_end(); /* ended while paused: counted off once */
	past_grace();
	cr_assert_not(demand_move_now());
}

Test(demand, begin_twice_counts_once)
{
	demand_move_begin();
	demand_move_begin();
	demand_move_end();
	past_grace();
	cr_assert_not(demand_move_now(), "one end ends it");
}

Test(demand, a_thread_that_settles_ends_its_move_once_settled)
{
	demand_settle_ahead();
	demand_move_begin();
	demand_move_end(); /* the files and NOTIFYs are still to come */
	past_grace();
	cr_assert(demand_move_now(), "under way until settled");
	demand_settled();
	past_grace();
	cr_assert_not(demand_move_now());
	/* settled without a move: nothing */
	demand_settle_ahead();
	demand_settled();
	cr_assert_not(demand_move_now());
}

struct mover {
	atomic_int phase; /* 1 begun, 2 told to end, 3 ended */
};

static void *
move_elsewhere(void *arg)
{
	struct mover *m = arg;
	struct timespec t = { 0, 1000000 };

	demand_move_begin();
	atomic_store(&m->phase, 1);
	while (atomic_load(&m->phase) != 2)
		nanosleep(&t, NULL);
	demand_move_end();
	atomic_store(&m->phase, 3);
	return NULL;
}

Test(demand, a_move_on_another_thread_is_seen_and_ends_a_wait)
{
	struct mover m = { 0 };
	struct timespec t = { 0, 1000000 };
	pthread_t th;

	cr_assert_eq(pthread_create(&th, NULL, move_elsewhere, &m), 0);
	while (atomic_load(&m.phase) != 1)
		nanosleep(&t, NULL);
	cr_assert(demand_move_now(), "seen from this thread");
	atomic_store(&m.phase, 2);
	/* bounded by an hour: it returns because the move ended */
	demand_move_wait(3600ull * 1000000000ull);
	cr_assert_eq(atomic_load(&m.phase), 3, "the wait ended with the move");
	cr_assert_not(demand_move_now());
	pthread_join(th, NULL);
}

Test(demand, a_wait_ends_at_its_bound_while_a_move_never_does)
{
	demand_move_begin();
	demand_move_wait(2000000ull); /* 2 ms: returns although the move goes on */
	cr_assert(demand_move_now());
	demand_move_end();
}
