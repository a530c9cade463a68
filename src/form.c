/*
 * form.c -- application/x-www-form-urlencoded parsing and encoding, and the
 * flat-JSON equivalent (see form.h for the rules).
 *
 * A struct form is built once and then read only.  All its strings live in
 * one block (data) sized before filling, so a form is three allocations
 * whatever its size.  Invariants of a finished form:
 *   1. n <= cap, and every key[i] / val[i] points into data, NUL-terminated;
 *   2. no key is empty, no two keys are equal, no string holds a NUL;
 *   3. fields keep the order in which the client sent them.
 * Duplicates are found by sorting a copy of the key index (n log n), so a
 * hostile body of many tiny fields cannot make the check quadratic.
 * Values may be secrets (a PBX "code"): form_free wipes them.
 */
#include "form.h"

#include "errbuf.h"
#include "hex.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

struct form {
	size_t n, cap;      /* fields used / allocated */
	char **key, **val;  /* n entries each, pointing into data */
	char *data;
	size_t data_len, data_cap;
};



/* Copies a client-supplied name into buf for an error message: at most
 * 40 bytes, anything not printable ASCII shown as '?'. */
static const char *
safe_name(const char *s, size_t len, char *buf, size_t buflen)
{
	size_t i, n = len < buflen - 1 ? len : buflen - 1;

	if (n > 40)
		n = 40;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	buf[i] = '\0';
	return buf;
}

long
form_unescape(const char *in, size_t len, bool plus_space, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '%') {
			if (len - i < 3)
				return -1;
			int h = hex_value((unsigned char)in[i + 1]);
			int l = hex_value((unsigned char)in[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = (unsigned char)(h * 16 + l);
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		if (c == '\0')
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (long)o;
}

void
form_free(struct form *f)
{
	if (f == NULL)
		return;
	free(f->key);
	free(f->val);
	/* values may be secrets (a PBX "code"): wipe before freeing */
	if (f->data != NULL)
		sodium_memzero(f->data, f->data_cap);
	free(f->data);
	free(f);
}

/* A form with room for nfields fields and data_cap bytes of strings, or
 * NULL when out of memory. */
static struct form *
form_alloc(size_t nfields, size_t data_cap)
{
	struct form *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	if (nfields == 0)
		nfields = 1;
	if (data_cap == 0)
		data_cap = 1;
	f->cap = nfields;
	f->data_cap = data_cap;
	f->key = calloc(nfields, sizeof(*f->key));
	f->val = calloc(nfields, sizeof(*f->val));
	f->data = malloc(data_cap);
	if (f->key == NULL || f->val == NULL || f->data == NULL) {
		form_free(f);
		return NULL;
	}
	return f;
}

static int
cmp_keyp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the first duplicated key of f, or NULL if keys are unique.
 * Sets *oom on allocation failure. */
static const char *
find_duplicate(const struct form *f, bool *oom)
{
	const char *dup = NULL;
	char **idx;
	size_t i;

	*oom = false;
	if (f->n < 2)
		return NULL;
	idx = malloc(f->n * sizeof(*idx));
	if (idx == NULL) {
		*oom = true;
		return NULL;
	}
	memcpy(idx, f->key, f->n * sizeof(*idx));
	qsort(idx, f->n, sizeof(*idx), cmp_keyp);
	for (i = 1; i < f->n && dup == NULL; i++)
		if (strcmp(idx[i - 1], idx[i]) == 0)
			dup = idx[i];
	free(idx);
	return dup;
}

/* Checks invariant 2 on a filled form; fills err and returns -1 if broken. */
static int
check_unique(const struct form *f, char *err, size_t errlen)
{
	bool oom;
	char name[48];
	const char *dup = find_duplicate(f, &oom);

	if (oom) {
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (dup != NULL) {
		hd_seterr(err, errlen, "duplicate field %s",
		       safe_name(dup, strlen(dup), name, sizeof(name)));
		return -1;
	}
	return 0;
}

struct form *
form_parse(const char *body, size_t len, char *err, size_t errlen)
{
	struct form *f;
	size_t i, nf = 1, pos = 0;
	char name[48];

	if (body == NULL)
		len = 0;
	for (i = 0; i < len; i++)
		if (body[i] == '&')
			nf++;
	/* Each piece decodes to at most its own length plus two NULs (key and
	 * value), and there are nf pieces covering len - (nf - 1) bytes. */
	f = form_alloc(nf, len + 2 * nf);
	if (f == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	while (pos < len) {
		const char *p = body + pos;
		const char *amp = memchr(p, '&', len - pos);
		size_t plen = amp ? (size_t)(amp - p) : len - pos;
		const char *eq = memchr(p, '=', plen);
		size_t klen = eq ? (size_t)(eq - p) : plen;
		const char *v = eq ? eq + 1 : p + plen;
		size_t vlen = eq ? plen - klen - 1 : 0;
		long r;

		pos += plen + (amp ? 1 : 0);
		if (plen == 0)
			continue; /* "a=1&&b=2", trailing '&' */
		if (klen == 0) {
			hd_seterr(err, errlen, "empty field name");
			goto fail;
		}
		f->key[f->n] = f->data + f->data_len;
		r = form_unescape(p, klen, true, f->key[f->n]);
		if (r <= 0) {
			hd_seterr(err, errlen, r == 0 ? "empty field name" :
			       "bad percent escape or NUL in field name '%s'",
			       safe_name(p, klen, name, sizeof(name)));
			goto fail;
		}
		f->data_len += (size_t)r + 1;
		f->val[f->n] = f->data + f->data_len;
		r = form_unescape(v, vlen, true, f->val[f->n]);
		if (r < 0) {
			hd_seterr(err, errlen, "bad percent escape or NUL in field %s",
			       safe_name(f->key[f->n], strlen(f->key[f->n]),
			                 name, sizeof(name)));
			goto fail;
		}
		f->data_len += (size_t)r + 1;
		f->n++;
	}
	if (check_unique(f, err, errlen) < 0)
		goto fail;
	return f;
fail:
	form_free(f);
	return NULL;
}

/* Text for a JSON scalar into buf (which has room for 64 bytes), or the
 * string value itself through *s.  Returns 1 for a value, 0 for null (left
 * out), -1 for a nested value. */
static int
json_scalar_text(json_t *v, char *buf, size_t buflen, const char **s, size_t *slen)
{
	int r = 0;

	switch (json_typeof(v)) {
	case JSON_STRING:
		*s = json_string_value(v);
		*slen = json_string_length(v);
		return 1;
	case JSON_INTEGER:
		r = snprintf(buf, buflen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL: {
		double d = json_real_value(v);
		/* The shortest text that reads back as the same double. */
		for (int prec = 15; prec <= 17; prec++) {
			r = snprintf(buf, buflen, "%.*g", prec, d);
			if (r > 0 && (size_t)r < buflen && strtod(buf, NULL) == d)
				break;
		}
		break;
	}
	case JSON_TRUE:
		r = snprintf(buf, buflen, "true");
		break;
	case JSON_FALSE:
		r = snprintf(buf, buflen, "false");
		break;
	case JSON_NULL:
		return 0;
	default:
		return -1;
	}
	if (r < 0 || (size_t)r >= buflen)
		return -1; /* cannot happen with 64 bytes; treat as unusable */
	*s = buf;
	*slen = (size_t)r;
	return 1;
}

/* jansson's message without the "near '<token>'" it quotes: the token may
 * be a value (a secret code), and an error message never shows input
 * values.  Cuts text in place and returns it. */
static const char *
json_msg_no_token(char *text)
{
	char *near = strstr(text, " near '");

	if (near != NULL)
		*near = '\0';
	return text;
}

int
form_from_json(const char *body, size_t len, struct form **out,
               char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *k;
	struct form *f = NULL;
	size_t need = 0;
	char name[48], num[64];

	*out = NULL;
	root = json_loadb(body ? body : "", body ? len : 0,
	                  JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		if (strstr(jerr.text, "duplicate") != NULL)
			hd_seterr(err, errlen, "duplicate field: %s", jerr.text);
		else
			hd_seterr(err, errlen, "bad JSON at line %d column %d: %s",
			       jerr.line, jerr.column, json_msg_no_token(jerr.text));
		return -1;
	}
	if (!json_is_object(root)) {
		hd_seterr(err, errlen, "JSON body is not an object");
		goto fail;
	}
	/* First pass: validate and size. */
	json_object_foreach(root, k, v) {
		const char *s;
		size_t slen, klen = strlen(k);
		int r = json_scalar_text(v, num, sizeof(num), &s, &slen);

		if (klen == 0) {
			hd_seterr(err, errlen, "empty field name");
			goto fail;
		}
		if (r < 0) {
			hd_seterr(err, errlen, "field %s: nested values are not allowed",
			       safe_name(k, klen, name, sizeof(name)));
			goto fail;
		}
		if (r == 1 && memchr(s, '\0', slen) != NULL) {
			hd_seterr(err, errlen, "field %s: NUL in value",
			       safe_name(k, klen, name, sizeof(name)));
			goto fail;
		}
		if (r == 1)
			need += klen + slen + 2;
	}
	f = form_alloc(json_object_size(root), need);
	if (f == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	/* Second pass: copy.  json_object_foreach keeps insertion order
	 * (jansson >= 2.8), so fields keep the client's order. */
	json_object_foreach(root, k, v) {
		const char *s;
		size_t slen, klen = strlen(k);

		if (json_scalar_text(v, num, sizeof(num), &s, &slen) != 1)
			continue;
		f->key[f->n] = f->data + f->data_len;
		memcpy(f->key[f->n], k, klen + 1);
		f->data_len += klen + 1;
		f->val[f->n] = f->data + f->data_len;
		memcpy(f->val[f->n], s, slen);
		f->val[f->n][slen] = '\0';
		f->data_len += slen + 1;
		f->n++;
	}
	json_decref(root);
	*out = f;
	return 0;
fail:
	form_free(f);
	json_decref(root);
	return -1;
}

const char *
form_get(const struct form *f, const char *key)
{
	size_t i;

	if (f == NULL || key == NULL)
		return NULL;
	for (i = 0; i < f->n; i++)
		if (strcmp(f->key[i], key) == 0)
			return f->val[i];
	return NULL;
}

size_t
form_count(const struct form *f)
{
	return f ? f->n : 0;
}

const char *
form_key(const struct form *f, size_t i)
{
	return (f && i < f->n) ? f->key[i] : NULL;
}

const char *
form_value(const struct form *f, size_t i)
{
	return (f && i < f->n) ? f->val[i] : NULL;
}

/* ---- the encoder ---- */

static bool
unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* Makes room for extra more bytes plus a NUL.  Returns 0 or -1 (oom set). */
static int
out_reserve(struct form_out *o, size_t extra)
{
	size_t want, ncap;
	char *nb;

	if (o->oom)
		return -1;
	if (extra > SIZE_MAX / 2 - o->len) {
		o->oom = true;
		return -1;
	}
	want = o->len + extra + 1;
	if (want <= o->cap)
		return 0;
	ncap = o->cap ? o->cap : 64;
	while (ncap < want)
		ncap *= 2;
	nb = realloc(o->buf, ncap);
	if (nb == NULL) {
		o->oom = true;
		return -1;
	}
	o->buf = nb;
	o->cap = ncap;
	return 0;
}

static void
out_encode(struct form_out *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (unreserved(c)) {
			o->buf[o->len++] = (char)c;
		} else {
			o->buf[o->len++] = '%';
			o->buf[o->len++] = hex[c >> 4];
			o->buf[o->len++] = hex[c & 15];
		}
	}
	o->buf[o->len] = '\0';
}

int
form_out_add(struct form_out *o, const char *key, const char *value)
{
	size_t kl, vl;

	if (value == NULL)
		value = "";
	kl = strlen(key);
	vl = strlen(value);
	if (kl > SIZE_MAX / 8 || vl > SIZE_MAX / 8) {
		o->oom = true;
		return -1;
	}
	/* Worst case every byte becomes %XX, plus '&' and '='. */
	if (out_reserve(o, 3 * kl + 3 * vl + 2) < 0)
		return -1;
	if (o->len > 0)
		o->buf[o->len++] = '&';
	out_encode(o, key);
	o->buf[o->len++] = '=';
	out_encode(o, value);
	return 0;
}

char *
form_out_finish(struct form_out *o, size_t *len)
{
	char *res;

	if (o->oom || out_reserve(o, 0) < 0) {
		form_out_discard(o);
		return NULL;
	}
	o->buf[o->len] = '\0';
	res = o->buf;
	if (len != NULL)
		*len = o->len;
	o->buf = NULL;
	o->len = o->cap = 0;
	o->oom = false;
	return res;
}

void
form_out_discard(struct form_out *o)
{
	if (o == NULL)
		return;
	free(o->buf);
	o->buf = NULL;
	o->len = o->cap = 0;
	o->oom = false;
}
