/*
 * csv.h -- RFC 4180 comma-separated values, read and written (pure).
 *
 * The reader takes a whole document (what an administrator exports from a
 * spreadsheet) and gives its records as arrays of NUL-terminated fields,
 * each record with the line number where it starts (a quoted field may
 * span lines).  It accepts CRLF or LF line ends, a UTF-8 byte-order mark
 * at the start, quoted fields with "" for a quote, and a last record
 * without a line end; empty lines are skipped.  It refuses what a
 * spreadsheet never writes, naming the line and the column (1-based field
 * number) of the problem: a NUL byte, a quote inside an unquoted field,
 * text after a closing quote, a quote left open, more than CSV_MAX_FIELDS
 * fields, a field longer than CSV_MAX_FIELD bytes, invalid UTF-8.
 *
 * The writer appends one field or one line end to a growing buffer,
 * quoting only when the field needs it (comma, quote, CR, LF, a
 * leading/trailing blank, or a leading byte-order mark).
 *
 * No I/O, no globals, no clock: safe from any thread.
 */
#ifndef HD_CSV_H
#define HD_CSV_H

#include <stddef.h>

#define CSV_MAX_FIELDS 64
#define CSV_MAX_FIELD 4096

struct csv_record {
	int line;        /* line where the record starts, from 1 */
	int n;           /* number of fields, >= 1 */
	char **fields;   /* n NUL-terminated strings, owned by the csv */
};

struct csv {
	struct csv_record *rec;
	size_t n, cap;
	char *arena;     /* every field's bytes */
};

/*
 * Parses len bytes of buf into out (zeroed by the function).  Returns 0,
 * or -1 with "line L, column C: message" in err (out then holds nothing:
 * csv_free is still safe).  Out of memory is reported the same way with
 * line 0.  Free with csv_free.
 */
int csv_parse(const char *buf, size_t len, struct csv *out, char *err, size_t errlen);
void csv_free(struct csv *c); /* NULL-safe; leaves c empty */

/* A growing output buffer (zero-initialised is empty). */
struct csv_out {
	char *buf;
	size_t len, cap;
	int failed;      /* out of memory once: every later call does nothing */
	int col;         /* fields written on the current line */
};
/* Appends a field (s NULL counts as empty), preceded by a comma unless it
 * is the first of its line. */
void csv_put(struct csv_out *o, const char *s);
/* Ends the line with CRLF. */
void csv_endl(struct csv_out *o);
/* Frees the buffer.  NULL-safe. */
void csv_out_free(struct csv_out *o);

#endif
