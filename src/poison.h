/*
 * poison.h -- marks memory of a block allocator unusable under
 * AddressSanitizer: an object given back to a block that is not freed
 * on its own (the world's arena, the publisher's entries made at
 * start-up) is poisoned, so a use after it was replaced or deleted is
 * still reported.  Without ASan both are no-ops.
 */
#ifndef HD_POISON_H
#define HD_POISON_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HD_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(HD_ASAN)
#define HD_ASAN 1
#endif

#ifdef HD_ASAN
#include <sanitizer/asan_interface.h>
#define HD_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
/* before a block is unmapped: a later mapping there starts clean */
#define HD_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define HD_POISON(p, n) ((void)(p), (void)(n))
#define HD_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#endif
