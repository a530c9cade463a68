/*
 * service.h -- the application layer: hotdeskd's one writer.
 *
 * The service owns the world (in memory), the store (SQLite) and the lock
 * that serializes them.  Every state change is decided by the pure engine
 * (virt.c), applied to the world, and written to the store with its events
 * in one transaction; if the transaction fails the world is put back, so
 * the two never disagree.  After a commit the devices whose carried
 * identity changed are handed to the change hook (rendering, publishing
 * and resync hang off it).
 *
 * Secret-code hashing and verification (slow by design) run outside the
 * lock; the decision is taken again under the lock after a verify, so a
 * concurrent change in between is never lost.
 *
 * Thread-safety: every svc_* function may be called from any thread.
 */
#ifndef HD_SERVICE_H
#define HD_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "guard.h"
#include "store.h"
#include "virt.h"
#include "world.h"

struct json_t;
struct svc_result;

struct svc_opts {
	const char *db_path;
	const char *sql_dir;
	const char *admin_token;   /* bootstrap token, may be NULL */
	const char *pbx_token;     /* may be NULL (then the PBX has no access) */
	unsigned long long hash_ops;
	size_t hash_mem;           /* bytes */
	int code_min_len;
	struct guard_policy guard;
	bool check_invariants;     /* verify I1-I4 after every change */
	bool move_outbox;          /* record moves for the PBX webhook (pbx_outbox) */
};

/* Errors of the admin operations, mapped to HTTP by the API. */
enum svc_err {
	SVC_OK = 0,
	SVC_BAD = -1,       /* validation: err names the problem, field the field */
	SVC_NOTFOUND = -2,
	SVC_CONFLICT = -3,
	SVC_FORBIDDEN = -4,
	SVC_INTERNAL = -5,
};

struct svc;

/* A change's devices get a NOTIFY even when their own files are the same
 * (a shared file of their profile changed). */
#define SVC_CHANGE_NOTIFY_ALL 1u
/* One step of a job over many devices (a template's re-render): its
 * NOTIFYs are paced however few devices the step has. */
#define SVC_CHANGE_BULK 2u

/* The hook writes the outbox rows of devs (devices of the world) itself
 * (what the service writes for any other change: store_resync_enqueue of
 * each), in the change's
 * transaction, so that each row is written once; -1 when it could not:
 * the change is rolled back.  A move's (svc_commit_move). */
#define SVC_CHANGE_OUTBOX 4u
/* Set by an svc_transact body: its devices go to the hook inside its own
 * transaction, with SVC_CHANGE_OUTBOX (each outbox row written once, and
 * no follow-up transaction); the hook is not called with it.  Its devices
 * must be devices of the world (a row for another would name none). */
#define SVC_CHANGE_FOLD 8u
/* Set by an svc_transact body with SVC_CHANGE_FOLD: it has more devices
 * for the same transaction.  Once the hook has the devices it added, the
 * body is called again (its list keeps them: it adds the next ones),
 * unless a thread waits for the service lock (svc_wanted): then the
 * transaction commits with what it has.  A job in steps (a template's
 * re-render) adds a few devices at a time, so that a *30 waits for those,
 * not for its whole step. */
#define SVC_CHANGE_MORE 16u

/*
 * Devices changed by an operation.  Called with the service lock held and
 * the world consistent; must not call back into svc_*.  `why` is a short
 * static string ("star30", "admin", ...), flags SVC_CHANGE_*.  What it
 * records (published versions, the TFTP manifest, resync rows) goes in a
 * transaction it never opens: the change's own, before its COMMIT (*30, a
 * return through the API, an svc_transact body that sets
 * SVC_CHANGE_FOLD; when that COMMIT fails, the hook is called again with
 * the devices as the rolled-back change left them, to publish them
 * again), or else one of its own after the change committed; st is NULL
 * when that one could not begin: the hook then publishes without
 * recording anything.  Returns 0, or -1 when it failed to write what
 * SVC_CHANGE_OUTBOX asks (else its result is not looked at: what it
 * records is redone at the next start, or by the resync engine).
 */
typedef int (*svc_change_hook)(void *arg, const struct world *w, struct store *st,
                                const hd_id *devs, size_t n, const char *why,
                                unsigned flags);

/*
 * Renders, without publishing, what devs (ids of w) would get; called with
 * the service lock held just before a change commits, with the world as
 * the change leaves it.  Returns 0, or -1 with err naming the device and
 * the reason (never a value): the change is then refused and undone, so
 * the store never holds a state whose files cannot be served.
 */
typedef int (*svc_check_hook)(void *arg, const struct world *w, const hd_id *devs, size_t n,
                              char *err, size_t errlen);

/* Opens the store, applies migrations, loads the world, records the
 * configuration's tokens (hashed).  NULL with err on failure.  The strings
 * of o are borrowed for the call only (svc_reconfigure too): none is kept. */
struct svc *svc_open(const struct svc_opts *o, char *err, size_t errlen);
void svc_close(struct svc *s);
/* Installs the hook (before serving). */
void svc_set_change_hook(struct svc *s, svc_change_hook hook, void *arg);

/*
 * Called once the service lock is released by a thread that handed
 * devices to the change hook while holding it (svc_set_unlock_hook): the
 * place for what wakes other threads (the resync engine), which, woken
 * under the lock, would wait for it, or take the CPU from the thread that
 * holds it.  Runs without the lock, on that thread; may call svc_*.
 */
typedef void (*svc_unlock_hook)(void *arg);
/* Installs it (before serving; NULL: none). */
void svc_set_unlock_hook(struct svc *s, svc_unlock_hook hook, void *arg);
/* Installs the render check (before serving; none: changes are not checked). */
void svc_set_check_hook(struct svc *s, svc_check_hook hook, void *arg);

/*
 * Renders ahead what devs (ids of w) would get, for the check hook to
 * come: called with the service lock held while a *30's code is checked
 * on another thread, with the world as the move would leave it (undone
 * when it returns).  The check that follows the code takes what is still
 * what a device renders to (pub_prerender) and renders the rest.
 */
typedef void (*svc_prerender_hook)(void *arg, const struct world *w, const hd_id *devs,
                                   size_t n);
/* Installs it (before serving; NULL: none). */
void svc_set_prerender_hook(struct svc *s, svc_prerender_hook hook, void *arg);
/* Applies the reloadable options (code length, guard policy, tokens). */
int svc_reconfigure(struct svc *s, const struct svc_opts *o, char *err, size_t errlen);

/*
 * Runs fn with the service lock held: the world and the store readable.
 * For the adapters' reads (and single-statement writes, each its own
 * transaction); fn must not call back into svc_*.  Returns what fn
 * returns.  Several writes that belong together go through svc_transact.
 */
int svc_locked(struct svc *s, int (*fn)(const struct world *w, struct store *st, void *arg),
             void *arg);

/* What a transaction's body (svc_txn_fn) hands to the change hook. */
struct svc_change {
	struct hd_idset devs; /* devices whose files may change: the body adds them */
	unsigned flags;       /* SVC_CHANGE_* */
};

typedef int (*svc_txn_fn)(const struct world *w, struct store *st, struct svc_change *chg,
                          void *arg);
/* Runs after a commit, before the change hook, in the hook's transaction
 * (st NULL when it could not begin); non-zero: the hook is not run. */
typedef int (*svc_after_fn)(const struct world *w, struct store *st, void *arg);

/*
 * The one way to write several rows that belong together outside the
 * service's own operations (template saves, the publisher's start-up
 * reconciliation, the resync engine's rounds).  With the service lock
 * held: begins a transaction, runs fn, commits when fn returns 0 and
 * rolls back otherwise; after a commit runs `after` (may be NULL) and
 * hands chg's devices to the change hook (in fn's transaction, before the
 * commit and so before `after`, when fn sets SVC_CHANGE_FOLD).  fn must
 * not call back into svc_* nor change the world.  Returns SVC_OK, fn's
 * non-zero result (rolled back, nothing written), or SVC_INTERNAL when the
 * transaction could not begin or commit, or a folded hook failed (nothing
 * written, fn may not have run).
 */
int svc_transact(struct svc *s, const char *why, svc_txn_fn fn, svc_after_fn after, void *arg);

/* Called without the service lock by a long job that takes it in steps
 * (a template save): lets the threads waiting for it (but background
 * ones) have it first (returns once none waits, or after at most 20 ms),
 * then the CPUs to the *30 moves under way (at most 20 ms more),
 * and checkpoints the database's log once the job's commits have made it
 * long, so that the next commit starts it again. */
void svc_yield(struct svc *s);
/* Whether a thread waits for the service lock now (not a background one,
 * nor a job in steps): a job in steps holding it ends its step early. */
bool svc_wanted(struct svc *s);
/* Whether a job in steps holding the lock ends its step now: a thread
 * waits for the lock (svc_wanted), or a *30 move is under way (demand.h),
 * which svc_yield then waits for too. */
bool svc_step_over(struct svc *s);
/* Marks the calling thread as one whose work can wait (the resync
 * engine): svc_yield does not wait for it, so a long job in steps is not
 * stretched by it; it still has the lock whenever the job is between two
 * steps and no other thread wants it. */
void svc_thread_background(void);
/* A background thread waits for the lock (for seconds while a long job
 * runs) in slices of IDLE_MS, running its idle work (idle.h) between two. */
/* Marks the calling thread, while on, as running a job in steps (a
 * template save): it does not queue for the lock, but tries it every
 * 0.1 ms, leaving it to the threads that queue (a *30 move), so that
 * their unlock wakes no thread to take their CPU. */
void svc_thread_steps(bool on);

/* ---- PBX --------------------------------------------------------------- */

struct svc_star30_req {
	const char *caller;  /* required: SIP user, SIP URI (its user part) or,
	                      * with org, the extension number */
	const char *org;     /* NULL, or the organization of a numeric caller */
	const char *digits;  /* NULL/"" = bare *30 */
	const char *code;    /* NULL = not collected */
	const char *call_id; /* NULL = no per-call counting */
};

struct svc_star30_res {
	enum virt_result result;
	enum virt_reason reason;
	int tries_left;            /* with VIRT_RETRY */
	char extension[64];        /* "" when none */
	char device[HD_MAC_LEN + 1]; /* "" when none */
};

/* Returns SVC_OK (res filled), SVC_CONFLICT (the move would give some
 * phone files that do not render: nothing changed, event "move.refused")
 * or SVC_INTERNAL (database failure: nothing changed). */
int svc_star30(struct svc *s, const struct svc_star30_req *r, struct svc_star30_res *res);

struct svc_registration {
	const char *sip_user, *contact, *source, *user_agent, *call_id;
	long expires; /* 0 removes */
};
int svc_registration(struct svc *s, const struct svc_registration *r, char *err, size_t errlen);

/*
 * Called by svc_registration after the registration is stored, with the
 * lock held, the world as it is at that moment and `now` (seconds); must
 * not call back into svc_*.  The resync engine records there which device
 * the phone that registered is (resync.h).  It runs in the registration's
 * transaction: non-zero (the store failed) rolls the registration and
 * what the hook wrote back, and svc_registration answers SVC_INTERNAL.
 */
typedef int (*svc_reg_hook)(void *arg, const struct world *w, struct store *st,
                            const struct svc_registration *r, long long now);
void svc_set_registration_hook(struct svc *s, svc_reg_hook hook, void *arg);

/*
 * An administrator's resync: writes a pending resync row (the outbox) for
 * the device `mac`, or for every device of organization `org` (exactly one
 * of them non-NULL), with an event "resync.requested", in one
 * transaction, then hands the devices to the change hook with why
 * "resync".  *count gets the number of devices.  SVC_OK, SVC_NOTFOUND or
 * SVC_INTERNAL (r filled).
 */
int svc_resync(struct svc *s, const char *mac, const char *org, size_t *count,
               struct svc_result *r);

/* The site language (a locale code, e.g. "fr_FR") of the organization of
 * the line `caller` (an extension's sip_user or a parking account) into
 * buf.  SVC_OK, or SVC_NOTFOUND when the caller is unknown or its
 * organization has no language set (buf ""). */
int svc_caller_language(struct svc *s, const char *caller, char *buf, size_t len);

/* SVC_OK with status and device MAC ("" when none), or SVC_NOTFOUND. */
int svc_ext_status(struct svc *s, const char *sip_user, enum virt_status *st,
                   char mac[HD_MAC_LEN + 1]);

/* ---- authentication ---------------------------------------------------- */

enum svc_role { SVC_ROLE_NONE, SVC_ROLE_PBX, SVC_ROLE_ADMIN, SVC_ROLE_ORG };

struct svc_principal {
	enum svc_role role;
	hd_id org;   /* SVC_ROLE_ORG only */
	hd_id token; /* the token's id (0 for SVC_ROLE_NONE) */
};

/* Looks the bearer token up (by its hash).  Cannot fail: unknown or NULL
 * tokens give SVC_ROLE_NONE. */
struct svc_principal svc_auth(struct svc *s, const char *token);
/* The same from the token's SHA-256 (secret_token_hash), as web sessions
 * keep it. */
struct svc_principal svc_auth_hash(struct svc *s, const char *hash);

/* Creates a token; the clear token is written to out (shown once). */
int svc_token_new(struct svc *s, enum svc_role role, const char *org, const char *name,
                  char *out, size_t outlen, hd_id *id, char *err, size_t errlen);
/* Gives token id a new secret (written to out, shown once; the old one
 * stops working), event "token.rotate".  SVC_OK, SVC_NOTFOUND,
 * SVC_CONFLICT (a token of the configuration file), SVC_INTERNAL. */
int svc_token_rotate(struct svc *s, hd_id id, char *out, size_t outlen, char *err,
                     size_t errlen);
/* Deletes token id, event "token.revoke".  Results as svc_token_rotate. */
int svc_token_revoke(struct svc *s, hd_id id, char *err, size_t errlen);

/*
 * The token the calling thread acts for (NULL: none): the adapters set it
 * once a request is authenticated and clear it when they answer.  Every
 * event an admin change records while it is set carries the token's id
 * and role as its actor (never the secret).  Thread-local; cannot fail.
 */
void svc_actor(const struct svc_principal *who);

/* ---- administration ---------------------------------------------------- */

struct svc_result {
	char err[256];
	const char *field; /* static string naming the field at fault, or NULL */
	int item;          /* 1-based element of a list field (keys) at fault, or 0 */
	bool created;
};

/* o: owned (freed in every case).  Looked up by o->name. */
int svc_org_put(struct svc *s, struct hd_org *o, struct svc_result *r);
int svc_org_delete(struct svc *s, const char *name, struct svc_result *r);

/*
 * e: owned; e->org and e->number name it (e->id, virtual_on and home_dev
 * are taken from the existing extension).  secret: NULL keeps the current
 * code, "" clears it, digits set it (validated and hashed here).
 */
int svc_ext_put(struct svc *s, struct hd_ext *e, const char *secret, struct svc_result *r);
int svc_ext_delete(struct svc *s, hd_id org, const char *number, struct svc_result *r);
/* Return to base (API or web).  res->result RETURNED or NOTHING. */
int svc_ext_return(struct svc *s, hd_id org, const char *number, struct svc_star30_res *res,
                   struct svc_result *r);

/* d: owned; d->mac names it; d->org and d->home_ext set by the caller. */
int svc_dev_put(struct svc *s, struct hd_dev *d, struct svc_result *r);
int svc_dev_delete(struct svc *s, const char *mac, struct svc_result *r);

/* Forgets expired per-call attempts, idle lockout pairs and expired
 * registrations.  Called periodically by the daemon. */
void svc_housekeeping(struct svc *s);

/* Copies the database's write-ahead log into the database without
 * blocking writers, when it is worth it: the log holds SVC_CKPT_FRAMES
 * frames or more, or nothing was committed since the call before (the
 * log stopped growing); never twice for the same commits.  Called once a
 * second by one thread (the daemon's main loop). */
void svc_checkpoint(struct svc *s);
/* A checkpoint copies pages into the database file and syncs it, on the
 * disk the moves committing meanwhile write their log and TFTP files to:
 * at SQLite's own threshold (1000 frames, every ~90 *30 moves) the
 * moves' p99 at 100,000 devices was 8 % higher than at 8192 frames
 * (32 MiB of log, within STORE_WAL_KEEP; bench/README.md). */
#define SVC_CKPT_FRAMES 8192L

/*
 * The store's resync rows by state (store_resync_counts order) and the
 * devices in the world (*devices), for monitoring.  With a database file
 * the rows are counted on the checkpoint connection, without the service
 * lock, which is then taken only to read the device count: the moves of
 * a large re-render, whose every device has a row, do not wait for the
 * count.  An in-memory store counts them under the lock.  0 or -1.
 */
int svc_resync_counts(struct svc *s, size_t counts[STORE_RESYNC_STATES], size_t *devices);

/* Records an event (event.h: a noun.verb name; detail a JSON object
 * built with jansson or NULL, its reference taken) in its own
 * transaction, for the adapters. */
void svc_event(struct svc *s, const char *type, hd_id org, const char *ext,
               const char *mac, struct json_t *detail);


/* ---- CSV import (import.h) ---------------------------------------------- */

struct import_rows;

/*
 * What an import did, or would do with dry_run.  The arrays are JSON
 * arrays of strings (extension numbers, MACs), owned by the report: free
 * with svc_import_report_free.
 */
struct svc_import_report {
	struct json_t *ext_created, *ext_changed, *dev_created, *dev_changed;
	size_t ext_unchanged, dev_unchanged;
	size_t moves;      /* virtualizations the change returned to base */
};
void svc_import_report_free(struct svc_import_report *rep);

/*
 * Creates or updates the extensions and devices of rows in organization
 * org (its id), all in one transaction: every row applies, or none does
 * (r->err then says "line L, column C (name): why").  With dry_run the
 * same checks run and the report is filled, and nothing is kept.  Secret
 * codes of the rows are validated and hashed first, outside the lock.
 * Each object written records its event (extension.put, device.put, with
 * "via": "import") and the import records "import.applied" with the
 * counts.
 * SVC_OK, SVC_BAD (a row is wrong), SVC_CONFLICT (a key is used by
 * another object), SVC_NOTFOUND (no such org) or SVC_INTERNAL.
 */
int svc_import(struct svc *s, hd_id org, const struct import_rows *rows, bool dry_run,
               struct svc_import_report *rep, struct svc_result *r);

/* ---- self-service users (web passwords) -------------------------------- */

#define SVC_WEBPW_MIN 8
#define SVC_WEBPW_MAX 128

/*
 * Sets an extension's web password (8..128 bytes, no control characters;
 * Argon2id with the secret-code settings, hashed outside the lock), or
 * removes it (password NULL).  Records "web_password.set" / ".clear".
 * SVC_OK, SVC_BAD (form; field "password"), SVC_NOTFOUND, SVC_INTERNAL.
 */
int svc_webpw_set(struct svc *s, hd_id org, const char *number, const char *password,
                  struct svc_result *r);

/*
 * A self-service sign-in from `source` (the client's network, e.g. the
 * IPv4 address or the IPv6 /64): the same brute-force rules as secret
 * codes (guard.h: failures per (source, extension) in a sliding window,
 * then a lock with backoff; events "web.login_failed", "web.locked").
 * An unknown organization or extension, an extension without a web
 * password and a wrong password all answer SVC_FORBIDDEN after the same
 * verification time; a locked pair answers SVC_CONFLICT at once (with
 * *locked_until).  SVC_OK fills *org_id and *ext_id.
 */
int svc_web_login(struct svc *s, const char *org, const char *number, const char *password,
                  const char *source, hd_id *org_id, hd_id *ext_id, long long *locked_until);

/*
 * The user of extension ext changes their web password: current must be
 * right (a wrong one counts like a failed sign-in).  SVC_OK, SVC_BAD (form
 * of the new one), SVC_FORBIDDEN (wrong current), SVC_CONFLICT (locked),
 * SVC_NOTFOUND, SVC_INTERNAL.
 */
int svc_webpw_change(struct svc *s, hd_id ext, const char *current, const char *password,
                     const char *source, struct svc_result *r);

/* The user of extension ext sets their secret code (SPEC 2.4 rules). */
int svc_ext_code_set(struct svc *s, hd_id ext, const char *code, struct svc_result *r);

#endif
