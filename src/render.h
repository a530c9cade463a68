/*
 * render.h -- the template language of hotdeskd's phone configuration files.
 *
 * A template is text with a few tags (docs/TEMPLATES.md is the manual):
 *   {{name}}            the value of a variable, escaped for the output format
 *   {{#name}}...{{/name}}  the enclosed text when the variable is true/non-empty
 *   {{^name}}...{{/name}}  the enclosed text when it is false/empty
 *   {{! comment }}      nothing
 * A line holding only a section tag or a comment (and blanks) disappears
 * entirely, so sections can sit on lines of their own.  There is no raw
 * (unescaped) substitution, no partials, no delimiter change.
 *
 * The variable set is fixed (enum render_var); an unknown name is a compile
 * error, as is any malformed tag.  Errors say "line L, column C: ...".
 *
 * A template is compiled once (render_compile) into a flat list of nodes;
 * rendering (render_run) walks that list, copying text and escaping values
 * into a caller-owned growable buffer.  The escaping mode is fixed per
 * template at compile time, so a value can never reach the output unescaped.
 *
 * This module does no I/O, keeps no globals and never logs.  A compiled
 * template is immutable and may be rendered from several threads at once.
 */
#ifndef HD_RENDER_H
#define HD_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How values are escaped; chosen per template (per vendor file). */
enum render_mode {
	/* XML text and attribute values: & < > " ' become entities, TAB CR LF
	 * become character references, other C0 controls are refused. */
	RENDER_XML,
	/* As RENDER_XML, and in the value of an element the phone
	 * macro-expands -- name ending in "_Rule" or containing "_Rule_"
	 * (Profile_Rule, Upgrade_Rule, ...) or starting with "Short_Name_" --
	 * a '$' becomes "$$" (Cisco's macro character).  The element is the
	 * one opened last in the template text before the substitution. */
	RENDER_XML_CISCO,
	/* Yealink "key = value" lines: no escape syntax exists, so a value with
	 * CR, LF or another C0 control (TAB excepted) makes the render fail
	 * with an error naming the variable.  Empty renders as empty: templates
	 * write %NULL% explicitly where the phone must clear a key. */
	RENDER_KV,
};

/* The fixed variable set.  Names as written in templates in comments. */
enum render_var {
	RV_MAC,                 /* mac: 12 lowercase hex digits */
	RV_MAC_UPPER,           /* MAC: 12 uppercase hex digits */
	RV_MAC_COLONS,          /* mac_colons: aa:bb:cc:dd:ee:ff */
	RV_MODEL,               /* model (may be empty) */
	RV_ORG,                 /* org: organization name (may be empty) */
	RV_VERSION,             /* version: configuration version number */
	RV_PARKED,              /* parked: "1"/"0", home extension away */
	RV_PARKING,             /* parking: "1"/"0", line 1 is the parking account */
	RV_LINE_ENABLED,        /* line_enabled: "1"/"0" */
	RV_LINE_SIP_USER,       /* line.sip_user */
	RV_LINE_AUTH_NAME,      /* line.auth_name (defaults to line.sip_user) */
	RV_LINE_PASSWORD,       /* line.password */
	RV_LINE_DISPLAY_NAME,   /* line.display_name */
	RV_LINE_LABEL,          /* line.label */
	RV_LINE_REGISTRAR_HOST, /* line.registrar_host */
	RV_LINE_REGISTRAR_PORT, /* line.registrar_port: decimal, empty when 0 */
	RV_LINE_TRANSPORT,      /* line.transport: in the vendor's spelling */
	/* the user's settings (empty on a parked phone) and the site's */
	RV_LINE_VOICEMAIL,      /* line.voicemail: voicemail / MWI number */
	RV_LANGUAGE,            /* language: in the vendor's spelling */
	RV_LANGUAGE_CODE,       /* language_code: locale code, e.g. fr_FR */
	RV_SITE_NTP_SERVER,     /* site.ntp_server */
	RV_SITE_UTC_OFFSET,     /* site.utc_offset: +01:00 */
	RV_SITE_UTC_OFFSET_SECONDS, /* site.utc_offset_seconds: 3600 */
	RV_SITE_UTC_OFFSET_HOURS,   /* site.utc_offset_hours: +1, +5:30, -3:30 */
	RV_SITE_DST,            /* site.dst: "1"/"0", a daylight saving rule applies */
	RV_SITE_DST_EU,         /* site.dst_eu: "1"/"0", the European rule */
	RV_SITE_DST_US,         /* site.dst_us: "1"/"0", the US rule */
	/* {{#keys}}...{{/keys}} repeats once per line key of the user (in
	 * order; nothing when none); key.* exist only inside it */
	RV_KEYS,                /* keys: "1" when the user has line keys */
	RV_KEY_N,               /* key.n: 1, 2, ... */
	RV_KEY_BUTTON,          /* key.button: key.n + 1 (line key 1 is the line) */
	RV_KEY_BLF,             /* key.blf: "1"/"0" */
	RV_KEY_SPEED_DIAL,      /* key.speed_dial: "1"/"0" */
	RV_KEY_VALUE,           /* key.value: the number dialed / watched */
	RV_KEY_LABEL,           /* key.label */
	RENDER_VAR_COUNT
};

/* Most line keys a render input carries. */
#define RENDER_MAX_KEYS 10
/* The key.* variables, RV_KEY_N .. RV_KEY_LABEL. */
#define RENDER_KEY_VARS (RV_KEY_LABEL - RV_KEY_N + 1)


/* The template name of a variable ("line.password"); "" if out of range. */
const char *render_var_name(enum render_var v);

/*
 * What a device's files are rendered from.  Strings are borrowed for the
 * duration of the call that takes the struct; NULL means empty.
 *
 * A device carrying an extension: line_enabled, line = its credentials.
 * A parked device with a parking account: parked, parking, line_enabled,
 * line = the parking account (the caller sets a label such as
 * "Away - dial *30").  A parked device without one: parked, !line_enabled,
 * line fields NULL.
 */
struct render_input {
	const char *mac;   /* 12 lowercase hex digits (required) */
	const char *model;
	const char *org;
	bool parked;
	bool line_enabled;
	struct {
		const char *sip_user, *auth_name, *password, *display_name, *label,
		    *registrar_host;
		int registrar_port;    /* 0 = unset */
		const char *transport; /* "udp", "tcp", "tls" or NULL */
		const char *voicemail; /* the user's voicemail number, or NULL */
	} line;
	const char *language;      /* locale code, e.g. "fr_FR" (the vendor layer
	                            * sets the `language` spelling) */
	struct {
		const char *ntp_server;
		int utc_offset;        /* minutes east of UTC */
		int dst;               /* 0 none, 1 European rule, 2 US rule */
	} site;
	struct render_key {
		bool blf;              /* else a speed dial */
		const char *value, *label;
	} keys[RENDER_MAX_KEYS];
	size_t nkeys;
	bool parking;               /* line is the parking account */
	unsigned long long version; /* configuration version number */
};

/* One variable's value: its text (never NULL once set) and its truth for
 * sections. */
struct render_value {
	const char *s;
	size_t len;
	bool on;
};

/* The values of every variable, with room for the derived strings. */
struct render_values {
	struct render_value v[RENDER_VAR_COUNT];
	char mac_upper[13];
	char mac_colons[18];
	char port[12];
	char version[24];
	char utc_offset[8], utc_seconds[8], utc_hours[8];
	/* the line keys: key.* values per key */
	size_t nkeys;
	struct render_value key[RENDER_MAX_KEYS][RENDER_KEY_VARS];
	char key_num[RENDER_MAX_KEYS][2][4];
};

/*
 * Fills vals from in: derived variables (MAC, mac_colons, ...) computed,
 * line.transport as given (the vendor layer replaces it with its own
 * spelling through render_values_set).  vals borrows in's strings.
 * Returns 0, or -1 with a message in err when in->mac is not 12 lowercase
 * hex digits.
 */
int render_values_init(struct render_values *vals, const struct render_input *in,
                       char *err, size_t errlen);
/* All variables empty and false (for device-independent files). */
void render_values_empty(struct render_values *vals);
/* Sets one string variable (NULL = empty); truth = non-empty.  Borrows s. */
void render_values_set(struct render_values *vals, enum render_var v, const char *s);

/* A growable output buffer owned by the caller.  Zero-initialize it; it is
 * always NUL-terminated after a successful render.  It may hold secrets:
 * release it with render_buf_free, which wipes it. */
struct render_buf {
	char *p;
	size_t len, cap;
};
/* Appends n bytes.  Returns 0, or -1 when out of memory (buffer unchanged).
 * Growing wipes the old storage before freeing it. */
int render_buf_append(struct render_buf *b, const char *s, size_t n);
/* Forgets the content (wiped) but keeps the storage.  NULL-safe. */
void render_buf_reset(struct render_buf *b);
/* Wipes and frees the storage; the buffer is then empty and reusable. */
void render_buf_free(struct render_buf *b);

struct render_tmpl;

/* Largest template accepted by render_compile, in bytes. */
#define RENDER_MAX_SOURCE (1024 * 1024)

/*
 * Compiles src (len bytes, need not be NUL-terminated) for one escaping
 * mode.  On success *out is a new template the caller frees with
 * render_tmpl_free and 0 is returned.  On error returns -1, *out is NULL
 * and err holds "line L, column C: message" (1-based; columns count bytes).
 */
int render_compile(const char *src, size_t len, enum render_mode mode,
                   struct render_tmpl **out, char *err, size_t errlen);

/* Frees a compiled template.  NULL-safe. */
void render_tmpl_free(struct render_tmpl *t);

/* The mode a template was compiled for. */
enum render_mode render_tmpl_mode(const struct render_tmpl *t);
/* The source text a template was compiled from (borrowed, len bytes). */
const char *render_tmpl_source(const struct render_tmpl *t, size_t *len);

/* Whether the template refers to the variable anywhere (in a substitution
 * or a section).  Lets callers tell device-dependent templates apart. */
bool render_tmpl_uses(const struct render_tmpl *t, enum render_var v);

/*
 * Renders t with vals, appending to out (which the caller owns).  Returns 0
 * with out NUL-terminated, or -1 with a message in err: a value that cannot
 * be written in this mode (the message names the variable, never shows the
 * value), invalid UTF-8, or out of memory.  On error out->len is restored
 * to what it was on entry (the partial output is wiped).
 */
int render_run(const struct render_tmpl *t, const struct render_values *vals,
               struct render_buf *out, char *err, size_t errlen);

/*
 * A render's shape: what its output is made of apart from the text of the
 * values -- which sections were taken, how many times the line keys
 * repeated, which substitutions were empty, and the line keys' numbers
 * (key.n, key.button: templates build element and attribute names from
 * them).  Two renders of one template
 * with the same shape differ only in the text of their non-empty values,
 * so a check of the XML structure made once for a shape (vendor.c) holds
 * for every render of it.  `plain`: the shape fit in `b`, and every value
 * was plain text for that argument: no ']' and no noncharacter U+FFFE or
 * U+FFFF (which XML refuses) -- a render that is not plain has no shape
 * to reuse.  `hash` is a quick digest of b, for lookups.
 */
#define RENDER_SHAPE_MAX 480
struct render_shape {
	bool plain;
	size_t n;
	uint64_t hash;
	unsigned char b[RENDER_SHAPE_MAX];
};

/* render_run that also records the output's shape (above). */
int render_run_shaped(const struct render_tmpl *t, const struct render_values *vals,
                      struct render_buf *out, struct render_shape *shape, char *err,
                      size_t errlen);

/* What stands for a non-empty value in a skeleton: U+E000, a private-use
 * character, in UTF-8. */
#define RENDER_MARK "\xee\x80\x80"
#define RENDER_MARK_LEN 3

/*
 * The skeleton of the render of t with vals: its output with each
 * non-empty value replaced by RENDER_MARK (empty ones, and the line keys'
 * numbers, written as they are), the same for every render of the same
 * shape.  *marks: how many were
 * written.  Returns 0 with out NUL-terminated, or -1 with err: out of
 * memory, or the template's own text holds RENDER_MARK (its skeletons
 * cannot tell values from text).
 */
int render_skeleton(const struct render_tmpl *t, const struct render_values *vals,
                    struct render_buf *out, size_t *marks, char *err, size_t errlen);

#endif
