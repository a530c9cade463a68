/*
 * idle.h -- a thread's idle work: what a background thread does while it
 * waits for another one (the service lock, the TFTP writer's queue).
 *
 * The resync engine waits for the service lock while a template save's
 * steps hold it, and for the TFTP writer before each NOTIFY of a
 * re-render; a *30 move's first NOTIFYs, decided in the move's own
 * transaction, need neither and go out while it waits.  Waiters that
 * support it (the service lock's, tftpw_wait) wait in slices of IDLE_MS
 * and run the calling thread's idle work between two.
 */
#ifndef HD_IDLE_H
#define HD_IDLE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define IDLE_MS 2

/* Sets the calling thread's idle work (NULL: none).  fn must not wait
 * for what its waiters wait for (if it does, it waits there like any
 * thread); it never runs from within itself. */
void idle_set(void (*fn)(void *arg), void *arg);
/* The calling thread has idle work and is not running it now. */
bool idle_wanted(void);
/* Runs the calling thread's idle work, if idle_wanted. */
void idle_run(void);
/* The CLOCK_REALTIME time IDLE_MS from now (a timed wait's deadline). */
struct timespec idle_deadline(void);
/* The CLOCK_REALTIME time ns from now: any timed wait's deadline. */
struct timespec deadline_in(uint64_t ns);

#endif
