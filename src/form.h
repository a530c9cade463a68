/*
 * form.h -- application/x-www-form-urlencoded parsing and encoding.
 *
 * form_parse turns a request body into a read-only set of fields; the
 * PBX handlers read their arguments from it with form_get.  form_from_json
 * builds the same set from a flat JSON object, so a handler treats both
 * content types alike.  struct form_out builds the one-line answers
 * ("result=retry&tries_left=2").
 *
 * Rules (both parsers):
 *   1. Percent-decoding is strict: "%" must be followed by two hex digits;
 *      "%zz" or a truncated "%" is an error, never passed through.
 *   2. '+' decodes to a space (form bodies and query strings only).
 *   3. A key or value that contains a NUL byte (raw or "%00") is an error.
 *   4. A key given twice is an error ("duplicate field X"), not "last
 *      wins": a client that sends two codes gets a 400, not a guess.
 *   5. Empty pieces ("a=1&&b=2", a trailing '&') are skipped; "a" alone
 *      means "a" with an empty value; an empty key ("=v") is an error.
 *   6. Every key and value is a NUL-terminated string owned by the form.
 *
 * Nothing here does I/O or logs; errors fill a caller's buffer.
 */
#ifndef HD_FORM_H
#define HD_FORM_H

#include <stdbool.h>
#include <stddef.h>

struct form;

/* Parses len bytes of body (need not be NUL-terminated).  Returns a new
 * form (caller frees with form_free), or NULL with err filled ("bad
 * percent escape in field 'x'", "duplicate field x", "out of memory"...).
 * An empty body gives an empty form. */
struct form *form_parse(const char *body, size_t len, char *err, size_t errlen);

/* Converts a flat JSON object into a form.  Values may be strings (kept
 * as is), integers ("42"), reals (shortest round-tripping "%g" text),
 * booleans ("true"/"false") or null (the field is left out, as if absent).
 * A nested object or array, a string with a NUL, duplicate keys, or a
 * document that is not an object is an error naming the key.  Returns 0
 * with *out set (caller frees), or -1 with err filled and *out NULL. */
int form_from_json(const char *body, size_t len, struct form **out,
                   char *err, size_t errlen);

/* The value of key, or NULL if absent.  Borrowed until form_free. */
const char *form_get(const struct form *f, const char *key);
/* Number of fields.  NULL-safe (0). */
size_t form_count(const struct form *f);
/* The i-th field in the order given (i < form_count); borrowed. */
const char *form_key(const struct form *f, size_t i);
const char *form_value(const struct form *f, size_t i);
/* Frees the form and all its strings.  NULL-safe. */
void form_free(struct form *f);

/*
 * Strict percent-decoding of len bytes of in into out, which must have room
 * for len + 1 bytes; the result is NUL-terminated.  With plus_space, '+'
 * becomes a space.  Returns the decoded length, or -1 on a bad or truncated
 * escape or when the result would contain a NUL byte.  Can't fail otherwise.
 */
long form_unescape(const char *in, size_t len, bool plus_space, char *out);

/*
 * The answer builder.  Declare with FORM_OUT_INIT (or zero it), add pairs,
 * then form_out_finish.  Keys and values are percent-encoded: the RFC 3986
 * unreserved characters (A-Z a-z 0-9 - . _ ~) are kept, every other byte
 * becomes %XX (a space is "%20").  An allocation failure is remembered and
 * reported by form_out_finish, so callers need not check every add.
 */
struct form_out {
	char *buf;
	size_t len;
	size_t cap;
	bool oom;
};
#define FORM_OUT_INIT { NULL, 0, 0, false }

/* Appends "key=value" (with a '&' before it unless first).  A NULL value
 * is sent as empty.  Returns 0, or -1 on out of memory. */
int form_out_add(struct form_out *o, const char *key, const char *value);
/* Returns the malloc'd NUL-terminated "k=v&k2=v2" ("" if nothing was
 * added) with its length in *len (len may be NULL), and resets o.  Returns
 * NULL if any add ran out of memory (o is reset too). */
char *form_out_finish(struct form_out *o, size_t *len);
/* Drops whatever o holds without producing it.  NULL-safe. */
void form_out_discard(struct form_out *o);

#endif
