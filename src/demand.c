/*
 * demand.c -- whether a *30 move is under way (see demand.h).
 */
#include "demand.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "idle.h"
#include "lockorder.h"
#include "metrics.h"

/* moves under way, their code checks aside */
static atomic_int moving;
/* when the last one ended (metrics_now_ns; 0: none yet) */
static atomic_uint_fast64_t last_end;
/* jobs waiting for the moves (demand_move_wait), woken by the last end */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ended = PTHREAD_COND_INITIALIZER;
static atomic_int waiters;

#ifdef HD_LOCK_ORDER
/* a static lock: ranked before main() runs (lockorder.h) */
__attribute__((constructor)) static void
rank_lock(void)
{
	lockorder_register(&mu, LOCK_DEMAND, "move demand");
}
#endif

/* the calling thread's move: under way, checking its code; the thread
 * ends it once settled (demand_settle_ahead) */
static _Thread_local bool tl_on, tl_paused, tl_settles;

void
demand_move_begin(void)
{
	if (tl_on)
		return;
	tl_on = true;
	tl_paused = false;
	atomic_fetch_add(&moving, 1);
}

/* One move less under way: the last one wakes the jobs that wait. */
static void
counted_off(void)
{
	if (atomic_fetch_sub(&moving, 1) == 1 && atomic_load(&waiters) > 0) {
		pthread_mutex_lock(&mu);
		pthread_cond_broadcast(&ended);
		pthread_mutex_unlock(&mu);
	}
}

static void
move_end(void)
{
	if (!tl_on)
		return;
	/* the end's time before the count drops: a job that sees none
	 * under way sees this end */
	atomic_store(&last_end, metrics_now_ns());
	if (!tl_paused)
		counted_off();
	tl_on = tl_paused = false;
}

void
demand_move_end(void)
{
	if (!tl_settles)
		move_end();
}

void
demand_settle_ahead(void)
{
	tl_settles = true;
}

void
demand_settled(void)
{
	tl_settles = false;
	move_end();
}

void
demand_move_pause(void)
{
	if (!tl_on || tl_paused)
		return;
	tl_paused = true;
	counted_off();
}

void
demand_move_resume(void)
{
	if (!tl_on || !tl_paused)
		return;
	tl_paused = false;
	atomic_fetch_add(&moving, 1);
}

bool
demand_move_now(void)
{
	uint64_t end;

	if (atomic_load(&moving) > 0)
		return true;
	end = atomic_load(&last_end);
	return end != 0 && metrics_now_ns() - end < DEMAND_MOVE_GRACE_NS;
}

void
demand_move_wait(uint64_t max_ns)
{
	struct timespec until;
	uint64_t end;

	if (!demand_move_now())
		return;
	/* asleep until the last move under way ends (no polling: each
	 * wake-up would take a CPU from the move) */
	until = deadline_in(max_ns);
	atomic_fetch_add(&waiters, 1);
	pthread_mutex_lock(&mu);
	while (atomic_load(&moving) > 0)
		if (pthread_cond_timedwait(&ended, &mu, &until) != 0)
			break;
	pthread_mutex_unlock(&mu);
	atomic_fetch_sub(&waiters, 1);
	/* then its grace */
	end = atomic_load(&last_end);
	if (atomic_load(&moving) == 0 && end != 0) {
		uint64_t now = metrics_now_ns();

		if (now - end < DEMAND_MOVE_GRACE_NS) {
			struct timespec t = { 0, (long)(DEMAND_MOVE_GRACE_NS - (now - end)) };

			nanosleep(&t, NULL);
		}
	}
}
