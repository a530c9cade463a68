/*
 * slab.c -- size-class allocator for published files (see slab.h).
 *
 * Classes: 64, 128, ..., SLAB_MAX bytes.  Each class carves its slots from
 * chunks of CHUNK bytes mapped from the system, aligned to CHUNK, so that
 * a slot finds its chunk by masking its address.  A chunk keeps its own
 * free slots and the count of slots in use; the chunks of a class that
 * have room are on the class's list.  A chunk whose last slot is freed is
 * unmapped (one empty chunk per class is kept for the next allocation), so
 * a re-render whose files moved to another class (a line added to every
 * file) gives the old class's memory back instead of keeping both.
 */
#include "slab.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "bigmap.h"
#include "lockorder.h"

#define GRAIN 64
#define NCLASS (SLAB_MAX / GRAIN)
#define CHUNK (256 * 1024)

struct free_slot {
	struct free_slot *next;
};

struct chunk {
	struct chunk *prev, *next; /* on its class's list while it has room */
	struct free_slot *free;    /* its freed slots */
	size_t live;               /* slots in use */
	size_t carved;             /* end of the carved part (offset from the chunk) */
	unsigned cls;
	bool listed;
};

/* slots start here: the header rounded up to the grain */
#define FIRST_SLOT ((sizeof(struct chunk) + GRAIN - 1) / GRAIN * GRAIN)

static struct {
	pthread_mutex_t mu;
	struct chunk *room[NCLASS];  /* chunks with a free or uncarved slot */
	struct chunk *spare[NCLASS]; /* an empty chunk kept for the class */
	size_t chunks;               /* chunks mapped */
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

/* A chunk of CHUNK bytes aligned to CHUNK, or NULL. */
static struct chunk *
chunk_map(void)
{
	struct chunk *ch = bigmap_aligned(CHUNK, CHUNK);

	if (ch != NULL)
		slab.chunks++;
	return ch;
}

static void
chunk_unmap(struct chunk *ch)
{
	munmap(ch, CHUNK);
	slab.chunks--;
}

static void
link_room(struct chunk *ch)
{
	ch->prev = NULL;
	ch->next = slab.room[ch->cls];
	if (ch->next != NULL)
		ch->next->prev = ch;
	slab.room[ch->cls] = ch;
	ch->listed = true;
}

static void
unlink_room(struct chunk *ch)
{
	if (ch->prev != NULL)
		ch->prev->next = ch->next;
	else
		slab.room[ch->cls] = ch->next;
	if (ch->next != NULL)
		ch->next->prev = ch->prev;
	ch->prev = ch->next = NULL;
	ch->listed = false;
}

static bool
has_room(const struct chunk *ch, size_t size)
{
	return ch->free != NULL || ch->carved + size <= CHUNK;
}

void *
slab_alloc(size_t n)
{
	struct chunk *ch;
	size_t c, size;
	void *p = NULL;

	if (n > SLAB_MAX)
		return malloc(n);
	c = class_of(n);
	size = (c + 1) * GRAIN;
	pthread_mutex_lock(&slab.mu);
	if ((ch = slab.room[c]) == NULL) {
		if ((ch = slab.spare[c]) != NULL)
			slab.spare[c] = NULL;
		else if ((ch = chunk_map()) == NULL)
			goto out;
		ch->free = NULL;
		ch->live = 0;
		ch->carved = FIRST_SLOT;
		ch->cls = (unsigned)c;
		link_room(ch);
	}
	if (ch->free != NULL) {
		p = ch->free;
		ch->free = ch->free->next;
	} else {
		p = (char *)ch + ch->carved;
		ch->carved += size;
	}
	ch->live++;
	if (!has_room(ch, size))
		unlink_room(ch);
out:
	pthread_mutex_unlock(&slab.mu);
	return p;
}

void
slab_free(void *p, size_t n)
{
	struct free_slot *s = p;
	struct chunk *ch;

	if (p == NULL)
		return;
	if (n > SLAB_MAX) {
		free(p);
		return;
	}
	ch = (struct chunk *)((uintptr_t)p & ~(uintptr_t)(CHUNK - 1));
	pthread_mutex_lock(&slab.mu);
	s->next = ch->free;
	ch->free = s;
	if (--ch->live == 0) {
		/* empty: back to the system, or the class's spare */
		if (ch->listed)
			unlink_room(ch);
		if (slab.spare[ch->cls] == NULL)
			slab.spare[ch->cls] = ch;
		else
			chunk_unmap(ch);
	} else if (!ch->listed) {
		link_room(ch);
	}
	pthread_mutex_unlock(&slab.mu);
}

size_t
slab_footprint(void)
{
	size_t n;

	pthread_mutex_lock(&slab.mu);
	n = slab.chunks * (size_t)CHUNK;
	pthread_mutex_unlock(&slab.mu);
	return n;
}
