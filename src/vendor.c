/*
 * vendor.c -- the vendor profile registry, file-name matching, rendering of
 * vendor files, and the loader of templates and static files (vendor.h).
 *
 * Owns: the registry's lookups (the list itself is generated from the
 * vendor_<name>.c files by scripts/mkregistry.sh), the file-name pattern
 * matcher, the compiled templates of every profile (struct
 * vendor_templates), and the well-formedness check of XML output.
 * Does not own: the families' data (vendor_<name>.c), the template
 * language (render.c), serving or publishing files (the HTTP/TFTP layers).
 *
 * Invariants:
 *   V1 every template held in a struct vendor_templates compiled and
 *      rendered well-formed output for the sample devices when installed;
 *   V2 a shared template uses no device variable (only `model`), so a
 *      shared file never carries credentials;
 *   V3 a successful render leaves exactly one complete file appended to the
 *      caller's buffer; a failed one leaves the buffer as it was.
 * The only file-system access is in vendor_templates_load (through
 * fs_read_path).
 */
#include "vendor.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>
#include <sodium.h>

#include "errbuf.h"
#include "fsutil.h"
#include "hex.h"

/* ---- the registry ------------------------------------------------------ */

/* vendor_registry[] itself is generated (scripts/mkregistry.sh) from the
 * vendor_<name>.c files: no family is named here. */

const char *const vendor_language_codes[VENDOR_NLANG] = {
	"en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "pt_PT",
};

bool
vendor_language_ok(const char *code)
{
	for (size_t i = 0; code != NULL && i < VENDOR_NLANG; i++)
		if (strcmp(code, vendor_language_codes[i]) == 0)
			return true;
	return false;
}

const struct vendor_profile *
vendor_profile_by_name(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < vendor_registry_len; i++)
		if (strcmp(vendor_registry[i]->name, name) == 0)
			return vendor_registry[i];
	return NULL;
}

size_t
vendor_profile_index(const struct vendor_profile *p)
{
	for (size_t i = 0; i < vendor_registry_len; i++)
		if (vendor_registry[i] == p)
			return i;
	return SIZE_MAX;
}

/* ---- helpers for the families ------------------------------------------ */

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

size_t
vendor_split(const char *s, struct vendor_tok *tok, size_t max)
{
	size_t n = 0;
	while (s != NULL && *s != '\0' && n < max) {
		while (is_blank(*s))
			s++;
		if (*s == '\0')
			break;
		const char *b = s;
		while (*s != '\0' && !is_blank(*s))
			s++;
		tok[n].s = b;
		tok[n].n = (size_t)(s - b);
		n++;
	}
	return n;
}

bool
vendor_prefix(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && strncasecmp(s, prefix, k) == 0;
}

void
vendor_copy(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t j = 0;
	if (dstlen == 0)
		return;
	for (size_t i = 0; i < n && s[i] != '\0' && j + 1 < dstlen; i++)
		if (s[i] > 0x20 && s[i] < 0x7f)
			dst[j++] = s[i];
	dst[j] = '\0';
}

int
vendor_mac(const char *s, size_t n, char out[13])
{
	size_t j = 0;
	if (n == 12) {
		for (size_t i = 0; i < 12; i++) {
			if (hex_value((unsigned char)s[i]) < 0)
				return -1;
			out[j++] = (char)tolower((unsigned char)s[i]);
		}
	} else if (n == 17) {
		char sep = s[2];
		if (sep != ':' && sep != '-')
			return -1;
		for (size_t i = 0; i < 17; i++) {
			if (i % 3 == 2) {
				if (s[i] != sep)
					return -1;
				continue;
			}
			if (hex_value((unsigned char)s[i]) < 0)
				return -1;
			out[j++] = (char)tolower((unsigned char)s[i]);
		}
	} else {
		return -1;
	}
	out[12] = '\0';
	return 0;
}

int
vendor_mac_in_parens(const char *s, const char *prefix, char out[13])
{
	size_t k = prefix ? strlen(prefix) : 0;
	for (const char *o = strchr(s, '('); o != NULL; o = strchr(o + 1, '(')) {
		const char *c = strchr(o + 1, ')');
		if (c == NULL)
			return -1;
		const char *b = o + 1;
		size_t n = (size_t)(c - b);
		if (k > 0) {
			if (!vendor_prefix(b, n, prefix))
				continue;
			b += k;
			n -= k;
		}
		if (vendor_mac(b, n, out) == 0)
			return 0;
	}
	return -1;
}

const char *
vendor_transport(const struct vendor_profile *p, const char *transport)
{
	static const char *const names[3] = {"udp", "tcp", "tls"};
	if (transport == NULL || *transport == '\0')
		return "";
	for (int i = 0; i < 3; i++)
		if (strcasecmp(transport, names[i]) == 0)
			return p->transport[i];
	return NULL;
}

const struct vendor_profile *
vendor_parse_user_agent(const char *ua, struct vendor_ua *out)
{
	memset(out, 0, sizeof(*out));
	if (ua == NULL)
		return NULL;
	for (size_t i = 0; i < vendor_registry_len; i++) {
		const struct vendor_profile *p = vendor_registry[i];
		if (p->ops->parse_user_agent == NULL)
			continue;
		if (p->ops->parse_user_agent(ua, out) == 0)
			return p;
		memset(out, 0, sizeof(*out));
	}
	return NULL;
}

int
vendor_notify_body(const struct vendor_profile *p, const struct vendor_notify *in,
                   char *buf, size_t len)
{
	if (p->ops->notify_body == NULL) {
		if (len > 0)
			buf[0] = '\0';
		return 0;
	}
	return p->ops->notify_body(in, buf, len);
}

/* ---- file names -------------------------------------------------------- */

bool
vendor_file_name_ok(const char *name)
{
	if (name == NULL || name[0] == '\0' || name[0] == '.')
		return false;
	size_t n = 0;
	for (const char *s = name; *s != '\0'; s++, n++) {
		char c = *s;
		if (n >= VENDOR_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
		if (c == '.' && s[1] == '.')
			return false;
	}
	return true;
}

static bool
is_model_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static char
ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Matches name against pattern (see vendor.h); captures go to out.  Every
 * phone fetch runs this over the patterns of every family: a literal
 * character costs one comparison, placeholders are looked at only where
 * the pattern has a '{'. */
static bool
pat_match(const char *pat, const char *name, struct vendor_file_match *out)
{
	for (;;) {
		if (*pat == '\0')
			return *name == '\0';
		if (*pat != '{') {
			if (ascii_lower(*pat) != ascii_lower(*name))
				return false;
			pat++;
			name++;
			continue;
		}
		if (strncmp(pat, "{mac}", 5) == 0 || strncmp(pat, "{MAC}", 5) == 0) {
			char mac[13];
			if (strlen(name) < 12 || vendor_mac(name, 12, mac) < 0)
				return false;
			if (!pat_match(pat + 5, name + 12, out))
				return false;
			memcpy(out->mac, mac, sizeof(mac));
			return true;
		}
		if (strncmp(pat, "{code}", 6) == 0) {
			for (int i = 0; i < 3; i++)
				if (name[i] < '0' || name[i] > '9')
					return false;
			if (!pat_match(pat + 6, name + 3, out))
				return false;
			memcpy(out->model, name, 3);
			out->model[3] = '\0';
			return true;
		}
		if (strncmp(pat, "{model}", 7) == 0) {
			for (size_t k = 1; k < sizeof(out->model) && is_model_char(name[k - 1]); k++) {
				if (pat_match(pat + 7, name + k, out)) {
					memcpy(out->model, name, k);
					out->model[k] = '\0';
					return true;
				}
			}
			return false;
		}
		if (*name != '{')
			return false;
		pat++;
		name++;
	}
}

static int
match_in(const struct vendor_profile *p, enum vendor_kind kind,
         const char *name, struct vendor_file_match *out)
{
	const struct vendor_file *v = kind == VENDOR_DEVICE ? p->device_files : p->shared_files;
	size_t n = kind == VENDOR_DEVICE ? p->n_device_files : p->n_shared_files;
	for (size_t i = 0; i < n; i++) {
		struct vendor_file_match m = {.profile = p, .kind = kind, .file_index = i};
		if (pat_match(v[i].pattern, name, &m)) {
			*out = m;
			return 1;
		}
	}
	return 0;
}

int
vendor_profile_match_file(const struct vendor_profile *p, const char *filename,
                          struct vendor_file_match *out)
{
	memset(out, 0, sizeof(*out));
	if (!vendor_file_name_ok(filename))
		return -1;
	if (match_in(p, VENDOR_SHARED, filename, out) || match_in(p, VENDOR_DEVICE, filename, out))
		return 1;
	return 0;
}

int
vendor_match_file(const char *filename, struct vendor_file_match *out)
{
	memset(out, 0, sizeof(*out));
	if (!vendor_file_name_ok(filename))
		return -1;
	for (size_t i = 0; i < vendor_registry_len; i++)
		if (match_in(vendor_registry[i], VENDOR_SHARED, filename, out))
			return 1;
	for (size_t i = 0; i < vendor_registry_len; i++)
		if (match_in(vendor_registry[i], VENDOR_DEVICE, filename, out))
			return 1;
	return 0;
}

int
vendor_file_name(const struct vendor_file *f, const char *mac, const char *model,
                 char *buf, size_t len)
{
	size_t j = 0;
	char lmac[13];
	if (len == 0)
		return -1;
	if (mac != NULL && vendor_mac(mac, strlen(mac), lmac) < 0)
		return -1;
	for (const char *p = f->pattern; *p != '\0';) {
		const char *piece = NULL;
		char tmp[33];
		size_t skip = 1;
		if (*p != '{') {
			/* plain text: most of a pattern (start-up names every
			 * device's files, 100,000s of calls) */
		} else if (strncmp(p, "{mac}", 5) == 0 || strncmp(p, "{MAC}", 5) == 0) {
			if (mac == NULL)
				return -1;
			for (int i = 0; i < 13; i++)
				tmp[i] = p[1] == 'M' ? (char)toupper((unsigned char)lmac[i]) : lmac[i];
			piece = tmp;
			skip = 5;
		} else if (strncmp(p, "{model}", 7) == 0 || strncmp(p, "{code}", 6) == 0) {
			bool code = p[1] == 'c';
			size_t n = model ? strlen(model) : 0;
			if (n == 0 || n >= sizeof(tmp) || (code && n != 3))
				return -1;
			for (size_t i = 0; i < n; i++)
				if (code ? (model[i] < '0' || model[i] > '9') : !is_model_char(model[i]))
					return -1;
			piece = model;
			skip = code ? 6 : 7;
		}
		if (piece != NULL) {
			size_t n = strlen(piece);
			if (j + n >= len)
				return -1;
			memcpy(buf + j, piece, n);
			j += n;
		} else {
			if (j + 1 >= len)
				return -1;
			buf[j++] = *p;
		}
		p += skip;
	}
	buf[j] = '\0';
	return 0;
}

/* ---- values a profile can render ---------------------------------------- */

/* Decodes the UTF-8 character at s (n bytes left) into *cp; returns its
 * length, or 0 when it is not valid UTF-8 (overlong, surrogate, > U+10FFFF,
 * truncated). */
static size_t
utf8_decode(const unsigned char *s, size_t n, unsigned long *cp)
{
	size_t len;
	unsigned long c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, c = s[0] & 0x1f, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, c = s[0] & 0x0f, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, c = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Whether cp may appear in a value: an XML 1.0 Char that is neither a
 * control character (C0, DEL, C1) nor a Unicode noncharacter. */
static bool
renderable_char(unsigned long cp)
{
	if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
		return false;
	if (cp >= 0xfdd0 && cp <= 0xfdef)
		return false;
	return (cp & 0xfffe) != 0xfffe; /* U+FFFE, U+FFFF, U+1FFFE, ... */
}

size_t
vendor_field_max(const struct vendor_profile *p, const char *field)
{
	if (p == NULL || p->field_limits == NULL || field == NULL)
		return 0;
	for (const struct vendor_field_limit *l = p->field_limits; l->field != NULL; l++)
		if (strcmp(l->field, field) == 0)
			return l->max_chars;
	return 0;
}

int
vendor_field_check(const struct vendor_profile *p, const char *field, const char *value,
                   char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)value;
	size_t n, chars = 0;

	if (value == NULL)
		return 0;
	n = strlen(value);
	for (size_t i = 0; i < n; chars++) {
		unsigned long cp;
		size_t k = utf8_decode(s + i, n - i, &cp);

		if (k == 0) {
			hd_seterr(err, errlen, "is not valid UTF-8");
			return -1;
		}
		if (!renderable_char(cp)) {
			hd_seterr(err, errlen, "has a character phones cannot take (a control "
			          "character or a Unicode noncharacter such as U+FFFF)");
			return -1;
		}
		i += k;
	}
	for (size_t i = 0; i < vendor_registry_len; i++) {
		const struct vendor_profile *q = p ? p : vendor_registry[i];
		size_t max = vendor_field_max(q, field);

		if (max != 0 && chars > max) {
			hd_seterr(err, errlen, "is longer than %zu characters, the most %s phones take",
			          max, q->name);
			return -1;
		}
		if (p != NULL)
			break;
	}
	return 0;
}

/* ---- XML check --------------------------------------------------------- */

/* What the parse of a skeleton (render_skeleton) found: the marks in
 * character data and in attribute values (but xml:*), whether a DTD was
 * declared. */
struct skel {
	size_t marks;
	bool dtd;
};

static size_t
count_marks(const xmlChar *p, size_t n)
{
	const xmlChar *end = p + n, *m;
	size_t k = 0;

	for (; (m = memmem(p, (size_t)(end - p), RENDER_MARK, RENDER_MARK_LEN)) != NULL;
	     p = m + RENDER_MARK_LEN)
		k++;
	return k;
}

/* The SAX callbacks of a skeleton's parse: ctx is the parser. */
static struct skel *
skel_of(void *ctx)
{
	return ((xmlParserCtxtPtr)ctx)->_private;
}

static void
skel_chars(void *ctx, const xmlChar *ch, int len)
{
	skel_of(ctx)->marks += count_marks(ch, (size_t)len);
}

/* CDATA sections: marks in them are not counted (without this callback
 * libxml2 hands them to skel_chars) */
static void
skel_cdata(void *ctx, const xmlChar *v, int len)
{
	(void)ctx;
	(void)v;
	(void)len;
}

static void
skel_start(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri,
           int nns, const xmlChar **ns, int nattr, int ndefaulted, const xmlChar **attrs)
{
	(void)local;
	(void)prefix;
	(void)uri;
	(void)nns;
	(void)ns;
	(void)ndefaulted;
	/* five pointers per attribute: name, prefix, URI, value, its end */
	for (int i = 0; i < nattr; i++) {
		const xmlChar **a = attrs + 5 * i;
		if (a[1] == NULL || strcmp((const char *)a[1], "xml") != 0)
			skel_of(ctx)->marks += count_marks(a[3], (size_t)(a[4] - a[3]));
	}
}

static void
skel_dtd(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys)
{
	(void)name;
	(void)ext;
	(void)sys;
	skel_of(ctx)->dtd = true;
}

/* vendor_check_xml; with sk, counts a skeleton's marks too (struct skel). */
static int
check_xml(const char *p, size_t len, struct skel *sk, char *err, size_t errlen)
{
	if (len > (size_t)2147483647) {
		hd_seterr(err, errlen, "document too large");
		return -1;
	}
	if (len == 0) { /* (no parser is made for no input) */
		hd_seterr(err, errlen, "malformed XML, line 1: Document is empty");
		return -1;
	}
	/* parsed with no SAX callback at all: the parser checks that the
	 * document is well-formed (its own stack of open elements) and builds
	 * nothing, half the time of building the tree and freeing it */
	xmlParserCtxtPtr ctxt = xmlCreateMemoryParserCtxt(p, (int)len);
	if (ctxt == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	memset(ctxt->sax, 0, sizeof(*ctxt->sax));
	ctxt->sax->initialized = XML_SAX2_MAGIC;
	if (sk != NULL) {
		ctxt->_private = sk;
		ctxt->sax->characters = skel_chars;
		ctxt->sax->cdataBlock = skel_cdata;
		ctxt->sax->startElementNs = skel_start;
		ctxt->sax->internalSubset = skel_dtd;
		ctxt->sax->externalSubset = skel_dtd;
	}
	(void)xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	(void)xmlParseDocument(ctxt);
	int rc = 0;
	if (!ctxt->wellFormed) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		char msg[160] = "not well-formed XML";
		int line = 0;
		if (e != NULL && e->message != NULL) {
			/* printable ASCII only, without libxml2's trailing newline */
			size_t k = 0;
			for (const char *m = e->message; *m && *m != '\n' && k + 1 < sizeof(msg); m++)
				msg[k++] = (*m >= 0x20 && *m < 0x7f) ? *m : '?';
			msg[k] = '\0';
			line = e->line;
		}
		hd_seterr(err, errlen, "malformed XML, line %d: %s", line, msg);
		rc = -1;
	}
	if (ctxt->myDoc != NULL) /* none without callbacks; as the parser's API says */
		xmlFreeDoc(ctxt->myDoc);
	xmlFreeParserCtxt(ctxt);
	return rc;
}

int
vendor_check_xml(const char *p, size_t len, char *err, size_t errlen)
{
	return check_xml(p, len, NULL, err, errlen);
}

/*
 * ---- the XML check, once per shape -------------------------------------
 *
 * Checking a rendered file with libxml2 costs more than rendering it, and
 * a re-render checks every device's files.  Renders of one template with
 * the same shape (render.h: the sections taken, the keys repeated, the
 * substitutions left empty) differ only in the text of their non-empty
 * values, so one check of the shape's skeleton -- each non-empty value
 * written as the mark U+E000 -- decides for all of them, when:
 *   - the skeleton is well-formed and declares no DTD (no entity of its
 *     own can carry a value elsewhere);
 *   - every mark is in character data or in an attribute value (not
 *     xml:*): libxml2 counts them there, and the count is all the
 *     skeleton's marks (a mark in a name, a comment, a processing
 *     instruction, a CDATA section or the XML declaration is not counted,
 *     and such a shape is checked in full every time);
 *   - the values are plain (render_shape.plain): non-empty, escaped, so
 *     without '<', '>', quotes or a bare '&'; XML characters only (the
 *     renderer refuses controls, U+FFFE and U+FFFF make a render not
 *     plain); and without ']', so that no "]]>" can form; and the text
 *     written as it is in the skeleton (the line keys' numbers) holds no
 *     mark, which would count for a value's.
 * Then putting each value's text in its mark's place keeps character data
 * character data and an attribute value an attribute value, and the
 * render is as well-formed as the skeleton.  Renders that are not plain,
 * shapes beyond the memo's MEMO_MAX, outputs over MEMO_OUT_MAX (far under
 * libxml2's own length limits) and shapes whose skeleton fails are checked
 * in full, as before.  The sample check of a template's save does not use
 * the memo.
 */
#define MEMO_MAX 64
#define MEMO_OUT_MAX (1024 * 1024)

struct memo_entry {
	uint64_t hash;
	size_t n;
	bool ok; /* renders of the shape are well-formed */
	unsigned char b[];
};

struct vendor_xml_memo {
	/* filled in order, never emptied until freed: read without a lock */
	_Atomic(struct memo_entry *) v[MEMO_MAX];
	atomic_size_t skipped;
};

struct vendor_xml_memo *
vendor_xml_memo_new(void)
{
	struct vendor_xml_memo *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < MEMO_MAX; i++)
		atomic_init(&m->v[i], NULL);
	atomic_init(&m->skipped, 0);
	return m;
}

void
vendor_xml_memo_free(struct vendor_xml_memo *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < MEMO_MAX; i++)
		free(atomic_load(&m->v[i]));
	free(m);
}

void
vendor_xml_memo_stats(struct vendor_xml_memo *m, size_t *shapes, size_t *skipped)
{
	size_t n = 0;

	while (n < MEMO_MAX && atomic_load(&m->v[n]) != NULL)
		n++;
	*shapes = n;
	*skipped = atomic_load(&m->skipped);
}

static bool
memo_same(const struct memo_entry *e, const struct render_shape *sh)
{
	return e->hash == sh->hash && e->n == sh->n && memcmp(e->b, sh->b, sh->n) == 0;
}

/* Whether renders of tm shaped as vals' render (sh) are well-formed: its
 * skeleton checked as the comment above says. */
static bool
shape_ok(const struct render_tmpl *tm, const struct render_values *vals)
{
	struct render_buf sk = { 0 };
	struct skel c = { 0 };
	size_t marks = 0;
	char e[128];
	bool ok = render_skeleton(tm, vals, &sk, &marks, e, sizeof(e)) == 0 &&
	          check_xml(sk.p, sk.len, &c, e, sizeof(e)) == 0 && !c.dtd && c.marks == marks;

	render_buf_free(&sk);
	return ok;
}

/* Whether the render of tm with vals, of shape sh and outlen bytes, is
 * known well-formed through m (NULL: no memo); learns its shape when new. */
static bool
memo_knows(struct vendor_xml_memo *m, const struct render_tmpl *tm,
           const struct render_values *vals, const struct render_shape *sh, size_t outlen)
{
	struct memo_entry *fresh;
	size_t i = 0;
	bool ok;

	if (m == NULL || !sh->plain || outlen > MEMO_OUT_MAX)
		return false;
	for (; i < MEMO_MAX; i++) {
		struct memo_entry *e = atomic_load_explicit(&m->v[i], memory_order_acquire);
		if (e == NULL)
			break;
		if (memo_same(e, sh)) {
			ok = e->ok;
			goto out;
		}
	}
	if (i == MEMO_MAX)
		return false;
	ok = shape_ok(tm, vals);
	fresh = malloc(sizeof(*fresh) + sh->n);
	if (fresh == NULL)
		goto out;
	fresh->hash = sh->hash;
	fresh->n = sh->n;
	fresh->ok = ok;
	memcpy(fresh->b, sh->b, sh->n);
	/* another thread may have learned shapes meanwhile, this one too */
	for (; i < MEMO_MAX; i++) {
		struct memo_entry *seen = NULL;
		if (atomic_compare_exchange_strong_explicit(&m->v[i], &seen, fresh,
		                                            memory_order_acq_rel,
		                                            memory_order_acquire))
			goto out;
		if (memo_same(seen, sh))
			break;
	}
	free(fresh);
out:
	if (ok)
		atomic_fetch_add_explicit(&m->skipped, 1, memory_order_relaxed);
	return ok;
}

/* ---- templates --------------------------------------------------------- */

struct vendor_slot {
	struct render_tmpl *tmpl; /* template files */
	char *raw;                /* static files */
	size_t rawlen;
	unsigned char hash[16];   /* of the source (vendor_templates_device_key) */
	struct vendor_xml_memo *memo; /* XML templates: checks per shape */
};

struct vendor_set {
	struct vendor_slot *dev;    /* [n_device_files] */
	struct vendor_slot *shared; /* [n_shared_files] */
};

struct vendor_templates {
	struct vendor_set *sets; /* [vendor_registry_len] */
};

/* Slot k of profile i in t: its per-device files first, then its shared
 * ones. */
static struct vendor_slot *
slot_at(const struct vendor_templates *t, size_t i, size_t k)
{
	size_t ndev = vendor_registry[i]->n_device_files;

	return k < ndev ? &t->sets[i].dev[k] : &t->sets[i].shared[k - ndev];
}

static void
slot_clear(struct vendor_slot *s)
{
	render_tmpl_free(s->tmpl);
	vendor_xml_memo_free(s->memo);
	free(s->raw);
	s->tmpl = NULL;
	s->memo = NULL;
	s->raw = NULL;
	s->rawlen = 0;
}

void
vendor_templates_free(struct vendor_templates *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; t->sets != NULL && i < vendor_registry_len; i++) {
		const struct vendor_profile *p = vendor_registry[i];
		for (size_t k = 0; t->sets[i].dev && k < p->n_device_files; k++)
			slot_clear(&t->sets[i].dev[k]);
		for (size_t k = 0; t->sets[i].shared && k < p->n_shared_files; k++)
			slot_clear(&t->sets[i].shared[k]);
		free(t->sets[i].dev);
		free(t->sets[i].shared);
	}
	free(t->sets);
	free(t);
}

static struct vendor_templates *
templates_new(void)
{
	struct vendor_templates *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->sets = calloc(vendor_registry_len, sizeof(*t->sets));
	if (t->sets == NULL)
		goto fail;
	for (size_t i = 0; i < vendor_registry_len; i++) {
		const struct vendor_profile *p = vendor_registry[i];
		t->sets[i].dev = calloc(p->n_device_files + 1, sizeof(struct vendor_slot));
		t->sets[i].shared = calloc(p->n_shared_files + 1, sizeof(struct vendor_slot));
		if (t->sets[i].dev == NULL || t->sets[i].shared == NULL)
			goto fail;
	}
	return t;
fail:
	vendor_templates_free(t);
	return NULL;
}

/* Sample devices every template must render for (V1).  The hostile one
 * carries each character that needs escaping, non-ASCII text and a long
 * value; none has CR/LF, which the KV format refuses by design. */
static const char hostile_pw[] =
    "p&ss<w>rd\"'$x$$ ü€😀 "
    "0123456789012345678901234567890123456789012345678901234567890123456789"
    "0123456789012345678901234567890123456789012345678901234567890123456789";

static void
sample_inputs(struct render_input in[4])
{
	memset(in, 0, 4 * sizeof(*in));
	for (int i = 0; i < 4; i++) {
		in[i].mac = "0004f2a1b2c3";
		in[i].model = "sample";
		in[i].org = "example";
		in[i].version = 7;
		in[i].language = "en_US";
		in[i].site.ntp_server = "pool.ntp.org";
	}
	/* 0: a device carrying an extension */
	in[0].line_enabled = true;
	in[0].line.sip_user = "org1-201";
	in[0].line.password = "secret";
	in[0].line.display_name = "Alice";
	in[0].line.label = "201";
	in[0].line.registrar_host = "pbx.example.com";
	in[0].line.registrar_port = 5060;
	in[0].line.transport = "udp";
	in[0].line.voicemail = "*97";
	in[0].language = "fr_FR";
	in[0].site.utc_offset = 60;
	in[0].site.dst = 1;
	in[0].keys[0] = (struct render_key){ true, "202", "Bob" };
	in[0].keys[1] = (struct render_key){ false, "5551234", "Pizza" };
	in[0].nkeys = 2;
	/* 1: parked, with a parking account */
	in[1] = in[0];
	in[1].parked = in[1].parking = true;
	in[1].line.voicemail = NULL;
	in[1].language = "en_US";
	in[1].nkeys = 0;
	in[1].line.sip_user = "park-201";
	in[1].line.label = "Dial *30 to log in";
	/* 2: parked, no parking account */
	in[2].parked = true;
	in[2].line.label = "Dial *30 to log in";
	/* 3: hostile values */
	in[3] = in[0];
	in[3].line.password = hostile_pw;
	in[3].line.display_name = "A&B <C> \"D\" 'E' Zoë";
	in[3].line.label = "<label>&";
	in[3].line.transport = "tls";
	in[3].site.utc_offset = -330;
	in[3].site.dst = 2;
	in[3].site.ntp_server = "ntp&<x>";
	for (size_t k = 0; k < RENDER_MAX_KEYS; k++)
		in[3].keys[k] = (struct render_key){ k % 2 == 0, "*#+0123456789",
		                                     "A&B <C> \"D\" 'E' $HOME Zoë" };
	in[3].nkeys = RENDER_MAX_KEYS;
}

/* Finds which files of p use `name` (template name, or a static file's
 * pattern).  Returns the number found; *kind and *mode describe them. */
static size_t
files_named(const struct vendor_profile *p, const char *name,
            bool *is_static, bool *shared, enum render_mode *mode)
{
	size_t found = 0;
	for (size_t i = 0; i < p->n_device_files; i++) {
		if (p->device_files[i].tmpl && strcmp(p->device_files[i].tmpl, name) == 0) {
			*is_static = false;
			*shared = false;
			*mode = p->device_files[i].mode;
			found++;
		}
	}
	for (size_t i = 0; i < p->n_shared_files; i++) {
		const struct vendor_file *f = &p->shared_files[i];
		bool st = f->tmpl == NULL;
		if (strcmp(st ? f->pattern : f->tmpl, name) == 0) {
			*is_static = st;
			*shared = true;
			*mode = f->mode;
			found++;
		}
	}
	return found;
}

/* Renders tm with vals, appending to out; *known (XML templates; NULL:
 * not asked): the output is known well-formed through memo m (NULL: none),
 * without a check of its own. */
static int
render_known(const struct render_tmpl *tm, struct vendor_xml_memo *m,
             const struct render_values *vals, struct render_buf *out, bool *known, char *err,
             size_t errlen)
{
	struct render_shape sh;
	size_t start = out->len;

	if (known == NULL || m == NULL || render_tmpl_mode(tm) == RENDER_KV) {
		if (known != NULL)
			*known = false;
		return render_run(tm, vals, out, err, errlen);
	}
	if (render_run_shaped(tm, vals, out, &sh, err, errlen) < 0)
		return -1;
	*known = memo_knows(m, tm, vals, &sh, out->len - start);
	return 0;
}

/* Renders a compiled template with values, checking XML (once per shape
 * with memo m; the sample check passes none); used by both the sample
 * check and the real renders.  Keeps V3. */
int
vendor_render_memo(const struct render_tmpl *tm, struct vendor_xml_memo *m,
                   const struct render_values *vals, struct render_buf *out, char *err,
                   size_t errlen)
{
	size_t start = out->len;
	bool known;

	if (render_known(tm, m, vals, out, &known, err, errlen) < 0)
		return -1;
	if (!known && render_tmpl_mode(tm) != RENDER_KV &&
	    vendor_check_xml(out->p + start, out->len - start, err, errlen) < 0) {
		sodium_memzero(out->p + start, out->len - start);
		out->len = start;
		out->p[start] = '\0';
		return -1;
	}
	return 0;
}

int
vendor_values(const struct vendor_profile *p, const struct render_input *in,
              struct render_values *vals, char *err, size_t errlen)
{
	if (render_values_init(vals, in, err, errlen) < 0)
		return -1;
	const char *tr = vendor_transport(p, in->line.transport);
	if (tr == NULL) {
		hd_seterr(err, errlen, "unknown transport (want udp, tcp or tls)");
		return -1;
	}
	render_values_set(vals, RV_LINE_TRANSPORT, tr);
	for (size_t i = 0; in->language != NULL && i < VENDOR_NLANG; i++)
		if (strcmp(in->language, vendor_language_codes[i]) == 0)
			render_values_set(vals, RV_LANGUAGE, p->language[i]);
	return 0;
}

/* Compiles and checks one template for one file kind.  On success *out is
 * the compiled template (caller frees). */
static int
check_template(const struct vendor_profile *p, bool shared, enum render_mode mode,
               const char *src, size_t len, struct render_tmpl **out,
               char *err, size_t errlen)
{
	struct render_tmpl *tm = NULL;
	struct render_buf b = {0};
	char e[256];
	static const char *const case_names[4] = {"normal device", "parked device with a "
	                                          "parking account", "parked device without "
	                                          "one", "device with hostile values"};
	*out = NULL;
	if (render_compile(src, len, mode, &tm, err, errlen) < 0)
		return -1;
	if (shared) {
		for (int v = 0; v < RENDER_VAR_COUNT; v++) {
			if (v != RV_MODEL && render_tmpl_uses(tm, (enum render_var)v)) {
				hd_seterr(err, errlen, "variable '%s' is not available in a shared "
				          "file (only 'model' is)", render_var_name((enum render_var)v));
				goto fail;
			}
		}
		struct render_values vals;
		render_values_empty(&vals);
		render_values_set(&vals, RV_MODEL, "066");
		if (vendor_render_memo(tm, NULL, &vals, &b, e, sizeof(e)) < 0) {
			hd_seterr(err, errlen, "rendering fails: %s", e);
			goto fail;
		}
	} else {
		struct render_input in[4];
		sample_inputs(in);
		for (int i = 0; i < 4; i++) {
			struct render_values vals;
			if (vendor_values(p, &in[i], &vals, e, sizeof(e)) < 0 ||
			    vendor_render_memo(tm, NULL, &vals, &b, e, sizeof(e)) < 0) {
				hd_seterr(err, errlen, "rendering for a %s fails: %s", case_names[i], e);
				goto fail;
			}
			render_buf_reset(&b);
		}
	}
	render_buf_free(&b);
	*out = tm;
	return 0;
fail:
	render_buf_free(&b);
	render_tmpl_free(tm);
	return -1;
}

int
vendor_template_check(const struct vendor_profile *p, const char *name,
                      const char *src, size_t len, char *err, size_t errlen)
{
	bool is_static = false, shared = false;
	enum render_mode mode = RENDER_XML;
	if (files_named(p, name, &is_static, &shared, &mode) == 0) {
		hd_seterr(err, errlen, "profile %s has no template named '%s'", p->name, name);
		return -1;
	}
	if (is_static)
		return mode == RENDER_KV ? 0 : vendor_check_xml(src, len, err, errlen);
	struct render_tmpl *tm;
	if (check_template(p, shared, mode, src, len, &tm, err, errlen) < 0)
		return -1;
	render_tmpl_free(tm);
	return 0;
}

int
vendor_templates_set(struct vendor_templates *t, const struct vendor_profile *p,
                     const char *name, const char *src, size_t len,
                     char *err, size_t errlen)
{
	size_t pi = vendor_profile_index(p);
	bool is_static = false, shared = false;
	enum render_mode mode = RENDER_XML;
	size_t nf = files_named(p, name, &is_static, &shared, &mode);
	if (pi == SIZE_MAX || nf == 0) {
		hd_seterr(err, errlen, "profile %s has no template named '%s'", p->name, name);
		return -1;
	}
	if (vendor_template_check(p, name, src, len, err, errlen) < 0)
		return -1;

	/* Build every replacement first, then swap: t is unchanged on error. */
	size_t nslots = p->n_device_files + p->n_shared_files;
	struct vendor_slot *fresh = calloc(nslots, sizeof(*fresh));
	if (fresh == NULL)
		goto oom;
	for (size_t i = 0; i < nslots; i++) {
		bool dev = i < p->n_device_files;
		const struct vendor_file *f = dev ? &p->device_files[i]
		                                  : &p->shared_files[i - p->n_device_files];
		const char *fname = f->tmpl ? f->tmpl : (dev ? NULL : f->pattern);
		if (fname == NULL || strcmp(fname, name) != 0)
			continue;
		if (f->tmpl == NULL) {
			fresh[i].raw = malloc(len + 1);
			if (fresh[i].raw == NULL)
				goto oom;
			memcpy(fresh[i].raw, src, len);
			fresh[i].raw[len] = '\0';
			fresh[i].rawlen = len;
		} else if (render_compile(src, len, f->mode, &fresh[i].tmpl, err, errlen) < 0) {
			goto fail;
		} else if (f->mode != RENDER_KV && (fresh[i].memo = vendor_xml_memo_new()) == NULL) {
			goto oom;
		}
		crypto_generichash(fresh[i].hash, sizeof(fresh[i].hash), (const unsigned char *)src,
		                   len, NULL, 0);
	}
	for (size_t i = 0; i < nslots; i++) {
		if (fresh[i].tmpl == NULL && fresh[i].raw == NULL)
			continue;
		struct vendor_slot *s = slot_at(t, pi, i);
		slot_clear(s);
		*s = fresh[i];
	}
	free(fresh);
	return 0;
oom:
	hd_seterr(err, errlen, "out of memory");
fail:
	for (size_t i = 0; fresh != NULL && i < nslots; i++)
		slot_clear(&fresh[i]);
	free(fresh);
	return -1;
}

void
vendor_templates_xml_stats(const struct vendor_templates *t, size_t *shapes, size_t *skipped)
{
	*shapes = *skipped = 0;
	for (size_t i = 0; i < vendor_registry_len; i++) {
		const struct vendor_profile *p = vendor_registry[i];
		size_t nslots = p->n_device_files + p->n_shared_files;

		for (size_t k = 0; k < nslots; k++) {
			const struct vendor_slot *s = slot_at(t, i, k);
			size_t a, b;

			if (s->memo == NULL)
				continue;
			vendor_xml_memo_stats(s->memo, &a, &b);
			*shapes += a;
			*skipped += b;
		}
	}
}

void
vendor_templates_device_key(const struct vendor_templates *t, const struct vendor_profile *p,
                            unsigned char out[16])
{
	size_t pi = vendor_profile_index(p);
	crypto_generichash_state h;

	crypto_generichash_init(&h, NULL, 0, 16);
	crypto_generichash_update(&h, (const unsigned char *)p->name, strlen(p->name) + 1);
	for (size_t k = 0; pi != SIZE_MAX && k < p->n_device_files; k++)
		crypto_generichash_update(&h, t->sets[pi].dev[k].hash, sizeof(t->sets[pi].dev[k].hash));
	crypto_generichash_final(&h, out, 16);
}

int
vendor_templates_load(const char *tmpl_dir, const char *static_dir,
                      struct vendor_templates **out, char *err, size_t errlen)
{
	struct vendor_templates *t = templates_new();
	char path[4096], e[512];
	char *src = NULL;
	size_t len = 0;
	*out = NULL;
	if (t == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	xmlInitParser(); /* idempotent; must precede any parse from threads */
	for (size_t i = 0; i < vendor_registry_len; i++) {
		const struct vendor_profile *p = vendor_registry[i];
		size_t nslots = p->n_device_files + p->n_shared_files;
		for (size_t k = 0; k < nslots; k++) {
			bool dev = k < p->n_device_files;
			const struct vendor_file *f = dev ? &p->device_files[k]
			                                  : &p->shared_files[k - p->n_device_files];
			const char *name = f->tmpl ? f->tmpl : f->pattern;
			int n = snprintf(path, sizeof(path), "%s/%s/%s",
			                 f->tmpl ? tmpl_dir : static_dir, p->name, name);
			if (n < 0 || (size_t)n >= sizeof(path)) {
				hd_seterr(err, errlen, "%s/%s: path too long", p->name, name);
				goto fail;
			}
			if ((src = fs_read_path(path, VENDOR_FILE_MAX, &len, e, sizeof(e))) == NULL) {
				hd_seterr(err, errlen, "%s: %s", path, e);
				goto fail;
			}
			if (vendor_templates_set(t, p, name, src, len, e, sizeof(e)) < 0) {
				hd_seterr(err, errlen, "%s: %s", path, e);
				goto fail;
			}
			free(src);
			src = NULL;
		}
	}
	*out = t;
	return 0;
fail:
	free(src);
	vendor_templates_free(t);
	return -1;
}

/* ---- rendering --------------------------------------------------------- */

/* The per-device slot of p's file_index in t, or NULL with err. */
static const struct vendor_slot *
device_slot(const struct vendor_profile *p,
            const struct vendor_templates *t,
            size_t file_index, char *err, size_t errlen)
{
	size_t pi = vendor_profile_index(p);
	if (pi == SIZE_MAX || file_index >= p->n_device_files) {
		hd_seterr(err, errlen, "no such per-device file");
		return NULL;
	}
	const struct vendor_slot *s = &t->sets[pi].dev[file_index];
	if (s->tmpl == NULL) {
		hd_seterr(err, errlen, "template %s/%s not loaded", p->name,
		          p->device_files[file_index].tmpl);
		return NULL;
	}
	return s;
}

int
vendor_render_device_unchecked(const struct vendor_profile *p,
                               const struct vendor_templates *t, size_t file_index,
                               const struct render_input *in, struct render_buf *out,
                               bool *known, char *err, size_t errlen)
{
	const struct vendor_slot *s = device_slot(p, t, file_index, err, errlen);
	struct render_values vals;

	if (s == NULL || vendor_values(p, in, &vals, err, errlen) < 0)
		return -1;
	return render_known(s->tmpl, s->memo, &vals, out, known, err, errlen);
}

int
vendor_check_device_output(const struct vendor_profile *p, size_t file_index,
                           const char *data, size_t len, char *err, size_t errlen)
{
	if (file_index >= p->n_device_files || p->device_files[file_index].mode == RENDER_KV)
		return 0;
	return vendor_check_xml(data, len, err, errlen) < 0 ? -1 : 0;
}

bool
vendor_device_uses(const struct vendor_profile *p, const struct vendor_templates *t,
                   enum render_var v)
{
	char err[64];

	for (size_t i = 0; i < p->n_device_files; i++) {
		const struct vendor_slot *s = device_slot(p, t, i, err, sizeof(err));

		if (s == NULL || render_tmpl_uses(s->tmpl, v))
			return true;
	}
	return false;
}

int
vendor_render_device(const struct vendor_profile *p, const struct vendor_templates *t,
                     size_t file_index, const struct render_input *in,
                     struct render_buf *out, char *err, size_t errlen)
{
	size_t pi = vendor_profile_index(p);
	if (pi == SIZE_MAX || file_index >= p->n_device_files) {
		hd_seterr(err, errlen, "no such per-device file");
		return -1;
	}
	const struct vendor_slot *s = &t->sets[pi].dev[file_index];
	if (s->tmpl == NULL) {
		hd_seterr(err, errlen, "template %s/%s not loaded", p->name,
		          p->device_files[file_index].tmpl);
		return -1;
	}
	struct render_values vals;
	if (vendor_values(p, in, &vals, err, errlen) < 0)
		return -1;
	return vendor_render_memo(s->tmpl, s->memo, &vals, out, err, errlen);
}

int
vendor_render_shared(const struct vendor_profile *p, const struct vendor_templates *t,
                     size_t file_index, const char *model,
                     struct render_buf *out, char *err, size_t errlen)
{
	size_t pi = vendor_profile_index(p);
	if (pi == SIZE_MAX || file_index >= p->n_shared_files) {
		hd_seterr(err, errlen, "no such shared file");
		return -1;
	}
	const struct vendor_slot *s = &t->sets[pi].shared[file_index];
	if (s->raw != NULL) {
		if (render_buf_append(out, s->raw, s->rawlen) < 0) {
			hd_seterr(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	if (s->tmpl == NULL) {
		hd_seterr(err, errlen, "shared file %s/%s not loaded", p->name,
		          p->shared_files[file_index].pattern);
		return -1;
	}
	struct render_values vals;
	render_values_empty(&vals);
	render_values_set(&vals, RV_MODEL, model);
	return vendor_render_memo(s->tmpl, s->memo, &vals, out, err, errlen);
}

/* Whether text holds a line "key = value" (blanks around '=' optional,
 * '#' comments ignored). */
static bool
kv_sets(const char *text, size_t len, const char *key, const char *value)
{
	size_t klen = strlen(key), vlen = strlen(value);
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *q = p;
		size_t n;

		if (eol == NULL)
			eol = end;
		while (q < eol && (*q == ' ' || *q == '\t'))
			q++;
		if ((size_t)(eol - q) > klen && memcmp(q, key, klen) == 0) {
			q += klen;
			while (q < eol && (*q == ' ' || *q == '\t'))
				q++;
			if (q < eol && *q == '=') {
				q++;
				while (q < eol && (*q == ' ' || *q == '\t'))
					q++;
				n = (size_t)(eol - q);
				while (n > 0 && (q[n - 1] == ' ' || q[n - 1] == '\t' || q[n - 1] == '\r'))
					n--;
				if (n == vlen && memcmp(q, value, vlen) == 0)
					return true;
			}
		}
		p = eol + 1;
	}
	return false;
}

static bool
slot_sets(const struct vendor_slot *s, const char *key, const char *value)
{
	const char *text;
	size_t len;

	if (s->tmpl != NULL) {
		text = render_tmpl_source(s->tmpl, &len);
		return kv_sets(text, len, key, value);
	}
	return s->raw != NULL && kv_sets(s->raw, s->rawlen, key, value);
}

const char *
vendor_notify_event(const struct vendor_profile *p, const struct vendor_templates *t)
{
	const struct vendor_set *set;
	size_t k = vendor_profile_index(p);

	if (p->notify_event_alt == NULL || t == NULL || k == SIZE_MAX)
		return p->notify_event;
	set = &t->sets[k];
	for (size_t i = 0; i < p->n_device_files; i++)
		if (slot_sets(&set->dev[i], p->notify_alt_key, p->notify_alt_value))
			return p->notify_event_alt;
	for (size_t i = 0; i < p->n_shared_files; i++)
		if (slot_sets(&set->shared[i], p->notify_alt_key, p->notify_alt_value))
			return p->notify_event_alt;
	return p->notify_event;
}
