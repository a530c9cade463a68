/*
 * world.h -- the in-memory model of organizations, extensions and devices.
 *
 * The world is the single in-memory copy of everything the virtualization
 * rules and the renderers look at.  It is loaded from the store at start-up
 * and kept in step with it by the service layer, which is its only writer.
 * The world owns every object put into it and every string inside them.
 *
 * It does no I/O and knows no clock: it is a plain data structure with
 * indexes.  The rules live in virt.c; this file only keeps the indexes
 * (MAC, sip_user, parking user, org+number, and the two derived links
 * ext->home_dev and dev->guest) true.
 *
 * Derived links, kept by world_put_* / world_set_virtual_on:
 *   dev->home_ext -> ext->home_dev   (an extension is home on <= 1 device)
 *   ext->virtual_on -> dev->guest    (a device hosts <= 1 virtual extension)
 */
#ifndef HD_WORLD_H
#define HD_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idmap.h"

typedef int64_t hd_id; /* database row id; 0 means "none" */

#define HD_MAC_LEN 12

struct hd_sip_server {
	char *host;      /* NULL or "" = inherit (extension) / none (org) */
	int port;        /* 0 = inherit / default 5060 */
	char *transport; /* "udp", "tcp", "tls"; NULL = inherit */
};

/* How phones of an organization authenticate configuration downloads. */
enum hd_prov_auth { HD_PROV_NONE, HD_PROV_SHARED, HD_PROV_DEVICE };

/* Whether phones of an organization must show their factory certificate
 * (mutual TLS, mtls.h) before a per-device file is served. */
enum hd_prov_cert { HD_CERT_NONE, HD_CERT_OPTIONAL, HD_CERT_REQUIRED };

struct hd_prov {
	enum hd_prov_auth auth;
	enum hd_prov_cert client_cert;
	char *user;      /* HD_PROV_SHARED: the digest user name */
	char *password;  /* HD_PROV_SHARED: secret */
	char *networks;  /* comma-separated CIDRs allowed to download; NULL = any */
};

/* Site settings: what every phone of an organization gets. */
enum hd_dst { HD_DST_NONE, HD_DST_EU, HD_DST_US };

struct hd_site {
	int utc_offset;     /* minutes east of UTC, -720..840 */
	enum hd_dst dst;    /* daylight saving rule */
	char *ntp_server;   /* host name or address; NULL = the default */
	char *language;     /* locale code (vendor_language_ok); NULL = en_US */
};

struct hd_org {
	hd_id id;
	char *name;         /* natural key: [a-z0-9][a-z0-9._-]{0,62} */
	char *display_name; /* free text, may be NULL */
	struct hd_sip_server sip;
	struct hd_prov prov;
	struct hd_site site;
};

/* One line key of a user: a speed dial or a BLF of another number. */
#define HD_MAX_KEYS 10
enum hd_key_type { HD_KEY_SPEED_DIAL, HD_KEY_BLF };

struct hd_key {
	enum hd_key_type type;
	char *value; /* what is dialed / watched: [0-9*#+], 1..32 */
	char *label; /* may be NULL: no label */
};

struct hd_ext {
	hd_id id;
	hd_id org;
	char *number;       /* digits, unique within org */
	char *sip_user;     /* unique across the server */
	char *sip_password; /* secret: never logged, never in an API answer */
	char *display_name;
	char *label;        /* may be NULL */
	/* user settings: they travel with the extension onto any phone */
	char *voicemail;    /* voicemail / MWI number [0-9*#+]; NULL = none */
	char *language;     /* locale code; NULL = the organization's */
	struct hd_key *keys; /* nkeys of them (at most HD_MAX_KEYS); NULL when none */
	size_t nkeys;
	struct hd_sip_server sip; /* overrides of the org default */
	bool allow_virtualization;
	bool has_secret;    /* a secret code is set */
	/* A new Argon2id string to store, or NULL.  The world never keeps it:
	 * world_put_ext wipes it and sets has_secret (the hashes stay in the
	 * store, read for the rare verification: less in memory to leak). */
	char *secret_hash;
	hd_id virtual_on;   /* device this extension is virtualized on, or 0 */
	/* derived, maintained by the world: */
	hd_id home_dev;     /* device whose home extension this is, or 0 */
	/* bytes after the struct, in its own allocation, that hold its keys
	 * and strings (world_ext_pack); 0: each in an allocation of its own */
	size_t packed;
	/* in the world's arena (world_ext_pack): never passed to free() */
	bool arena;
};

struct hd_dev {
	hd_id id;
	hd_id org;
	char mac[HD_MAC_LEN + 1]; /* 12 lowercase hex digits */
	char *profile;            /* vendor profile name */
	char *model;              /* may be NULL */
	hd_id home_ext;           /* 0 = no home extension */
	char *parking_user;       /* NULL = no parking account */
	char *parking_password;
	char *static_contact;     /* SIP URI for NOTIFY when nothing better; may be NULL */
	char *prov_password;      /* digest password of its downloads (user: MAC); secret */
	/* derived, maintained by the world: */
	hd_id guest;              /* extension virtualized on this device, or 0 */
	size_t packed;            /* as hd_ext's (world_dev_pack) */
	bool arena;               /* as hd_ext's (world_dev_pack) */
};

struct world;

/* Creates an empty world.  Returns NULL only when out of memory. */
struct world *world_new(void);
/* Makes room in the tables for that many organizations, extensions,
 * devices and parking accounts in all (loading: no table grows while the
 * rows go in).  0, or -1 out of memory (the world unchanged but for
 * tables already grown). */
int world_reserve(struct world *w, size_t orgs, size_t exts, size_t devs, size_t parking);
/* Frees the world and everything in it.  NULL-safe. */
void world_free(struct world *w);

/* Deep copies and frees of single objects (the world never shares them). */
struct hd_org *hd_org_dup(const struct hd_org *o);
struct hd_ext *hd_ext_dup(const struct hd_ext *e);
struct hd_dev *hd_dev_dup(const struct hd_dev *d);
/* Copies in one allocation each (the struct, then its keys and strings):
 * what loading a hundred thousand rows wants (one allocation per row, not
 * ten).  With w NULL the copy is an allocation of its own, freed by
 * hd_ext_free/hd_dev_free like any other; a string of a packed object may
 * still be replaced by one of its own allocation.  With w, the copy is
 * made in w's arena, for loading: rows laid one after the other in large
 * blocks mapped and faulted in at once (one malloc and a few page faults
 * per row cost more than reading it from SQLite).  Such a copy is marked
 * arena; hd_ext_free/hd_dev_free wipe it and free its strings of their
 * own but not the copy itself, whose bytes stay until world_free (a row
 * replaced or deleted after loading leaves its bytes unused: at most what
 * the load took); only for a world that will own the copy (world_put_*).
 * world_ext_pack does not copy secret_hash: the copy's has_secret tells
 * whether e had a code (what world_put_ext keeps of it).  NULL when out
 * of memory. */
struct hd_ext *world_ext_pack(struct world *w, const struct hd_ext *e);
struct hd_dev *world_dev_pack(struct world *w, const struct hd_dev *d);
void hd_org_free(struct hd_org *o);
void hd_ext_free(struct hd_ext *e); /* wipes sip_password */
void hd_dev_free(struct hd_dev *d); /* wipes parking_password */

/*
 * Lookups.  They return borrowed pointers, valid until the object is
 * replaced or deleted; NULL when there is no such object.
 */
struct hd_org *world_org(const struct world *w, hd_id id);
struct hd_org *world_org_by_name(const struct world *w, const char *name);
struct hd_ext *world_ext(const struct world *w, hd_id id);
struct hd_ext *world_ext_by_sip_user(const struct world *w, const char *sip_user);
struct hd_ext *world_ext_by_number(const struct world *w, hd_id org, const char *number);
struct hd_dev *world_dev(const struct world *w, hd_id id);
struct hd_dev *world_dev_by_mac(const struct world *w, const char *mac12);
struct hd_dev *world_dev_by_parking_user(const struct world *w, const char *sip_user);

/*
 * Insert or replace by id, taking ownership of the object (it is freed on
 * failure too).  The derived fields of the object passed in are ignored and
 * recomputed.  Returns 0, or -1 with a message in err when a unique key
 * (name, mac, sip_user, org+number, parking user, home extension) is
 * already used by another object; the world is then unchanged.
 * world_put_ext keeps virtual_on as given in the object; world_put_dev
 * keeps the devices' guest links.
 */
int world_put_org(struct world *w, struct hd_org *o, char *err, size_t errlen);
int world_put_ext(struct world *w, struct hd_ext *e, char *err, size_t errlen);
int world_put_dev(struct world *w, struct hd_dev *d, char *err, size_t errlen);

/* Whether inserting/replacing x would collide with another object's unique
 * key; the same rules as world_put_*, without changing anything. */
int world_check_ext(const struct world *w, const struct hd_ext *e, char *err, size_t errlen);
int world_check_dev(const struct world *w, const struct hd_dev *d, char *err, size_t errlen);

/*
 * Deletes.  The caller must first have made the deletion consistent (no
 * extension virtualized on a deleted device, ...; see virt_repair).  A
 * deleted extension's home device gets home_ext = 0; a deleted device's
 * home extension gets home_dev = 0.  Deleting an org requires it empty.
 */
void world_del_org(struct world *w, hd_id id);
void world_del_ext(struct world *w, hd_id id);
void world_del_dev(struct world *w, hd_id id);

/* Sets ext->virtual_on and the devices' guest links.  This is the only
 * state the virtualization rules change. */
void world_set_virtual_on(struct world *w, hd_id ext, hd_id dev);

/* Iteration, in unspecified order.  The callback returns 0 to go on,
 * non-zero to stop (that value is returned).  Do not modify the world from
 * the callback. */
typedef int (*world_org_cb)(struct hd_org *o, void *arg);
typedef int (*world_ext_cb)(struct hd_ext *e, void *arg);
typedef int (*world_dev_cb)(struct hd_dev *d, void *arg);
int world_each_org(const struct world *w, world_org_cb cb, void *arg);
int world_each_ext(const struct world *w, world_ext_cb cb, void *arg);
int world_each_dev(const struct world *w, world_dev_cb cb, void *arg);
/* The devices in steps of n table slots, the lock released between them
 * (idmap_walk_step says what a walk sees). */
int world_walk_devs(const struct world *w, struct idmap_walk *c, size_t n, world_dev_cb cb,
                    void *arg);

size_t world_count_orgs(const struct world *w);
size_t world_count_exts(const struct world *w);
size_t world_count_devs(const struct world *w);

/*
 * Normalizes a MAC written with any case and ':' or '-' separators into 12
 * lowercase hex digits in out (13 bytes).  Returns 0, or -1 if it is not a
 * MAC.
 */
int hd_mac_normalize(const char *in, char out[HD_MAC_LEN + 1]);

/*
 * Line keys as stored (sql/006_user_settings.sql): one line per key,
 * "blf" or "sd", TAB, value, TAB, label.  hd_keys_format returns a new
 * string (NULL when e has no key or memory runs out; *oom tells which);
 * hd_keys_parse fills e->keys/e->nkeys from text (NULL: none), returning
 * 0, or -1 on a malformed text or out of memory (e then has no key).
 * Values and labels never hold TAB or LF (the admin API refuses control
 * characters).
 */
char *hd_keys_format(const struct hd_ext *e, bool *oom);
int hd_keys_parse(struct hd_ext *e, const char *text);
/* Frees e's keys (e->nkeys = 0). */
void hd_keys_clear(struct hd_ext *e);
/* Whether s is a dialable value for a key or voicemail: 1..32 of [0-9*#+]. */
bool hd_dial_ok(const char *s);

/* A growable set of ids, kept in insertion order without duplicates
 * (hd_idset_push trusts the caller on that).  Zero-initialised is empty;
 * large sets get a hash index for O(1) membership. */
struct idmap;
struct hd_idset {
	hd_id *v;
	size_t n, cap;
	struct idmap *idx; /* NULL while small */
};
int hd_idset_add(struct hd_idset *s, hd_id id); /* 0, or -1 out of memory */
/* Appends without the duplicate check (for large sets known to be
 * distinct).  0, or -1 out of memory. */
int hd_idset_push(struct hd_idset *s, hd_id id);
bool hd_idset_has(const struct hd_idset *s, hd_id id);
void hd_idset_clear(struct hd_idset *s);
void hd_idset_free(struct hd_idset *s);

#endif
