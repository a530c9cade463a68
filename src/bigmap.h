/*
 * bigmap.h -- zeroed anonymous memory for the large tables filled at
 * start-up (the world's rows and indexes, the publisher's entries), in
 * huge pages where the kernel gives them, present at once.
 *
 * A restart touches every page of these tables once.  On a virtual
 * machine each first touch of a 4 KiB page costs a fault in the guest
 * and often one in the host: mapped with MAP_POPULATE, 28 MB written one
 * byte per 280 took 41-45 ms after the mapping; in 2 MiB pages 0.3 ms.
 * A mapping of 2 MiB or more is therefore aligned to 2 MiB, marked
 * MADV_HUGEPAGE and populated (MADV_POPULATE_WRITE); a smaller one is
 * mapped with MAP_POPULATE.  Where transparent huge pages are off
 * (/sys/kernel/mm/transparent_hugepage/enabled: never) or the kernel has
 * none free, the pages are 4 KiB ones, as before; a kernel without
 * MADV_POPULATE_WRITE (before 5.14) faults them in on first use.  The
 * kernel may compact memory to find huge pages (its defrag setting):
 * once, at start-up or when a table grows past 2 MiB.
 */
#ifndef HD_BIGMAP_H
#define HD_BIGMAP_H

#include <stddef.h>

/* len bytes of zeroed memory aligned to align (a power of two, a multiple
 * of the page), mapped as they are (not populated), or NULL; munmap
 * gives them back. */
void *bigmap_aligned(size_t len, size_t align);
/* The length bigmap_alloc(n) maps (what bigmap_free is given back). */
size_t bigmap_len(size_t n);
/* n zeroed bytes (bigmap_len(n) mapped), or NULL. */
void *bigmap_alloc(size_t n);
/* Unmaps what bigmap_alloc(n) gave.  NULL-safe. */
void bigmap_free(void *p, size_t n);
/* A hash table of n zeroed slots of size bytes, as calloc(n, size):
 * calloc's under 2 MiB, else bigmap_alloc's; NULL when out of memory or
 * when n * size does not fit.  bigmap_table_free is given the same n and
 * size.  NULL-safe. */
void *bigmap_table(size_t n, size_t size);
void bigmap_table_free(void *p, size_t n, size_t size);

#endif
