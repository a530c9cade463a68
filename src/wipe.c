/*
 * wipe.c -- freeing and growing memory that may hold secrets (wipe.h).
 */
#include "wipe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

void
wipe_free(char *s)
{
	if (s != NULL) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

int
wipe_grow(char **p, size_t *cap, size_t used, size_t need)
{
	size_t ncap = *cap ? *cap : 256;
	char *n;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -1;
		ncap *= 2;
	}
	if ((n = malloc(ncap)) == NULL)
		return -1;
	if (*p != NULL) {
		memcpy(n, *p, used);
		sodium_memzero(*p, *cap);
		free(*p);
	}
	*p = n;
	*cap = ncap;
	return 0;
}
