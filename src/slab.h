/*
 * slab.h -- size-class allocation for published files.
 *
 * A re-render replaces the published files of thousands of devices at once.
 * With malloc, the new files land wherever the current thread's arena has
 * room while the old ones are freed between long-lived objects, and the
 * process keeps both footprints.  A slab keeps all published files in
 * chunks of their own, in size classes of 64 bytes: a freed file's slot is
 * the next file of that class, so a re-render reuses the memory of the
 * files it replaces.  A chunk whose slots are all free goes back to the
 * system: a re-render that moves every file to the next class (a line
 * added to a template) does not keep the old class's memory.
 *
 * Thread-safe: one mutex (allocation is the writer's, frees come from any
 * thread that drops the last reference).
 */
#ifndef HD_SLAB_H
#define HD_SLAB_H

#include <stddef.h>

/* Blocks larger than this come from malloc. */
#define SLAB_MAX 4096

/* n bytes, or NULL when out of memory. */
void *slab_alloc(size_t n);
/* Frees p, allocated with slab_alloc(n) (the same n).  NULL-safe. */
void slab_free(void *p, size_t n);
/* Bytes of the chunks mapped now (what the slab holds of the system). */
size_t slab_footprint(void);

#endif
