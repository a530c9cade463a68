/*
 * test_guard.c -- the brute-force state machine of guard.c (SPEC 2.4).
 */
#include <criterion/criterion.h>

#include "guard.h"
#include "testutil.h"

/* The CONFIG.md defaults. */
static const struct guard_policy defaults = {
	.tries_per_call = 3, .threshold = 10, .window = 900, .backoff = 60, .backoff_max = 3600,
};

Test(guard, policy_valid)
{
	struct guard_policy p = defaults;

	cr_assert(guard_policy_valid(&p));
	p.backoff_max = 59;
	cr_assert_not(guard_policy_valid(&p));
	p = defaults;
	p.tries_per_call = 0;
	cr_assert_not(guard_policy_valid(&p));
	p = defaults;
	p.window = 0;
	cr_assert_not(guard_policy_valid(&p));
	cr_assert_not(guard_policy_valid(NULL));
}

Test(guard, retry_retry_hangup)
{
	struct guard_call call = {0};
	struct guard_pair pair = {0};
	struct guard_outcome o;

	cr_assert_not(guard_call_exhausted(&defaults, &call));
	o = guard_on_failure(&defaults, &call, &pair, 1000);
	cr_assert_eq(o.tries_left, 2);
	cr_assert_not(o.hangup);
	cr_assert_not(o.newly_locked);
	cr_assert_not(guard_call_exhausted(&defaults, &call));

	o = guard_on_failure(&defaults, &call, &pair, 1001);
	cr_assert_eq(o.tries_left, 1);
	cr_assert_not(o.hangup);
	cr_assert_not(guard_call_exhausted(&defaults, &call));

	o = guard_on_failure(&defaults, &call, &pair, 1002);
	cr_assert_eq(o.tries_left, 0);
	cr_assert(o.hangup);
	cr_assert(call.hung_up);
	cr_assert(guard_call_exhausted(&defaults, &call));
	cr_assert_eq(pair.failures_in_window, 3);
	cr_assert_not(guard_locked(&defaults, &pair, 1002));
}

Test(guard, exhausted_call_stays_exhausted)
{
	struct guard_call call = {0};
	struct guard_pair pair = {0};
	struct guard_outcome o;

	for (int i = 0; i < 3; i++)
		guard_on_failure(&defaults, &call, &pair, 10);
	cr_assert(guard_call_exhausted(&defaults, &call));
	/* a failure reported anyway still hangs up and is counted for the pair */
	o = guard_on_failure(&defaults, &call, &pair, 11);
	cr_assert(o.hangup);
	cr_assert_eq(o.tries_left, 0);
	cr_assert_eq(call.failures, 3);
	cr_assert_eq(pair.failures_in_window, 4);
	cr_assert(guard_call_exhausted(&defaults, &call));

	/* hung_up alone is enough */
	struct guard_call c2 = {.failures = 0, .hung_up = true};
	cr_assert(guard_call_exhausted(&defaults, &c2));
}

Test(guard, one_try_per_call)
{
	struct guard_policy p = defaults;
	struct guard_call call = {0};
	struct guard_pair pair = {0};
	struct guard_outcome o;

	p.tries_per_call = 1;
	o = guard_on_failure(&p, &call, &pair, 0);
	cr_assert(o.hangup);
	cr_assert_eq(o.tries_left, 0);
}

Test(guard, new_call_gets_fresh_tries)
{
	struct guard_call c1 = {0}, c2 = {0};
	struct guard_pair pair = {0};
	struct guard_outcome o;

	for (int i = 0; i < 3; i++)
		guard_on_failure(&defaults, &c1, &pair, 100 + i);
	o = guard_on_failure(&defaults, &c2, &pair, 110);
	cr_assert_eq(o.tries_left, 2);
	cr_assert_not(o.hangup);
	cr_assert_eq(pair.failures_in_window, 4);
}

Test(guard, window_expiry_restarts_count)
{
	struct guard_pair pair = {0};
	struct guard_call call;

	for (int i = 0; i < 9; i++) {
		call = (struct guard_call){0};
		guard_on_failure(&defaults, &call, &pair, 1000 + i);
	}
	cr_assert_eq(pair.failures_in_window, 9);
	cr_assert_eq(pair.window_start, 1000);

	/* still inside the window at start + window - 1 */
	call = (struct guard_call){0};
	struct guard_pair inside = pair;
	struct guard_outcome o = guard_on_failure(&defaults, &call, &inside, 1000 + 899);
	cr_assert(o.newly_locked);

	/* at start + window the window has expired: the count restarts at 1 */
	call = (struct guard_call){0};
	o = guard_on_failure(&defaults, &call, &pair, 1000 + 900);
	cr_assert_not(o.newly_locked);
	cr_assert_eq(pair.failures_in_window, 1);
	cr_assert_eq(pair.window_start, 1900);
	cr_assert_not(guard_locked(&defaults, &pair, 1900));
}

Test(guard, lockout_after_threshold)
{
	struct guard_pair pair = {0};
	struct guard_call call;
	struct guard_outcome o = {0};

	for (int i = 0; i < 10; i++) {
		call = (struct guard_call){0};
		o = guard_on_failure(&defaults, &call, &pair, 5000 + i);
		if (i < 9) {
			cr_assert_not(o.newly_locked, "locked early at failure %d", i + 1);
			cr_assert_not(guard_locked(&defaults, &pair, 5000 + i));
		}
	}
	cr_assert(o.newly_locked);
	cr_assert_eq(o.locked_until, 5009 + 60);
	cr_assert_eq(pair.locked_until, 5009 + 60);
	cr_assert_eq(pair.lock_level, 1);
	cr_assert_eq(pair.failures_in_window, 0);
	cr_assert(guard_locked(&defaults, &pair, 5009));
	cr_assert(guard_locked(&defaults, &pair, 5009 + 59));
	cr_assert_not(guard_locked(&defaults, &pair, 5009 + 60));
	/* the call that caused it still gets its own retry answer */
	cr_assert_eq(o.tries_left, 2);
}

/* Locks the pair once more, starting at now; returns the lock's end. */
static long long
lock_once(const struct guard_policy *p, struct guard_pair *pair, long long now)
{
	struct guard_outcome o = {0};
	struct guard_call call = {0};

	for (int i = 0; i < p->threshold; i++) {
		call = (struct guard_call){0};
		o = guard_on_failure(p, &call, pair, now);
	}
	cr_assert(o.newly_locked);
	return o.locked_until;
}

Test(guard, backoff_doubles_and_caps)
{
	struct guard_pair pair = {0};
	long long now = 100000, until;
	long long expect[] = {60, 120, 240, 480, 960, 1920, 3600, 3600, 3600};

	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		until = lock_once(&defaults, &pair, now);
		cr_assert_eq(until - now, expect[i], "lock %zu lasted %lld, expected %lld", i,
		             until - now, expect[i]);
		now = until; /* the next attempts come when the lock has ended */
	}
	cr_assert_eq(guard_lock_duration(&defaults, 0), 60);
	cr_assert_eq(guard_lock_duration(&defaults, 6), 3600);
	/* no overflow however high the level */
	cr_assert_eq(guard_lock_duration(&defaults, 1000), 3600);
}

Test(guard, success_resets_window_and_level)
{
	struct guard_pair pair = {0};
	struct guard_call call = {0};
	long long until;

	until = lock_once(&defaults, &pair, 0);
	until = lock_once(&defaults, &pair, until);
	cr_assert_eq(pair.lock_level, 2);
	guard_on_failure(&defaults, &call, &pair, until);
	cr_assert_eq(pair.failures_in_window, 1);

	guard_on_success(&pair);
	cr_assert_eq(pair.failures_in_window, 0);
	cr_assert_eq(pair.lock_level, 0);
	/* next lock starts again at the first backoff */
	long long start = until + 10;
	cr_assert_eq(lock_once(&defaults, &pair, start) - start, 60);
}

Test(guard, threshold_one_locks_at_first_failure)
{
	struct guard_policy p = defaults;
	struct guard_pair pair = {0};
	struct guard_call call = {0};
	struct guard_outcome o;

	p.threshold = 1;
	o = guard_on_failure(&p, &call, &pair, 7);
	cr_assert(o.newly_locked);
	cr_assert(guard_locked(&p, &pair, 7));
	cr_assert_eq(o.locked_until, 67);
}

Test(guard, lock_never_shortens)
{
	struct guard_policy p = defaults;
	struct guard_pair pair = {0};
	struct guard_call call = {0};

	p.threshold = 1;
	pair.locked_until = 10000; /* an earlier, longer lock */
	guard_on_failure(&p, &call, &pair, 100);
	cr_assert_eq(pair.locked_until, 10000);
}

Test(guard, idle_pairs)
{
	struct guard_pair pair = {0};
	struct guard_call call = {0};

	cr_assert(guard_pair_idle(&defaults, &pair, 0));
	guard_on_failure(&defaults, &call, &pair, 100);
	cr_assert_not(guard_pair_idle(&defaults, &pair, 100));
	cr_assert(guard_pair_idle(&defaults, &pair, 100 + 900));

	long long until = lock_once(&defaults, &pair, 2000);
	cr_assert_not(guard_pair_idle(&defaults, &pair, until)); /* lock level remembered */
	guard_on_success(&pair);
	cr_assert(guard_pair_idle(&defaults, &pair, until));
}

Test(guard, redial_record_lives_for_the_window)
{
	struct guard_policy p = defaults;
	struct guard_call call = {0};
	struct guard_pair pair = {0};

	p.redial_window = 120;
	guard_on_failure(&p, &call, &pair, 1000);
	guard_on_failure(&p, &call, &pair, 1050);
	cr_assert_eq(call.last_failure, 1050);
	guard_redial_expire(&p, &call, 1169); /* 119 s after the last failure */
	cr_assert_eq(call.failures, 2);
	cr_assert_eq(guard_call_room(&p, &call), 1);
	guard_redial_expire(&p, &call, 1170);
	cr_assert_eq(call.failures, 0);
	cr_assert_eq(guard_call_room(&p, &call), 3);
	/* a zero window keeps nothing across calls */
	p.redial_window = 0;
	guard_on_failure(&p, &call, &pair, 2000);
	guard_redial_expire(&p, &call, 2000);
	cr_assert_eq(call.failures, 0);
	p.redial_window = -1;
	cr_assert_not(guard_policy_valid(&p));
}

Test(guard, room_counts_down_to_zero)
{
	struct guard_policy p = defaults;
	struct guard_call call = {0};
	struct guard_pair pair = {0};

	p.threshold = 4;
	cr_assert_eq(guard_pair_room(&p, &pair, 100), 4);
	guard_on_failure(&p, &call, &pair, 100);
	cr_assert_eq(guard_call_room(&p, &call), 2);
	cr_assert_eq(guard_pair_room(&p, &pair, 100), 3);
	cr_assert_eq(guard_pair_room(&p, &pair, 100 + 900), 4); /* window over */
	guard_on_failure(&p, &call, &pair, 101);
	guard_on_failure(&p, &call, &pair, 102);
	cr_assert_eq(guard_call_room(&p, &call), 0);
	cr_assert(call.hung_up);
	call = (struct guard_call){0};
	guard_on_failure(&p, &call, &pair, 103); /* the 4th: locked */
	cr_assert_eq(guard_pair_room(&p, &pair, 104), 0);
	cr_assert_eq(guard_pair_room(&p, &pair, pair.locked_until), 4);
}
