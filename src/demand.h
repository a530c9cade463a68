/*
 * demand.h -- whether a *30 move is under way, for the jobs that can wait.
 *
 * A job in steps (a template save's dry run and re-render, thousands of
 * devices) keeps both CPUs of a small machine busy: its own thread, and
 * the TFTP writer it feeds.  A move that comes meanwhile waits for the
 * service lock (a step ends when a thread waits for it: svc_wanted), but
 * also for a CPU: for its locked part, then for its files and its first
 * NOTIFYs once it has unlocked.  While a move is under way, and for
 * DEMAND_MOVE_GRACE_NS after it, a job in steps takes no further step
 * (demand_move_wait), leaving the CPUs to the move.  A move's code check
 * (about 100 ms of another thread's CPU) does not count: it needs no CPU
 * the job has.  But its last milliseconds do, while a job in steps runs:
 * the move is back under way a few milliseconds of the hash's CPU time
 * before it ends (service.c's join_ahead), so the job's step has ended
 * when the move goes on.
 */
#ifndef HD_DEMAND_H
#define HD_DEMAND_H

#include <stdbool.h>
#include <stdint.h>

/* after a move ended: its answer sent, its engine woken */
#define DEMAND_MOVE_GRACE_NS 500000ull /* 0.5 ms */

/* A move starts and ends on the calling thread (begin twice counts once,
 * end without begin does nothing).  After demand_settle_ahead, the end
 * waits for demand_settled: the thread publishes the move's files and
 * sends its first NOTIFYs after the move itself. */
void demand_move_begin(void);
void demand_move_end(void);
void demand_settle_ahead(void);
void demand_settled(void);
/* The calling thread's move is checking its code now, and is back. */
void demand_move_pause(void);
void demand_move_resume(void);
/* Whether a move is under way, or one ended within DEMAND_MOVE_GRACE_NS. */
bool demand_move_now(void);
/* Sleeps while demand_move_now, for max_ns at most. */
void demand_move_wait(uint64_t max_ns);

#endif
