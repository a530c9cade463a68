/*
 * csv.c -- RFC 4180 reader and writer (see csv.h).
 *
 * The reader is one pass over the bytes with a small state machine
 * (field start, unquoted, quoted, quote seen inside quotes).  Field bytes
 * are copied into one arena as large as the input plus a NUL per field, so
 * a record's fields are pointers into it and freeing is two calls.
 */
#include "csv.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

static int
fail(char *err, size_t errlen, int line, int col, const char *msg)
{
	hd_seterr(err, errlen, "line %d, column %d: %s", line, col, msg);
	return -1;
}

/* Length of the UTF-8 sequence at p (at most n bytes), or 0 if invalid. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t k;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		k = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		k = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		k = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (k > n)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (k == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return k;
}

struct rd {
	struct csv *c;
	char *w;                       /* write position in the arena */
	char *fstart;                  /* start of the current field */
	char *fields[CSV_MAX_FIELDS];
	int nf;
	int line;                      /* current line */
	int rec_line;                  /* line where the record started */
	bool any;                      /* the record has a byte or a separator */
};

static int
end_field(struct rd *r, char *err, size_t errlen)
{
	if (r->nf == CSV_MAX_FIELDS)
		return fail(err, errlen, r->rec_line, r->nf + 1, "too many fields");
	*r->w++ = '\0';
	r->fields[r->nf++] = r->fstart;
	r->fstart = r->w;
	return 0;
}

static int
end_record(struct rd *r, char *err, size_t errlen)
{
	struct csv *c = r->c;
	struct csv_record *rec;

	if (end_field(r, err, errlen) != 0)
		return -1;
	if (!r->any && r->nf == 1) { /* an empty line */
		r->nf = 0;
		return 0;
	}
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 64;
		struct csv_record *v = realloc(c->rec, ncap * sizeof(*v));

		if (v == NULL)
			return fail(err, errlen, 0, 0, "out of memory");
		c->rec = v;
		c->cap = ncap;
	}
	rec = &c->rec[c->n];
	if ((rec->fields = malloc((size_t)r->nf * sizeof(char *))) == NULL)
		return fail(err, errlen, 0, 0, "out of memory");
	memcpy(rec->fields, r->fields, (size_t)r->nf * sizeof(char *));
	rec->n = r->nf;
	rec->line = r->rec_line;
	c->n++;
	r->nf = 0;
	r->any = false;
	return 0;
}

int
csv_parse(const char *buf, size_t len, struct csv *out, char *err, size_t errlen)
{
	enum { START, PLAIN, QUOTED, QUOTE_SEEN } st = START;
	const unsigned char *p = (const unsigned char *)buf, *end = p + len;
	struct rd r = { 0 };

	memset(out, 0, sizeof(*out));
	r.c = out;
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	/* each byte is copied at most once, plus a NUL per field: a field ends
	 * at a separator or a line end, so fields <= bytes + 1 */
	if ((out->arena = malloc(len + 2)) == NULL)
		return fail(err, errlen, 0, 0, "out of memory");
	r.w = r.fstart = out->arena;
	r.line = r.rec_line = 1;
	while (p < end) {
		unsigned char ch = *p;
		size_t k;

		if (ch == '\0')
			goto bad_nul;
		if (st == QUOTED) {
			if (ch == '"') {
				st = QUOTE_SEEN;
				p++;
				continue;
			}
			if (ch == '\n')
				r.line++;
		} else {
			if (st == QUOTE_SEEN && ch != ',' && ch != '\n' && ch != '\r') {
				if (ch != '"') {
					fail(err, errlen, r.line, r.nf + 1, "text after a closing quote");
					goto failed;
				}
				st = QUOTED; /* "" inside quotes */
				*r.w++ = '"';
				p++;
				continue;
			}
			if (ch == ',') {
				r.any = true;
				if (end_field(&r, err, errlen) != 0)
					goto failed;
				st = START;
				p++;
				continue;
			}
			if (ch == '\r' || ch == '\n') {
				if (ch == '\r' && (p + 1 >= end || p[1] != '\n')) {
					fail(err, errlen, r.line, r.nf + 1, "carriage return without line feed");
					goto failed;
				}
				p += ch == '\r' ? 2 : 1;
				if (end_record(&r, err, errlen) != 0)
					goto failed;
				r.line++;
				r.rec_line = r.line;
				st = START;
				continue;
			}
			if (ch == '"') {
				if (st != START) {
					fail(err, errlen, r.line, r.nf + 1, "quote inside an unquoted field");
					goto failed;
				}
				st = QUOTED;
				r.any = true;
				p++;
				continue;
			}
			st = PLAIN;
		}
		if ((k = utf8_len(p, (size_t)(end - p))) == 0) {
			fail(err, errlen, r.line, r.nf + 1, "invalid UTF-8");
			goto failed;
		}
		if ((size_t)(r.w - r.fstart) + k > CSV_MAX_FIELD) {
			fail(err, errlen, r.line, r.nf + 1, "field too long");
			goto failed;
		}
		r.any = true;
		memcpy(r.w, p, k);
		r.w += k;
		p += k;
	}
	if (st == QUOTED) {
		fail(err, errlen, r.rec_line, r.nf + 1, "quote not closed");
		goto failed;
	}
	if ((r.any || r.nf > 0) && end_record(&r, err, errlen) != 0)
		goto failed;
	return 0;
bad_nul:
	fail(err, errlen, r.line, r.nf + 1, "NUL byte");
failed:
	csv_free(out);
	return -1;
}

void
csv_free(struct csv *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->rec[i].fields);
	free(c->rec);
	free(c->arena);
	memset(c, 0, sizeof(*c));
}

/* ---- writer ------------------------------------------------------------- */

static void
out_add(struct csv_out *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t ncap = o->cap ? o->cap : 256;
		char *b;

		while (ncap < o->len + n + 1)
			ncap *= 2;
		if ((b = realloc(o->buf, ncap)) == NULL) {
			o->failed = 1;
			return;
		}
		o->buf = b;
		o->cap = ncap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

void
csv_put(struct csv_out *o, const char *s)
{
	size_t n;

	if (s == NULL)
		s = "";
	n = strlen(s);
	if (o->col++ > 0)
		out_add(o, ",", 1);
	/* a leading byte-order mark is quoted: at the start of a document the
	 * reader would take it for the file's own and drop it */
	if (strpbrk(s, ",\"\r\n") == NULL && (n == 0 || (s[0] != ' ' && s[n - 1] != ' ')) &&
	    strncmp(s, "\xef\xbb\xbf", 3) != 0) {
		out_add(o, s, n);
		return;
	}
	out_add(o, "\"", 1);
	for (const char *q; (q = strchr(s, '"')) != NULL; s = q + 1) {
		out_add(o, s, (size_t)(q - s) + 1);
		out_add(o, "\"", 1);
	}
	out_add(o, s, strlen(s));
	out_add(o, "\"", 1);
}

void
csv_endl(struct csv_out *o)
{
	out_add(o, "\r\n", 2);
	o->col = 0;
}

void
csv_out_free(struct csv_out *o)
{
	if (o == NULL)
		return;
	free(o->buf);
	memset(o, 0, sizeof(*o));
}
