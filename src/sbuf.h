/*
 * sbuf.h -- a bounded appender over a caller's buffer (sbuf_).
 *
 * Builders of messages (SIP requests and responses, SDP) append into a
 * fixed buffer; the first append that does not fit sets `overflow`, every
 * later append is a no-op, and the builder refuses the whole message.  So a
 * truncated message can never be sent.  The text stays NUL-terminated while
 * nothing overflowed.  Pure, cannot fail otherwise.
 */
#ifndef HD_SBUF_H
#define HD_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
	char *buf;
	size_t cap;    /* bytes of buf, the NUL included */
	size_t len;    /* bytes written, the NUL excluded */
	bool overflow;
};

/* An appender over buf[0..cap); cap 0 starts overflowed. */
struct sbuf sbuf_init(char *buf, size_t cap);

void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends n bytes (which may hold anything but must fit with the NUL). */
void sbuf_bytes(struct sbuf *b, const char *p, size_t n);

#endif /* HD_SBUF_H */
