/*
 * idmap.c -- integer-keyed open-addressing hash map (see idmap.h).
 */
#include "idmap.h"

#include <stdint.h>
#include <stdlib.h>

#include "bigmap.h"

#define TOMB ((void *)-1)

/*
 * Keys are row ids and MACs: mostly runs of neighbours.  Their low 32
 * bits are kept as they are (neighbours land in neighbouring slots, so a
 * load in id order fills the table in order, one cache line after the
 * next, instead of a random line per key); the upper 32 bits are mixed
 * in (MACs of different vendors, ids beyond 2^32).  Keys spaced by a
 * multiple of the table's size would share a probe run: correct, slower.
 */
static uint64_t
hash_id(int64_t k)
{
	uint64_t x = (uint64_t)k;

	return x ^ (x >> 32) * 0x9e3779b97f4a7c15ULL;
}

/* Moves every live key into a new table of ncap slots (tombstones gone).
 * 0, or -1 out of memory (the map unchanged). */
static int
rehash(struct idmap *m, size_t ncap)
{
	struct idmap old = *m;

	if ((m->s = bigmap_table(ncap, sizeof(*m->s))) == NULL) {
		*m = old;
		return -1;
	}
	m->cap = ncap;
	m->used = m->live = 0;
	m->gen++;
	for (size_t i = 0; i < old.cap; i++)
		if (old.s[i].val != NULL && old.s[i].val != TOMB)
			(void)idmap_put(m, old.s[i].key, old.s[i].val); /* cannot fail: room */
	bigmap_table_free(old.s, old.cap, sizeof(*old.s));
	return 0;
}

static int
grow(struct idmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;

	if (m->live * 4 < m->cap) /* mostly tombstones: rehash at the same size */
		ncap = m->cap;
	return rehash(m, ncap);
}

/* The capacity that holds n live keys without growing: a power of two
 * with n under half of it.  0 when that does not fit in size_t. */
static size_t
cap_for(size_t n)
{
	size_t c = 64;

	while (c / 2 <= n) {
		if (c > SIZE_MAX / 4)
			return 0;
		c *= 2;
	}
	return c;
}

int
idmap_reserve(struct idmap *m, size_t n)
{
	size_t ncap = cap_for(n);

	if (ncap == 0)
		return -1;
	return ncap <= m->cap ? 0 : rehash(m, ncap);
}

static struct idmap_slot *
find(const struct idmap *m, int64_t key)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = hash_id(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct idmap_slot *s = &m->s[i];

		if (s->val == NULL)
			return NULL;
		if (s->val != TOMB && s->key == key)
			return s;
	}
}

void *
idmap_get(const struct idmap *m, int64_t key)
{
	struct idmap_slot *s = find(m, key);

	return s ? s->val : NULL;
}

int
idmap_put(struct idmap *m, int64_t key, void *val)
{
	struct idmap_slot *s = find(m, key);

	if (s != NULL) {
		s->val = val;
		return 0;
	}
	if ((m->used + 1) * 2 > m->cap && grow(m) == -1)
		return -1;
	for (size_t i = hash_id(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->s[i].val == NULL || m->s[i].val == TOMB) {
			if (m->s[i].val == NULL)
				m->used++;
			m->s[i].key = key;
			m->s[i].val = val;
			m->live++;
			return 0;
		}
	}
}

void
idmap_del(struct idmap *m, int64_t key)
{
	struct idmap_slot *s = find(m, key);

	if (s != NULL) {
		s->val = TOMB;
		m->live--;
	}
}

size_t
idmap_count(const struct idmap *m)
{
	return m->live;
}

int
idmap_each(const struct idmap *m, idmap_cb cb, void *arg)
{
	for (size_t i = 0; i < m->cap; i++) {
		void *v = m->s[i].val;

		if (v != NULL && v != TOMB) {
			int r = cb(v, arg);

			if (r != 0)
				return r;
		}
	}
	return 0;
}

int
idmap_walk_step(const struct idmap *m, struct idmap_walk *c, size_t n, idmap_cb cb, void *arg)
{
	size_t end;

	c->restarted = c->pos > 0 && c->gen != m->gen;
	if (c->restarted)
		c->pos = 0;
	if (c->pos == 0)
		c->gen = m->gen;
	if (c->restarted)
		return 0;
	end = n < m->cap - c->pos ? c->pos + n : m->cap;
	for (; c->pos < end; c->pos++) {
		void *v = m->s[c->pos].val;

		if (v != NULL && v != TOMB) {
			int r = cb(v, arg);

			if (r != 0) {
				c->pos++;
				return r;
			}
		}
	}
	c->done = c->pos >= m->cap;
	return 0;
}

void
idmap_free(struct idmap *m)
{
	bigmap_table_free(m->s, m->cap, sizeof(*m->s));
	m->s = NULL;
	m->cap = m->used = m->live = 0;
	m->gen++;
}
