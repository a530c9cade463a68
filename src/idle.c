/*
 * idle.c -- a thread's idle work while it waits (see idle.h).
 */
#include "idle.h"

#include <stddef.h>

static _Thread_local void (*tl_fn)(void *);
static _Thread_local void *tl_arg;
static _Thread_local bool tl_running;

void
idle_set(void (*fn)(void *arg), void *arg)
{
	tl_fn = fn;
	tl_arg = arg;
}

bool
idle_wanted(void)
{
	return tl_fn != NULL && !tl_running;
}

void
idle_run(void)
{
	if (!idle_wanted())
		return;
	tl_running = true;
	tl_fn(tl_arg);
	tl_running = false;
}

struct timespec
idle_deadline(void)
{
	return deadline_in(IDLE_MS * 1000000ULL);
}

struct timespec
deadline_in(uint64_t ns)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += (time_t)(ns / 1000000000ULL);
	t.tv_nsec += (long)(ns % 1000000000ULL);
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}
