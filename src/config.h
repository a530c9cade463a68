/*
 * config.h -- the INI configuration file (docs/CONFIG.md), parsed once.
 *
 * cfg_load() reads the file with inih into a struct hd_config, an
 * immutable snapshot: nothing changes it after cfg_load() returns.  A reload
 * (SIGHUP) loads a new snapshot and swaps it in only if it loaded.  The
 * snapshot owns every string in it and is reference-counted: cfg_load()
 * returns it with one reference, cfg_ref() takes another, cfg_free() drops
 * one, and the last cfg_free() frees the strings (tokens wiped first).
 *
 * Reload safety rule: no pointer into a snapshot outlives the reference it
 * was read under.  Modules copy at construction what they keep (pub_new,
 * http_start, resync_new, notify_new, svc_open copy their options; nothing
 * keeps a `const char *` from here), and code that reads the configuration
 * in force while serving takes a reference for the duration of the read, so
 * a reload can drop the old snapshot at any time.
 *
 * Rules of the file (also errors, reported as "file:line: message"):
 *   - unknown sections and keys, keys outside a section, syntax errors;
 *   - a key given twice in a file ([pbx] networks excepted: repeated lines
 *     add to the list, which keeps long lists under inih's line limit);
 *   - numbers out of range, bad booleans (true/false, yes/no, on/off, 1/0),
 *     bad log levels, bad CIDRs, bad addresses;
 *   - a line longer than inih's limit (CFG_LINE_MAX).
 * Keys may be indented.  Inline comments start with " ;".
 *
 * After parsing, HOTDESKD_PBX_TOKEN and HOTDESKD_ADMIN_TOKEN (when set and
 * not empty) replace the tokens of the file, then the whole configuration
 * is validated (errors "file: message"): the PBX token is required.
 *
 * Relative paths are kept as written: they are relative to the directory
 * hotdeskd is started from.
 */
#ifndef HD_CONFIG_H
#define HD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define CFG_TOKEN_MIN 16 /* shortest accepted PBX / admin token */
#define CFG_LINE_MAX 197 /* longest line inih accepts (its 200-byte buffer) */
#define CFG_LISTENERS 3  /* [server], [listener2], [listener3] */

/* Interfaces a listener serves ([server] serves etc.), one bit each. */
enum cfg_iface {
	CFG_IF_PHONES = 1u << 0,  /* the provisioning prefix */
	CFG_IF_PBX = 1u << 1,     /* /pbx/v1/ */
	CFG_IF_ADMIN = 1u << 2,   /* /api/v1/ */
	CFG_IF_CONSOLE = 1u << 3, /* /console/ */
	CFG_IF_METRICS = 1u << 4, /* /metrics */
	CFG_IF_ALL = (1u << 5) - 1,
};

/* Most vendor profiles a per-profile section ([client_ca], [notify]) can
 * hold: vendor_registry_len must not exceed it (test_config checks). */
#define CFG_PROFILES_MAX 16

/* One optional string per vendor profile: v[i] belongs to vendor_registry[i]
 * (vendor.h), NULL when not set.  The keys of such a section are the
 * profiles' names, so a new family gets its key with no change here. */
struct cfg_by_profile {
	char *v[CFG_PROFILES_MAX];
};

/* One entry of an allowed-networks list.  IPv4 networks are stored as
 * IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix + 96). */
struct cfg_net {
	uint8_t addr[16]; /* network address, host bits zero */
	int prefix;       /* 0..128 */
};

struct cfg_netlist {
	struct cfg_net *v;
	size_t n;
};

/*
 * Optional strings are NULL when not set (empty in the file); the others
 * are never NULL nor empty.  (reload) marks the keys a reload changes.
 */
struct hd_config {
	unsigned refs; /* references (cfg_ref/cfg_free; atomic), not a key */
	char *file; /* the path it was loaded from */

	struct {
		char *listen;    /* IPv4 or IPv6 literal */
		int port;        /* 0 = chosen by the OS */
		char *port_file; /* optional */
		int threads;
		int max_body;    /* bytes */
		int max_import;  /* bytes: largest CSV import body */
		bool check_invariants; /* verify I1-I4 after every change (reload) */
		char *user;      /* optional: account to switch to when started as root */
		bool tls;        /* this listener speaks HTTPS */
		char *serves;    /* interfaces served: cfg_serves_mask() */
		int max_connections;            /* per listener */
		int max_connections_per_source; /* per listener and client address; 0 = no limit */
		int request_timeout; /* seconds to send a whole request; 0 = none */
		int idle_timeout;    /* seconds of silence before a connection is closed; 0 = none */
	} server;

	/* [listener2], [listener3]: more listeners (off while listen is unset);
	 * the limits and threads of [server] apply to each */
	struct cfg_listener {
		char *listen;    /* optional IP literal */
		int port;
		char *port_file; /* optional */
		bool tls;
		char *serves;
	} listeners[CFG_LISTENERS - 1];

	struct {
		char *cert;       /* PEM: server certificate then intermediates (reload) */
		char *key;        /* PEM private key (reload) */
		char *priorities; /* optional GnuTLS priority string */
		bool session_tickets; /* resumption with TLS session tickets */
	} tls;

	/* PEM bundles of the CAs that sign each family's factory
	 * certificates (mutual TLS); optional (reload) */
	struct cfg_by_profile client_ca;

	/* PEM files of certificate revocation lists for each family's
	 * bundle; optional (reload) */
	struct cfg_by_profile client_crl;


	struct {
		char *path;      /* SQLite file, or ":memory:" */
		char *migrations;/* directory of sql/NNN_name.sql */
	} database;

	struct {
		int level;       /* enum log_level (reload) */
		bool syslog;
		bool access;     /* access log of phones' downloads (reload) */
	} log;

	struct {
		char *token;     /* secret: at least CFG_TOKEN_MIN characters */
		struct cfg_netlist networks; /* (reload); empty: all allowed */
		/* The move webhook (docs/API.md): off while move_webhook is NULL */
		char *move_webhook;          /* http:// or https:// URL */
		char *move_webhook_secret;   /* secret: required with move_webhook */
		char *move_webhook_ca;       /* optional PEM bundle trusted for https */
		int move_webhook_timeout;    /* seconds per attempt */
		int move_webhook_retry_max;  /* seconds: longest wait between attempts */
		int move_webhook_keep;       /* seconds a move is retried before it is dropped */
	} pbx;

	struct {
		char *token;     /* optional; secret */
	} admin;

	struct {
		int min_length;          /* (reload) */
		int hash_ops;            /* Argon2id opslimit */
		int hash_mem_kib;        /* Argon2id memlimit, KiB */
		int hash_parallel;       /* Argon2id computations at once; 0 = one per core */
		int tries_per_call;      /* (reload) */
		int lockout_threshold;   /* (reload) */
		int lockout_window;      /* seconds (reload) */
		int lockout_backoff;     /* seconds (reload) */
		int lockout_backoff_max; /* seconds, >= lockout_backoff (reload) */
		int redial_window;       /* seconds, 0 = per call_id only (reload) */
	} secrets;

	struct {
		char *prefix;    /* URL path, starts and ends with '/' */
		char *templates; /* directory */
		char *static_dir;/* directory ([provisioning] static) */
		char *tftp_root; /* optional directory */
		char *phone_logs;/* optional directory for phones' uploaded logs */
		int log_max;     /* bytes: largest log upload accepted */
		int miss_threshold; /* misses per source in a window before a block (reload) */
		int miss_window;    /* seconds (reload) */
		int miss_block;     /* seconds (reload) */
		int miss_global_threshold; /* unknown-MAC misses of all sources per
		                            * window that trip the throttle; 0 off (reload) */
	} provisioning;

	struct {
		char *bind;           /* "ip:port" or "[ipv6]:port"; port may be 0 */
		char *contact_host;   /* optional address put in Via/Contact/From;
		                       * required with a wildcard bind */
		char *outbound_proxy; /* optional "ip:port" */
		int sync_timeout;     /* seconds (reload) */
		int sync_retries;     /* (reload) */
		int notify_max_pending; /* NOTIFY transactions of bulk resyncs in
		                         * flight at once (reload) */
		int t1_ms;            /* RFC 3261 T1 of NOTIFY transactions */
		int timer_f_ms;       /* a NOTIFY transaction gives up after this */
		struct cfg_netlist notify_networks; /* (reload); empty: any unicast address */
	} sip;

	struct {
		/* The Virtualization Center over SIP (docs/VC.md): off while
		 * bind is NULL.  None of these is reloaded. */
		char *bind;           /* optional "ip:port" or "[ipv6]:port" */
		char *contact_host;   /* optional; required with a wildcard bind */
		char *port_file;      /* optional: the SIP port bound */
		struct cfg_netlist networks; /* who may send calls; required with bind */
		char *caller_header;  /* optional: header naming the caller */
		char *prefix;         /* the dialed prefix, digits and '*' */
		char *rtp_ports;      /* "min-max" */
		char *prompts;        /* folder of prompt languages */
		char *language;       /* default prompt language */
		int code_timeout;     /* seconds */
		int max_call;         /* seconds */
		int max_calls;
	} vc;

	struct {
		char *dir;          /* static files of /console/ and /me/ */
		int session_idle;   /* seconds without a request before sign-out */
		int session_max;    /* seconds after sign-in before sign-out */
	} web;

	/* Event header of each profile's resync NOTIFY; NULL = the vendor
	 * profile's default (reload) */
	struct cfg_by_profile notify;
};

/*
 * Loads and validates the file at path.  Returns a new configuration that
 * the caller frees with cfg_free(), or NULL with a message in err:
 * "path: cannot open: reason", "path:line: message" for a problem on a
 * line, "path: message" for a rule over the whole file, "out of memory".
 * Error messages never contain a token.
 */
struct hd_config *cfg_load(const char *path, char *err, size_t errlen);

/* The same, from the text of a file held in memory; `name` stands for the
 * file name in messages and in cfg->file. */
struct hd_config *cfg_load_string(const char *name, const char *text, char *err, size_t errlen);

/* The interface bits of a "serves" value ("all", or names separated by
 * commas or blanks); 0 when a name is unknown or the list empty. */
unsigned cfg_serves_mask(const char *serves);

/* Takes one more reference on cfg (thread-safe); returns cfg.  NULL-safe. */
struct hd_config *cfg_ref(struct hd_config *cfg);

/* Drops one reference (thread-safe); the last one frees the configuration,
 * wiping its tokens first.  NULL-safe. */
void cfg_free(struct hd_config *cfg);

/*
 * Whether the address sa (AF_INET or AF_INET6; an IPv4-mapped IPv6
 * address counts as IPv4) is in [pbx] networks.  An empty list allows
 * every address; other families are refused when the list is not empty.
 */
bool cfg_net_allows(const struct hd_config *cfg, const struct sockaddr *sa);

/*
 * Lists the keys that differ between old and new but only take effect
 * after a restart, as "[server] port, [sip] bind" in out (cut with "..."
 * if it does not fit).  Returns how many there are (0: the reload takes
 * full effect).
 */
/* Parses comma/blank-separated CIDRs into a new list (free with
 * cfg_netlist_free).  0, or -1 with a message ("bad CIDR '...'"). */
int cfg_netlist_parse(const char *v, struct cfg_netlist *list, char *msg, size_t msglen);
void cfg_netlist_free(struct cfg_netlist *list);
/* Whether sa is inside one of the networks (an empty list allows all). */
bool cfg_netlist_allows(const struct cfg_netlist *l, const struct sockaddr *sa);

int cfg_restart_needed(const struct hd_config *old_cfg, const struct hd_config *new_cfg,
                       char *out, size_t outlen);

/*
 * Splits "host:port" or "[ipv6]:port" into host (without brackets) and
 * port (0..65535).  Returns 0, or -1 if it has no host, no port, a port
 * out of range, or a host that does not fit in hostlen.
 */
int cfg_hostport_parse(const char *s, char *host, size_t hostlen, int *port);

#endif
