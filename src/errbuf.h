/*
 * errbuf.h -- the caller-supplied error buffer that library-like modules
 * fill instead of logging (STYLE: "return an error code and fill a
 * caller's error buffer").
 */
#ifndef HD_ERRBUF_H
#define HD_ERRBUF_H

#include <stddef.h>

/*
 * printf-formats into err (errlen bytes).  NULL or empty buffers are
 * ignored.  A message cut short by a small buffer ends in "..." so the cut
 * shows; a diagnostic needs nothing more, so truncation is not an error.
 */
void hd_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
