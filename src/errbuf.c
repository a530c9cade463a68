/*
 * errbuf.c -- filling caller-supplied error buffers (see errbuf.h).
 */
#include "errbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
hd_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	r = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (r < 0)
		err[0] = '\0';
	else if ((size_t)r >= errlen && errlen > 4)
		memcpy(err + errlen - 4, "...", 4);
}
