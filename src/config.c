/*
 * config.c -- parses the INI file of docs/CONFIG.md into struct hd_config.
 *
 * Table-driven: every key is one row of `keys` (section, name, type, field
 * offset, range, flags, default as written in CONFIG.md, optional extra
 * check).  Defaults go through the same parser as the file, so a default
 * is checked like any value.  Adding a key is one row plus its field.
 * A T_PROFILES row stands for one key per vendor profile (the key is the
 * profile's name, the field a struct cfg_by_profile): the vendor registry
 * alone says which families exist.
 *
 * inih does the tokenizing.  Lines reach it through our own reader, which
 * counts lines (inih's handler is not told the line number), strips
 * leading blanks (so keys may be indented and nothing is ever taken for a
 * continuation line), rejects unknown section headers even when no key
 * follows them, and rejects lines longer than inih's buffer instead of
 * letting them be split.  The first error wins and stops the parse.
 *
 * Invariant: a struct hd_config returned to a caller has passed validate():
 * every required string set, every number in range, the tokens present
 * and long enough.  Tokens are wiped whenever they are freed or replaced.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <sodium.h>

#include "errbuf.h"
#include "log.h"
#include "vendor.h"

enum cfg_type { T_INT, T_BOOL, T_STR, T_LEVEL, T_NETS, T_PROFILES };

#define F_RELOAD 1u   /* takes effect on reload without a restart */
#define F_OPTIONAL 2u /* string: may be empty, stored as NULL */
#define F_SECRET 4u   /* string: wiped when freed, never echoed */

/* Extra check of a string value; 0, or -1 with a message in msg. */
typedef int (*cfg_check_fn)(const char *value, char *msg, size_t msglen);

struct cfg_key {
	const char *section;
	const char *name;   /* NULL for T_PROFILES: the profiles' names */
	enum cfg_type type;
	size_t off;         /* offset of the field in struct hd_config */
	long long min, max; /* T_INT range */
	unsigned flags;
	const char *def;    /* default, as written in CONFIG.md */
	cfg_check_fn check; /* T_STR only, may be NULL */
};

static int check_ip(const char *v, char *msg, size_t msglen);
static int check_prefix(const char *v, char *msg, size_t msglen);
static int check_bind(const char *v, char *msg, size_t msglen);
static int check_hostport(const char *v, char *msg, size_t msglen);
static int check_event(const char *v, char *msg, size_t msglen);
static int check_ports(const char *v, char *msg, size_t msglen);
static int check_dial_prefix(const char *v, char *msg, size_t msglen);
static int check_header_name(const char *v, char *msg, size_t msglen);
static int check_serves(const char *v, char *msg, size_t msglen);
static int check_webhook_url(const char *v, char *msg, size_t msglen);

#define OFF(m) offsetof(struct hd_config, m)
#define INT(s, n, m, lo, hi, fl, d) {s, n, T_INT, OFF(m), lo, hi, fl, d, NULL}
#define BOOL(s, n, m, fl, d) {s, n, T_BOOL, OFF(m), 0, 0, fl, d, NULL}
#define STR(s, n, m, fl, d, chk) {s, n, T_STR, OFF(m), 0, 0, fl, d, chk}
#define LEVEL(s, n, m, fl, d) {s, n, T_LEVEL, OFF(m), 0, 0, fl, d, NULL}
#define NETS(s, n, m, fl, d) {s, n, T_NETS, OFF(m), 0, 0, fl, d, NULL}
/* one optional string per vendor profile (struct cfg_by_profile) */
#define PROFILES(s, m, fl, chk) {s, NULL, T_PROFILES, OFF(m), 0, 0, (fl) | F_OPTIONAL, "", chk}
#define YEAR 31536000

static const struct cfg_key keys[] = {
	STR("server", "listen", server.listen, 0, "127.0.0.1", check_ip),
	INT("server", "port", server.port, 0, 65535, 0, "8080"),
	STR("server", "port_file", server.port_file, F_OPTIONAL, "", NULL),
	INT("server", "threads", server.threads, 1, 1024, 0, "4"),
	INT("server", "max_body", server.max_body, 1, 1 << 30, 0, "65536"),
	INT("server", "max_import", server.max_import, 1, 1 << 30, 0, "16777216"),
	BOOL("server", "check_invariants", server.check_invariants, F_RELOAD, "false"),
	STR("server", "user", server.user, F_OPTIONAL, "", NULL),
	BOOL("server", "tls", server.tls, 0, "false"),
	STR("server", "serves", server.serves, 0, "all", check_serves),
	INT("server", "max_connections", server.max_connections, 1, 1000000, 0, "4096"),
	INT("server", "max_connections_per_source", server.max_connections_per_source, 0, 1000000,
	    0, "256"),
	INT("server", "request_timeout", server.request_timeout, 0, 86400, 0, "30"),
	INT("server", "idle_timeout", server.idle_timeout, 0, 86400, 0, "30"),
#define LISTENER(sec, i) \
	STR(sec, "listen", listeners[i].listen, F_OPTIONAL, "", check_ip), \
	INT(sec, "port", listeners[i].port, 0, 65535, 0, "0"), \
	STR(sec, "port_file", listeners[i].port_file, F_OPTIONAL, "", NULL), \
	BOOL(sec, "tls", listeners[i].tls, 0, "false"), \
	STR(sec, "serves", listeners[i].serves, 0, "all", check_serves)
	LISTENER("listener2", 0),
	LISTENER("listener3", 1),
	STR("tls", "cert", tls.cert, F_OPTIONAL | F_RELOAD, "", NULL),
	STR("tls", "key", tls.key, F_OPTIONAL | F_RELOAD, "", NULL),
	STR("tls", "priorities", tls.priorities, F_OPTIONAL, "", NULL),
	BOOL("tls", "session_tickets", tls.session_tickets, 0, "true"),
	PROFILES("client_ca", client_ca, F_RELOAD, NULL),
	PROFILES("client_crl", client_crl, F_RELOAD, NULL),
	STR("database", "path", database.path, 0, "hotdeskd.db", NULL),
	STR("database", "migrations", database.migrations, 0, "sql", NULL),
	LEVEL("log", "level", log.level, F_RELOAD, "info"),
	BOOL("log", "syslog", log.syslog, 0, "false"),
	BOOL("log", "access", log.access, F_RELOAD, "false"),
	STR("pbx", "token", pbx.token, F_OPTIONAL | F_SECRET, "", NULL),
	NETS("pbx", "networks", pbx.networks, F_RELOAD, ""),
	STR("pbx", "move_webhook", pbx.move_webhook, F_OPTIONAL, "", check_webhook_url),
	STR("pbx", "move_webhook_secret", pbx.move_webhook_secret, F_OPTIONAL | F_SECRET, "", NULL),
	STR("pbx", "move_webhook_ca", pbx.move_webhook_ca, F_OPTIONAL, "", NULL),
	INT("pbx", "move_webhook_timeout", pbx.move_webhook_timeout, 1, 600, 0, "5"),
	INT("pbx", "move_webhook_retry_max", pbx.move_webhook_retry_max, 1, 86400, 0, "60"),
	INT("pbx", "move_webhook_keep", pbx.move_webhook_keep, 1, YEAR, 0, "3600"),
	NETS("sip", "notify_networks", sip.notify_networks, F_RELOAD, ""),
	STR("admin", "token", admin.token, F_OPTIONAL | F_SECRET, "", NULL),
	INT("secrets", "min_length", secrets.min_length, 1, 32, F_RELOAD, "4"),
	INT("secrets", "hash_ops", secrets.hash_ops, 1, 1000, 0, "4"),
	INT("secrets", "hash_mem_kib", secrets.hash_mem_kib, 8, 4194304, 0, "32768"),
	INT("secrets", "hash_parallel", secrets.hash_parallel, 0, 1024, 0, "0"),
	INT("secrets", "tries_per_call", secrets.tries_per_call, 1, 100, F_RELOAD, "3"),
	INT("secrets", "lockout_threshold", secrets.lockout_threshold, 1, 1000000, F_RELOAD, "10"),
	INT("secrets", "lockout_window", secrets.lockout_window, 1, YEAR, F_RELOAD, "900"),
	INT("secrets", "lockout_backoff", secrets.lockout_backoff, 1, YEAR, F_RELOAD, "60"),
	INT("secrets", "lockout_backoff_max", secrets.lockout_backoff_max, 1, YEAR, F_RELOAD, "3600"),
	INT("secrets", "redial_window", secrets.redial_window, 0, 86400, F_RELOAD, "120"),
	STR("provisioning", "prefix", provisioning.prefix, 0, "/provision/", check_prefix),
	STR("provisioning", "templates", provisioning.templates, 0, "templates", NULL),
	STR("provisioning", "static", provisioning.static_dir, 0, "provisioning", NULL),
	STR("provisioning", "tftp_root", provisioning.tftp_root, F_OPTIONAL, "", NULL),
	STR("provisioning", "phone_logs", provisioning.phone_logs, F_OPTIONAL, "", NULL),
	INT("provisioning", "log_max", provisioning.log_max, 1024, 64 << 20, 0, "1048576"),
	INT("provisioning", "miss_threshold", provisioning.miss_threshold, 1, 1000000, F_RELOAD, "20"),
	INT("provisioning", "miss_window", provisioning.miss_window, 1, YEAR, F_RELOAD, "60"),
	INT("provisioning", "miss_block", provisioning.miss_block, 1, YEAR, F_RELOAD, "300"),
	INT("provisioning", "miss_global_threshold", provisioning.miss_global_threshold, 0, 100000000,
	    F_RELOAD, "1000"),
	STR("sip", "bind", sip.bind, 0, "127.0.0.1:5070", check_bind),
	STR("sip", "contact_host", sip.contact_host, F_OPTIONAL, "", check_ip),
	STR("sip", "outbound_proxy", sip.outbound_proxy, F_OPTIONAL, "", check_hostport),
	INT("sip", "sync_timeout", sip.sync_timeout, 1, 86400, F_RELOAD, "60"),
	INT("sip", "sync_retries", sip.sync_retries, 1, 100, F_RELOAD, "3"),
	INT("sip", "notify_max_pending", sip.notify_max_pending, 1, 1000000, F_RELOAD, "4096"),
	INT("sip", "t1_ms", sip.t1_ms, 10, 10000, 0, "500"),
	INT("sip", "timer_f_ms", sip.timer_f_ms, 100, 600000, 0, "32000"),
	STR("vc", "bind", vc.bind, F_OPTIONAL, "", check_bind),
	STR("vc", "contact_host", vc.contact_host, F_OPTIONAL, "", check_ip),
	STR("vc", "port_file", vc.port_file, F_OPTIONAL, "", NULL),
	NETS("vc", "networks", vc.networks, 0, ""),
	STR("vc", "caller_header", vc.caller_header, F_OPTIONAL, "", check_header_name),
	STR("vc", "prefix", vc.prefix, 0, "*30", check_dial_prefix),
	STR("vc", "rtp_ports", vc.rtp_ports, 0, "20000-29999", check_ports),
	STR("vc", "prompts", vc.prompts, 0, "build/prompts", NULL),
	STR("vc", "language", vc.language, 0, "en", NULL),
	INT("vc", "code_timeout", vc.code_timeout, 1, 600, 0, "15"),
	INT("vc", "max_call", vc.max_call, 5, 3600, 0, "120"),
	INT("vc", "max_calls", vc.max_calls, 1, 100000, 0, "1000"),
	STR("web", "dir", web.dir, 0, "web", NULL),
	INT("web", "session_idle", web.session_idle, 60, 86400, 0, "1800"),
	INT("web", "session_max", web.session_max, 60, 7 * 86400, 0, "43200"),
	PROFILES("notify", notify, F_RELOAD, check_event),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {
	"server", "database", "log", "pbx", "admin", "secrets", "provisioning", "sip", "notify", "vc",
	"web",
	"listener2", "listener3", "tls", "client_ca",
	"client_crl",
};

/* ---- small helpers ---------------------------------------------------- */

/* A value fit for an error message: escaped, cut at 64 bytes. */
#define SHOWN_MAX 64
static const char *
shown(const char *v, char buf[SHOWN_MAX])
{
	return log_sanitize(v, buf, SHOWN_MAX);
}

static void
free_str(char **p, bool secret)
{
	if (*p != NULL && secret)
		sodium_memzero(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

/* Slots of a row: one per vendor profile for T_PROFILES, else one. */
static size_t
nslots(const struct cfg_key *k)
{
	if (k->type != T_PROFILES)
		return 1;
	return vendor_registry_len < CFG_PROFILES_MAX ? vendor_registry_len : CFG_PROFILES_MAX;
}

/* The key's name as written in the file. */
static const char *
key_name(const struct cfg_key *k, size_t slot)
{
	return k->type == T_PROFILES ? vendor_registry[slot]->name : k->name;
}

/* Where the value of (k, slot) lives in cfg. */
static void *
field_of(const struct hd_config *cfg, const struct cfg_key *k, size_t slot)
{
	char *f = (char *)cfg + k->off;

	if (k->type == T_PROFILES)
		return &((struct cfg_by_profile *)(void *)f)->v[slot];
	return f;
}

/* The row of [section] name and, in *slot, which of its values. */
static const struct cfg_key *
find_key(const char *section, const char *name, size_t *slot)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		for (size_t j = 0; j < nslots(&keys[i]); j++) {
			if (strcmp(key_name(&keys[i], j), name) == 0) {
				*slot = j;
				return &keys[i];
			}
		}
	}
	return NULL;
}

static bool
known_section(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (strlen(sections[i]) == len && memcmp(sections[i], s, len) == 0)
			return true;
	return false;
}

/* ---- values ------------------------------------------------------------- */

static int
parse_int(const struct cfg_key *k, const char *v, int *out, char *msg, size_t msglen)
{
	char sbuf[SHOWN_MAX];
	long long x;
	char *end;

	errno = 0;
	x = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || (*v != '-' && (*v < '0' || *v > '9'))) {
		hd_seterr(msg, msglen, "not a number: '%s'", shown(v, sbuf));
		return -1;
	}
	if (errno == ERANGE || x < k->min || x > k->max) {
		hd_seterr(msg, msglen, "%s is out of range (%lld..%lld)", shown(v, sbuf), k->min, k->max);
		return -1;
	}
	*out = (int)x;
	return 0;
}

static int
parse_bool(const char *v, bool *out, char *msg, size_t msglen)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	char sbuf[SHOWN_MAX];

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	hd_seterr(msg, msglen, "expected true or false, got '%s'", shown(v, sbuf));
	return -1;
}

/*
 * Parses one CIDR ("10.0.0.0/8", "2001:db8::/32", or a bare address for a
 * single host) into n.  IPv4 becomes IPv4-mapped IPv6.  Host bits must be
 * zero: "10.0.0.1/8" is more likely a typo than a wish.
 */
static int
parse_cidr(const char *s, struct cfg_net *n)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	struct in_addr a4;
	int max, prefix;
	bool v6;

	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	v6 = strchr(addr, ':') != NULL;
	memset(n, 0, sizeof(*n));
	if (v6) {
		if (inet_pton(AF_INET6, addr, n->addr) != 1)
			return -1;
		max = 128;
	} else {
		if (inet_pton(AF_INET, addr, &a4) != 1)
			return -1;
		n->addr[10] = 0xff;
		n->addr[11] = 0xff;
		memcpy(n->addr + 12, &a4, 4);
		max = 32;
	}
	prefix = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		if (*p == '\0' || strlen(p) > 3)
			return -1;
		prefix = 0;
		for (; *p != '\0'; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			prefix = prefix * 10 + (*p - '0');
		}
		if (prefix > max)
			return -1;
	}
	n->prefix = v6 ? prefix : prefix + 96;
	for (int bit = n->prefix; bit < 128; bit++)
		if (n->addr[bit / 8] & (0x80 >> (bit % 8)))
			return -2;
	return 0;
}

/* Appends the CIDRs of v (separated by commas and/or blanks) to the list. */
static int
parse_nets(const char *v, struct cfg_netlist *list, char *msg, size_t msglen)
{
	char item[64], sbuf[SHOWN_MAX];
	struct cfg_net net, *grown;
	const char *p = v;
	size_t len;
	int rc;

	while (*p != '\0') {
		p += strspn(p, ", \t");
		len = strcspn(p, ", \t");
		if (len == 0)
			break;
		if (len >= sizeof(item)) {
			memcpy(item, p, 32);
			item[32] = '\0';
			hd_seterr(msg, msglen, "bad CIDR '%s...'", shown(item, sbuf));
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		p += len;
		rc = parse_cidr(item, &net);
		if (rc == -2) {
			hd_seterr(msg, msglen, "bad CIDR '%s' (host bits set)", shown(item, sbuf));
			return -1;
		}
		if (rc != 0) {
			hd_seterr(msg, msglen, "bad CIDR '%s'", shown(item, sbuf));
			return -1;
		}
		grown = realloc(list->v, (list->n + 1) * sizeof(*list->v));
		if (grown == NULL) {
			hd_seterr(msg, msglen, "out of memory");
			return -1;
		}
		list->v = grown;
		list->v[list->n++] = net;
	}
	return 0;
}

/* Sets the field of key k (value slot) in cfg from the text v.  0, or -1
 * with msg. */
static int
apply_value(struct hd_config *cfg, const struct cfg_key *k, size_t slot, const char *v,
            char *msg, size_t msglen)
{
	char *field = field_of(cfg, k, slot);
	char sbuf[SHOWN_MAX];
	char **sp;
	char *copy;
	int level;

	switch (k->type) {
	case T_INT:
		return parse_int(k, v, (int *)(void *)field, msg, msglen);
	case T_BOOL:
		return parse_bool(v, (bool *)(void *)field, msg, msglen);
	case T_LEVEL:
		level = log_level_parse(v);
		if (level < 0) {
			hd_seterr(msg, msglen, "unknown level '%s' (debug, info, warn, error)",
			          shown(v, sbuf));
			return -1;
		}
		*(int *)(void *)field = level;
		return 0;
	case T_NETS:
		return parse_nets(v, (struct cfg_netlist *)(void *)field, msg, msglen);
	case T_STR:
	case T_PROFILES:
		sp = (char **)(void *)field;
		if (*v == '\0') {
			if (!(k->flags & F_OPTIONAL)) {
				hd_seterr(msg, msglen, "a value is required");
				return -1;
			}
			free_str(sp, k->flags & F_SECRET);
			return 0;
		}
		if (k->check != NULL && k->check(v, msg, msglen) != 0)
			return -1;
		copy = strdup(v);
		if (copy == NULL) {
			hd_seterr(msg, msglen, "out of memory");
			return -1;
		}
		free_str(sp, k->flags & F_SECRET);
		*sp = copy;
		return 0;
	}
	hd_seterr(msg, msglen, "internal error: bad key type");
	return -1;
}

static int
check_ip(const char *v, char *msg, size_t msglen)
{
	unsigned char buf[sizeof(struct in6_addr)];
	char sbuf[SHOWN_MAX];

	if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
		return 0;
	hd_seterr(msg, msglen, "not an IP address: '%s'", shown(v, sbuf));
	return -1;
}

static int
check_prefix(const char *v, char *msg, size_t msglen)
{
	size_t len = strlen(v);

	if (len < 1 || v[0] != '/' || v[len - 1] != '/') {
		hd_seterr(msg, msglen, "must start and end with '/'");
		return -1;
	}
	if (strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/") != len ||
	    strstr(v, "//") != NULL || strstr(v, "/./") != NULL || strstr(v, "/../") != NULL) {
		hd_seterr(msg, msglen, "must be a plain URL path (letters, digits, - . _ ~ and single '/')");
		return -1;
	}
	return 0;
}

int
cfg_hostport_parse(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *hs, *he, *p;
	long x = 0;

	if (s == NULL || *s == '\0')
		return -1;
	if (s[0] == '[') {
		hs = s + 1;
		he = strchr(hs, ']');
		if (he == NULL || he[1] != ':')
			return -1;
		colon = he + 1;
	} else {
		hs = s;
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1; /* no port, or an unbracketed IPv6 address */
		he = colon;
	}
	if (he == hs || (size_t)(he - hs) >= hostlen)
		return -1;
	p = colon + 1;
	if (*p == '\0' || strlen(p) > 5)
		return -1;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		x = x * 10 + (*p - '0');
	}
	if (x > 65535)
		return -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	*port = (int)x;
	return 0;
}

static int
check_bind(const char *v, char *msg, size_t msglen)
{
	char host[INET6_ADDRSTRLEN + 1], sbuf[SHOWN_MAX];
	int port;

	if (cfg_hostport_parse(v, host, sizeof(host), &port) != 0 ||
	    check_ip(host, NULL, 0) != 0) {
		hd_seterr(msg, msglen, "expected ip:port or [ipv6]:port, got '%s'", shown(v, sbuf));
		return -1;
	}
	return 0;
}

static int
check_hostport(const char *v, char *msg, size_t msglen)
{
	char host[256], sbuf[SHOWN_MAX];
	int port;

	if (cfg_hostport_parse(v, host, sizeof(host), &port) != 0 || port == 0 ||
	    strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:") !=
	        strlen(host)) {
		hd_seterr(msg, msglen, "expected host:port, got '%s'", shown(v, sbuf));
		return -1;
	}
	return 0;
}

/* An http:// or https:// URL with a host, printable ASCII without spaces
 * (libcurl checks the rest when the webhook starts). */
static int
check_webhook_url(const char *v, char *msg, size_t msglen)
{
	char sbuf[SHOWN_MAX];
	size_t skip = strncmp(v, "http://", 7) == 0 ? 7 : strncmp(v, "https://", 8) == 0 ? 8 : 0;
	bool printable = strlen(v) < 1024;

	for (const char *p = v; *p != '\0'; p++)
		printable = printable && *p > 0x20 && *p < 0x7f;
	if (skip == 0 || !printable || v[skip] == '\0' || v[skip] == '/') {
		hd_seterr(msg, msglen, "expected an http:// or https:// URL, got '%s'", shown(v, sbuf));
		return -1;
	}
	return 0;
}

/* "min-max": a UDP port range for RTP, 1024..65535, at least 2 ports. */
static int
check_ports(const char *v, char *msg, size_t msglen)
{
	char sbuf[SHOWN_MAX];
	int lo, hi, n = 0;

	if (sscanf(v, "%d-%d%n", &lo, &hi, &n) != 2 || (size_t)n != strlen(v) || lo < 1024 ||
	    hi > 65535 || hi - lo < 1) {
		hd_seterr(msg, msglen, "expected a port range like 20000-29999 within 1024-65535, got '%s'",
		          shown(v, sbuf));
		return -1;
	}
	return 0;
}

/* What a user dials before the extension: digits, '*' and '#'. */
static int
check_dial_prefix(const char *v, char *msg, size_t msglen)
{
	char sbuf[SHOWN_MAX];

	if (strlen(v) > 8 || strspn(v, "0123456789*#") != strlen(v)) {
		hd_seterr(msg, msglen, "expected up to 8 of 0-9 * #, got '%s'", shown(v, sbuf));
		return -1;
	}
	return 0;
}

/* A SIP header name: a token of letters, digits and '-'. */
static int
check_header_name(const char *v, char *msg, size_t msglen)
{
	char sbuf[SHOWN_MAX];

	if (strlen(v) > 48 ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != strlen(v)) {
		hd_seterr(msg, msglen, "expected a header name, got '%s'", shown(v, sbuf));
		return -1;
	}
	return 0;
}

/* A SIP Event header value: 1 to 128 visible ASCII characters. */
static int
check_event(const char *v, char *msg, size_t msglen)
{
	char sbuf[SHOWN_MAX];
	size_t n = strlen(v);

	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			n = 0;
	}
	if (n == 0 || n > 128) {
		hd_seterr(msg, msglen, "expected an Event value such as check-sync, got '%s'",
		          shown(v, sbuf));
		return -1;
	}
	return 0;
}

static const char *const iface_names[] = { "phones", "pbx", "admin", "console", "metrics" };

unsigned
cfg_serves_mask(const char *v)
{
	unsigned mask = 0;
	char item[16];
	size_t len, i;

	while (v != NULL && *v != '\0') {
		v += strspn(v, ", \t");
		len = strcspn(v, ", \t");
		if (len == 0)
			break;
		if (len >= sizeof(item))
			return 0;
		memcpy(item, v, len);
		item[len] = '\0';
		v += len;
		if (strcmp(item, "all") == 0) {
			mask |= CFG_IF_ALL;
			continue;
		}
		for (i = 0; i < sizeof(iface_names) / sizeof(iface_names[0]); i++)
			if (strcmp(item, iface_names[i]) == 0)
				break;
		if (i == sizeof(iface_names) / sizeof(iface_names[0]))
			return 0;
		mask |= 1u << i;
	}
	return mask;
}

/* A list of interfaces: all, or some of phones, pbx, admin, console, metrics. */
static int
check_serves(const char *v, char *msg, size_t msglen)
{
	char sbuf[SHOWN_MAX];

	if (cfg_serves_mask(v) != 0)
		return 0;
	hd_seterr(msg, msglen, "expected all or a list of phones, pbx, admin, console, metrics, got '%s'",
	          shown(v, sbuf));
	return -1;
}

/* ---- parsing ------------------------------------------------------------ */

struct parse {
	const char *name;   /* file name for messages */
	FILE *fp;           /* source: a file ... */
	const char *text;   /* ... or a string (cursor) */
	char *line;         /* getline buffer (may hold a token: wiped) */
	size_t linecap;
	int lineno;
	struct hd_config *cfg;
	/* line each key (row, slot) was set on, 0 = not yet */
	int seen[NKEYS][CFG_PROFILES_MAX];
	bool failed;
	int err_line;
	char *err;
	size_t errlen;
};

/* Records the first error, on the current line. */
static void LOG_PRINTF(2, 3)
fail_line(struct parse *st, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	if (st->failed)
		return;
	st->failed = true;
	st->err_line = st->lineno;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	else if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	hd_seterr(st->err, st->errlen, "%s:%d: %s", st->name, st->lineno, msg);
}

/* The next raw line in st->line; its length, or -1 at the end. */
static ssize_t
next_line(struct parse *st)
{
	const char *nl;
	size_t len;

	if (st->fp != NULL)
		return getline(&st->line, &st->linecap, st->fp);
	if (*st->text == '\0')
		return -1;
	nl = strchr(st->text, '\n');
	len = nl != NULL ? (size_t)(nl - st->text) + 1 : strlen(st->text);
	if (len + 1 > st->linecap) {
		/* not realloc: the old buffer may hold a token and is wiped */
		char *grown = malloc(len + 1);
		if (grown == NULL) {
			fail_line(st, "out of memory");
			return -1;
		}
		if (st->line != NULL)
			sodium_memzero(st->line, st->linecap);
		free(st->line);
		st->line = grown;
		st->linecap = len + 1;
	}
	memcpy(st->line, st->text, len);
	st->line[len] = '\0';
	st->text += len;
	return (ssize_t)len;
}

/* inih's reader: hands it one whole line, without leading blanks. */
static char *
read_line(char *str, int num, void *stream)
{
	struct parse *st = stream;
	char sbuf[SHOWN_MAX];
	char *start, *close;
	ssize_t got;
	size_t body, n;

	if (st->failed)
		return NULL;
	got = next_line(st);
	if (got < 0)
		return NULL;
	st->lineno++;
	body = (size_t)got;
	if (body > 0 && st->line[body - 1] == '\n')
		body--;
	if (body > 0 && st->line[body - 1] == '\r')
		body--;
	if (memchr(st->line, '\0', body) != NULL) {
		fail_line(st, "NUL byte in line");
		return NULL;
	}
	start = st->line;
	if (st->lineno == 1 && body >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3; /* UTF-8 byte order mark */
	while (*start == ' ' || *start == '\t')
		start++;
	n = body - (size_t)(start - st->line);
	if (num < 3 || n > (size_t)num - 3) {
		fail_line(st, "line too long (more than %d characters)", num - 3);
		return NULL;
	}
	if (*start == '[') {
		close = memchr(start, ']', n);
		/* without ']' inih reports the syntax error itself */
		if (close != NULL && !known_section(start + 1, (size_t)(close - start - 1))) {
			*close = '\0';
			fail_line(st, "unknown section [%s]", shown(start + 1, sbuf));
			return NULL;
		}
	}
	memcpy(str, start, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse *st = user;
	const struct cfg_key *k;
	char msg[400], s1[SHOWN_MAX], s2[SHOWN_MAX];
	size_t i, slot = 0;

	if (st->failed)
		return 0;
	if (*section == '\0') {
		fail_line(st, "key '%s' is outside any section", shown(name, s1));
		return 0;
	}
	k = find_key(section, name, &slot);
	if (k == NULL) {
		fail_line(st, "unknown key '%s' in [%s]", shown(name, s1), shown(section, s2));
		return 0;
	}
	i = (size_t)(k - keys);
	if (st->seen[i][slot] != 0 && k->type != T_NETS) {
		fail_line(st, "[%s] %s is set twice (first on line %d)", k->section,
		          key_name(k, slot), st->seen[i][slot]);
		return 0;
	}
	st->seen[i][slot] = st->lineno;
	if (apply_value(st->cfg, k, slot, value, msg, sizeof(msg)) != 0) {
		fail_line(st, "[%s] %s: %s", k->section, key_name(k, slot), msg);
		return 0;
	}
	return 1;
}

/* ---- load --------------------------------------------------------------- */

static int
set_defaults(struct hd_config *cfg, char *err, size_t errlen)
{
	char msg[256];

	for (size_t i = 0; i < NKEYS; i++) {
		for (size_t j = 0; j < nslots(&keys[i]); j++) {
			if (apply_value(cfg, &keys[i], j, keys[i].def, msg, sizeof(msg)) != 0) {
				hd_seterr(err, errlen, "default of [%s] %s: %s", keys[i].section,
				          key_name(&keys[i], j), msg);
				return -1;
			}
		}
	}
	return 0;
}

/* Replaces *field with the value of the environment variable, if set. */
static int
env_override(char **field, const char *var)
{
	const char *v = getenv(var);
	char *copy;

	if (v == NULL || *v == '\0')
		return 0;
	copy = strdup(v);
	if (copy == NULL)
		return -1;
	free_str(field, true);
	*field = copy;
	return 0;
}

static int
check_token(const char *name, const char *section, const char *key, const char *tok,
            bool required, char *err, size_t errlen)
{
	if (tok == NULL) {
		if (!required)
			return 0;
		hd_seterr(err, errlen, "%s: [%s] %s is required", name, section, key);
		return -1;
	}
	if (strlen(tok) < CFG_TOKEN_MIN) {
		hd_seterr(err, errlen, "%s: [%s] %s must be at least %d characters", name, section,
		          key, CFG_TOKEN_MIN);
		return -1;
	}
	for (const char *p = tok; *p != '\0'; p++) {
		if (*p < 0x21 || *p > 0x7e) {
			hd_seterr(err, errlen,
			          "%s: [%s] %s must be printable ASCII without spaces", name,
			          section, key);
			return -1;
		}
	}
	return 0;
}

/* The rules over the whole file, after the environment overrides. */
/* The Virtualization Center needs to know who may call it and which
 * address to put in SDP and Contact. */
static int
validate_vc(const struct hd_config *cfg, const char *name, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	int port;

	if (cfg->vc.bind == NULL)
		return 0;
	if (cfg->vc.networks.n == 0) {
		hd_seterr(err, errlen, "%s: [vc] networks: required with [vc] bind (the PBX or proxy "
		          "addresses allowed to send calls)", name);
		return -1;
	}
	if (cfg_hostport_parse(cfg->vc.bind, host, sizeof(host), &port) == 0 &&
	    (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) &&
	    cfg->vc.contact_host == NULL) {
		hd_seterr(err, errlen, "%s: [vc] contact_host: required with a wildcard [vc] bind", name);
		return -1;
	}
	return 0;
}

static bool
is_wildcard(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

/* What the NOTIFY sender (notify_new) needs of [sip], checked here so that
 * --check-config and a reload refuse what start-up would: a contact host
 * when bind is a wildcard, never a wildcard one, and addresses the bound
 * socket can use (an IPv4 bind reaches and names IPv4 addresses only). */
static int
validate_sip(const struct hd_config *cfg, const char *name, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1], proxy[256];
	bool v4;
	int port;

	if (cfg_hostport_parse(cfg->sip.bind, host, sizeof(host), &port) != 0)
		return 0; /* refused on its line already */
	v4 = strchr(host, ':') == NULL;
	if (cfg->sip.contact_host == NULL && is_wildcard(host)) {
		hd_seterr(err, errlen, "%s: [sip] contact_host: required with a wildcard [sip] bind "
		          "(the address phones and the PBX see NOTIFYs come from)", name);
		return -1;
	}
	if (cfg->sip.contact_host != NULL &&
	    (is_wildcard(cfg->sip.contact_host) || (v4 && strchr(cfg->sip.contact_host, ':')))) {
		hd_seterr(err, errlen, "%s: [sip] contact_host: must be a unicast address of the "
		          "[sip] bind family, not '%s'", name, cfg->sip.contact_host);
		return -1;
	}
	if (cfg->sip.outbound_proxy != NULL &&
	    (cfg_hostport_parse(cfg->sip.outbound_proxy, proxy, sizeof(proxy), &port) != 0 ||
	     check_ip(proxy, NULL, 0) != 0 || (v4 && strchr(proxy, ':') != NULL))) {
		hd_seterr(err, errlen, "%s: [sip] outbound_proxy: must be a numeric ip:port reachable "
		          "from [sip] bind", name);
		return -1;
	}
	return 0;
}

static int
validate(const struct hd_config *cfg, const char *name, char *err, size_t errlen)
{
	if (check_token(name, "pbx", "token", cfg->pbx.token, true, err, errlen) != 0 ||
	    check_token(name, "admin", "token", cfg->admin.token, false, err, errlen) != 0)
		return -1;
	/* the PBX trusts a move only with the secret it shares with hotdeskd */
	if (cfg->pbx.move_webhook != NULL &&
	    check_token(name, "pbx", "move_webhook_secret", cfg->pbx.move_webhook_secret, true,
	                err, errlen) != 0)
		return -1;
	if (validate_vc(cfg, name, err, errlen) != 0 || validate_sip(cfg, name, err, errlen) != 0)
		return -1;
	if (cfg->secrets.lockout_backoff_max < cfg->secrets.lockout_backoff) {
		hd_seterr(err, errlen,
		          "%s: [secrets] lockout_backoff_max (%d) is less than lockout_backoff (%d)",
		          name, cfg->secrets.lockout_backoff_max, cfg->secrets.lockout_backoff);
		return -1;
	}
	for (int i = 0; i < CFG_LISTENERS; i++) {
		bool on = i == 0 || cfg->listeners[i - 1].listen != NULL;
		bool tls = i == 0 ? cfg->server.tls : cfg->listeners[i - 1].tls;

		if (on && tls && (cfg->tls.cert == NULL || cfg->tls.key == NULL)) {
			hd_seterr(err, errlen, "%s: [%s] tls needs [tls] cert and key", name,
			          i == 0 ? "server" : i == 1 ? "listener2" : "listener3");
			return -1;
		}
	}
	return 0;
}

static struct hd_config *
load(struct parse *st, char *err, size_t errlen)
{
	struct hd_config *cfg;
	int rc;

	cfg = calloc(1, sizeof(*cfg));
	if (cfg != NULL)
		cfg->refs = 1;
	if (cfg == NULL || (cfg->file = strdup(st->name)) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (set_defaults(cfg, err, errlen) != 0)
		goto fail;
	st->cfg = cfg;
	st->err = err;
	st->errlen = errlen;
	rc = ini_parse_stream(read_line, st, on_key, st);
	if (st->line != NULL)
		sodium_memzero(st->line, st->linecap);
	if (rc == -2 || (st->fp != NULL && ferror(st->fp))) {
		hd_seterr(err, errlen, "%s: %s", st->name, rc == -2 ? "out of memory" : "read error");
		goto fail;
	}
	if (rc > 0 && (!st->failed || rc < st->err_line)) {
		hd_seterr(err, errlen, "%s:%d: syntax error (expected [section] or name = value)",
		          st->name, rc);
		goto fail;
	}
	if (st->failed)
		goto fail;
	if (env_override(&cfg->pbx.token, "HOTDESKD_PBX_TOKEN") != 0 ||
	    env_override(&cfg->admin.token, "HOTDESKD_ADMIN_TOKEN") != 0 ||
	    env_override(&cfg->pbx.move_webhook_secret, "HOTDESKD_MOVE_WEBHOOK_SECRET") != 0) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (validate(cfg, st->name, err, errlen) != 0)
		goto fail;
	free(st->line);
	return cfg;
fail:
	free(st->line);
	cfg_free(cfg);
	return NULL;
}

struct hd_config *
cfg_load(const char *path, char *err, size_t errlen)
{
	struct parse st = {0};
	struct hd_config *cfg;

	st.name = path;
	st.fp = fopen(path, "re");
	if (st.fp == NULL) {
		hd_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	cfg = load(&st, err, errlen);
	fclose(st.fp);
	return cfg;
}

struct hd_config *
cfg_load_string(const char *name, const char *text, char *err, size_t errlen)
{
	struct parse st = {0};

	st.name = name;
	st.text = text != NULL ? text : "";
	return load(&st, err, errlen);
}

struct hd_config *
cfg_ref(struct hd_config *cfg)
{
	if (cfg != NULL)
		__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

void
cfg_free(struct hd_config *cfg)
{
	if (cfg == NULL || __atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		char *field = (char *)cfg + keys[i].off;
		if (keys[i].type == T_STR)
			free_str((char **)(void *)field, keys[i].flags & F_SECRET);
		else if (keys[i].type == T_NETS)
			free(((struct cfg_netlist *)(void *)field)->v);
		else if (keys[i].type == T_PROFILES)
			for (size_t j = 0; j < CFG_PROFILES_MAX; j++)
				free_str(field_of(cfg, &keys[i], j), keys[i].flags & F_SECRET);
	}
	free(cfg->file);
	free(cfg);
}

/* ---- queries ------------------------------------------------------------ */

static bool
net_contains(const struct cfg_net *n, const uint8_t a[16])
{
	int full = n->prefix / 8, rest = n->prefix % 8;

	if (memcmp(n->addr, a, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((n->addr[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool
cfg_netlist_allows(const struct cfg_netlist *l, const struct sockaddr *sa)
{
	uint8_t a[16];

	if (l->n == 0)
		return true;
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		memset(a, 0, 10);
		a[10] = 0xff;
		a[11] = 0xff;
		memcpy(a + 12, &s4->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(a, &s6->sin6_addr, 16);
	} else {
		return false;
	}
	for (size_t i = 0; i < l->n; i++)
		if (net_contains(&l->v[i], a))
			return true;
	return false;
}

bool
cfg_net_allows(const struct hd_config *cfg, const struct sockaddr *sa)
{
	return cfg_netlist_allows(&cfg->pbx.networks, sa);
}

int
cfg_netlist_parse(const char *v, struct cfg_netlist *list, char *msg, size_t msglen)
{
	list->v = NULL;
	list->n = 0;
	if (parse_nets(v, list, msg, msglen) != 0) {
		cfg_netlist_free(list);
		return -1;
	}
	return 0;
}

void
cfg_netlist_free(struct cfg_netlist *list)
{
	free(list->v);
	list->v = NULL;
	list->n = 0;
}

static bool
same_value(const struct cfg_key *k, size_t slot, const struct hd_config *a,
           const struct hd_config *b)
{
	const char *fa = field_of(a, k, slot), *fb = field_of(b, k, slot);
	const struct cfg_netlist *na, *nb;
	const char *sa, *sb;

	switch (k->type) {
	case T_INT:
	case T_LEVEL:
		return *(const int *)(const void *)fa == *(const int *)(const void *)fb;
	case T_BOOL:
		return *(const bool *)(const void *)fa == *(const bool *)(const void *)fb;
	case T_STR:
	case T_PROFILES:
		sa = *(char *const *)(const void *)fa;
		sb = *(char *const *)(const void *)fb;
		if (sa == NULL || sb == NULL)
			return sa == sb;
		return strcmp(sa, sb) == 0;
	case T_NETS:
		na = (const struct cfg_netlist *)(const void *)fa;
		nb = (const struct cfg_netlist *)(const void *)fb;
		return na->n == nb->n &&
		       (na->n == 0 || memcmp(na->v, nb->v, na->n * sizeof(*na->v)) == 0);
	}
	return false;
}

int
cfg_restart_needed(const struct hd_config *old_cfg, const struct hd_config *new_cfg, char *out,
                   size_t outlen)
{
	size_t pos = 0;
	int count = 0, n;

	if (outlen > 0)
		out[0] = '\0';
	for (size_t i = 0; i < NKEYS; i++) {
		for (size_t j = 0; j < nslots(&keys[i]); j++) {
			if ((keys[i].flags & F_RELOAD) || same_value(&keys[i], j, old_cfg, new_cfg))
				continue;
			count++;
			if (pos >= outlen)
				continue;
			n = snprintf(out + pos, outlen - pos, "%s[%s] %s", count > 1 ? ", " : "",
			             keys[i].section, key_name(&keys[i], j));
			if (n < 0 || (size_t)n >= outlen - pos) {
				if (outlen > 4)
					memcpy(out + outlen - 4, "...", 4);
				pos = outlen; /* full: count the rest only */
			} else {
				pos += (size_t)n;
			}
		}
	}
	return count;
}
