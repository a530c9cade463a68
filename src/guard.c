/*
 * guard.c -- the brute-force policy for secret codes (SPEC 2.4).
 *
 * Pure functions over two small records owned by the caller; no I/O, no
 * clock, no globals.  Time is `now` in seconds, passed in.
 *
 * Per call (struct guard_call), for a policy with tries_per_call = T:
 *
 *        failure            failure                  failure (the T-th)
 *   [0] ---------> [1] ---------> ... [T-1] -----------------------> [hung up]
 *        retry,               retry,             hangup, tries_left 0
 *        tries_left T-1       tries_left T-2
 *
 *   guard_on_failure() makes every transition; in [hung up]
 *   guard_call_exhausted() is true and the caller answers hangup without
 *   checking a code.  A call never leaves [hung up].
 *
 * Per pair (struct guard_pair), for threshold N, window W, backoff B,
 * backoff_max M:
 *
 *   OPEN (count c in window [window_start, window_start + W))
 *     -- failure, window expired or none (c == 0) -->
 *          window_start = now, c = 1                    (guard_on_failure)
 *     -- failure inside the window -->  c = c + 1       (guard_on_failure)
 *     -- c reaches N -->  LOCKED: locked_until = now + min(B * 2^level, M),
 *                         level = level + 1, c = 0      (guard_on_failure)
 *     -- right code -->  c = 0, level = 0               (guard_on_success)
 *   LOCKED (now < locked_until)
 *     -- time passes to locked_until -->  OPEN with c = 0
 *        (guard_locked() simply compares with now)
 *
 * Redials (a guard_call kept per (device, extension)): the record lives
 * redial_window seconds after its last failure; guard_redial_expire()
 * forgets it after that, so a user who redials at once keeps the count
 * (and sees the true tries_left) and a user who comes back later starts
 * afresh.  The pair's lockout above still bounds what redials can try.
 *
 * Rules:
 *   R1 0 <= call->failures; call->hung_up iff failures >= T was reached.
 *   R2 0 <= pair->failures_in_window < N after every guard_on_failure.
 *   R3 lock_level counts the locks since the last success; it is what
 *      doubles the backoff, so repeated lockouts grow up to backoff_max.
 *   R4 a lock never shortens: locked_until only moves forward.
 * check_pair() asserts R2-R4's arithmetic side after each transition.
 */
#include "guard.h"

#include <assert.h>
#include <stddef.h>

/* lock_level stops growing here: backoff * 2^62 would overflow anyway */
#define GUARD_LEVEL_MAX 62

static bool
check_pair(const struct guard_policy *p, const struct guard_pair *pair)
{
	return pair->failures_in_window >= 0 && pair->failures_in_window < p->threshold &&
	       pair->lock_level >= 0 && pair->lock_level <= GUARD_LEVEL_MAX;
}

bool
guard_policy_valid(const struct guard_policy *p)
{
	return p != NULL && p->tries_per_call >= 1 && p->threshold >= 1 && p->window >= 1 &&
	       p->backoff >= 1 && p->backoff_max >= p->backoff && p->redial_window >= 0;
}

bool
guard_locked(const struct guard_policy *p, const struct guard_pair *pair, long long now)
{
	return now < pair->locked_until;
}

bool
guard_call_exhausted(const struct guard_policy *p, const struct guard_call *call)
{
	return call->hung_up || call->failures >= p->tries_per_call;
}

void
guard_redial_expire(const struct guard_policy *p, struct guard_call *call, long long now)
{
	if (p->redial_window == 0 || now < call->last_failure ||
	    now - call->last_failure >= p->redial_window) {
		call->failures = 0;
		call->hung_up = false;
		call->last_failure = 0;
	}
}

int
guard_call_room(const struct guard_policy *p, const struct guard_call *call)
{
	return guard_call_exhausted(p, call) ? 0 : p->tries_per_call - call->failures;
}

long long
guard_lock_duration(const struct guard_policy *p, int lock_level)
{
	long long d = p->backoff;

	/* double one step at a time so that the cap stops it before overflow */
	for (int i = 0; i < lock_level && d < p->backoff_max; i++)
		d *= 2;
	return d < p->backoff_max ? d : p->backoff_max;
}

static bool
window_live(const struct guard_policy *p, const struct guard_pair *pair, long long now)
{
	return pair->failures_in_window > 0 && now >= pair->window_start &&
	       now - pair->window_start < p->window;
}

int
guard_pair_room(const struct guard_policy *p, const struct guard_pair *pair, long long now)
{
	if (guard_locked(p, pair, now))
		return 0;
	return p->threshold - (window_live(p, pair, now) ? pair->failures_in_window : 0);
}

struct guard_outcome
guard_on_failure(const struct guard_policy *p, struct guard_call *call,
                 struct guard_pair *pair, long long now)
{
	struct guard_outcome out = {0};
	long long until;

	assert(guard_policy_valid(p));

	/* the call */
	if (call->failures < p->tries_per_call)
		call->failures++;
	call->last_failure = now;
	out.tries_left = p->tries_per_call - call->failures;
	if (out.tries_left <= 0) {
		out.tries_left = 0;
		out.hangup = true;
		call->hung_up = true;
	}

	/* the pair: a failure after the window (or with none) starts a new one */
	if (!window_live(p, pair, now)) {
		pair->window_start = now;
		pair->failures_in_window = 0;
	}
	pair->failures_in_window++;
	if (pair->failures_in_window >= p->threshold) {
		until = now + guard_lock_duration(p, pair->lock_level);
		if (until > pair->locked_until)
			pair->locked_until = until;
		if (pair->lock_level < GUARD_LEVEL_MAX)
			pair->lock_level++;
		pair->failures_in_window = 0;
		out.newly_locked = true;
	}
	out.locked_until = pair->locked_until;
	assert(check_pair(p, pair));
	return out;
}

void
guard_on_success(struct guard_pair *pair)
{
	pair->failures_in_window = 0;
	pair->window_start = 0;
	pair->lock_level = 0;
}

bool
guard_pair_idle(const struct guard_policy *p, const struct guard_pair *pair, long long now)
{
	return !guard_locked(p, pair, now) && pair->lock_level == 0 && !window_live(p, pair, now);
}
