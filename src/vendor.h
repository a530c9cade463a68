/*
 * vendor.h -- phone families ("vendor profiles") as data plus a small ops
 * table, in one registry.
 *
 * A profile says which files its phones request (name patterns), which of
 * them depend on the device (per-device: rendered from the device's
 * render_input) and which do not (shared: a device-independent template or
 * a static file), the output format of each, how transports are spelled,
 * the SIP NOTIFY event that makes the phone resync, and how to read its
 * User-Agent.  Adding a phone family takes one vendor_<name>.c file (which
 * defines `const struct vendor_profile vendor_<name>` with its
 * match_priority), its templates and its tests; nothing else changes.  The
 * registry (vendor_registry[]) is generated from the vendor files by
 * scripts/mkregistry.sh when the core is built, and every per-family
 * setting ([notify], [client_ca]) is keyed by the profile's name.
 *
 * File name patterns are plain names with placeholders, literal parts
 * matched case-insensitively:
 *   {mac}   12 hex digits, any case (canonical form: lowercase)
 *   {MAC}   12 hex digits, any case (canonical form: uppercase)
 *   {model} 1 to 32 of [A-Za-z0-9_-] (shortest match that lets the rest match)
 *   {code}  exactly 3 decimal digits
 * A per-device pattern has {mac} or {MAC}; a shared one has not.
 *
 * The only I/O of this module is vendor_templates_load, which reads the
 * template and static files from two directories.  Everything else is
 * pure: no clock, no globals but the const registry, no logging.
 */
#ifndef HD_VENDOR_H
#define HD_VENDOR_H

#include <stdbool.h>
#include <stddef.h>

#include "render.h"

/* Longest file name vendor_match_file considers. */
#define VENDOR_NAME_MAX 128
/* Longest template or static file vendor_templates_load reads. */
#define VENDOR_FILE_MAX RENDER_MAX_SOURCE

/* What a User-Agent string tells; "" where it says nothing. */
struct vendor_ua {
	char model[48];
	char firmware[48];
	char mac[13]; /* 12 lowercase hex digits, or "" */
};

/* What a NOTIFY body may depend on (only some profiles send a body). */
struct vendor_notify {
	const char *register_call_id; /* Call-ID of the phone's REGISTER, or NULL */
	unsigned long long version;   /* configuration version */
};

struct vendor_ops {
	/* Returns 0 and fills out when ua is one of this family's; -1 if not. */
	int (*parse_user_agent)(const char *ua, struct vendor_ua *out);
	/* Optional (NULL: no body).  Writes the NOTIFY body into buf; returns
	 * its length, or -1 on truncation or a value that cannot be sent. */
	int (*notify_body)(const struct vendor_notify *in, char *buf, size_t len);
};

struct vendor_file {
	const char *pattern;   /* e.g. "{mac}-line.cfg", "SEP{MAC}.cnf.xml" */
	/* Template file name under <templates>/<profile>/; NULL for a static
	 * shared file read verbatim from <static>/<profile>/<pattern>. */
	const char *tmpl;
	enum render_mode mode; /* RENDER_KV or one of the XML modes */
	/* Shared files whose pattern has {model} or {code}: the model parts
	 * whose names are also written to the TFTP root (NULL-terminated; a
	 * TFTP server matches names exactly, so spell them as the phones
	 * ask).  Over HTTP every model is served on request.  NULL: none. */
	const char *const *tftp_models;
};

/*
 * A limit one profile puts on a value it renders, as data in its
 * vendor_<name>.c.  `field` is the admin API's name of the value
 * ("display_name", "label", "sip_user", "sip_password", "sip_server.host",
 * "parking.sip_user", "parking.sip_password", ...); max_chars is the
 * longest value the phones take, in characters (Unicode code points).
 * A profile's table ends with { NULL, 0 }.  vendor_field_check applies it.
 */
struct vendor_field_limit {
	const char *field;
	size_t max_chars;
};

/* How a family's phones challenge a NOTIFY (docs/RESYNC.md).  realm NULL:
 * the host of the line's registrar (the extension's or organization's SIP
 * server), else that fixed realm; algorithms: bits 1u << enum
 * sip_digest_alg (sip.h); qop_required: the phone always offers qop. */
struct vendor_notify_auth {
	const char *realm;
	unsigned algorithms;
	bool qop_required;
};

/* The languages a user or site may choose, as locale codes, in this order
 * in every profile's `language` table: en_US en_GB fr_FR de_DE es_ES
 * it_IT nl_NL pt_PT. */
#define VENDOR_NLANG 8
extern const char *const vendor_language_codes[VENDOR_NLANG];
/* Whether code is one of vendor_language_codes. */
bool vendor_language_ok(const char *code);

struct vendor_profile {
	const char *name; /* the profile's name: templates/<name>/, config keys */
	/* Match order: when a file name or User-Agent fits several families,
	 * the profile with the lower match_priority wins.  Unique across the
	 * registry (scripts/mkregistry.sh refuses two equal ones). */
	int match_priority;
	const struct vendor_file *device_files;
	size_t n_device_files;
	const struct vendor_file *shared_files;
	size_t n_shared_files;
	/* line.transport as this family spells it, for udp, tcp, tls. */
	const char *transport[3];
	/* `language` as this family spells each of vendor_language_codes
	 * (NULL: the phone has no such language; rendered empty). */
	const char *language[VENDOR_NLANG];
	const char *notify_event;        /* Event: header value */
	/* Optional: notify_event_alt is sent instead when a key = value
	 * template of the profile sets notify_alt_key to notify_alt_value
	 * (Yealink: sip.notify_reboot_enable = 0 -> check-sync;reboot=false). */
	const char *notify_event_alt;
	const char *notify_alt_key;
	const char *notify_alt_value;
	const char *notify_content_type; /* NULL when no body is sent */
	/* Subscription-State of the NOTIFY; NULL: "terminated" (RFC 6665). */
	const char *notify_subscription_state;
	/* The digest challenges this family's phones make to a NOTIFY, or
	 * NULL when they make none (hotdeskd then never answers one). */
	const struct vendor_notify_auth *notify_auth;
	const struct vendor_ops *ops;
	/* Optional: limits of the values it renders ({ NULL, 0 }-terminated;
	 * NULL = none beyond the characters every profile refuses). */
	const struct vendor_field_limit *field_limits;
};

/* The registry, by increasing match_priority (generated: see above).
 * Never changes. */
extern const struct vendor_profile *const vendor_registry[];
extern const size_t vendor_registry_len;

/* The profile of that name, or NULL. */
const struct vendor_profile *vendor_profile_by_name(const char *name);
/* The index of p in vendor_registry (for tables kept per profile), or
 * SIZE_MAX when p is not a registered profile. */
size_t vendor_profile_index(const struct vendor_profile *p);

/* ---- file names ------------------------------------------------------- */

enum vendor_kind { VENDOR_NONE, VENDOR_DEVICE, VENDOR_SHARED };

struct vendor_file_match {
	const struct vendor_profile *profile;
	enum vendor_kind kind;
	size_t file_index; /* into profile->device_files or ->shared_files */
	char mac[13];      /* VENDOR_DEVICE: 12 lowercase hex digits */
	char model[33];    /* what {model}/{code} matched, else "" */
};

/*
 * Whether name is a plain file name this module will look at: 1 to
 * VENDOR_NAME_MAX bytes of [A-Za-z0-9._-], not starting with '.', no "..".
 * (So no '/', '\\', NUL, control characters, '%' or spaces.)
 */
bool vendor_file_name_ok(const char *name);

/*
 * Maps a requested file name to the file that serves it.  Returns 1 and
 * fills out on a match; 0 when no profile serves that name; -1 when name
 * is not a plain file name (vendor_file_name_ok).  Shared files of every
 * profile are tried before per-device ones, then registry order decides.
 *
 * One name can belong to several families: "<mac>.cfg" is Yealink's
 * per-device file and also the optional Polycom per-device master file.
 * A server that finds the device's own profile differs from out->profile
 * must ask again with vendor_profile_match_file(device's profile, name)
 * and answer 404 when that does not match.
 */
int vendor_match_file(const char *filename, struct vendor_file_match *out);

/* The same, within one profile only. */
int vendor_profile_match_file(const struct vendor_profile *p, const char *filename,
                              struct vendor_file_match *out);

/*
 * The canonical name of file f for a device (mac: 12 hex digits, either
 * case; NULL for a shared file) and, for {model}/{code} patterns, a model
 * part.  Returns 0, or -1 when a needed value is missing or invalid or buf
 * is too small.
 */
int vendor_file_name(const struct vendor_file *f, const char *mac, const char *model,
                     char *buf, size_t len);

/* ---- values a profile can render -------------------------------------- */

/*
 * Whether value can be rendered as `field` (a vendor_field_limit name) by
 * profile p, or by every profile of the registry when p is NULL: valid
 * UTF-8 of XML 1.0 characters only (no C0 or C1 control character, DEL,
 * surrogate, U+FFFE, U+FFFF or other noncharacter), and no longer than
 * each profile's limit for that field.  NULL or "" passes.  Returns 0, or
 * -1 with the reason in err ("at most 30 characters on <profile>
 * phones"), which never quotes the value (it may be a password).
 */
int vendor_field_check(const struct vendor_profile *p, const char *field, const char *value,
                       char *err, size_t errlen);
/* The limit profile p sets on field, in characters; 0 = none. */
size_t vendor_field_max(const struct vendor_profile *p, const char *field);

/* ---- User-Agent, NOTIFY ----------------------------------------------- */

/*
 * Finds the family of a phone from its User-Agent (HTTP or SIP).  Returns
 * the profile and fills out, or NULL (out then all empty).
 */
const struct vendor_profile *vendor_parse_user_agent(const char *ua, struct vendor_ua *out);

/*
 * The Event a resync NOTIFY to a phone of profile p carries with the
 * templates t in use: notify_event, or notify_event_alt when a template
 * sets notify_alt_key to notify_alt_value on a line of its own.
 */
struct vendor_templates;
const char *vendor_notify_event(const struct vendor_profile *p, const struct vendor_templates *t);

/*
 * The NOTIFY body for profile p: returns its length (0: no body), or -1
 * when it does not fit in buf or a value cannot be sent.
 */
int vendor_notify_body(const struct vendor_profile *p, const struct vendor_notify *in,
                       char *buf, size_t len);

/* line.transport ("udp", "tcp", "tls", any case) in p's spelling; ""
 * for NULL or ""; NULL for anything else. */
const char *vendor_transport(const struct vendor_profile *p, const char *transport);

/* ---- templates and rendering ------------------------------------------ */

/* The compiled templates and static files of every profile. */
struct vendor_templates;

/*
 * Reads every profile's templates from <tmpl_dir>/<profile>/<tmpl> and
 * static files from <static_dir>/<profile>/<pattern>, and checks each one
 * as vendor_template_check does.  On success *out is a new set the caller
 * frees with vendor_templates_free.  On error returns -1 with err naming
 * the file ("templates/<profile>/device.cfg: line 3, column 7: ...").
 * This is the module's only function that touches the file system.
 */
int vendor_templates_load(const char *tmpl_dir, const char *static_dir,
                          struct vendor_templates **out, char *err, size_t errlen);
void vendor_templates_free(struct vendor_templates *t); /* NULL-safe */

/*
 * Validates a replacement for the template or static file called `name` in
 * profile p (a template's file name, e.g. "device.cfg", or a static file's
 * name, e.g. "000000000000.cfg"): it must compile, a shared template may
 * use no variable but `model`, and rendering it for sample devices (normal,
 * parked with and without a parking account, hostile values) must succeed
 * and, for XML, be well-formed.  Returns 0, or -1 with the reason in err.
 */
int vendor_template_check(const struct vendor_profile *p, const char *name,
                          const char *src, size_t len, char *err, size_t errlen);

/* A 16-byte hash of the sources of p's per-device templates in t (and of
 * p's name): equal keys render alike. */
void vendor_templates_device_key(const struct vendor_templates *t, const struct vendor_profile *p,
                                 unsigned char out[16]);
/*
 * Checks (as above) and installs src as template/static file `name` of p
 * in t.  The caller must hold t exclusively (no render running on it).
 * Returns 0, or -1 with err set and t unchanged.
 */
int vendor_templates_set(struct vendor_templates *t, const struct vendor_profile *p,
                         const char *name, const char *src, size_t len,
                         char *err, size_t errlen);

/*
 * The values a per-device template of p renders for in: render_values_init
 * plus the profile's spellings (line.transport, language).  vals borrows
 * in's strings.  Returns 0, or -1 with err (a bad MAC, an unknown
 * transport).
 */
int vendor_values(const struct vendor_profile *p, const struct render_input *in,
                  struct render_values *vals, char *err, size_t errlen);

/*
 * Renders per-device file file_index of p for one device, appending to out
 * (caller-owned; may hold secrets: free with render_buf_free).  XML output
 * is checked well-formed with libxml2.  Returns 0, or -1 with err set and
 * out->len as on entry.
 */
int vendor_render_device(const struct vendor_profile *p, const struct vendor_templates *t,
                         size_t file_index, const struct render_input *in,
                         struct render_buf *out, char *err, size_t errlen);

/*
 * The same without the well-formedness check, for callers that know the
 * output was checked before (the same content hash) or check it with
 * vendor_check_device_output before publishing.  known (NULL: not
 * asked): set true when the output is known well-formed without that
 * check, its shape having been checked once (vendor_render_memo).
 */
int vendor_render_device_unchecked(const struct vendor_profile *p,
                                   const struct vendor_templates *t, size_t file_index,
                                   const struct render_input *in, struct render_buf *out,
                                   bool *known, char *err, size_t errlen);
/* Checks a rendered per-device file as vendor_render_device does (XML
 * formats: well-formed).  0, or -1 with err. */
int vendor_check_device_output(const struct vendor_profile *p, size_t file_index,
                               const char *data, size_t len, char *err, size_t errlen);
/* Whether any per-device template of p in t uses variable v. */
bool vendor_device_uses(const struct vendor_profile *p, const struct vendor_templates *t,
                        enum render_var v);

/*
 * Renders (or copies, for a static file) shared file file_index of p,
 * appending to out.  model: what the request's {model}/{code} matched, or
 * NULL.  Same results as vendor_render_device.
 */
int vendor_render_shared(const struct vendor_profile *p, const struct vendor_templates *t,
                         size_t file_index, const char *model,
                         struct render_buf *out, char *err, size_t errlen);

/* Whether p[0..len) is a well-formed XML document (libxml2, no network, no
 * entity expansion).  Returns 0, or -1 with "line N: message" in err. */
int vendor_check_xml(const char *p, size_t len, char *err, size_t errlen);

/*
 * The XML checks of one template's renders, made once per render shape
 * (render.h) where that is sound (vendor.c says when); every loaded XML
 * template has one.  Thread-safe: shapes are learned without a lock.
 */
struct vendor_xml_memo;
struct vendor_xml_memo *vendor_xml_memo_new(void); /* NULL when out of memory */
void vendor_xml_memo_free(struct vendor_xml_memo *m); /* NULL-safe */
/* The shapes learned so far, and the renders whose own check they spared. */
void vendor_xml_memo_stats(struct vendor_xml_memo *m, size_t *shapes, size_t *skipped);
/*
 * Renders compiled template tm with vals, appending to out, and checks
 * that XML output is well-formed (with m, once per shape; NULL: every
 * time).  Returns 0, or -1 with err and out->len as on entry.
 */
int vendor_render_memo(const struct render_tmpl *tm, struct vendor_xml_memo *m,
                       const struct render_values *vals, struct render_buf *out, char *err,
                       size_t errlen);
/* The sums of vendor_xml_memo_stats over every template of t. */
void vendor_templates_xml_stats(const struct vendor_templates *t, size_t *shapes,
                                size_t *skipped);

/* ---- helpers for the vendor_*.c files ---------------------------------- */

struct vendor_tok {
	const char *s;
	size_t n;
};
/* Splits s on runs of blanks into at most max tokens; returns the count. */
size_t vendor_split(const char *s, struct vendor_tok *tok, size_t max);
/* Whether s[0..n) starts with prefix, ignoring ASCII case. */
bool vendor_prefix(const char *s, size_t n, const char *prefix);
/* Copies s[0..n) into dst (size dstlen), keeping only printable ASCII;
 * truncates to fit.  Always NUL-terminates. */
void vendor_copy(char *dst, size_t dstlen, const char *s, size_t n);
/* A MAC from s[0..n): 12 hex digits, or 6 pairs separated by ':' or '-'.
 * Writes 12 lowercase digits to out and returns 0, or returns -1. */
int vendor_mac(const char *s, size_t n, char out[13]);
/* Finds the first "(...)" group in s holding a MAC, optionally after a
 * prefix such as "SN:" (case-insensitive); 0 and out filled, or -1. */
int vendor_mac_in_parens(const char *s, const char *prefix, char out[13]);

#endif
