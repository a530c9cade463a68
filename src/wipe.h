/*
 * wipe.h -- memory that may hold secrets (SIP passwords, secret codes,
 * tokens): freed only after it is wiped, grown without realloc (which could
 * leave an unwiped copy behind).
 */
#ifndef HD_WIPE_H
#define HD_WIPE_H

#include <stddef.h>

/* Wipes a NUL-terminated string and frees it.  NULL-safe. */
void wipe_free(char *s);

/*
 * Makes *p (cap bytes, of which used are in use) hold at least need bytes:
 * a new block of a doubled size receives the used bytes, and the old block
 * is wiped and freed.  Returns 0, or -1 on overflow or out of memory (*p
 * unchanged).
 */
int wipe_grow(char **p, size_t *cap, size_t used, size_t need);

#endif
