/*
 * guard.h -- the brute-force policy for secret codes (SPEC 2.4), pure.
 *
 * Two counters decide what a wrong code costs:
 *   - per call (the PBX's call_id): after tries_per_call wrong codes the
 *     call is hung up and gets no more tries;
 *   - per pair (calling device, target extension): failures are counted in
 *     a window of `window` seconds; reaching `threshold` locks the pair for
 *     backoff * 2^lock_level seconds (capped at backoff_max).
 *
 * This module only holds the rules.  It does no I/O, reads no clock (the
 * caller passes `now`, in seconds) and keeps no tables: the caller owns
 * the guard_call and guard_pair values (zero-initialised = fresh), finds
 * them by call_id / (device, extension), and persists or evicts them.
 *
 * Parallel requests: the caller verifies codes outside its lock, so it
 * reserves a try before each verify and counts reserved tries against
 * guard_call_room() and guard_pair_room(); a verify starts only while
 * room exceeds the reservations (service.c).
 *
 * The caller also decides what a lockout blocks.  In hotdeskd a lockout
 * never blocks a return to base (bare *30, *30 of one's own home
 * extension, return via API or web): those never ask for a code, so the
 * caller never consults the guard for them.
 */
#ifndef HD_GUARD_H
#define HD_GUARD_H

#include <stdbool.h>

struct guard_policy {
	int tries_per_call; /* wrong codes in one call before hangup, >= 1 */
	int threshold;      /* failures per pair in one window before a lock, >= 1 */
	int window;         /* seconds, >= 1 */
	int backoff;        /* first lock, seconds, >= 1 */
	int backoff_max;    /* longest lock, seconds, >= backoff */
	int redial_window;  /* seconds a phone's tries at one target outlive a call
	                     * (0: tries count per call_id only), >= 0 */
};

/*
 * Per call_id, and per (calling device, target extension) across redials
 * within redial_window seconds of the last failure.  Zero-initialised is a
 * fresh call.
 */
struct guard_call {
	int failures;             /* wrong codes so far in this call */
	bool hung_up;             /* the call got a hangup answer: no more tries */
	long long last_failure;   /* when the last wrong code was counted */
};

/* Per (calling device, target extension).  Zero-initialised is fresh. */
struct guard_pair {
	int failures_in_window; /* failures since window_start (0 = no window) */
	long long window_start; /* when the current window began */
	long long locked_until; /* locked while now < locked_until */
	int lock_level;         /* locks since the last success; doubles the backoff */
};

struct guard_outcome {
	int tries_left;         /* tries left in this call (0 with hangup) */
	bool hangup;            /* this failure ends the call's tries */
	bool newly_locked;      /* this failure locked the pair */
	long long locked_until; /* the pair's locked_until after this failure */
};

/* Whether every field is in range (see struct guard_policy). */
bool guard_policy_valid(const struct guard_policy *p);

/* Whether the pair is locked out at `now`.  Cannot fail. */
bool guard_locked(const struct guard_policy *p, const struct guard_pair *pair, long long now);

/* Whether the call has no tries left (it must be answered hangup without
 * checking a code).  Cannot fail. */
bool guard_call_exhausted(const struct guard_policy *p, const struct guard_call *call);

/*
 * Forgets a redial record (a per-device-and-target guard_call) whose last
 * failure is redial_window seconds old or more; a zero redial_window
 * forgets every record (tries are then counted per call_id only).
 * Cannot fail.
 */
void guard_redial_expire(const struct guard_policy *p, struct guard_call *call, long long now);

/* Tries the call may still use (tries_per_call - failures, 0 when hung
 * up); never negative.  Cannot fail. */
int guard_call_room(const struct guard_policy *p, const struct guard_call *call);

/* Failures the pair may still take at `now` before it locks (threshold
 * minus the failures of a live window); 0 while locked.  Cannot fail. */
int guard_pair_room(const struct guard_policy *p, const struct guard_pair *pair, long long now);

/*
 * Records one wrong code entered in `call` by the pair `pair` at `now`;
 * updates both and says what to answer.  The caller is expected to have
 * checked guard_locked() and guard_call_exhausted() first; a failure
 * reported anyway is still counted.  Cannot fail.
 */
struct guard_outcome guard_on_failure(const struct guard_policy *p, struct guard_call *call,
                                      struct guard_pair *pair, long long now);

/* Records a right code for the pair: forgets its window and its lock
 * level (locked_until is left alone: a locked pair is not asked for a
 * code).  Cannot fail. */
void guard_on_success(struct guard_pair *pair);

/*
 * Whether the pair carries nothing worth keeping at `now` (not locked, no
 * lock level, no failures in a live window): the caller may drop it from
 * its table, and a fresh zeroed pair behaves the same.
 */
bool guard_pair_idle(const struct guard_policy *p, const struct guard_pair *pair, long long now);

/* The length in seconds of the lock at `lock_level`: backoff * 2^lock_level,
 * capped at backoff_max. */
long long guard_lock_duration(const struct guard_policy *p, int lock_level);

#endif
