/*
 * store.h -- the SQLite store: every SQL statement hotdeskd runs, behind
 * typed functions, and the schema migrations in sql/NNN_name.sql.
 *
 * The store is the durable copy of the world (organizations, extensions,
 * devices, virtual_on) plus what only lives on disk: the audit trail,
 * per-call code attempts, lockout pairs, API tokens (hashed), the PBX's
 * registration facts and a small key/value table.  It knows nothing of the
 * virtualization rules; the service layer decides, the store records.
 *
 * Threads: a struct store is NOT thread-safe.  Its prepared statements are
 * shared, so every call, from store_open to store_close, must be made under
 * the caller's lock (the service layer's writer lock).
 *
 * Durability: WAL with synchronous=NORMAL.  A committed transaction
 * survives the process being killed at any point (kill -9); the last
 * transactions before a power loss or OS crash may be rolled back.
 *
 * Return codes, unless a function says otherwise:
 *   0                 success
 *   STORE_ERR  (-1)   any other failure; store_errmsg() says what
 *   STORE_CONFLICT (-2) the change collides with existing rows: a UNIQUE
 *                     key already used, a foreign key that does not exist,
 *                     or a row still referenced (deleting a non-empty org)
 *   STORE_NOTFOUND (-3) an update or delete named an id that has no row
 * Lookups (*_get, *_find) return 1 when found, 0 when absent, or < 0.
 * Ids: hd_id 0 means "none" and is stored as NULL.
 */
#ifndef HD_STORE_H
#define HD_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "world.h"

#define STORE_ERR      (-1)
#define STORE_CONFLICT (-2)
#define STORE_NOTFOUND (-3)

struct store;

/*
 * Opens (creating if needed) the database at path and applies, in version
 * order, every sql_dir/NNN_name.sql not yet recorded in schema_migrations,
 * each in its own transaction.  A new database file gets mode 0600 and an
 * existing one is tightened to 0600 (it holds SIP passwords).  path
 * ":memory:" gives a private in-memory database (tests).  sql_dir NULL
 * applies nothing (the schema must already be there).
 * Returns the store, or NULL with a message in err: a failing migration
 * reads "sql/NNN_x.sql: <sqlite message>" (sql_dir as given).  Close with
 * store_close().
 */
struct store *store_open(const char *path, const char *sql_dir, char *err, size_t errlen);
/*
 * Online backup: copies the database at path (it may be in use by a
 * running hotdeskd: one read transaction, the WAL included) into a new
 * file out, created mode 0600 (an existing out is refused), then checks
 * the copy (PRAGMA quick_check).  *pages gets the number of pages copied.
 * Returns 0, or -1 with err (out removed).  Needs no struct store.
 */
int store_backup(const char *path, const char *out, int *pages, char *err, size_t errlen);
/* Finalizes every statement and closes the database.  NULL-safe.  An open
 * transaction is rolled back. */
void store_close(struct store *s);
/* The last error of this store, "" if none.  Borrowed until the next call. */
const char *store_errmsg(const struct store *s);
/* How many failures were recorded since open (STORE_CONFLICT answers
 * excluded): the figure of hotdeskd_store_errors_total. */
/* The query plan of each of the store's prepared statements, one step
 * (EXPLAIN QUERY PLAN's detail: "SEARCH resync USING INDEX ...") per call
 * with the statement's SQL: for the tests that hold each query to the
 * index it is written for.  0, or -1 (cb non-zero stops it). */
typedef int (*store_plan_cb)(const char *sql, const char *step, void *arg);
int store_query_plans(struct store *s, store_plan_cb cb, void *arg);
unsigned long long store_error_count(const struct store *s);
/* Highest migration version applied, or -1 on error. */
int store_schema_version(struct store *s);

/*
 * The one way to open a transaction, for the service (service.c) alone:
 * BEGIN IMMEDIATE (takes the write lock now), fn(s, arg), then COMMIT
 * when fn returns 0, else ROLLBACK.  Returns 0; fn's non-zero result
 * (rolled back); or STORE_ERR when BEGIN fails (fn does not run: a busy
 * or broken database, or a transaction already open) or COMMIT fails
 * (rolled back).  Without it every call is its own transaction.
 */
typedef int (*store_txn_fn)(struct store *s, void *arg);
int store_txn(struct store *s, store_txn_fn fn, void *arg);
/*
 * Runs fn(arg, committed) once what was written so far is durable or
 * gone: inside store_txn's transaction, when it ends (committed true
 * after its COMMIT, false after a rollback); outside one, at once (true:
 * each statement committed itself).  The same (fn, arg) twice in one
 * transaction runs once.  0, or -1 when STORE_TXN_END_MAX are pending.
 */
#define STORE_TXN_END_MAX 4
typedef void (*store_txn_end_fn)(void *arg, bool committed);
int store_after_txn(struct store *s, store_txn_end_fn fn, void *arg);
/* Sets the page cache of this connection to kib KiB (a bulk change that
 * would spill its pages to the log before commit sets it large, then back
 * to STORE_CACHE_DEFAULT_KIB).  0 or -1. */
#define STORE_CACHE_DEFAULT_KIB 2000
int store_cache_kib(struct store *s, int kib);

#ifdef HD_FAULTS
/*
 * Fault injection, in test builds only (store.c compiled with -DHD_FAULTS;
 * the daemon has none of it).  store_fault_at arms the store: the k-th
 * statement step from now (each row read counts; ROLLBACK never fails)
 * fails with an I/O error, as a failing disk would, and every other step
 * runs; k 0 disarms.  store_fault_steps: the steps counted since the last
 * store_fault_at (fewer than k: the operation never reached the fault).
 */
void store_fault_at(struct store *s, long k);
long store_fault_steps(const struct store *s);
/* A slow disk for every thread but the caller: each statement step
 * another thread runs first sleeps ms (a write waiting for the journal
 * while that thread holds the service lock); 0 disarms. */
void store_fault_slow(struct store *s, int ms);
#endif

/*
 * Loads every organization, extension and device into w (normally empty)
 * with world_put_* and world_set_virtual_on, from one read snapshot.
 * Returns 0, or -1 with a message in err (w may then hold part of the
 * data: free it).
 */
int store_load_world(struct store *s, struct world *w, char *err, size_t errlen);

/*
 * Organizations, extensions, devices.  *_put inserts when x->id == 0 (and
 * sets x->id), else updates the row with that id (STORE_NOTFOUND if none).
 * Every field is stored as given, NULL strings as NULL; derived fields
 * (home_dev, guest) are ignored.  *_delete removes by id: deleting an
 * extension clears its home device's home_ext; deleting a device clears
 * virtual_on of the extension on it; both drop their lockout pairs.
 * Deleting an organization that still has extensions or devices gives
 * STORE_CONFLICT (its org tokens go with it).
 */
int store_org_put(struct store *s, struct hd_org *o);
int store_org_delete(struct store *s, hd_id id);
int store_ext_put(struct store *s, struct hd_ext *e);
int store_ext_delete(struct store *s, hd_id id);
/*
 * The secret-code hash of an extension, into buf (the world keeps none).
 * 1 found, 0 no code (or no such extension), < 0 error (also when it does
 * not fit).  store_ext_put with secret_hash NULL keeps the stored hash
 * while has_secret is true, and clears it otherwise.
 */
int store_ext_secret(struct store *s, hd_id ext, char *buf, size_t len);
/* A count of the writes through this store that may change an
 * extension's code (store_ext_put, store_ext_delete, store_hash_swap of a
 * code), committed or not: the same count at two moments means no code
 * changed between them, so a hash read at the first (store_ext_secret)
 * is still the stored one.  (hotdeskd is the database's only writer.) */
unsigned long long store_codes_gen(const struct store *s);
/* virtual_on of ext := dev (0 = back to base). */
int store_ext_set_virtual_on(struct store *s, hd_id ext, hd_id dev);
int store_dev_put(struct store *s, struct hd_dev *d);
int store_dev_delete(struct store *s, hd_id id);

/*
 * Events: an append-only audit trail, written through event_add (event.h)
 * alone.  org 0 = none; extension, device and
 * detail_json may be NULL; detail_json must be valid JSON (else STORE_ERR).
 * The new event's id is stored in *id_out when id_out is not NULL.
 */
int store_event_add(struct store *s, long long at, const char *type, hd_id org,
                    const char *extension, const char *device, const char *detail_json);
int store_event_add_id(struct store *s, long long at, const char *type, hd_id org,
                       const char *extension, const char *device,
                       const char *detail_json, long long *id_out);
/*
 * The actor stamped on every event added from now on (the token that made
 * an administrator's change: its id and role, never its secret), until
 * the next call; role NULL = none.  The service sets it while it holds its
 * lock for a change an API token asked for, and clears it before letting
 * go.  Cannot fail.
 */
void store_set_actor(struct store *s, hd_id token, const char *role);

/* Every string is borrowed for the duration of the callback only. */
struct store_event {
	long long id;
	long long at;
	const char *type;
	hd_id org;             /* 0 = none */
	const char *extension; /* NULL = none */
	const char *device;    /* NULL = none */
	const char *detail;    /* JSON text or NULL */
	hd_id actor_token;     /* token that made the change; 0 = none */
	const char *actor_role; /* its role, NULL = none */
};

/*
 * Filter: zero / NULL fields match anything.  Results are events with
 * since_id < id < before_id (before_id 0 = no upper bound), in ascending
 * id order (oldest first) unless newest_first, at most limit of them
 * (limit <= 0 = no limit).  Paging forward: pass the last id seen as
 * since_id; paging back with newest_first: pass it as before_id.
 */
struct store_event_filter {
	hd_id org;
	const char *type;
	const char *extension;
	const char *device;
	long long since_id;
	long long before_id;
	int limit;
	bool newest_first;
};

/* Returns 0 to go on, non-zero (use > 0) to stop; that value is returned. */
typedef int (*store_event_cb)(const struct store_event *ev, void *arg);
/* f NULL = everything.  Returns 0, the callback's stop value, or -1. */
int store_events_list(struct store *s, const struct store_event_filter *f,
                      store_event_cb cb, void *arg);

/*
 * Per-call wrong-code attempts, keyed by the PBX's call_id.
 * store_call_get: 1 found, 0 absent (failures 0, hung_up false), -1.
 * store_call_put: inserts or replaces.  store_calls_expire: deletes rows
 * last updated before older_than; returns how many, or -1.
 */
int store_call_get(struct store *s, const char *call_id, int *failures, bool *hung_up);
int store_call_put(struct store *s, const char *call_id, int failures, bool hung_up,
                   long long now);
int store_calls_expire(struct store *s, long long older_than);

/* Lockout state of one (calling device, target extension) pair; the same
 * fields as guard's struct guard_pair. */
struct store_pair {
	int failures_in_window;
	long long window_start;
	long long locked_until;
	int lock_level;
	int call_failures;   /* wrong codes across redials (007_pbx.sql) */
	long long call_last; /* when the last of them was counted, 0 = never */
};
/* 1 found, 0 absent (*out zeroed), -1. */
int store_pair_get(struct store *s, hd_id dev, hd_id ext, struct store_pair *out);
/* Inserts or replaces.  STORE_CONFLICT if dev or ext does not exist. */
int store_pair_put(struct store *s, hd_id dev, hd_id ext, const struct store_pair *p);
/* Deletes pairs whose window_start and locked_until are both before
 * older_than.  Returns how many, or -1. */
int store_pairs_expire(struct store *s, long long older_than);

/*
 * API tokens, stored only as a hash (hex).  role is "admin", "org" (org
 * must be set) or "pbx" (org must be 0).  A hash already stored gives
 * STORE_CONFLICT.
 */
#define STORE_ROLE_MAX 16
int store_token_add(struct store *s, const char *hash_hex, const char *role, hd_id org,
                    const char *name, long long now, hd_id *id_out);
/* 1 found (role and *org filled; either may be NULL), 0 not found, -1. */
int store_token_find(struct store *s, const char *hash_hex, char role[STORE_ROLE_MAX],
                     hd_id *org);
/* The same, with the token's id in *id (may be NULL). */
int store_token_find_id(struct store *s, const char *hash_hex, char role[STORE_ROLE_MAX],
                        hd_id *org, hd_id *id);
/* Replaces the secret (its hash) of token id and records rotated_at.
 * STORE_NOTFOUND if no such token, STORE_CONFLICT if the hash is taken. */
int store_token_rehash(struct store *s, hd_id id, const char *hash_hex, long long now);
/*
 * The configuration file's token of a role ("admin", "pbx"): drops every
 * from_config token of that role but hash_hex, and records hash_hex
 * (from_config, `name`) unless it is there.  hash_hex NULL: the file names
 * none, every from_config token of the role goes.
 */
int store_token_config(struct store *s, const char *role, const char *hash_hex,
                       const char *name, long long now);
int store_token_delete(struct store *s, hd_id id);

/* Borrowed for the duration of the callback.  hash is given so that the
 * service can match tokens; it must never appear in an API answer. */
struct store_token {
	hd_id id;
	const char *hash;
	const char *role;
	hd_id org;        /* 0 = none */
	const char *name; /* may be NULL */
	long long created_at;
	bool from_config; /* a token of the configuration file */
	long long rotated_at; /* 0 = never */
};
typedef int (*store_token_cb)(const struct store_token *t, void *arg);
/* Ascending id order.  Returns 0, the callback's stop value, or -1. */
int store_token_list(struct store *s, store_token_cb cb, void *arg);
/* Calls cb for token id.  1 found, 0 absent, < 0 error. */
int store_token_get(struct store *s, hd_id id, store_token_cb cb, void *arg);

/*
 * Registrations: where each SIP identity is registered now.  Strings are
 * NUL-terminated; "" means none (stored as NULL for the optional ones).
 * store_reg_put rejects (STORE_ERR) a sip_user or contact that is empty and
 * any string that does not fit its buffer, so a stored row always fits.
 */
#define STORE_REG_USER_MAX    128
#define STORE_REG_CONTACT_MAX 512
#define STORE_REG_SOURCE_MAX  64
#define STORE_REG_UA_MAX      256
#define STORE_REG_CALLID_MAX  256
struct store_reg {
	char sip_user[STORE_REG_USER_MAX];
	char contact[STORE_REG_CONTACT_MAX];
	char source[STORE_REG_SOURCE_MAX];  /* "ip:port" of the REGISTER */
	char user_agent[STORE_REG_UA_MAX];
	char call_id[STORE_REG_CALLID_MAX];
	long long expires_at;
	long long updated_at;
};
/* Inserts or replaces by sip_user. */
int store_reg_put(struct store *s, const struct store_reg *r);
/* 0 whether or not a row existed, -1. */
int store_reg_delete(struct store *s, const char *sip_user);
/* 1 found (*out filled), 0 absent (*out zeroed), -1. */
int store_reg_get(struct store *s, const char *sip_user, struct store_reg *out);
/* Deletes registrations with expires_at <= now.  Returns how many, or -1. */
int store_regs_expire(struct store *s, long long now);

/*
 * Key/value meta.  store_meta_get: 1 found (value copied into buf), 0 absent
 * (buf = ""), -1 error or value longer than len - 1.  store_meta_put with
 * value NULL deletes the key.
 */
int store_meta_get(struct store *s, const char *key, char *buf, size_t len);
int store_meta_put(struct store *s, const char *key, const char *value);
/* store_meta_put, outside a transaction, durable when it returns (what a
 * later write elsewhere relies on). */
int store_meta_put_synced(struct store *s, const char *key, const char *value);

/*
 * Checkpoints.  store_autocheckpoint_off(s) stops the writer's
 * connection from checkpointing inside its commits; a store_ckpt (a
 * second connection to the same file, for one thread) then runs passive
 * checkpoints that never block the writer.  store_ckpt_run: 1 when every
 * frame of the log is in the database file now, 0 when some are not
 * (another connection reads an older state, or busy: try again later), or
 * -1.  store_wal_frames: the frames in the log after the writer's last
 * commit, store_wal_commits: the writer's commits since it opened (both
 * counted once automatic checkpoints are off; 0 before); a commit that
 * finds every frame copied back starts the log again from its beginning.
 * A job in steps checkpoints once the log passes STORE_WAL_KEEP bytes
 * (svc_yield), so its file ends a little past that.  The commit that
 * starts the log again cuts the file back to STORE_WAL_LIMIT bytes when
 * it is larger, and that cut is made under the service lock: on ext4 it
 * took 20-126 ms (it frees blocks and waits for their writeback), which
 * the moves queued behind it waited for.  STORE_WAL_LIMIT is far past
 * where a job's checkpoints leave the file, so only a log grown by one
 * large transaction (a CSV import) is cut.
 */
#define STORE_WAL_KEEP (64L * 1024 * 1024)
#define STORE_WAL_LIMIT (4 * STORE_WAL_KEEP)
struct store_ckpt;
int store_autocheckpoint_off(struct store *s);
long store_wal_frames(const struct store *s);
long store_wal_commits(const struct store *s);
struct store_ckpt *store_ckpt_open(const char *path, char *err, size_t errlen);
int store_ckpt_run(struct store_ckpt *c);
void store_ckpt_close(struct store_ckpt *c); /* NULL-safe */

/* ---- publishing (sql/002_publish.sql) ---------------------------------- */

/* What was published for a device: configuration version, content hash
 * (files rendered with the version stamp 0), the key of its render input
 * and the hash of its files as published (sql/017_publish_key.sql; ""
 * when not known), and each file's sum (sql/018_file_sums.sql; "" when
 * not known).  Callbacks return 0 to go on; strings are borrowed for the
 * call.  store_devcfg_put stores key, file_hash and file_sums NULL when "". */
struct store_devcfg {
	hd_id dev;
	unsigned long long version;
	const char *hash, *key, *file_hash, *file_sums;
};
typedef int (*store_devcfg_cb)(const struct store_devcfg *c, void *arg);
int store_devcfg_each(struct store *s, store_devcfg_cb cb, void *arg);
int store_devcfg_put(struct store *s, const struct store_devcfg *c, long long now);

/* Names of the files hotdeskd wrote into the TFTP root. */
typedef int (*store_name_cb)(const char *name, void *arg);
int store_tftp_each(struct store *s, store_name_cb cb, void *arg);
int store_tftp_add(struct store *s, const char *name);
int store_tftp_del(struct store *s, const char *name);

/* The last configuration fetch of a device. */
int store_fetch_put(struct store *s, hd_id dev, const char *source, const char *user_agent,
                    unsigned long long version, long long at);
/* The last fetch of one device: 1 found (*out filled), 0 none (zeroed), -1. */
struct store_fetch {
	char source[64];     /* address of the client, "" if unknown */
	char user_agent[256];
	unsigned long long version;
	long long at;
	bool truncated;      /* a value did not fit and was cut */
};
int store_fetch_get(struct store *s, hd_id dev, struct store_fetch *out);
typedef int (*store_fetch_cb)(hd_id dev, const char *source, const char *user_agent,
                              unsigned long long version, long long at, void *arg);
int store_fetch_each(struct store *s, store_fetch_cb cb, void *arg);

/* The resync outbox: one row per device. */
struct store_resync {
	hd_id dev;
	char state[16];             /* pending, notified, synced, stale */
	unsigned long long version; /* version the device must fetch; 0 = not known yet */
	int attempts;               /* NOTIFYs sent for this version */
	long long next_at;          /* when to send (again) */
	char last_result[96];       /* "" = none */
	long long last_at;          /* 0 = never */
	long long created_at;
};
/* Inserts or replaces by dev (created_at is kept from the first insert). */
int store_resync_put(struct store *s, const struct store_resync *r);
/* r's state, version and next_at by dev, attempts 0, without a read
 * first: a row already there keeps its created_at, last_at and (unless r
 * has one) last_result, a new one takes r's created_at; r is then the
 * row as stored (read back after the write).  0, or < 0 with r as it
 * was. */
int store_resync_owe_put(struct store *s, struct store_resync *r);
/* Makes dev owe a resync: a pending row due now, attempts reset, version
 * to be filled once the new files are published (outbox writers call it
 * inside their change's transaction). */
int store_resync_enqueue(struct store *s, hd_id dev, long long now);
/* The same, due only at due_at (> now): a row held until its device's
 * files are published (a template save re-renders in steps); the resync
 * engine makes it due when it fills the version, start-up at once. */
int store_resync_enqueue_at(struct store *s, hd_id dev, long long now, long long due_at);
/* store_resync_enqueue of each of devs[0..n-1]: 0 or -1. */
int store_resync_enqueue_n(struct store *s, const hd_id *devs, size_t n, long long now);
/* The row store_resync_enqueue_at writes, made of r as store_resync_get
 * left it (found: it returned 1), for a writer that changes it further
 * before it writes it once. */
void store_resync_owe(struct store_resync *r, bool found, hd_id dev, long long now,
                      long long due_at);
/* 1 found, 0 absent, -1. */
int store_resync_get(struct store *s, hd_id dev, struct store_resync *out);
typedef int (*store_resync_cb)(const struct store_resync *r, void *arg);
int store_resync_each(struct store *s, store_resync_cb cb, void *arg);
/* Rows by state: counts[0..3] = pending, notified, synced, stale.  0 or
 * < 0.  store_ckpt_resync_counts reads them on the checkpoint connection
 * instead: a snapshot of what was committed, with no statement of the
 * writer's connection, so without the service lock (a reader on its own
 * connection neither waits for the writer nor holds it up); the caller
 * serialises it with the checkpoints, as store_ckpt_run. */
#define STORE_RESYNC_STATES 4
int store_resync_counts(struct store *s, size_t counts[STORE_RESYNC_STATES]);
int store_ckpt_resync_counts(struct store_ckpt *c, size_t counts[STORE_RESYNC_STATES]);
/* The rows pending or notified (owed a NOTIFY or its confirmation), in
 * no order, on the index of open rows: at a start, not every row. */
int store_resync_owed_each(struct store *s, store_resync_cb cb, void *arg);
/* 1 when a row is not synced (pending, notified or stale: one index
 * probe), 0 when none is, -1. */
int store_resync_any_open(struct store *s);
/* Rows in state pending or notified with next_at <= now, soonest first. */
int store_resync_due(struct store *s, long long now, int limit, store_resync_cb cb, void *arg);

/* Template versions of administrators.  content is NULL in history rows. */
struct store_tmpl {
	const char *profile, *name;
	int version;
	const char *content;
	const char *comment;
	long long created_at;
	bool active;
};
typedef int (*store_tmpl_cb)(const struct store_tmpl *t, void *arg);
/* Adds the next version of (profile, name) and makes it the active one. */
int store_tmpl_add(struct store *s, const char *profile, const char *name, const char *content,
                   const char *comment, long long now, int *version_out);
/* Every active version.  0 or < 0. */
int store_tmpl_active_each(struct store *s, store_tmpl_cb cb, void *arg);
/* Every version of (profile, name), oldest first.  Returns the number of
 * rows, or < 0. */
int store_tmpl_history(struct store *s, const char *profile, const char *name,
                       store_tmpl_cb cb, void *arg);
/* One version, content included.  Returns 1 found, 0 absent, < 0. */
int store_tmpl_get(struct store *s, const char *profile, const char *name, int version,
                   store_tmpl_cb cb, void *arg);
/* Makes an existing version the active one (rollback). */
int store_tmpl_activate(struct store *s, const char *profile, const char *name, int version);

/* ---- where phones are registered (sql/004_resync.sql) ------------------ */

/*
 * The last registration of a phone, resolved to its device when it
 * arrived (see resync.h).  addr is the numeric "host:port" of contact.
 * Strings are NUL-terminated; "" means none.
 */
#define STORE_DC_ADDR_MAX 80
struct store_devcontact {
	hd_id dev;
	char sip_user[STORE_REG_USER_MAX];   /* identity the phone registered */
	char contact[STORE_REG_CONTACT_MAX]; /* Contact URI as reported */
	char addr[STORE_DC_ADDR_MAX];
	char source[STORE_REG_SOURCE_MAX];
	char call_id[STORE_REG_CALLID_MAX];
	char how[16];                        /* "ua", "address", "identity" */
	long long expires_at;
	long long at;
};
/* Inserts or replaces the row of c->dev, and deletes other devices' rows
 * with the same addr (one address, one phone).  STORE_ERR on dev 0 or an
 * empty addr. */
int store_devcontact_put(struct store *s, const struct store_devcontact *c);
/* 1 found (*out filled), 0 absent (*out zeroed), < 0. */
int store_devcontact_get(struct store *s, hd_id dev, struct store_devcontact *out);
/* The most recent row with that addr: 1, 0 or < 0. */
int store_devcontact_by_addr(struct store *s, const char *addr, struct store_devcontact *out);
/* Deletes the rows of sip_user at addr (an unregistration).  0 or < 0. */
int store_devcontact_forget(struct store *s, const char *sip_user, const char *addr);

/* ---- the move webhook's outbox (sql/011_pbx_outbox.sql) ----------------- */

/* One SIP user whose location a change moved, owed to the PBX.  Strings
 * are NUL-terminated; "" means none. */
#define STORE_PBXOUT_CAUSE_MAX 32
struct store_pbxout {
	long long id;
	long long move;                      /* id of the change's first row */
	long long at;                        /* commit time, Unix seconds */
	char sip_user[STORE_REG_USER_MAX];
	char device[HD_MAC_LEN + 1];         /* MAC now carrying it, "" = none */
	char contact[STORE_REG_CONTACT_MAX]; /* that device's last contact */
	char cause[STORE_PBXOUT_CAUSE_MAX];
};
/* Appends r (its id ignored); r->move 0 makes it the first row of
 * its change (move = its own id).  The new id in *id.  0 or < 0. */
int store_pbxout_add(struct store *s, const struct store_pbxout *r, long long *id);
/* The oldest row: 1 (*out filled), 0 when the outbox is empty, < 0. */
int store_pbxout_first(struct store *s, struct store_pbxout *out);
/* Deletes row id (delivered, or given up).  0 or < 0. */
int store_pbxout_delete(struct store *s, long long id);
/* Rows waiting, or < 0. */
long long store_pbxout_count(struct store *s);
/* Deletes every row (the webhook is off).  The number deleted, or < 0. */
long long store_pbxout_clear(struct store *s);

/* ---- self-service web passwords (sql/008_people.sql) -------------------- */

/* The Argon2id string of an extension's web password into buf: 1 found,
 * 0 none, < 0 error (also when it does not fit). */
int store_webpw_get(struct store *s, hd_id ext, char *buf, size_t len);
/* Sets it (hash NULL removes it). */
int store_webpw_put(struct store *s, hd_id ext, const char *hash, long long now);

/* The Argon2id strings store_hash_swap replaces. */
enum store_hash {
	STORE_HASH_CODE,  /* an extension's secret code */
	STORE_HASH_WEBPW, /* its web password */
};
/*
 * Replaces an extension's stored hash of that kind by `hash`, only while
 * it is still `was` (a code or password set meanwhile stays): the same
 * secret hashed again with other limits, so nothing else changes (no
 * event, updated_at kept).  1 replaced, 0 not, < 0 error.
 */
int store_hash_swap(struct store *s, enum store_hash kind, hd_id ext, const char *was,
                    const char *hash);
/* Failed sign-ins of (source network, extension), the fields of a guard
 * pair: 1 found, 0 absent (*out zeroed), < 0. */
int store_webpair_get(struct store *s, const char *source, hd_id ext, struct store_pair *out);
/* Inserts or replaces. */
int store_webpair_put(struct store *s, const char *source, hd_id ext, const struct store_pair *p);

#endif
