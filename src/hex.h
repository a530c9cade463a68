/*
 * hex.h -- the value of a hexadecimal digit, either case (hex_).
 *
 * One table for every decoder of hex text: percent-escapes in URLs and
 * forms, MAC addresses, the hashes of published files.  Not for secrets:
 * a table lookup's timing depends on the digit (sodium_hex2bin is the
 * constant-time one).  Pure.
 */
#ifndef HD_HEX_H
#define HD_HEX_H

/* A digit's value + 1, indexed by its byte; 0 for any other byte. */
extern const unsigned char hex_val1[256];

/* The value 0..15 of the hex digit c, or -1 when c is not one. */
static inline int
hex_value(unsigned char c)
{
	return (int)hex_val1[c] - 1;
}

#endif
