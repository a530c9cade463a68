/*
 * idmap.h -- a hash map from 64-bit integer keys to pointers.
 *
 * Open addressing with linear probing and tombstones; capacity a power of
 * two, grown at 50% load.  Zero-initialised is an empty map.  The map does
 * not own the values.  Not thread-safe: callers lock.
 */
#ifndef HD_IDMAP_H
#define HD_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idmap_slot {
	int64_t key;
	void *val; /* NULL empty, IDMAP_TOMB deleted */
};

struct idmap {
	struct idmap_slot *s;
	size_t cap, used, live; /* used counts tombstones too */
	unsigned long gen;      /* counts the rebuilds of the table */
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
/*
 * A walk in steps, with the map's lock released between them: a value
 * stays in its slot until the table is rebuilt (a grow, or tombstones
 * swept), so a walk sees every value that was there all along; values
 * put meanwhile may be seen or not, deleted ones may have been.  Start
 * from a zeroed cursor; each step calls cb for the values of up to n
 * slots and returns cb's first non-zero return, else 0.  A step that
 * finds the table rebuilt since the last one walks nothing, sets
 * `restarted` and goes back to the first slot: what the earlier steps
 * gave is to be forgotten.  `done` is set once the last slot was walked.
 */
struct idmap_walk {
	size_t pos;
	unsigned long gen;
	bool done, restarted;
};
int idmap_walk_step(const struct idmap *m, struct idmap_walk *c, size_t n, idmap_cb cb,
                    void *arg);
/* Frees the table (not the values); the map is empty again. */
void idmap_free(struct idmap *m);

#endif
