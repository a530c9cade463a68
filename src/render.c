/*
 * render.c -- compiler and renderer of the template language (render.h).
 *
 * Owns: parsing template text into a flat node list, the fixed variable
 * table, escaping per output mode, and the caller-owned output buffer.
 * Does not own: which templates exist or where they come from (vendor.c),
 * any I/O.
 *
 * Invariants of a compiled template (struct render_tmpl):
 *   R1 every node refers to a known variable or to a byte range inside
 *      the template's own copy of its source;
 *   R2 a section node's `jump` is the index of the first node after the
 *      section's end, > its own index and <= n;
 *   R3 the template is never changed after render_compile returns, so it
 *      can be shared between threads.
 * Rendering only appends to the caller's buffer and reads the template.
 */
#include "render.h"

#include "errbuf.h"
#include "wipe.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static const char *const var_names[RENDER_VAR_COUNT] = {
	[RV_MAC] = "mac",
	[RV_MAC_UPPER] = "MAC",
	[RV_MAC_COLONS] = "mac_colons",
	[RV_MODEL] = "model",
	[RV_ORG] = "org",
	[RV_VERSION] = "version",
	[RV_PARKED] = "parked",
	[RV_PARKING] = "parking",
	[RV_LINE_ENABLED] = "line_enabled",
	[RV_LINE_SIP_USER] = "line.sip_user",
	[RV_LINE_AUTH_NAME] = "line.auth_name",
	[RV_LINE_PASSWORD] = "line.password",
	[RV_LINE_DISPLAY_NAME] = "line.display_name",
	[RV_LINE_LABEL] = "line.label",
	[RV_LINE_REGISTRAR_HOST] = "line.registrar_host",
	[RV_LINE_REGISTRAR_PORT] = "line.registrar_port",
	[RV_LINE_TRANSPORT] = "line.transport",
	[RV_LINE_VOICEMAIL] = "line.voicemail",
	[RV_LANGUAGE] = "language",
	[RV_LANGUAGE_CODE] = "language_code",
	[RV_SITE_NTP_SERVER] = "site.ntp_server",
	[RV_SITE_UTC_OFFSET] = "site.utc_offset",
	[RV_SITE_UTC_OFFSET_SECONDS] = "site.utc_offset_seconds",
	[RV_SITE_UTC_OFFSET_HOURS] = "site.utc_offset_hours",
	[RV_SITE_DST] = "site.dst",
	[RV_SITE_DST_EU] = "site.dst_eu",
	[RV_SITE_DST_US] = "site.dst_us",
	[RV_KEYS] = "keys",
	[RV_KEY_N] = "key.n",
	[RV_KEY_BUTTON] = "key.button",
	[RV_KEY_BLF] = "key.blf",
	[RV_KEY_SPEED_DIAL] = "key.speed_dial",
	[RV_KEY_VALUE] = "key.value",
	[RV_KEY_LABEL] = "key.label",
};

static bool
is_key_var(int v)
{
	return v >= RV_KEY_N && v <= RV_KEY_LABEL;
}

enum node_kind { N_TEXT, N_VAR, N_SECT };

#define NF_INVERT 1u /* section: taken when the variable is false */
#define NF_DOLLAR 2u /* substitution: '$' doubled (Cisco macro value) */

struct node {
	uint8_t kind;
	uint8_t flags;
	uint16_t var;
	uint32_t a; /* text: offset in src */
	uint32_t b; /* text: length; section: jump index */
};

struct render_tmpl {
	enum render_mode mode;
	uint64_t used; /* bit per enum render_var */
	size_t n, cap;
	struct node *nodes;
	char *src; /* private copy of the source: text nodes point into it */
	bool marked; /* the source holds RENDER_MARK: no skeleton (render_skeleton) */
};

const char *
render_tmpl_source(const struct render_tmpl *t, size_t *len)
{
	*len = strlen(t->src);
	return t->src;
}

const char *
render_var_name(enum render_var v)
{
	if ((unsigned)v >= RENDER_VAR_COUNT)
		return "";
	return var_names[v];
}

/* ---- output buffer ---------------------------------------------------- */

int
render_buf_append(struct render_buf *b, const char *s, size_t n)
{
	size_t need = b->len + n + 1;

	/* grown by wipe_grow: the old block may hold secrets */
	if (need < n || wipe_grow(&b->p, &b->cap, b->len, need) != 0)
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

void
render_buf_reset(struct render_buf *b)
{
	if (b == NULL || b->p == NULL)
		return;
	sodium_memzero(b->p, b->len);
	b->len = 0;
	b->p[0] = '\0';
}

void
render_buf_free(struct render_buf *b)
{
	if (b == NULL)
		return;
	if (b->p != NULL) {
		sodium_memzero(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- values ----------------------------------------------------------- */

static void
set_bool(struct render_values *vals, enum render_var v, bool on)
{
	vals->v[v].s = on ? "1" : "0";
	vals->v[v].len = 1;
	vals->v[v].on = on;
}

void
render_values_set(struct render_values *vals, enum render_var v, const char *s)
{
	if ((unsigned)v >= RENDER_VAR_COUNT)
		return;
	if (s == NULL)
		s = "";
	vals->v[v].s = s;
	vals->v[v].len = strlen(s);
	vals->v[v].on = vals->v[v].len > 0;
}

void
render_values_empty(struct render_values *vals)
{
	memset(vals, 0, sizeof(*vals));
	for (int i = 0; i < RENDER_VAR_COUNT; i++)
		render_values_set(vals, (enum render_var)i, "");
	set_bool(vals, RV_PARKED, false);
	set_bool(vals, RV_PARKING, false);
	set_bool(vals, RV_LINE_ENABLED, false);
	set_bool(vals, RV_SITE_DST, false);
	set_bool(vals, RV_SITE_DST_EU, false);
	set_bool(vals, RV_SITE_DST_US, false);
	set_bool(vals, RV_KEYS, false);
	/* "0", like any version number would render; harmless in shared files. */
	memcpy(vals->version, "0", 2);
	render_values_set(vals, RV_VERSION, vals->version);
}

/* site.utc_offset* and site.dst*. */
static int
site_values(struct render_values *vals, const struct render_input *in)
{
	int m = in->site.utc_offset, a = m < 0 ? -m : m;
	char sign = m < 0 ? '-' : '+';
	int n1, n2, n3;

	if (a > 24 * 60)
		return -1;
	n1 = snprintf(vals->utc_offset, sizeof(vals->utc_offset), "%c%02d:%02d", sign, a / 60,
	              a % 60);
	n2 = snprintf(vals->utc_seconds, sizeof(vals->utc_seconds), "%d", m * 60);
	n3 = a % 60 ? snprintf(vals->utc_hours, sizeof(vals->utc_hours), "%c%d:%02d", sign,
	                       a / 60, a % 60)
	            : snprintf(vals->utc_hours, sizeof(vals->utc_hours), "%c%d", sign, a / 60);
	if (n1 < 0 || (size_t)n1 >= sizeof(vals->utc_offset) || n2 < 0 ||
	    (size_t)n2 >= sizeof(vals->utc_seconds) || n3 < 0 ||
	    (size_t)n3 >= sizeof(vals->utc_hours))
		return -1;
	render_values_set(vals, RV_SITE_UTC_OFFSET, vals->utc_offset);
	render_values_set(vals, RV_SITE_UTC_OFFSET_SECONDS, vals->utc_seconds);
	render_values_set(vals, RV_SITE_UTC_OFFSET_HOURS, vals->utc_hours);
	set_bool(vals, RV_SITE_DST, in->site.dst == 1 || in->site.dst == 2);
	set_bool(vals, RV_SITE_DST_EU, in->site.dst == 1);
	set_bool(vals, RV_SITE_DST_US, in->site.dst == 2);
	return 0;
}

/* The key.* values of every line key. */
static int
key_values(struct render_values *vals, const struct render_input *in)
{
	vals->nkeys = in->nkeys < RENDER_MAX_KEYS ? in->nkeys : RENDER_MAX_KEYS;
	set_bool(vals, RV_KEYS, vals->nkeys > 0);
	for (size_t i = 0; i < vals->nkeys; i++) {
		struct render_value *k = vals->key[i];
		const struct render_key *in_k = &in->keys[i];
		char (*num)[4] = vals->key_num[i];
		const char *s[RENDER_KEY_VARS];

		if ((size_t)snprintf(num[0], sizeof(num[0]), "%zu", i + 1) >= sizeof(num[0]) ||
		    (size_t)snprintf(num[1], sizeof(num[1]), "%zu", i + 2) >= sizeof(num[1]))
			return -1;
		s[RV_KEY_N - RV_KEY_N] = num[0];
		s[RV_KEY_BUTTON - RV_KEY_N] = num[1];
		s[RV_KEY_BLF - RV_KEY_N] = in_k->blf ? "1" : "0";
		s[RV_KEY_SPEED_DIAL - RV_KEY_N] = in_k->blf ? "0" : "1";
		s[RV_KEY_VALUE - RV_KEY_N] = in_k->value ? in_k->value : "";
		s[RV_KEY_LABEL - RV_KEY_N] = in_k->label ? in_k->label : "";
		for (int j = 0; j < RENDER_KEY_VARS; j++) {
			k[j].s = s[j];
			k[j].len = strlen(s[j]);
			k[j].on = k[j].len > 0;
		}
		k[RV_KEY_BLF - RV_KEY_N].on = in_k->blf;
		k[RV_KEY_SPEED_DIAL - RV_KEY_N].on = !in_k->blf;
	}
	return 0;
}

static bool
is_lower_mac(const char *m)
{
	if (m == NULL)
		return false;
	for (int i = 0; i < 12; i++) {
		char c = m[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return m[12] == '\0';
}

int
render_values_init(struct render_values *vals, const struct render_input *in,
                   char *err, size_t errlen)
{
	render_values_empty(vals);
	if (!is_lower_mac(in->mac)) {
		hd_seterr(err, errlen, "device MAC is not 12 lowercase hex digits");
		return -1;
	}
	if (in->line.registrar_port < 0 || in->line.registrar_port > 65535) {
		hd_seterr(err, errlen, "registrar port out of range");
		return -1;
	}
	for (int i = 0; i < 12; i++) {
		char c = in->mac[i];
		vals->mac_upper[i] = (c >= 'a' && c <= 'f') ? (char)(c - 'a' + 'A') : c;
	}
	vals->mac_upper[12] = '\0';
	for (int i = 0, j = 0; i < 12; i += 2) {
		vals->mac_colons[j++] = in->mac[i];
		vals->mac_colons[j++] = in->mac[i + 1];
		vals->mac_colons[j++] = i < 10 ? ':' : '\0';
	}
	/* Both cannot truncate (sizes fit the largest values); checked anyway. */
	if (in->line.registrar_port > 0) {
		int n = snprintf(vals->port, sizeof(vals->port), "%d", in->line.registrar_port);
		if (n < 0 || (size_t)n >= sizeof(vals->port))
			goto trunc;
	}
	int n = snprintf(vals->version, sizeof(vals->version), "%llu", in->version);
	if (n < 0 || (size_t)n >= sizeof(vals->version))
		goto trunc;

	render_values_set(vals, RV_MAC, in->mac);
	render_values_set(vals, RV_MAC_UPPER, vals->mac_upper);
	render_values_set(vals, RV_MAC_COLONS, vals->mac_colons);
	render_values_set(vals, RV_MODEL, in->model);
	render_values_set(vals, RV_ORG, in->org);
	render_values_set(vals, RV_VERSION, vals->version);
	set_bool(vals, RV_PARKED, in->parked);
	set_bool(vals, RV_PARKING, in->parking);
	set_bool(vals, RV_LINE_ENABLED, in->line_enabled);
	render_values_set(vals, RV_LINE_SIP_USER, in->line.sip_user);
	render_values_set(vals, RV_LINE_AUTH_NAME,
	                  in->line.auth_name && *in->line.auth_name ? in->line.auth_name
	                                                            : in->line.sip_user);
	render_values_set(vals, RV_LINE_PASSWORD, in->line.password);
	render_values_set(vals, RV_LINE_DISPLAY_NAME, in->line.display_name);
	render_values_set(vals, RV_LINE_LABEL, in->line.label);
	render_values_set(vals, RV_LINE_REGISTRAR_HOST, in->line.registrar_host);
	render_values_set(vals, RV_LINE_REGISTRAR_PORT, vals->port);
	render_values_set(vals, RV_LINE_TRANSPORT, in->line.transport);
	render_values_set(vals, RV_LINE_VOICEMAIL, in->line.voicemail);
	render_values_set(vals, RV_LANGUAGE_CODE, in->language);
	render_values_set(vals, RV_SITE_NTP_SERVER, in->site.ntp_server);
	if (site_values(vals, in) < 0 || key_values(vals, in) < 0)
		goto trunc;
	return 0;
trunc:
	hd_seterr(err, errlen, "internal error: derived value truncated");
	return -1;
}

/* ---- compiler --------------------------------------------------------- */

struct compiler {
	const char *src;
	size_t len;
	struct render_tmpl *t;
	char *err;
	size_t errlen;
	/* RENDER_XML_CISCO: name of the element whose content we are in. */
	char elem[64];
};

/* Writes "line L, column C: <msg>" for byte offset off. */
static int cerr(struct compiler *c, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
cerr(struct compiler *c, size_t off, const char *fmt, ...)
{
	size_t line = 1, col = 1;
	for (size_t i = 0; i < off && i < c->len; i++) {
		if (c->src[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap); /* truncation harmless: a message */
	va_end(ap);
	hd_seterr(c->err, c->errlen, "line %zu, column %zu: %s", line, col, msg);
	return -1;
}

static int
push(struct compiler *c, struct node nd)
{
	struct render_tmpl *t = c->t;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct node *v = realloc(t->nodes, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		t->nodes = v;
		t->cap = cap;
	}
	t->nodes[t->n++] = nd;
	return 0;
}

static bool
is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
}

/* Follows element nesting through literal XML text, for RENDER_XML_CISCO:
 * after "<Name" we are in Name, after "</" or "/>" in no element. */
static void
track_elem(struct compiler *c, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '<' && i + 1 < n && s[i + 1] == '/') {
			c->elem[0] = '\0';
		} else if (s[i] == '/' && i + 1 < n && s[i + 1] == '>') {
			c->elem[0] = '\0';
		} else if (s[i] == '<') {
			size_t j = 0;
			i++;
			while (i < n && (is_name_char(s[i]) || s[i] == '-' || s[i] == ':')) {
				if (j + 1 < sizeof(c->elem))
					c->elem[j++] = s[i];
				i++;
			}
			c->elem[j] = '\0';
			i--;
		}
	}
}

/* Cisco parameters whose values the phone macro-expands ('$'): the rules
 * (Profile_Rule, Profile_Rule_B, Upgrade_Rule, ...) and the line key labels
 * (Short_Name_N_, whose default is the macro "$USER"). */
static bool
elem_is_macro(const char *e)
{
	size_t n = strlen(e);
	return (n >= 5 && strcmp(e + n - 5, "_Rule") == 0) || strstr(e, "_Rule_") != NULL ||
	       strncmp(e, "Short_Name_", 11) == 0;
}

static int
emit_text(struct compiler *c, size_t from, size_t to)
{
	if (to <= from)
		return 0;
	if (c->t->mode == RENDER_XML_CISCO)
		track_elem(c, c->src + from, to - from);
	struct node nd = {.kind = N_TEXT, .a = (uint32_t)from, .b = (uint32_t)(to - from)};
	return push(c, nd);
}

static bool
blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * A section or comment tag alone on its line: returns true and sets
 * *ls (start of the line) and *next (just after the line's newline).
 */
static bool
standalone(const struct compiler *c, size_t open, size_t close_end,
           size_t *ls, size_t *next)
{
	size_t s = open;
	while (s > 0 && c->src[s - 1] != '\n') {
		if (!blank(c->src[s - 1]))
			return false;
		s--;
	}
	size_t e = close_end;
	while (e < c->len && blank(c->src[e]))
		e++;
	if (e < c->len && c->src[e] == '\r' && e + 1 < c->len && c->src[e + 1] == '\n')
		e += 2;
	else if (e < c->len && c->src[e] == '\n')
		e++;
	else if (e != c->len)
		return false;
	*ls = s;
	*next = e;
	return true;
}

#define MAX_DEPTH 32

struct open_sect {
	size_t node;  /* index of the section node */
	size_t where; /* offset of its tag, for errors */
	int var;
	bool repeat;  /* a {{#keys}} section: repeated per key */
};

int
render_compile(const char *src, size_t len, enum render_mode mode,
               struct render_tmpl **out, char *err, size_t errlen)
{
	*out = NULL;
	if (len > RENDER_MAX_SOURCE) {
		hd_seterr(err, errlen, "template larger than %d bytes", RENDER_MAX_SOURCE);
		return -1;
	}
	if (memchr(src, '\0', len) != NULL) {
		size_t off = (size_t)((const char *)memchr(src, '\0', len) - src);
		struct compiler tmp = {.src = src, .len = len, .err = err, .errlen = errlen};
		return cerr(&tmp, off, "NUL byte in template");
	}
	struct render_tmpl *t = calloc(1, sizeof(*t));
	if (t == NULL)
		goto oom;
	t->mode = mode;
	t->src = malloc(len + 1);
	if (t->src == NULL)
		goto oom;
	memcpy(t->src, src, len);
	t->src[len] = '\0';
	t->marked = memmem(t->src, len, RENDER_MARK, RENDER_MARK_LEN) != NULL;

	struct compiler c = {.src = t->src, .len = len, .t = t, .err = err, .errlen = errlen};
	struct open_sect stack[MAX_DEPTH];
	size_t depth = 0, pos = 0;
	bool in_keys = false; /* inside a {{#keys}} section */

	for (;;) {
		const char *o = pos < len ? memmem(t->src + pos, len - pos, "{{", 2) : NULL;
		if (o == NULL) {
			if (emit_text(&c, pos, len) < 0)
				goto oom;
			break;
		}
		size_t open = (size_t)(o - t->src);
		const char *cl = memmem(t->src + open + 2, len - open - 2, "}}", 2);
		if (cl == NULL) {
			cerr(&c, open, "unclosed tag '{{' (no '}}' follows)");
			goto fail;
		}
		size_t close = (size_t)(cl - t->src), close_end = close + 2;
		char sigil = t->src[open + 2];
		size_t text_end = open, next = close_end;

		switch (sigil) {
		case '&':
		case '{':
			cerr(&c, open, "raw (unescaped) substitution is not supported");
			goto fail;
		case '>':
			cerr(&c, open, "partials are not supported");
			goto fail;
		case '=':
			cerr(&c, open, "delimiter changes are not supported");
			goto fail;
		case '#':
		case '^':
		case '/':
		case '!': {
			size_t ls, nx;
			if (standalone(&c, open, close_end, &ls, &nx) && ls >= pos) {
				text_end = ls;
				next = nx;
			}
			break;
		}
		default:
			sigil = 0;
			break;
		}
		if (emit_text(&c, pos, text_end) < 0)
			goto oom;
		pos = next;
		if (sigil == '!')
			continue;

		/* The name: blanks around it allowed, [A-Za-z0-9_.] inside. */
		size_t a = open + 2 + (sigil ? 1 : 0), b = close;
		while (a < b && blank(t->src[a]))
			a++;
		while (b > a && blank(t->src[b - 1]))
			b--;
		if (a == b) {
			cerr(&c, open, "empty tag");
			goto fail;
		}
		for (size_t i = a; i < b; i++) {
			if (!is_name_char(t->src[i])) {
				cerr(&c, i, "invalid character in tag name");
				goto fail;
			}
		}
		int var = -1;
		for (int i = 0; i < RENDER_VAR_COUNT; i++) {
			if (strlen(var_names[i]) == b - a && memcmp(var_names[i], t->src + a, b - a) == 0) {
				var = i;
				break;
			}
		}
		if (var < 0) {
			int nl = (int)(b - a > 64 ? 64 : b - a);
			cerr(&c, a, "unknown variable '%.*s'", nl, t->src + a);
			goto fail;
		}

		if (sigil == '/') {
			if (depth == 0) {
				cerr(&c, open, "'{{/%s}}' closes no open section", var_names[var]);
				goto fail;
			}
			struct open_sect *top = &stack[depth - 1];
			if (top->var != var) {
				struct compiler tmp = c;
				char where[64];
				tmp.err = where;
				tmp.errlen = sizeof(where);
				cerr(&tmp, top->where, "x");
				where[strcspn(where, ":")] = '\0';
				cerr(&c, open, "'{{/%s}}' does not close section '%s' opened at %s",
				     var_names[var], var_names[top->var], where);
				goto fail;
			}
			if (c.t->n > UINT32_MAX)
				goto oom;
			t->nodes[top->node].b = (uint32_t)t->n;
			if (top->repeat)
				in_keys = false;
			depth--;
			continue;
		}
		if (is_key_var(var) && !in_keys) {
			cerr(&c, open, "'%s' is only available inside {{#keys}}", var_names[var]);
			goto fail;
		}
		if (var == RV_KEYS && sigil != '#' && sigil != '^') {
			cerr(&c, open, "'keys' is a section: write {{#keys}}...{{/keys}}");
			goto fail;
		}
		if (var == RV_KEYS && sigil == '#' && in_keys) {
			cerr(&c, open, "{{#keys}} sections do not nest");
			goto fail;
		}
		t->used |= (uint64_t)1 << var;
		if (sigil == '#' || sigil == '^') {
			if (depth == MAX_DEPTH) {
				cerr(&c, open, "sections nested deeper than %d", MAX_DEPTH);
				goto fail;
			}
			stack[depth++] = (struct open_sect){.node = t->n, .where = open, .var = var,
			                                    .repeat = var == RV_KEYS && sigil == '#'};
			if (var == RV_KEYS && sigil == '#')
				in_keys = true;
			struct node nd = {.kind = N_SECT, .var = (uint16_t)var,
			                  .flags = sigil == '^' ? NF_INVERT : 0};
			if (push(&c, nd) < 0)
				goto oom;
			continue;
		}
		struct node nd = {.kind = N_VAR, .var = (uint16_t)var};
		if (mode == RENDER_XML_CISCO && elem_is_macro(c.elem))
			nd.flags |= NF_DOLLAR;
		if (push(&c, nd) < 0)
			goto oom;
	}
	if (depth > 0) {
		cerr(&c, stack[depth - 1].where, "unclosed section '%s'",
		     var_names[stack[depth - 1].var]);
		goto fail;
	}
	*out = t;
	return 0;
oom:
	hd_seterr(err, errlen, "out of memory");
fail:
	render_tmpl_free(t);
	return -1;
}

void
render_tmpl_free(struct render_tmpl *t)
{
	if (t == NULL)
		return;
	free(t->nodes);
	free(t->src);
	free(t);
}

enum render_mode
render_tmpl_mode(const struct render_tmpl *t)
{
	return t->mode;
}

bool
render_tmpl_uses(const struct render_tmpl *t, enum render_var v)
{
	return (unsigned)v < RENDER_VAR_COUNT && (t->used & ((uint64_t)1 << v)) != 0;
}

/* ---- renderer --------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0) /* overlong */
			return 0;
		if (c == 0xed && s[1] >= 0xa0) /* surrogate */
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90) /* overlong */
			return 0;
		if (c == 0xf4 && s[1] >= 0x90) /* > U+10FFFF */
			return 0;
		return 4;
	}
	return 0;
}

/* Escapes one value into out; *plain becomes false when the value holds
 * ']' or U+FFFE/U+FFFF (struct render_shape).  Returns 0, -1 with err
 * set. */
static int
put_value(const struct render_tmpl *t, const struct node *nd,
          const struct render_value *val, struct render_buf *out, bool *plain,
          char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)val->s;
	size_t n = val->len, run = 0, i = 0;
	const char *name = var_names[nd->var];
	bool xml = t->mode != RENDER_KV;

	while (i < n) {
		unsigned char ch = s[i];
		const char *rep = NULL;
		size_t adv = 1;
		if (ch >= 0x80) {
			adv = utf8_len(s + i, n - i);
			if (adv == 0) {
				hd_seterr(err, errlen, "variable '%s': value is not valid UTF-8", name);
				return -1;
			}
			if (adv == 3 && ch == 0xef && s[i + 1] == 0xbf && s[i + 2] >= 0xbe)
				*plain = false; /* U+FFFE, U+FFFF */
		} else if (ch == '\r' || ch == '\n') {
			if (!xml) {
				hd_seterr(err, errlen,
				          "variable '%s': value contains a line break, which "
				          "this format cannot carry", name);
				return -1;
			}
			rep = ch == '\r' ? "&#13;" : "&#10;";
		} else if (ch == '\t') {
			rep = xml ? "&#9;" : NULL;
		} else if (ch < 0x20 || ch == 0x7f) {
			hd_seterr(err, errlen, "variable '%s': value contains a control character",
			          name);
			return -1;
		} else if (xml) {
			if (ch == ']')
				*plain = false;
			switch (ch) {
			case '&': rep = "&amp;"; break;
			case '<': rep = "&lt;"; break;
			case '>': rep = "&gt;"; break;
			case '"': rep = "&quot;"; break;
			case '\'': rep = "&apos;"; break;
			case '$': rep = (nd->flags & NF_DOLLAR) ? "$$" : NULL; break;
			default: break;
			}
		}
		if (rep == NULL) {
			run += adv;
			i += adv;
			continue;
		}
		if (render_buf_append(out, (const char *)s + i - run, run) < 0 ||
		    render_buf_append(out, rep, strlen(rep)) < 0)
			goto oom;
		run = 0;
		i += adv;
	}
	if (run > 0 && render_buf_append(out, (const char *)s + n - run, run) < 0)
		goto oom;
	return 0;
oom:
	hd_seterr(err, errlen, "out of memory");
	return -1;
}

/* The value of node nd's variable; key.* of line key `key`. */
static const struct render_value *
value_of(const struct render_values *vals,
         const struct node *nd, size_t key)
{
	if (is_key_var(nd->var))
		return &vals->key[key][nd->var - RV_KEY_N];
	return &vals->v[nd->var];
}

/* Appends one step of the walk to the shape (when recorded). */
static void
shape_put(struct render_shape *sh, unsigned char step)
{
	if (sh == NULL)
		return;
	if (sh->n == RENDER_SHAPE_MAX) {
		sh->plain = false;
		return;
	}
	sh->b[sh->n++] = step;
	sh->hash = (sh->hash ^ step) * 0x100000001b3ULL; /* FNV-1a */
}

/* The steps of a shape: a substitution empty or not, a section skipped or
 * taken, the line keys' section starting again for the next key, a
 * substitution whose text is part of the shape (SH_TEXT, its length and
 * bytes follow). */
enum { SH_EMPTY, SH_VALUE, SH_SKIP, SH_TAKE, SH_AGAIN, SH_TEXT };

/* Whether variable v's text is part of a render's shape, and written as
 * it is in a skeleton: the line keys' numbers, which templates build
 * names from (Cisco's <Extension_N_>, Polycom's attendant.resourceList.N.*). */
static bool
shape_text(int v)
{
	return v == RV_KEY_N || v == RV_KEY_BUTTON;
}

/* Records the text of a substitution in the shape (shape_text).  Text
 * holding RENDER_MARK makes the render not plain: in a skeleton it would
 * pass for a value's mark. */
static void
shape_put_text(struct render_shape *sh, const struct render_value *val)
{
	if (sh == NULL)
		return;
	if (val->len > 255 || memmem(val->s, val->len, RENDER_MARK, RENDER_MARK_LEN) != NULL) {
		sh->plain = false;
		return;
	}
	shape_put(sh, SH_TEXT);
	shape_put(sh, (unsigned char)val->len);
	for (size_t i = 0; i < val->len; i++)
		shape_put(sh, (unsigned char)val->s[i]);
}

/*
 * Renders t with vals into out.  shape: recorded when not NULL.  marks:
 * when not NULL, the skeleton is rendered instead (each non-empty value
 * written as RENDER_MARK, counted in *marks).
 */
static int
walk(const struct render_tmpl *t, const struct render_values *vals, struct render_buf *out,
     struct render_shape *shape, size_t *marks, char *err, size_t errlen)
{
	size_t start = out->len;
	bool plain = true;
	size_t i = 0;
	/* the {{#keys}} section being repeated: its body [loop_start, loop_end)
	 * is walked once per key (sections do not nest, compile-checked) */
	size_t loop_start = 0, loop_end = 0, key = 0;
	bool looping = false;

	while (i < t->n || (looping && i == loop_end)) {
		if (looping && i == loop_end) {
			if (++key < vals->nkeys) {
				shape_put(shape, SH_AGAIN);
				i = loop_start;
				continue;
			}
			looping = false;
			if (i >= t->n)
				break;
		}
		const struct node *nd = &t->nodes[i];
		switch (nd->kind) {
		case N_TEXT:
			if (render_buf_append(out, t->src + nd->a, nd->b) < 0) {
				hd_seterr(err, errlen, "out of memory");
				goto fail;
			}
			i++;
			break;
		case N_VAR: {
			const struct render_value *val = value_of(vals, nd, key);
			bool text = shape_text(nd->var);

			if (text)
				shape_put_text(shape, val);
			else
				shape_put(shape, val->len > 0 ? SH_VALUE : SH_EMPTY);
			if (marks != NULL && val->len > 0 && !text) {
				if (render_buf_append(out, RENDER_MARK, RENDER_MARK_LEN) < 0) {
					hd_seterr(err, errlen, "out of memory");
					goto fail;
				}
				(*marks)++;
			} else if ((marks == NULL || text || val->len == 0) &&
			           put_value(t, nd, val, out, &plain, err, errlen) < 0) {
				goto fail;
			}
			i++;
			break;
		}
		case N_SECT: {
			bool on = value_of(vals, nd, key)->on;
			if (nd->flags & NF_INVERT)
				on = !on;
			shape_put(shape, on ? SH_TAKE : SH_SKIP);
			assert(nd->b > i && nd->b <= t->n); /* R2 */
			if (on && nd->var == RV_KEYS && !(nd->flags & NF_INVERT)) {
				looping = true;
				key = 0;
				loop_start = i + 1;
				loop_end = nd->b;
			}
			i = on ? i + 1 : nd->b;
			break;
		}
		default:
			assert(!"bad node");
			i++;
		}
	}
	/* An empty template leaves out untouched but still terminated. */
	if (out->p == NULL && render_buf_append(out, "", 0) < 0) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (shape != NULL && !plain)
		shape->plain = false;
	return 0;
fail:
	if (out->p != NULL) {
		sodium_memzero(out->p + start, out->len - start);
		out->len = start;
		out->p[start] = '\0';
	}
	return -1;
}

int
render_run(const struct render_tmpl *t, const struct render_values *vals,
           struct render_buf *out, char *err, size_t errlen)
{
	return walk(t, vals, out, NULL, NULL, err, errlen);
}

int
render_run_shaped(const struct render_tmpl *t, const struct render_values *vals,
                  struct render_buf *out, struct render_shape *shape, char *err,
                  size_t errlen)
{
	shape->plain = true;
	shape->n = 0;
	shape->hash = 0xcbf29ce484222325ULL;
	return walk(t, vals, out, shape, NULL, err, errlen);
}

int
render_skeleton(const struct render_tmpl *t, const struct render_values *vals,
                struct render_buf *out, size_t *marks, char *err, size_t errlen)
{
	*marks = 0;
	if (t->marked) {
		hd_seterr(err, errlen, "the template's text holds the skeleton's mark");
		return -1;
	}
	return walk(t, vals, out, NULL, marks, err, errlen);
}
