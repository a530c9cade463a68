/*
 * slab.c -- size-class allocator for published files (see slab.h).
 *
 * Classes: 64, 128, ..., SLAB_MAX bytes.  Each class carves its slots from
 * 256 KiB chunks taken from malloc and keeps freed slots on a singly
 * linked free list threaded through the slots themselves.
 */
#include "slab.h"

#include <pthread.h>
#include <stdlib.h>

#include "lockorder.h"

#define GRAIN 64
#define NCLASS (SLAB_MAX / GRAIN)
#define CHUNK (256 * 1024)

struct free_slot {
	struct free_slot *next;
};

static struct {
	pthread_mutex_t mu;
	struct free_slot *free[NCLASS];
	char *cur[NCLASS];  /* carving position in the class's current chunk */
	size_t left[NCLASS]; /* bytes left there */
} slab = { .mu = PTHREAD_MUTEX_INITIALIZER };

#ifdef HD_LOCK_ORDER
/* a static lock: ranked before main() runs (lockorder.h) */
__attribute__((constructor)) static void
rank_lock(void)
{
	lockorder_register(&slab.mu, LOCK_SLAB, "slab");
}
#endif

static size_t
class_of(size_t n)
{
	return n == 0 ? 0 : (n - 1) / GRAIN;
}

void *
slab_alloc(size_t n)
{
	size_t c, size;
	void *p = NULL;

	if (n > SLAB_MAX)
		return malloc(n);
	c = class_of(n);
	size = (c + 1) * GRAIN;
	pthread_mutex_lock(&slab.mu);
	if (slab.free[c] != NULL) {
		p = slab.free[c];
		slab.free[c] = slab.free[c]->next;
	} else {
		if (slab.left[c] < size) {
			/* the tail of the old chunk is too small for a slot of
			 * this class: it is left unused (at most one slot) */
			if ((slab.cur[c] = malloc(CHUNK)) == NULL) {
				slab.left[c] = 0;
				goto out;
			}
			slab.left[c] = CHUNK;
		}
		p = slab.cur[c];
		slab.cur[c] += size;
		slab.left[c] -= size;
	}
out:
	pthread_mutex_unlock(&slab.mu);
	return p;
}

void
slab_free(void *p, size_t n)
{
	struct free_slot *s = p;
	size_t c;

	if (p == NULL)
		return;
	if (n > SLAB_MAX) {
		free(p);
		return;
	}
	c = class_of(n);
	pthread_mutex_lock(&slab.mu);
	s->next = slab.free[c];
	slab.free[c] = s;
	pthread_mutex_unlock(&slab.mu);
}
