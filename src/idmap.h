/*
 * idmap.h -- a hash map from 64-bit integer keys to pointers.
 *
 * Open addressing with linear probing and tombstones; capacity a power of
 * two, grown at 50% load.  Zero-initialised is an empty map.  The map does
 * not own the values.  Not thread-safe: callers lock.
 */
#ifndef HD_IDMAP_H
#define HD_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_slot {
	int64_t key;
	void *val; /* NULL empty, IDMAP_TOMB deleted */
};

struct idmap {
	struct idmap_slot *s;
	size_t cap, used, live; /* used counts tombstones too */
};

/* The value for key, or NULL. */
void *idmap_get(const struct idmap *m, int64_t key);
/* Inserts or replaces (val must not be NULL).  0, or -1 out of memory. */
int idmap_put(struct idmap *m, int64_t key, void *val);
void idmap_del(struct idmap *m, int64_t key);
/* Makes room for n keys in all, so that as many inserts never grow the
 * table (loading thousands at once: no rehash, no copy).  Never shrinks.
 * 0, or -1 out of memory (the map unchanged). */
int idmap_reserve(struct idmap *m, size_t n);
size_t idmap_count(const struct idmap *m);
/* Calls cb for each value until it returns non-zero (returned). */
typedef int (*idmap_cb)(void *val, void *arg);
int idmap_each(const struct idmap *m, idmap_cb cb, void *arg);
/* Frees the table (not the values); the map is empty again. */
void idmap_free(struct idmap *m);

#endif
