/*
 * store.c -- the SQLite store: schema migrations and every SQL statement.
 *
 * This file owns the database handle and all SQL text of hotdeskd.  Each
 * statement is prepared once (at open; the event-list variants on first
 * use) and reused: every typed function binds, steps, then resets and
 * clears its statement before it returns, on success and on error alike.
 * It does not own the rules (virt.c), the clock (callers pass times in) or
 * any logging: errors are return codes plus store_errmsg().
 *
 * Invariants:
 *   1. Outside a call, every prepared statement is reset with no bindings,
 *      so no statement holds a read snapshot or a borrowed buffer.
 *   2. Text is bound with SQLITE_STATIC: the caller's buffer is only read
 *      between the bind and the reset in the same function (rule 1), so no
 *      copy of a password is left in SQLite's heap by the binding itself.
 *   3. The schema is exactly the sql/ files recorded in schema_migrations,
 *      applied in version order, one transaction each.
 *   4. hd_id 0 is "none" and is stored as NULL, never as 0.
 *
 * Durability choice: journal_mode=WAL with synchronous=NORMAL.  In WAL
 * mode a commit appends to the -wal file with write(2) before returning
 * (one write for the whole commit: walbuf.h), so it survives the process
 * being killed at any point (kill -9): no move is lost.  NORMAL only skips
 * the fsync at each commit; an OS crash or power loss may roll back the
 * last few commits (the database stays consistent).  hotdeskd republishes
 * every device from the database on start, so files and database agree
 * again after such a loss.  FULL would cost an fsync per move for
 * power-loss durability, which the p99 target cannot afford.
 *
 * Secrets: SIP and parking passwords are bound without a copy (rule 2)
 * and read straight into hd_ext/hd_dev objects, whose hd_*_free wipes them
 * with sodium_memzero; PRAGMA secure_delete zeroes the database pages of
 * rows that are deleted or rewritten.
 *
 * Not thread-safe (see store.h): callers serialize all access.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef HD_FAULTS
#include <pthread.h>
#endif

#include <sqlite3.h>

#include "errbuf.h"
#include "store.h"
#include "walbuf.h"

#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_MIGRATION_MAX 1000 /* files in sql/; far more than ever needed */

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SNAP_BEGIN,
	ST_SNAP_END,
	ST_SCHEMA_VERSION,
	ST_ORG_INS,
	ST_ORG_UPD,
	ST_ORG_DEL,
	ST_ORG_ALL,
	ST_EXT_INS,
	ST_EXT_UPD,
	ST_EXT_DEL,
	ST_EXT_VON,
	ST_EXT_ALL,
	ST_EXT_VON_ALL,
	ST_DEV_INS,
	ST_DEV_UPD,
	ST_DEV_DEL,
	ST_DEV_ALL,
	ST_WORLD_COUNTS,
	ST_EVENT_ADD,
	ST_CALL_GET,
	ST_CALL_PUT,
	ST_CALL_EXPIRE,
	ST_PAIR_GET,
	ST_PAIR_PUT,
	ST_PAIR_EXPIRE,
	ST_TOKEN_ADD,
	ST_TOKEN_FIND,
	ST_TOKEN_DEL,
	ST_TOKEN_ALL,
	ST_TOKEN_GET,
	ST_TOKEN_REHASH,
	ST_TOKEN_CFG_DROP,
	ST_TOKEN_CFG_ADD,
	ST_FETCH_GET,
	ST_REG_PUT,
	ST_REG_DEL,
	ST_REG_GET,
	ST_REG_EXPIRE,
	ST_META_GET,
	ST_META_PUT,
	ST_META_DEL,
	ST_DEVCFG_ALL,
	ST_DEVCFG_PUT,
	ST_TFTP_ALL,
	ST_TFTP_ADD,
	ST_TFTP_DEL,
	ST_FETCH_PUT,
	ST_FETCH_ALL,
	ST_RESYNC_PUT,
	ST_RESYNC_OWE_PUT,
	ST_RESYNC_GET,
	ST_RESYNC_ALL,
	ST_RESYNC_DUE,
	ST_RESYNC_COUNTS,
	ST_RESYNC_OPEN,
	ST_RESYNC_OWED,
	ST_TMPL_NEXT,
	ST_TMPL_DEACT,
	ST_TMPL_ADD,
	ST_TMPL_ACTIVE,
	ST_TMPL_HIST,
	ST_TMPL_GET,
	ST_TMPL_ACT,
	ST_DC_PUT,
	ST_DC_CLEAR_ADDR,
	ST_DC_GET,
	ST_DC_BY_ADDR,
	ST_DC_FORGET,
	ST_EXT_SECRET,
	ST_EXT_SECRET_SWAP,
	ST_WEBPW_GET,
	ST_WEBPW_PUT,
	ST_WEBPW_DEL,
	ST_WEBPW_SWAP,
	ST_WEBPAIR_GET,
	ST_WEBPAIR_PUT,
	ST_PBXOUT_ADD,
	ST_PBXOUT_FIRST_MOVE,
	ST_PBXOUT_FIRST,
	ST_PBXOUT_DEL,
	ST_PBXOUT_COUNT,
	ST_PBXOUT_CLEAR,
	ST__COUNT
};

#define ORG_COLS "name, display_name, sip_host, sip_port, sip_transport, prov_auth, " \
                 "prov_user, prov_password, prov_networks, utc_offset, dst, ntp_server, " \
                 "language, prov_client_cert"
#define EXT_COLS "org_id, number, sip_user, sip_password, display_name, label, " \
                 "sip_host, sip_port, sip_transport, allow_virtualization, "       \
                 "secret_hash, virtual_on, voicemail, language, keys"
#define DEV_COLS "mac, org_id, profile, model, home_ext_id, parking_user, " \
                 "parking_password, static_contact, prov_password"

/* The columns of a resync row (resync_row reads them in this order). */
#define RESYNC_COLS "device_id, state, version, attempts, next_at, last_result, last_at, " \
                    "created_at"
/* The term of the resync_due index (sql/019_resync_open.sql: it holds no
 * synced row): SQLite uses a partial index only for a query whose WHERE
 * has the index's own term, so each query on open rows starts with it. */
#define RESYNC_OPEN "state <> 'synced'"
/* The rows owed a NOTIFY or its confirmation, on that index. */
#define RESYNC_OWED RESYNC_OPEN " AND state IN ('pending', 'notified')"

/* Resync rows by state: the open ones on the resync_due index, then every
 * row ("all", the synced ones being what is left); on either connection */
#define SQL_RESYNC_COUNTS "SELECT state, COUNT(*) FROM resync WHERE " RESYNC_OPEN \
                          " GROUP BY state UNION ALL SELECT 'all', COUNT(*) FROM resync"

static const char *const stmt_sql[ST__COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* A savepoint outside a transaction starts a deferred one: a snapshot. */
	[ST_SNAP_BEGIN] = "SAVEPOINT store_snapshot",
	[ST_SNAP_END] = "RELEASE store_snapshot",
	[ST_SCHEMA_VERSION] = "SELECT coalesce(max(version), 0) FROM schema_migrations",

	[ST_ORG_INS] = "INSERT INTO orgs (" ORG_COLS ") "
	               "VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
	[ST_ORG_UPD] = "UPDATE orgs SET name = ?1, display_name = ?2, sip_host = ?3, "
	               "sip_port = ?4, sip_transport = ?5, prov_auth = ?7, prov_user = ?8, "
	               "prov_password = ?9, prov_networks = ?10, utc_offset = ?11, dst = ?12, "
	               "ntp_server = ?13, language = ?14, prov_client_cert = ?15 WHERE id = ?6",
	[ST_ORG_DEL] = "DELETE FROM orgs WHERE id = ?1",
	[ST_ORG_ALL] = "SELECT id, " ORG_COLS " FROM orgs ORDER BY id",

	[ST_EXT_INS] = "INSERT INTO extensions (" EXT_COLS ") "
	               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?15, ?16, ?17)",
	[ST_EXT_UPD] = "UPDATE extensions SET org_id = ?1, number = ?2, sip_user = ?3, "
	               "sip_password = ?4, display_name = ?5, label = ?6, sip_host = ?7, "
	               "sip_port = ?8, sip_transport = ?9, allow_virtualization = ?10, "
	               /* no new hash while a code is kept: the stored one stays */
	               "secret_hash = CASE WHEN ?11 IS NULL AND ?14 THEN secret_hash ELSE ?11 END, "
	               "virtual_on = ?12, voicemail = ?15, language = ?16, keys = ?17 "
	               "WHERE id = ?13",
	[ST_EXT_DEL] = "DELETE FROM extensions WHERE id = ?1",
	[ST_EXT_VON] = "UPDATE extensions SET virtual_on = ?2 WHERE id = ?1",
	[ST_EXT_ALL] = "SELECT id, " EXT_COLS " FROM extensions ORDER BY id",
	/* the few extensions virtualized, on their index (020_virtual_on_set.sql),
	 * not a read of every extension the planner would pick for the order */
	[ST_EXT_VON_ALL] = "SELECT id, virtual_on FROM extensions INDEXED BY "
	                   "extensions_virtual_on WHERE virtual_on IS NOT NULL ORDER BY id",

	[ST_DEV_INS] = "INSERT INTO devices (" DEV_COLS ") "
	               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10)",
	[ST_DEV_UPD] = "UPDATE devices SET mac = ?1, org_id = ?2, profile = ?3, model = ?4, "
	               "home_ext_id = ?5, parking_user = ?6, parking_password = ?7, "
	               "static_contact = ?8, prov_password = ?10 WHERE id = ?9",
	[ST_DEV_DEL] = "DELETE FROM devices WHERE id = ?1",
	[ST_DEV_ALL] = "SELECT id, " DEV_COLS " FROM devices ORDER BY id",
	/* what the world's tables are sized for before loading */
	[ST_WORLD_COUNTS] = "SELECT (SELECT count(*) FROM orgs), (SELECT count(*) FROM extensions), "
	                    "(SELECT count(*) FROM devices), (SELECT count(parking_user) FROM devices)",

	[ST_EVENT_ADD] = "INSERT INTO events (at, type, org_id, extension, device, detail, "
	                 "actor_token, actor_role) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",

	[ST_CALL_GET] = "SELECT failures, hung_up FROM call_attempts WHERE call_id = ?1",
	[ST_CALL_PUT] = "INSERT INTO call_attempts (call_id, failures, hung_up, updated_at) "
	                "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (call_id) DO UPDATE SET "
	                "failures = excluded.failures, hung_up = excluded.hung_up, "
	                "updated_at = excluded.updated_at",
	[ST_CALL_EXPIRE] = "DELETE FROM call_attempts WHERE updated_at < ?1",

	[ST_PAIR_GET] = "SELECT failures_in_window, window_start, locked_until, lock_level, "
	                "call_failures, call_last "
	                "FROM guard_pairs WHERE device_id = ?1 AND ext_id = ?2",
	[ST_PAIR_PUT] = "INSERT INTO guard_pairs (device_id, ext_id, failures_in_window, "
	                "window_start, locked_until, lock_level, call_failures, call_last) "
	                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
	                "ON CONFLICT (device_id, ext_id) DO UPDATE SET "
	                "call_failures = excluded.call_failures, call_last = excluded.call_last, "
	                "failures_in_window = excluded.failures_in_window, "
	                "window_start = excluded.window_start, "
	                "locked_until = excluded.locked_until, lock_level = excluded.lock_level",
	[ST_PAIR_EXPIRE] = "DELETE FROM guard_pairs WHERE window_start < ?1 AND locked_until < ?1 "
	                   "AND call_last < ?1",

	[ST_TOKEN_ADD] = "INSERT INTO tokens (hash, role, org_id, name, created_at) "
	                 "VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_TOKEN_FIND] = "SELECT role, org_id, id FROM tokens WHERE hash = ?1",
	[ST_TOKEN_DEL] = "DELETE FROM tokens WHERE id = ?1",
	[ST_TOKEN_ALL] = "SELECT id, hash, role, org_id, name, created_at, from_config, rotated_at "
	                 "FROM tokens ORDER BY id",
	[ST_TOKEN_GET] = "SELECT id, hash, role, org_id, name, created_at, from_config, rotated_at "
	                 "FROM tokens WHERE id = ?1",
	[ST_TOKEN_REHASH] = "UPDATE tokens SET hash = ?2, rotated_at = ?3 WHERE id = ?1",
	[ST_TOKEN_CFG_DROP] = "DELETE FROM tokens WHERE from_config = 1 AND role = ?1 AND "
	                      "(?2 IS NULL OR hash <> ?2)",
	[ST_TOKEN_CFG_ADD] = "INSERT INTO tokens (hash, role, name, created_at, from_config) "
	                     "VALUES (?1, ?2, ?3, ?4, 1) ON CONFLICT (hash) DO NOTHING",

	[ST_REG_PUT] = "INSERT INTO registrations (sip_user, contact, source, user_agent, "
	               "call_id, expires_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
	               "ON CONFLICT (sip_user) DO UPDATE SET contact = excluded.contact, "
	               "source = excluded.source, user_agent = excluded.user_agent, "
	               "call_id = excluded.call_id, expires_at = excluded.expires_at, "
	               "updated_at = excluded.updated_at",
	[ST_REG_DEL] = "DELETE FROM registrations WHERE sip_user = ?1",
	[ST_REG_GET] = "SELECT contact, source, user_agent, call_id, expires_at, updated_at "
	               "FROM registrations WHERE sip_user = ?1",
	[ST_REG_EXPIRE] = "DELETE FROM registrations WHERE expires_at <= ?1",

	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ST_META_PUT] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
	                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[ST_META_DEL] = "DELETE FROM meta WHERE key = ?1",

	[ST_DEVCFG_ALL] = "SELECT device_id, version, hash, input_key, file_hash, file_sums "
	                  "FROM device_config",
	[ST_DEVCFG_PUT] = "INSERT INTO device_config (device_id, version, hash, updated_at, "
	                  "input_key, file_hash, file_sums) "
	                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (device_id) DO UPDATE SET "
	                  "version = excluded.version, hash = excluded.hash, "
	                  "updated_at = excluded.updated_at, input_key = excluded.input_key, "
	                  "file_hash = excluded.file_hash, file_sums = excluded.file_sums",
	[ST_TFTP_ALL] = "SELECT name FROM tftp_files ORDER BY name",
	[ST_TFTP_ADD] = "INSERT OR IGNORE INTO tftp_files (name) VALUES (?1)",
	[ST_TFTP_DEL] = "DELETE FROM tftp_files WHERE name = ?1",
	[ST_FETCH_GET] = "SELECT source, user_agent, version, at FROM device_fetch "
	                 "WHERE device_id = ?1",
	[ST_FETCH_PUT] = "INSERT INTO device_fetch (device_id, source, user_agent, version, at) "
	                 "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (device_id) DO UPDATE SET "
	                 "source = excluded.source, user_agent = excluded.user_agent, "
	                 "version = excluded.version, at = excluded.at",
	[ST_FETCH_ALL] = "SELECT device_id, source, user_agent, version, at FROM device_fetch "
	                 "WHERE device_id IN (SELECT id FROM devices)",
	[ST_RESYNC_PUT] = "INSERT INTO resync (" RESYNC_COLS ") "
	                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
	                  "ON CONFLICT (device_id) DO UPDATE SET state = excluded.state, "
	                  "version = excluded.version, attempts = excluded.attempts, "
	                  "next_at = excluded.next_at, last_result = excluded.last_result, "
	                  "last_at = excluded.last_at",
	/* a row owed, in one statement: what a row there has beyond it is
	 * kept, and read back */
	[ST_RESYNC_OWE_PUT] = "INSERT INTO resync (" RESYNC_COLS ") "
	                      "VALUES (?1, ?2, ?3, 0, ?4, ?5, NULL, ?6) "
	                      "ON CONFLICT (device_id) DO UPDATE SET state = excluded.state, "
	                      "version = excluded.version, attempts = 0, "
	                      "next_at = excluded.next_at, "
	                      "last_result = coalesce(excluded.last_result, last_result)",
	[ST_RESYNC_GET] = "SELECT " RESYNC_COLS " FROM resync WHERE device_id = ?1",
	[ST_RESYNC_ALL] = "SELECT " RESYNC_COLS " FROM resync ORDER BY device_id",
	[ST_RESYNC_DUE] = "SELECT " RESYNC_COLS " FROM resync WHERE " RESYNC_OWED
	                  " AND next_at <= ?1 ORDER BY next_at LIMIT ?2",
	[ST_RESYNC_COUNTS] = SQL_RESYNC_COUNTS,
	[ST_RESYNC_OPEN] = "SELECT 1 FROM resync WHERE " RESYNC_OPEN " LIMIT 1",
	[ST_RESYNC_OWED] = "SELECT " RESYNC_COLS " FROM resync WHERE " RESYNC_OWED,
	[ST_TMPL_NEXT] = "SELECT COALESCE(MAX(version), 0) + 1 FROM templates "
	                 "WHERE profile = ?1 AND name = ?2",
	[ST_TMPL_DEACT] = "UPDATE templates SET active = 0 WHERE profile = ?1 AND name = ?2",
	[ST_TMPL_ADD] = "INSERT INTO templates (profile, name, version, content, active, comment, "
	                "created_at) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)",
	[ST_TMPL_ACTIVE] = "SELECT profile, name, version, content, comment, created_at, active "
	                   "FROM templates WHERE active = 1 ORDER BY profile, name",
	[ST_TMPL_HIST] = "SELECT profile, name, version, NULL, comment, created_at, active "
	                 "FROM templates WHERE profile = ?1 AND name = ?2 ORDER BY version",
	[ST_TMPL_GET] = "SELECT profile, name, version, content, comment, created_at, active "
	                "FROM templates WHERE profile = ?1 AND name = ?2 AND version = ?3",
	[ST_EXT_SECRET] = "SELECT secret_hash FROM extensions WHERE id = ?1",
	[ST_EXT_SECRET_SWAP] = "UPDATE extensions SET secret_hash = ?3 "
	                       "WHERE id = ?1 AND secret_hash = ?2",
	[ST_WEBPW_GET] = "SELECT hash FROM web_passwords WHERE ext_id = ?1",
	[ST_WEBPW_PUT] = "INSERT OR REPLACE INTO web_passwords (ext_id, hash, updated_at) "
	                 "VALUES (?1, ?2, ?3)",
	[ST_WEBPW_DEL] = "DELETE FROM web_passwords WHERE ext_id = ?1",
	[ST_WEBPW_SWAP] = "UPDATE web_passwords SET hash = ?3 WHERE ext_id = ?1 AND hash = ?2",
	[ST_WEBPAIR_GET] = "SELECT failures_in_window, window_start, locked_until, lock_level "
	                   "FROM web_guard WHERE source = ?1 AND ext_id = ?2",
	[ST_WEBPAIR_PUT] = "INSERT OR REPLACE INTO web_guard (source, ext_id, "
	                   "failures_in_window, window_start, locked_until, lock_level) "
	                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_TMPL_ACT] = "UPDATE templates SET active = 1 WHERE profile = ?1 AND name = ?2 "
	                "AND version = ?3",
	[ST_DC_PUT] = "INSERT INTO device_contact (device_id, sip_user, contact, addr, source, "
	              "call_id, how, expires_at, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
	              "ON CONFLICT (device_id) DO UPDATE SET sip_user = excluded.sip_user, "
	              "contact = excluded.contact, addr = excluded.addr, source = excluded.source, "
	              "call_id = excluded.call_id, how = excluded.how, "
	              "expires_at = excluded.expires_at, at = excluded.at",
	[ST_DC_CLEAR_ADDR] = "DELETE FROM device_contact WHERE addr = ?1 AND device_id <> ?2",
	[ST_DC_GET] = "SELECT device_id, sip_user, contact, addr, source, call_id, how, "
	              "expires_at, at FROM device_contact WHERE device_id = ?1",
	[ST_DC_BY_ADDR] = "SELECT device_id, sip_user, contact, addr, source, call_id, how, "
	                  "expires_at, at FROM device_contact WHERE addr = ?1 "
	                  "ORDER BY at DESC LIMIT 1",
	[ST_DC_FORGET] = "DELETE FROM device_contact WHERE sip_user = ?1 AND addr = ?2",
	[ST_PBXOUT_ADD] = "INSERT INTO pbx_outbox (move, at, sip_user, device, contact, cause) "
	                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_PBXOUT_FIRST_MOVE] = "UPDATE pbx_outbox SET move = id WHERE id = ?1",
	[ST_PBXOUT_FIRST] = "SELECT id, move, at, sip_user, device, contact, cause FROM pbx_outbox "
	                    "ORDER BY id LIMIT 1",
	[ST_PBXOUT_DEL] = "DELETE FROM pbx_outbox WHERE id = ?1",
	[ST_PBXOUT_COUNT] = "SELECT count(*) FROM pbx_outbox",
	[ST_PBXOUT_CLEAR] = "DELETE FROM pbx_outbox",
};

/* Event-list variants: one statement per combination of these filters
 * plus the order, so each can use its index. */
#define EVF_ORG  0x01
#define EVF_TYPE 0x02
#define EVF_EXT  0x04
#define EVF_DEV  0x08
#define EVF_DESC 0x10
#define EVF_COUNT 0x20

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST__COUNT];
	sqlite3_stmt *ev[EVF_COUNT]; /* prepared on first use */
	char errmsg[512];
	hd_id actor_token;                 /* stamped on events; 0 = none */
	char actor_role[STORE_ROLE_MAX];
	unsigned long long errors; /* failures recorded, conflicts excluded */
	atomic_long wal_frames;    /* frames in the log after the last commit */
	atomic_long wal_commits;   /* commits counted by wal_count */
	unsigned long long code_writes; /* store_codes_gen */
	struct {
		store_txn_end_fn fn;
		void *arg;
	} txn_end[STORE_TXN_END_MAX]; /* store_after_txn, run when the transaction ends */
	size_t ntxn_end;
#ifdef HD_FAULTS
	long fault_at;    /* the step that fails, counted from the arming; 0 = none */
	long fault_steps; /* steps since store_fault_at */
	bool fault_now;   /* the step just refused was the injected fault */
	_Atomic int slow_ms;  /* store_fault_slow: other threads' steps wait this long */
	pthread_t slow_owner; /* the thread that armed it */
#endif
};

/* ---- errors and statement helpers ---------------------------------- */

static void set_err(struct store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_err(struct store *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	/* A message cut short is still the right message: truncation is fine. */
	(void)vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
	va_end(ap);
	s->errors++;
}

/* Records SQLite's message for rc and maps it to a store return code. */
static int
fail(struct store *s, int rc)
{
#ifdef HD_FAULTS
	if (s->fault_now) {
		s->fault_now = false;
		set_err(s, "injected fault at step %ld", s->fault_at);
		return STORE_ERR;
	}
#endif
	set_err(s, "%s", sqlite3_errmsg(s->db));
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_FOREIGNKEY:
	case SQLITE_CONSTRAINT_TRIGGER: /* only the one-account-per-user triggers */
		s->errors--; /* a conflict is the caller's answer, not a failure */
		return STORE_CONFLICT;
	default:
		return STORE_ERR;
	}
}

/* Invariant 1: every statement goes back to reset, unbound. */
static void
done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Keeps the first bind error in *acc. */
static void
bind_ok(int *acc, int rc)
{
	if (*acc == SQLITE_OK)
		*acc = rc;
}

static int
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC); /* invariant 2 */
}

/* "" is bound as NULL (optional registration fields). */
static int
bind_text_opt(sqlite3_stmt *st, int i, const char *v)
{
	return bind_text(st, i, v != NULL && *v != '\0' ? v : NULL);
}

static int
bind_id(sqlite3_stmt *st, int i, hd_id v)
{
	if (v == 0)
		return sqlite3_bind_null(st, i); /* invariant 4 */
	return sqlite3_bind_int64(st, i, v);
}

/*
 * Every statement an operation runs is stepped here.  Test builds
 * (-DHD_FAULTS, store.h) count the steps and refuse the armed one with an
 * I/O error, as a failing disk would; ROLLBACK is never refused (an undo
 * path that cannot undo is not what the hook tests).  The daemon is built
 * without it: this is sqlite3_step.
 */
static int
step(struct store *s, sqlite3_stmt *st)
{
#ifdef HD_FAULTS
	int ms = atomic_load(&s->slow_ms);

	if (ms > 0 && !pthread_equal(pthread_self(), s->slow_owner))
		nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L }, NULL);
	if (st != s->st[ST_ROLLBACK] && s->fault_at > 0 && ++s->fault_steps == s->fault_at) {
		s->fault_now = true;
		return SQLITE_IOERR;
	}
#else
	(void)s;
#endif
	return sqlite3_step(st);
}

#ifdef HD_FAULTS
void
store_fault_at(struct store *s, long k)
{
	s->fault_at = k;
	s->fault_steps = 0;
	s->fault_now = false;
}

void
store_fault_slow(struct store *s, int ms)
{
	s->slow_owner = pthread_self();
	atomic_store(&s->slow_ms, ms);
}

long
store_fault_steps(const struct store *s)
{
	return s->fault_steps;
}
#endif

/* Steps a statement that returns no rows, then resets it. */
static int
run(struct store *s, sqlite3_stmt *st, int brc)
{
	int rc, ret = 0;

	if (brc != SQLITE_OK) {
		ret = fail(s, brc);
	} else if ((rc = step(s, st)) != SQLITE_DONE) {
		ret = fail(s, rc);
	}
	done(st);
	return ret;
}

/* Copies a column (NULL-safe) into a heap string; *out NULL for SQL NULL.
 * Returns 0, or -1 when out of memory. */
static int
col_dup(sqlite3_stmt *st, int i, char **out)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	*out = NULL;
	if (t == NULL)
		return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? -1 : 0;
	*out = strdup((const char *)t);
	return *out == NULL ? -1 : 0;
}

/* Copies a column into buf; SQL NULL gives "".  -1 if it does not fit. */
static int
col_copy(sqlite3_stmt *st, int i, char *buf, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t n = t == NULL ? 0 : (size_t)sqlite3_column_bytes(st, i);

	if (n >= len)
		return -1;
	if (n > 0)
		memcpy(buf, t, n);
	buf[n] = '\0';
	return 0;
}

static hd_id
col_id(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
}

/* ---- open, migrations, close --------------------------------------- */

/* Runs one SQL text with sqlite3_exec; message into s on failure. */
static int
exec_sql(struct store *s, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		set_err(s, "%s", msg != NULL ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Returns the single text value of a pragma query into buf, or -1. */
static int
pragma_text(struct store *s, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = -1;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		set_err(s, "%s", sqlite3_errmsg(s->db));
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && col_copy(st, 0, buf, len) == 0)
		ret = 0;
	else
		set_err(s, "%s: %s", sql, rc == SQLITE_ROW ? "unexpected value" : sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return ret;
}

/*
 * Makes sure the database file exists with mode 0600 before SQLite opens
 * it.  SQLite gives its -wal and -shm files the mode of the database file,
 * so they are 0600 too.  No umask games: the umask is process-wide.
 */
static int
prepare_file(const char *path, char *err, size_t errlen)
{
	int fd;

	if (strcmp(path, ":memory:") == 0 || *path == '\0')
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1) {
		hd_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) == -1) {
		hd_seterr(err, errlen, "%s: chmod 0600: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

struct migration {
	int version;
	char *name; /* file name inside sql_dir */
};

static int
migration_cmp(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

/* Parses "NNN_name.sql": returns the version, or -1 if the name is not a
 * migration file (then it is ignored). */
static int
migration_version(const char *name)
{
	size_t nd = strspn(name, "0123456789"), len = strlen(name);
	int v = 0;

	if (nd == 0 || nd > 6 || name[nd] != '_' || len < nd + 1 + 4 + 1 ||
	    strcmp(name + len - 4, ".sql") != 0)
		return -1;
	for (size_t i = 0; i < nd; i++)
		v = v * 10 + (name[i] - '0');
	return v;
}

static void
migrations_free(struct migration *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i].name);
	free(m);
}

/* Lists sql_dir's migrations in version order into *out (caller frees with
 * migrations_free).  Returns 0 or -1 with a message in err. */
static int
migrations_scan(const char *sql_dir, struct migration **out, size_t *nout, char *err,
                size_t errlen)
{
	DIR *dir;
	struct dirent *de;
	struct migration *m = NULL;
	size_t n = 0, cap = 0;
	int ret = -1;

	if ((dir = opendir(sql_dir)) == NULL) {
		hd_seterr(err, errlen, "%s: %s", sql_dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		int v = migration_version(de->d_name);

		if (v < 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct migration *nm;

			if (ncap > STORE_MIGRATION_MAX) {
				hd_seterr(err, errlen, "%s: too many migration files", sql_dir);
				goto out;
			}
			if ((nm = realloc(m, ncap * sizeof *m)) == NULL) {
				hd_seterr(err, errlen, "out of memory");
				goto out;
			}
			m = nm;
			cap = ncap;
		}
		if ((m[n].name = strdup(de->d_name)) == NULL) {
			hd_seterr(err, errlen, "out of memory");
			goto out;
		}
		m[n++].version = v;
	}
	if (n > 0)
		qsort(m, n, sizeof *m, migration_cmp);
	for (size_t i = 1; i < n; i++) {
		if (m[i].version == m[i - 1].version) {
			hd_seterr(err, errlen, "%s/%s: migration version %d also used by %s", sql_dir,
			          m[i].name, m[i].version, m[i - 1].name);
			goto out;
		}
	}
	*out = m;
	*nout = n;
	m = NULL;
	n = 0;
	ret = 0;
out:
	migrations_free(m, n);
	closedir(dir);
	return ret;
}

/* Reads a whole file into a NUL-terminated heap string (caller frees). */
static char *
read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0, r;

	if (f == NULL) {
		hd_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			if ((nb = realloc(buf, cap)) == NULL) {
				hd_seterr(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
		}
		r = fread(buf + len, 1, cap - len - 1, f);
		len += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		hd_seterr(err, errlen, "%s: read error", path);
		goto fail;
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		hd_seterr(err, errlen, "%s: contains a NUL byte", path);
		goto fail;
	}
	fclose(f);
	return buf;
fail:
	free(buf);
	fclose(f);
	return NULL;
}

/* 1 if version is recorded, 0 if not, -1 on error. */
static int
migration_applied(struct store *s, int version)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM schema_migrations WHERE version = ?1", -1,
	                       &st, NULL) != SQLITE_OK) {
		set_err(s, "%s", sqlite3_errmsg(s->db));
		return -1;
	}
	sqlite3_bind_int(st, 1, version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		set_err(s, "%s", sqlite3_errmsg(s->db));
		ret = -1;
	}
	sqlite3_finalize(st);
	return ret;
}

/*
 * Applies one migration file in its own transaction and records it, unless
 * it is already recorded.  The check is made under the write lock, so two
 * processes opening the same database at once never both apply a file.
 */
static int
migration_apply(struct store *s, const char *path, const struct migration *m, char *err,
                size_t errlen)
{
	sqlite3_stmt *st = NULL;
	char *sql;
	int rc, applied;

	if ((sql = read_file(path, err, errlen)) == NULL)
		return -1;
	if (exec_sql(s, "BEGIN IMMEDIATE") != 0)
		goto fail;
	if ((applied = migration_applied(s, m->version)) != 0) {
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		if (applied < 0)
			goto fail;
		free(sql);
		return 0;
	}
	if (exec_sql(s, sql) != 0)
		goto rollback;
	if (sqlite3_prepare_v2(s->db,
	                       "INSERT INTO schema_migrations (version, name, applied_at) "
	                       "VALUES (?1, ?2, CAST(strftime('%s', 'now') AS INTEGER))",
	                       -1, &st, NULL) != SQLITE_OK) {
		set_err(s, "%s", sqlite3_errmsg(s->db));
		goto rollback;
	}
	sqlite3_bind_int(st, 1, m->version);
	sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		set_err(s, "%s", sqlite3_errmsg(s->db));
		goto rollback;
	}
	if (exec_sql(s, "COMMIT") != 0)
		goto rollback;
	free(sql);
	return 0;
rollback:
	/* Keep the migration's message, not ROLLBACK's. */
	(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
fail:
	hd_seterr(err, errlen, "%s: %s", path, s->errmsg);
	free(sql);
	return -1;
}

/* Applies every migration of sql_dir not yet recorded. */
static int
migrate(struct store *s, const char *sql_dir, char *err, size_t errlen)
{
	struct migration *m = NULL;
	size_t n = 0;
	const char *sep = "/";
	size_t dlen = strlen(sql_dir);
	int ret = -1, v;

	if (exec_sql(s, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
	                "applied_at INTEGER NOT NULL)") != 0) {
		hd_seterr(err, errlen, "schema_migrations: %s", s->errmsg);
		return -1;
	}
	if (migrations_scan(sql_dir, &m, &n, err, errlen) != 0)
		return -1;
	if (dlen > 0 && sql_dir[dlen - 1] == '/')
		sep = "";
	if ((v = store_schema_version(s)) < 0) {
		hd_seterr(err, errlen, "schema_migrations: %s", s->errmsg);
		goto out;
	}
	if (v > (n > 0 ? m[n - 1].version : 0)) {
		hd_seterr(err, errlen, "%s: database schema version %d is newer than the last "
		          "migration here (%d)", sql_dir, v, n > 0 ? m[n - 1].version : 0);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		int r;

		r = snprintf(path, sizeof path, "%s%s%s", sql_dir, sep, m[i].name);
		if (r < 0 || (size_t)r >= sizeof path) {
			hd_seterr(err, errlen, "%s: path too long", m[i].name);
			goto out;
		}
		if (migration_apply(s, path, &m[i], err, errlen) != 0)
			goto out;
	}
	ret = 0;
out:
	migrations_free(m, n);
	return ret;
}

static int
configure(struct store *s, const char *path, char *err, size_t errlen)
{
	char val[32], sql[64];
	bool file = strcmp(path, ":memory:") != 0 && *path != '\0';

	sqlite3_extended_result_codes(s->db, 1);
	if (sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS) != SQLITE_OK)
		goto fail;
	if (pragma_text(s, "PRAGMA journal_mode = WAL", val, sizeof val) != 0)
		goto fail;
	if (file && strcmp(val, "wal") != 0) {
		set_err(s, "journal_mode is %s, not wal", val);
		goto fail;
	}
	/* See the top of this file for why NORMAL is enough. */
	if (exec_sql(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; "
	                "PRAGMA secure_delete = ON") != 0)
		goto fail;
	/* a log grown by one large transaction shrinks back when it starts
	 * again; one of a job that checkpoints in steps is kept (store.h) */
	sqlite3_snprintf((int)sizeof sql, sql, "PRAGMA journal_size_limit = %ld", STORE_WAL_LIMIT);
	if (exec_sql(s, sql) != 0)
		goto fail;
	if (pragma_text(s, "PRAGMA foreign_keys", val, sizeof val) != 0)
		goto fail;
	if (strcmp(val, "1") != 0) {
		set_err(s, "this SQLite does not enforce foreign keys");
		goto fail;
	}
	return 0;
fail:
	if (s->errmsg[0] == '\0')
		set_err(s, "%s", sqlite3_errmsg(s->db));
	hd_seterr(err, errlen, "%s: %s", path, s->errmsg);
	return -1;
}

int
store_backup(const char *path, const char *out, int *pages, char *err, size_t errlen)
{
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b = NULL;
	char check[64] = "";
	sqlite3_stmt *st = NULL;
	int fd, rc, ret = -1;

	*pages = 0;
	if (strcmp(path, ":memory:") == 0 || *path == '\0') {
		hd_seterr(err, errlen, "the database is in memory: nothing to back up");
		return -1;
	}
	/* the copy holds SIP passwords: 0600 from its first byte, and never
	 * over an existing file */
	if ((fd = open(out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1) {
		hd_seterr(err, errlen, "%s: %s", out, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) == -1) {
		hd_seterr(err, errlen, "%s: chmod 0600: %s", out, strerror(errno));
		close(fd);
		goto out;
	}
	close(fd);
	if ((rc = sqlite3_open_v2(path, &src, SQLITE_OPEN_READWRITE, NULL)) != SQLITE_OK) {
		hd_seterr(err, errlen, "%s: %s", path, src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
		goto out;
	}
	(void)sqlite3_busy_timeout(src, STORE_BUSY_TIMEOUT_MS);
	if ((rc = sqlite3_open_v2(out, &dst, SQLITE_OPEN_READWRITE, NULL)) != SQLITE_OK) {
		hd_seterr(err, errlen, "%s: %s", out, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
		goto out;
	}
	(void)sqlite3_busy_timeout(dst, STORE_BUSY_TIMEOUT_MS);
	if ((b = sqlite3_backup_init(dst, "main", src, "main")) == NULL) {
		hd_seterr(err, errlen, "%s: %s", out, sqlite3_errmsg(dst));
		goto out;
	}
	/* all pages in one step: one read transaction of the source, so the
	 * copy is one committed state however busy the writer (WAL readers
	 * never wait for it) */
	do {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(50);
	} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
	*pages = sqlite3_backup_pagecount(b);
	rc = sqlite3_backup_finish(b);
	b = NULL;
	if (rc != SQLITE_OK) {
		hd_seterr(err, errlen, "%s: backup failed: %s", out, sqlite3_errmsg(dst));
		goto out;
	}
	if (sqlite3_prepare_v2(dst, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW ||
	    (size_t)snprintf(check, sizeof(check), "%s",
	                     (const char *)sqlite3_column_text(st, 0)) >= sizeof(check) ||
	    strcmp(check, "ok") != 0) {
		hd_seterr(err, errlen, "%s: the copy does not check: %s", out,
		          check[0] ? check : sqlite3_errmsg(dst));
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	if (b != NULL)
		(void)sqlite3_backup_finish(b);
	sqlite3_close(dst);
	sqlite3_close(src);
	if (ret != 0)
		(void)unlink(out);
	return ret;
}

struct store *
store_open(const char *path, const char *sql_dir, char *err, size_t errlen)
{
	struct store *s;
	int rc;

	hd_seterr(err, errlen, "%s", "");
	if (path == NULL) {
		hd_seterr(err, errlen, "no database path");
		return NULL;
	}
	if ((s = calloc(1, sizeof *s)) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (prepare_file(path, err, errlen) != 0)
		goto fail;
	/* No mutex of SQLite's own: every call is made under the caller's
	 * lock (store.h), and the prepared statements are shared anyway, so
	 * it guarded nothing; taking and releasing it around each column
	 * read was 13% of a restart's instructions at 100,000 devices.  Each
	 * commit's log is written at once (walbuf.h). */
	rc = sqlite3_open_v2(path, &s->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                     walbuf_register() == 0 ? WALBUF_VFS : NULL);
	if (rc != SQLITE_OK) {
		hd_seterr(err, errlen, "%s: %s", path,
		          s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	if (configure(s, path, err, errlen) != 0)
		goto fail;
	if (sql_dir != NULL && migrate(s, sql_dir, err, errlen) != 0)
		goto fail;
	for (int i = 0; i < ST__COUNT; i++) {
		if (i == ST_DEVCFG_ALL || i == ST_DEVCFG_PUT)
			continue; /* on first use (sql/017): a store opened with older
			           * migrations (tests of migrations) opens all the same */
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
		                       NULL) != SQLITE_OK) {
			hd_seterr(err, errlen, "%s: preparing \"%s\": %s (schema not migrated?)", path,
			          stmt_sql[i], sqlite3_errmsg(s->db));
			goto fail;
		}
	}
	s->errmsg[0] = '\0';
	return s;
fail:
	store_close(s);
	return NULL;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(s->st[i]);
	for (int i = 0; i < EVF_COUNT; i++)
		sqlite3_finalize(s->ev[i]);
	/* Every statement is finalized, so this cannot fail with SQLITE_BUSY;
	 * an open transaction is rolled back. */
	sqlite3_close(s->db);
	free(s);
}

const char *
store_errmsg(const struct store *s)
{
	return s != NULL ? s->errmsg : "no store";
}

int
store_query_plans(struct store *s, store_plan_cb cb, void *arg)
{
	for (int i = 0; i < ST__COUNT; i++) {
		char *q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", stmt_sql[i]);
		sqlite3_stmt *st = NULL;
		int rc = q != NULL ? sqlite3_prepare_v2(s->db, q, -1, &st, NULL) : SQLITE_NOMEM;

		sqlite3_free(q);
		while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
			rc = cb(stmt_sql[i], (const char *)sqlite3_column_text(st, 3), arg) == 0
			             ? SQLITE_OK : SQLITE_ABORT;
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return -1;
	}
	return 0;
}

unsigned long long
store_error_count(const struct store *s)
{
	return s != NULL ? s->errors : 0;
}

int
store_schema_version(struct store *s)
{
	sqlite3_stmt *st = s->st[ST_SCHEMA_VERSION];
	bool temp = false;
	int rc, v = -1;

	/* Also used during store_open, before the statements are prepared. */
	if (st == NULL) {
		if (sqlite3_prepare_v2(s->db, stmt_sql[ST_SCHEMA_VERSION], -1, &st, NULL) != SQLITE_OK) {
			set_err(s, "%s", sqlite3_errmsg(s->db));
			return -1;
		}
		temp = true;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	else
		(void)fail(s, rc);
	if (temp)
		sqlite3_finalize(st);
	else
		done(st);
	return v;
}

/* ---- transactions -------------------------------------------------- */

int
store_cache_kib(struct store *s, int kib)
{
	char sql[64];

	if (snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", kib) >= (int)sizeof(sql))
		return -1;
	return exec_sql(s, sql) == 0 ? 0 : -1;
}

static int
store_begin(struct store *s)
{
	return run(s, s->st[ST_BEGIN], SQLITE_OK) == 0 ? 0 : STORE_ERR;
}

static int
store_rollback(struct store *s)
{
	return run(s, s->st[ST_ROLLBACK], SQLITE_OK) == 0 ? 0 : STORE_ERR;
}

int
store_after_txn(struct store *s, store_txn_end_fn fn, void *arg)
{
	if (sqlite3_get_autocommit(s->db)) {
		fn(arg, true);
		return 0;
	}
	for (size_t i = 0; i < s->ntxn_end; i++)
		if (s->txn_end[i].fn == fn && s->txn_end[i].arg == arg)
			return 0;
	if (s->ntxn_end == STORE_TXN_END_MAX)
		return -1;
	s->txn_end[s->ntxn_end].fn = fn;
	s->txn_end[s->ntxn_end].arg = arg;
	s->ntxn_end++;
	return 0;
}

/* The transaction ended: runs what store_after_txn registered. */
static void
txn_ended(struct store *s, bool committed)
{
	size_t n = s->ntxn_end;

	s->ntxn_end = 0;
	for (size_t i = 0; i < n; i++)
		s->txn_end[i].fn(s->txn_end[i].arg, committed);
}

int
store_txn(struct store *s, store_txn_fn fn, void *arg)
{
	int rc;

	if (store_begin(s) != 0)
		return STORE_ERR;
	if ((rc = fn(s, arg)) != 0) {
		(void)store_rollback(s);
		txn_ended(s, false);
		return rc;
	}
	/* A failed COMMIT (e.g. a deferred constraint) leaves the transaction
	 * open: roll it back. */
	if (run(s, s->st[ST_COMMIT], SQLITE_OK) != 0) {
		(void)store_rollback(s); /* a rollback that works keeps the message */
		txn_ended(s, false);
		return STORE_ERR;
	}
	txn_ended(s, true);
	return 0;
}

/* ---- organizations, extensions, devices ---------------------------- */

/* After an UPDATE/DELETE by id: STORE_NOTFOUND when no row matched. */
static int
changed_one(struct store *s, int ret, const char *what, hd_id id)
{
	if (ret == 0 && sqlite3_changes(s->db) == 0) {
		set_err(s, "no %s with id %lld", what, (long long)id);
		return STORE_NOTFOUND;
	}
	return ret;
}

/* Ends an insert-or-update: an update must have hit its row; an insert
 * hands back the new row's id. */
static int
finish_put(struct store *s, int ret, const char *what, hd_id *id)
{
	if (*id != 0)
		return changed_one(s, ret, what, *id);
	if (ret == 0)
		*id = sqlite3_last_insert_rowid(s->db);
	return ret;
}

int
store_org_put(struct store *s, struct hd_org *o)
{
	sqlite3_stmt *st = s->st[o->id == 0 ? ST_ORG_INS : ST_ORG_UPD];
	int b = SQLITE_OK;

	bind_ok(&b, bind_text(st, 1, o->name));
	bind_ok(&b, bind_text(st, 2, o->display_name));
	bind_ok(&b, bind_text(st, 3, o->sip.host));
	bind_ok(&b, sqlite3_bind_int(st, 4, o->sip.port));
	bind_ok(&b, bind_text(st, 5, o->sip.transport));
	if (o->id != 0)
		bind_ok(&b, sqlite3_bind_int64(st, 6, o->id));
	bind_ok(&b, bind_text(st, 7, o->prov.auth == HD_PROV_SHARED ? "shared"
	                           : o->prov.auth == HD_PROV_DEVICE ? "device" : "none"));
	bind_ok(&b, bind_text(st, 8, o->prov.user));
	bind_ok(&b, bind_text(st, 9, o->prov.password));
	bind_ok(&b, bind_text(st, 10, o->prov.networks));
	bind_ok(&b, sqlite3_bind_int(st, 11, o->site.utc_offset));
	bind_ok(&b, bind_text(st, 12, o->site.dst == HD_DST_EU ? "eu"
	                            : o->site.dst == HD_DST_US ? "us" : "none"));
	bind_ok(&b, bind_text(st, 13, o->site.ntp_server));
	bind_ok(&b, bind_text(st, 14, o->site.language));
	bind_ok(&b, bind_text(st, 15, o->prov.client_cert == HD_CERT_REQUIRED ? "required"
	                            : o->prov.client_cert == HD_CERT_OPTIONAL ? "optional" : "none"));
	return finish_put(s, run(s, st, b), "organization", &o->id);
}

static int
delete_by_id(struct store *s, enum stmt_id which, const char *what, hd_id id)
{
	sqlite3_stmt *st = s->st[which];

	return changed_one(s, run(s, st, sqlite3_bind_int64(st, 1, id)), what, id);
}

int
store_org_delete(struct store *s, hd_id id)
{
	return delete_by_id(s, ST_ORG_DEL, "organization", id);
}

int
store_ext_put(struct store *s, struct hd_ext *e)
{
	sqlite3_stmt *st = s->st[e->id == 0 ? ST_EXT_INS : ST_EXT_UPD];
	int b = SQLITE_OK;

	s->code_writes++; /* a code set, kept or cleared, or a new id */
	bind_ok(&b, bind_id(st, 1, e->org));
	bind_ok(&b, bind_text(st, 2, e->number));
	bind_ok(&b, bind_text(st, 3, e->sip_user));
	bind_ok(&b, bind_text(st, 4, e->sip_password));
	bind_ok(&b, bind_text(st, 5, e->display_name));
	bind_ok(&b, bind_text(st, 6, e->label));
	bind_ok(&b, bind_text(st, 7, e->sip.host));
	bind_ok(&b, sqlite3_bind_int(st, 8, e->sip.port));
	bind_ok(&b, bind_text(st, 9, e->sip.transport));
	bind_ok(&b, sqlite3_bind_int(st, 10, e->allow_virtualization ? 1 : 0));
	bind_ok(&b, bind_text(st, 11, e->secret_hash));
	bind_ok(&b, bind_id(st, 12, e->virtual_on));
	if (e->id != 0) {
		bind_ok(&b, sqlite3_bind_int64(st, 13, e->id));
		bind_ok(&b, sqlite3_bind_int(st, 14, e->has_secret ? 1 : 0));
	}
	bind_ok(&b, bind_text(st, 15, e->voicemail));
	bind_ok(&b, bind_text(st, 16, e->language));
	{
		bool oom;
		char *keys = hd_keys_format(e, &oom);

		if (oom)
			b = SQLITE_NOMEM;
		bind_ok(&b, sqlite3_bind_text(st, 17, keys, -1, SQLITE_TRANSIENT));
		free(keys);
	}
	return finish_put(s, run(s, st, b), "extension", &e->id);
}

int
store_ext_delete(struct store *s, hd_id id)
{
	s->code_writes++;
	return delete_by_id(s, ST_EXT_DEL, "extension", id);
}

int
store_ext_set_virtual_on(struct store *s, hd_id ext, hd_id dev)
{
	sqlite3_stmt *st = s->st[ST_EXT_VON];
	int b = SQLITE_OK;

	bind_ok(&b, sqlite3_bind_int64(st, 1, ext));
	bind_ok(&b, bind_id(st, 2, dev));
	return changed_one(s, run(s, st, b), "extension", ext);
}

int
store_dev_put(struct store *s, struct hd_dev *d)
{
	sqlite3_stmt *st = s->st[d->id == 0 ? ST_DEV_INS : ST_DEV_UPD];
	int b = SQLITE_OK;

	bind_ok(&b, bind_text(st, 1, d->mac));
	bind_ok(&b, bind_id(st, 2, d->org));
	bind_ok(&b, bind_text(st, 3, d->profile));
	bind_ok(&b, bind_text(st, 4, d->model));
	bind_ok(&b, bind_id(st, 5, d->home_ext));
	bind_ok(&b, bind_text(st, 6, d->parking_user));
	bind_ok(&b, bind_text(st, 7, d->parking_password));
	bind_ok(&b, bind_text(st, 8, d->static_contact));
	if (d->id != 0)
		bind_ok(&b, sqlite3_bind_int64(st, 9, d->id));
	bind_ok(&b, bind_text(st, 10, d->prov_password));
	return finish_put(s, run(s, st, b), "device", &d->id);
}

int
store_dev_delete(struct store *s, hd_id id)
{
	return delete_by_id(s, ST_DEV_DEL, "device", id);
}

/* ---- loading the world --------------------------------------------- */

static struct hd_org *
row_org(sqlite3_stmt *st)
{
	struct hd_org *o = calloc(1, sizeof *o);

	if (o == NULL)
		return NULL;
	o->id = sqlite3_column_int64(st, 0);
	o->sip.port = sqlite3_column_int(st, 4);
	o->site.utc_offset = sqlite3_column_int(st, 10);
	{
		const unsigned char *dst = sqlite3_column_text(st, 11);

		o->site.dst = dst == NULL ? HD_DST_NONE
		            : strcmp((const char *)dst, "eu") == 0 ? HD_DST_EU
		            : strcmp((const char *)dst, "us") == 0 ? HD_DST_US : HD_DST_NONE;
	}
	{
		const unsigned char *a = sqlite3_column_text(st, 6);

		o->prov.auth = a == NULL ? HD_PROV_NONE
		             : strcmp((const char *)a, "shared") == 0 ? HD_PROV_SHARED
		             : strcmp((const char *)a, "device") == 0 ? HD_PROV_DEVICE : HD_PROV_NONE;
		a = sqlite3_column_text(st, 14);
		o->prov.client_cert = a == NULL ? HD_CERT_NONE
		                    : strcmp((const char *)a, "required") == 0 ? HD_CERT_REQUIRED
		                    : strcmp((const char *)a, "optional") == 0 ? HD_CERT_OPTIONAL
		                                                                : HD_CERT_NONE;
	}
	if (col_dup(st, 1, &o->name) != 0 || col_dup(st, 2, &o->display_name) != 0 ||
	    col_dup(st, 3, &o->sip.host) != 0 || col_dup(st, 5, &o->sip.transport) != 0 ||
	    col_dup(st, 7, &o->prov.user) != 0 || col_dup(st, 8, &o->prov.password) != 0 ||
	    col_dup(st, 9, &o->prov.networks) != 0 || col_dup(st, 12, &o->site.ntp_server) != 0 ||
	    col_dup(st, 13, &o->site.language) != 0) {
		hd_org_free(o);
		return NULL;
	}
	return o;
}

/* A text column as a borrowed pointer (valid until the next step), NULL
 * for SQL NULL or when SQLite ran out of memory converting it: row_oom
 * tells, once for the whole row. */
static char *
col_text(sqlite3_stmt *st, int i)
{
	return (char *)sqlite3_column_text(st, i);
}

/* Whether a column of the current row of st could not be read for lack
 * of memory (its value then read as NULL).  The step that made the row
 * set the connection's error code to SQLITE_ROW; a column that fails
 * sets it to SQLITE_NOMEM, which stays until the next call that fails
 * or steps.  One call per row, not one sqlite3_column_type per NULL
 * column: those cost a sixth of the loading. */
static bool
row_oom(sqlite3_stmt *st)
{
	return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM;
}

/* virtual_on is left 0: the links are set once every device is in.
 * Packed in w's arena (world_ext_pack): the strings are borrowed from the
 * row until then. */
static struct hd_ext *
row_ext(sqlite3_stmt *st, struct world *w)
{
	struct hd_ext e = { 0 }, *c = NULL;
	const char *keys;

	e.id = sqlite3_column_int64(st, 0);
	e.org = col_id(st, 1);
	e.sip.port = sqlite3_column_int(st, 8);
	e.allow_virtualization = sqlite3_column_int(st, 10) != 0;
	/* the hash itself stays in the store (world_put_ext) */
	e.has_secret = sqlite3_column_type(st, 11) != SQLITE_NULL;
	e.number = col_text(st, 2);
	e.sip_user = col_text(st, 3);
	e.sip_password = col_text(st, 4);
	e.display_name = col_text(st, 5);
	e.label = col_text(st, 6);
	e.sip.host = col_text(st, 7);
	e.sip.transport = col_text(st, 9);
	e.voicemail = col_text(st, 13);
	e.language = col_text(st, 14);
	keys = col_text(st, 15);
	if (!row_oom(st) && hd_keys_parse(&e, keys) == 0)
		c = world_ext_pack(w, &e);
	hd_keys_clear(&e); /* its keys only: the strings are the row's */
	return c;
}

static struct hd_dev *
row_dev(sqlite3_stmt *st, struct world *w, char *err, size_t errlen)
{
	struct hd_dev d = { 0 }, *c;

	d.id = sqlite3_column_int64(st, 0);
	if (sqlite3_column_bytes(st, 1) != HD_MAC_LEN ||
	    col_copy(st, 1, d.mac, sizeof d.mac) != 0) {
		hd_seterr(err, errlen, "device %lld: bad mac", (long long)d.id);
		return NULL;
	}
	d.org = col_id(st, 2);
	d.home_ext = col_id(st, 5);
	d.profile = col_text(st, 3);
	d.model = col_text(st, 4);
	d.parking_user = col_text(st, 6);
	d.parking_password = col_text(st, 7);
	d.static_contact = col_text(st, 8);
	d.prov_password = col_text(st, 9);
	if (row_oom(st) || (c = world_dev_pack(w, &d)) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	return c;
}

/* Steps st to its end; for each row calls load(s, st, w, err, errlen). */
static int
load_rows(struct store *s, sqlite3_stmt *st, struct world *w, char *err, size_t errlen,
          int (*load)(sqlite3_stmt *, struct world *, char *, size_t))
{
	int rc, ret = 0;

	while ((rc = step(s, st)) == SQLITE_ROW) {
		if (load(st, w, err, errlen) != 0) {
			ret = -1;
			break;
		}
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		(void)fail(s, rc);
		hd_seterr(err, errlen, "%s", s->errmsg);
		ret = -1;
	}
	done(st);
	return ret;
}

static int
load_org(sqlite3_stmt *st, struct world *w, char *err, size_t errlen)
{
	struct hd_org *o = row_org(st);

	if (o == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	return world_put_org(w, o, err, errlen);
}

static int
load_ext(sqlite3_stmt *st, struct world *w, char *err, size_t errlen)
{
	struct hd_ext *e = row_ext(st, w);

	if (e == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	return world_put_ext(w, e, err, errlen);
}

static int
load_dev(sqlite3_stmt *st, struct world *w, char *err, size_t errlen)
{
	struct hd_dev *d = row_dev(st, w, err, errlen);

	if (d == NULL)
		return -1;
	return world_put_dev(w, d, err, errlen);
}

static int
load_von(sqlite3_stmt *st, struct world *w, char *err, size_t errlen)
{
	hd_id ext = sqlite3_column_int64(st, 0), dev = col_id(st, 1);

	if (world_ext(w, ext) == NULL || world_dev(w, dev) == NULL) {
		hd_seterr(err, errlen, "extension %lld: virtual_on %lld not loaded", (long long)ext,
		          (long long)dev);
		return -1;
	}
	world_set_virtual_on(w, ext, dev);
	return 0;
}

/* Sizes the world's tables for the rows about to be loaded (no table
 * grows, no rehash, while 100,000s of rows go in). */
static int
reserve_world(struct store *s, struct world *w, char *err, size_t errlen)
{
	sqlite3_stmt *st = s->st[ST_WORLD_COUNTS];
	int rc = step(s, st), ret = 0;

	if (rc != SQLITE_ROW) {
		(void)fail(s, rc);
		hd_seterr(err, errlen, "%s", s->errmsg);
		ret = -1;
	} else if (world_reserve(w, (size_t)sqlite3_column_int64(st, 0),
	                         (size_t)sqlite3_column_int64(st, 1),
	                         (size_t)sqlite3_column_int64(st, 2),
	                         (size_t)sqlite3_column_int64(st, 3)) != 0) {
		hd_seterr(err, errlen, "out of memory");
		ret = -1;
	}
	done(st);
	return ret;
}

int
store_load_world(struct store *s, struct world *w, char *err, size_t errlen)
{
	int ret = -1;

	if (run(s, s->st[ST_SNAP_BEGIN], SQLITE_OK) != 0) {
		hd_seterr(err, errlen, "%s", s->errmsg);
		return -1;
	}
	/* Extensions before devices (a device's home extension must exist),
	 * devices before the virtual_on links; the tables sized first. */
	if (reserve_world(s, w, err, errlen) == 0 &&
	    load_rows(s, s->st[ST_ORG_ALL], w, err, errlen, load_org) == 0 &&
	    load_rows(s, s->st[ST_EXT_ALL], w, err, errlen, load_ext) == 0 &&
	    load_rows(s, s->st[ST_DEV_ALL], w, err, errlen, load_dev) == 0 &&
	    load_rows(s, s->st[ST_EXT_VON_ALL], w, err, errlen, load_von) == 0)
		ret = 0;
	/* Read-only: releasing is right on success and failure alike. */
	if (run(s, s->st[ST_SNAP_END], SQLITE_OK) != 0 && ret == 0) {
		hd_seterr(err, errlen, "%s", s->errmsg);
		ret = -1;
	}
	return ret;
}

/* ---- events -------------------------------------------------------- */

int
store_event_add_id(struct store *s, long long at, const char *type, hd_id org,
                   const char *extension, const char *device, const char *detail_json,
                   long long *id_out)
{
	sqlite3_stmt *st = s->st[ST_EVENT_ADD];
	int b = SQLITE_OK, ret;

	bind_ok(&b, sqlite3_bind_int64(st, 1, at));
	bind_ok(&b, bind_text(st, 2, type));
	bind_ok(&b, bind_id(st, 3, org));
	bind_ok(&b, bind_text(st, 4, extension));
	bind_ok(&b, bind_text(st, 5, device));
	bind_ok(&b, bind_text(st, 6, detail_json));
	bind_ok(&b, bind_id(st, 7, s->actor_token));
	bind_ok(&b, bind_text_opt(st, 8, s->actor_token ? s->actor_role : NULL));
	ret = run(s, st, b);
	if (ret == 0 && id_out != NULL)
		*id_out = sqlite3_last_insert_rowid(s->db);
	return ret;
}

void
store_set_actor(struct store *s, hd_id token, const char *role)
{
	s->actor_token = role != NULL ? token : 0;
	if ((size_t)snprintf(s->actor_role, sizeof(s->actor_role), "%s", role ? role : "") >=
	    sizeof(s->actor_role))
		s->actor_token = 0, s->actor_role[0] = '\0'; /* roles are short: never */
}

int
store_event_add(struct store *s, long long at, const char *type, hd_id org,
                const char *extension, const char *device, const char *detail_json)
{
	return store_event_add_id(s, at, type, org, extension, device, detail_json, NULL);
}

/* The statement for one filter combination, prepared on first use. */
static sqlite3_stmt *
event_stmt(struct store *s, unsigned flags)
{
	char sql[512];
	int n;

	if (s->ev[flags] != NULL)
		return s->ev[flags];
	n = snprintf(sql, sizeof sql,
	             "SELECT id, at, type, org_id, extension, device, detail, actor_token, "
	             "actor_role FROM events "
	             "WHERE id > ?1 AND id < ?2%s%s%s%s ORDER BY id %s LIMIT ?7",
	             flags & EVF_ORG ? " AND org_id = ?3" : "",
	             flags & EVF_TYPE ? " AND type = ?4" : "",
	             flags & EVF_EXT ? " AND extension = ?5" : "",
	             flags & EVF_DEV ? " AND device = ?6" : "",
	             flags & EVF_DESC ? "DESC" : "ASC");
	if (n < 0 || (size_t)n >= sizeof sql) {
		set_err(s, "event query too long");
		return NULL;
	}
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->ev[flags], NULL) !=
	    SQLITE_OK) {
		set_err(s, "%s", sqlite3_errmsg(s->db));
		s->ev[flags] = NULL;
	}
	return s->ev[flags];
}

int
store_events_list(struct store *s, const struct store_event_filter *f, store_event_cb cb,
                  void *arg)
{
	static const struct store_event_filter all;
	sqlite3_stmt *st;
	unsigned flags = 0;
	int b = SQLITE_OK, rc, ret = 0;

	if (f == NULL)
		f = &all;
	if (f->org != 0)
		flags |= EVF_ORG;
	if (f->type != NULL)
		flags |= EVF_TYPE;
	if (f->extension != NULL)
		flags |= EVF_EXT;
	if (f->device != NULL)
		flags |= EVF_DEV;
	if (f->newest_first)
		flags |= EVF_DESC;
	if ((st = event_stmt(s, flags)) == NULL)
		return STORE_ERR;
	bind_ok(&b, sqlite3_bind_int64(st, 1, f->since_id));
	bind_ok(&b, sqlite3_bind_int64(st, 2, f->before_id > 0 ? f->before_id : INT64_MAX));
	if (flags & EVF_ORG)
		bind_ok(&b, sqlite3_bind_int64(st, 3, f->org));
	if (flags & EVF_TYPE)
		bind_ok(&b, bind_text(st, 4, f->type));
	if (flags & EVF_EXT)
		bind_ok(&b, bind_text(st, 5, f->extension));
	if (flags & EVF_DEV)
		bind_ok(&b, bind_text(st, 6, f->device));
	bind_ok(&b, sqlite3_bind_int(st, 7, f->limit > 0 ? f->limit : -1));
	if (b != SQLITE_OK) {
		ret = fail(s, b);
		goto out;
	}
	while ((rc = step(s, st)) == SQLITE_ROW) {
		struct store_event ev = {
			.id = sqlite3_column_int64(st, 0),
			.at = sqlite3_column_int64(st, 1),
			.type = (const char *)sqlite3_column_text(st, 2),
			.org = col_id(st, 3),
			.extension = (const char *)sqlite3_column_text(st, 4),
			.device = (const char *)sqlite3_column_text(st, 5),
			.detail = (const char *)sqlite3_column_text(st, 6),
			.actor_token = col_id(st, 7),
			.actor_role = (const char *)sqlite3_column_text(st, 8),
		};
		if (ev.type == NULL) { /* NOT NULL column: only out of memory */
			ret = fail(s, SQLITE_NOMEM);
			goto out;
		}
		if ((ret = cb(&ev, arg)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		ret = fail(s, rc);
out:
	done(st);
	return ret;
}

/* ---- per-call attempts and lockout pairs --------------------------- */

int
store_call_get(struct store *s, const char *call_id, int *failures, bool *hung_up)
{
	sqlite3_stmt *st = s->st[ST_CALL_GET];
	int rc, ret;

	*failures = 0;
	*hung_up = false;
	if ((rc = bind_text(st, 1, call_id)) != SQLITE_OK) {
		ret = fail(s, rc);
	} else if ((rc = step(s, st)) == SQLITE_ROW) {
		*failures = sqlite3_column_int(st, 0);
		*hung_up = sqlite3_column_int(st, 1) != 0;
		ret = 1;
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

int
store_call_put(struct store *s, const char *call_id, int failures, bool hung_up, long long now)
{
	sqlite3_stmt *st = s->st[ST_CALL_PUT];
	int b = SQLITE_OK;

	bind_ok(&b, bind_text(st, 1, call_id));
	bind_ok(&b, sqlite3_bind_int(st, 2, failures));
	bind_ok(&b, sqlite3_bind_int(st, 3, hung_up ? 1 : 0));
	bind_ok(&b, sqlite3_bind_int64(st, 4, now));
	return run(s, st, b);
}

/* Runs a DELETE with one integer bound; returns the rows deleted or < 0. */
static int
expire(struct store *s, enum stmt_id which, long long t)
{
	sqlite3_stmt *st = s->st[which];
	int ret = run(s, st, sqlite3_bind_int64(st, 1, t));

	return ret == 0 ? sqlite3_changes(s->db) : ret;
}

int
store_calls_expire(struct store *s, long long older_than)
{
	return expire(s, ST_CALL_EXPIRE, older_than);
}

/* A lockout pair's columns (failures_in_window, window_start,
 * locked_until, lock_level): read from columns 0..3, bound to 3..6. */
static void
pair_from_row(sqlite3_stmt *st, struct store_pair *out)
{
	out->failures_in_window = sqlite3_column_int(st, 0);
	out->window_start = sqlite3_column_int64(st, 1);
	out->locked_until = sqlite3_column_int64(st, 2);
	out->lock_level = sqlite3_column_int(st, 3);
}

static void
bind_pair(int *b, sqlite3_stmt *st, const struct store_pair *p)
{
	bind_ok(b, sqlite3_bind_int(st, 3, p->failures_in_window));
	bind_ok(b, sqlite3_bind_int64(st, 4, p->window_start));
	bind_ok(b, sqlite3_bind_int64(st, 5, p->locked_until));
	bind_ok(b, sqlite3_bind_int(st, 6, p->lock_level));
}

int
store_pair_get(struct store *s, hd_id dev, hd_id ext, struct store_pair *out)
{
	sqlite3_stmt *st = s->st[ST_PAIR_GET];
	int b = SQLITE_OK, rc, ret;

	memset(out, 0, sizeof *out);
	bind_ok(&b, sqlite3_bind_int64(st, 1, dev));
	bind_ok(&b, sqlite3_bind_int64(st, 2, ext));
	if (b != SQLITE_OK) {
		ret = fail(s, b);
	} else if ((rc = step(s, st)) == SQLITE_ROW) {
		pair_from_row(st, out);
		out->call_failures = sqlite3_column_int(st, 4);
		out->call_last = sqlite3_column_int64(st, 5);
		ret = 1;
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

int
store_pair_put(struct store *s, hd_id dev, hd_id ext, const struct store_pair *p)
{
	sqlite3_stmt *st = s->st[ST_PAIR_PUT];
	int b = SQLITE_OK;

	bind_ok(&b, sqlite3_bind_int64(st, 1, dev));
	bind_ok(&b, sqlite3_bind_int64(st, 2, ext));
	bind_pair(&b, st, p);
	bind_ok(&b, sqlite3_bind_int(st, 7, p->call_failures));
	bind_ok(&b, sqlite3_bind_int64(st, 8, p->call_last));
	return run(s, st, b);
}

int
store_pairs_expire(struct store *s, long long older_than)
{
	return expire(s, ST_PAIR_EXPIRE, older_than);
}

/* ---- API tokens ---------------------------------------------------- */

int
store_token_add(struct store *s, const char *hash_hex, const char *role, hd_id org,
                const char *name, long long now, hd_id *id_out)
{
	sqlite3_stmt *st = s->st[ST_TOKEN_ADD];
	int b = SQLITE_OK, ret;

	bind_ok(&b, bind_text(st, 1, hash_hex));
	bind_ok(&b, bind_text(st, 2, role));
	bind_ok(&b, bind_id(st, 3, org));
	bind_ok(&b, bind_text(st, 4, name));
	bind_ok(&b, sqlite3_bind_int64(st, 5, now));
	ret = run(s, st, b);
	if (ret == 0 && id_out != NULL)
		*id_out = sqlite3_last_insert_rowid(s->db);
	return ret;
}

int
store_token_find(struct store *s, const char *hash_hex, char role[STORE_ROLE_MAX], hd_id *org)
{
	return store_token_find_id(s, hash_hex, role, org, NULL);
}

int
store_token_find_id(struct store *s, const char *hash_hex, char role[STORE_ROLE_MAX],
                    hd_id *org, hd_id *id)
{
	sqlite3_stmt *st = s->st[ST_TOKEN_FIND];
	int rc, ret;

	if (role != NULL)
		role[0] = '\0';
	if (org != NULL)
		*org = 0;
	if (id != NULL)
		*id = 0;
	if ((rc = bind_text(st, 1, hash_hex)) != SQLITE_OK) {
		ret = fail(s, rc);
	} else if ((rc = step(s, st)) == SQLITE_ROW) {
		ret = 1;
		if (role != NULL && col_copy(st, 0, role, STORE_ROLE_MAX) != 0) {
			set_err(s, "token role too long");
			ret = STORE_ERR;
		}
		if (org != NULL)
			*org = col_id(st, 1);
		if (id != NULL)
			*id = col_id(st, 2);
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

int
store_token_delete(struct store *s, hd_id id)
{
	return delete_by_id(s, ST_TOKEN_DEL, "token", id);
}

/* Steps ST_TOKEN_ALL or ST_TOKEN_GET (bound) and calls cb for each row. */
static int
token_rows(struct store *s, sqlite3_stmt *st, store_token_cb cb, void *arg)
{
	int rc, ret = 0;

	while ((rc = step(s, st)) == SQLITE_ROW) {
		struct store_token t = {
			.id = sqlite3_column_int64(st, 0),
			.hash = (const char *)sqlite3_column_text(st, 1),
			.role = (const char *)sqlite3_column_text(st, 2),
			.org = col_id(st, 3),
			.name = (const char *)sqlite3_column_text(st, 4),
			.created_at = sqlite3_column_int64(st, 5),
			.from_config = sqlite3_column_int(st, 6) != 0,
			.rotated_at = sqlite3_column_int64(st, 7),
		};
		if (t.hash == NULL || t.role == NULL) { /* NOT NULL columns */
			ret = fail(s, SQLITE_NOMEM);
			goto out;
		}
		if ((ret = cb(&t, arg)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		ret = fail(s, rc);
out:
	done(st);
	return ret;
}

int
store_token_list(struct store *s, store_token_cb cb, void *arg)
{
	return token_rows(s, s->st[ST_TOKEN_ALL], cb, arg);
}

struct token_one {
	store_token_cb cb;
	void *arg;
	int found;
};

static int
token_one_cb(const struct store_token *t, void *arg)
{
	struct token_one *o = arg;

	o->found = 1;
	return o->cb(t, o->arg) != 0 ? 2 : 0;
}

int
store_token_get(struct store *s, hd_id id, store_token_cb cb, void *arg)
{
	sqlite3_stmt *st = s->st[ST_TOKEN_GET];
	struct token_one o = { cb, arg, 0 };
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, id)) != SQLITE_OK) {
		done(st);
		return fail(s, rc);
	}
	rc = token_rows(s, st, token_one_cb, &o);
	return rc < 0 ? rc : o.found;
}

int
store_token_rehash(struct store *s, hd_id id, const char *hash_hex, long long now)
{
	sqlite3_stmt *st = s->st[ST_TOKEN_REHASH];
	int b = SQLITE_OK;

	bind_ok(&b, sqlite3_bind_int64(st, 1, id));
	bind_ok(&b, bind_text(st, 2, hash_hex));
	bind_ok(&b, sqlite3_bind_int64(st, 3, now));
	return changed_one(s, run(s, st, b), "token", id);
}

int
store_token_config(struct store *s, const char *role, const char *hash_hex, const char *name,
                   long long now)
{
	sqlite3_stmt *st = s->st[ST_TOKEN_CFG_DROP];
	int b = SQLITE_OK, rc;

	bind_ok(&b, bind_text(st, 1, role));
	bind_ok(&b, bind_text(st, 2, hash_hex));
	if ((rc = run(s, st, b)) != 0 || hash_hex == NULL)
		return rc;
	st = s->st[ST_TOKEN_CFG_ADD];
	bind_ok(&b, bind_text(st, 1, hash_hex));
	bind_ok(&b, bind_text(st, 2, role));
	bind_ok(&b, bind_text(st, 3, name));
	bind_ok(&b, sqlite3_bind_int64(st, 4, now));
	return run(s, st, b);
}

/* ---- registrations ------------------------------------------------- */

/* A struct store_reg field must be NUL-terminated inside its buffer. */
static bool
terminated(const char *buf, size_t len)
{
	return memchr(buf, '\0', len) != NULL;
}

int
store_reg_put(struct store *s, const struct store_reg *r)
{
	sqlite3_stmt *st = s->st[ST_REG_PUT];
	int b = SQLITE_OK;

	if (!terminated(r->sip_user, sizeof r->sip_user) ||
	    !terminated(r->contact, sizeof r->contact) ||
	    !terminated(r->source, sizeof r->source) ||
	    !terminated(r->user_agent, sizeof r->user_agent) ||
	    !terminated(r->call_id, sizeof r->call_id)) {
		set_err(s, "registration field not terminated");
		return STORE_ERR;
	}
	if (r->sip_user[0] == '\0' || r->contact[0] == '\0') {
		set_err(s, "registration without sip_user or contact");
		return STORE_ERR;
	}
	bind_ok(&b, bind_text(st, 1, r->sip_user));
	bind_ok(&b, bind_text(st, 2, r->contact));
	bind_ok(&b, bind_text_opt(st, 3, r->source));
	bind_ok(&b, bind_text_opt(st, 4, r->user_agent));
	bind_ok(&b, bind_text_opt(st, 5, r->call_id));
	bind_ok(&b, sqlite3_bind_int64(st, 6, r->expires_at));
	bind_ok(&b, sqlite3_bind_int64(st, 7, r->updated_at));
	return run(s, st, b);
}

int
store_reg_delete(struct store *s, const char *sip_user)
{
	sqlite3_stmt *st = s->st[ST_REG_DEL];

	return run(s, st, bind_text(st, 1, sip_user));
}

int
store_reg_get(struct store *s, const char *sip_user, struct store_reg *out)
{
	sqlite3_stmt *st = s->st[ST_REG_GET];
	int rc, ret;

	memset(out, 0, sizeof *out);
	if ((rc = bind_text(st, 1, sip_user)) != SQLITE_OK) {
		ret = fail(s, rc);
	} else if ((rc = step(s, st)) == SQLITE_ROW) {
		ret = 1;
		if (strlen(sip_user) >= sizeof out->sip_user ||
		    col_copy(st, 0, out->contact, sizeof out->contact) != 0 ||
		    col_copy(st, 1, out->source, sizeof out->source) != 0 ||
		    col_copy(st, 2, out->user_agent, sizeof out->user_agent) != 0 ||
		    col_copy(st, 3, out->call_id, sizeof out->call_id) != 0) {
			set_err(s, "registration of %.64s does not fit", sip_user);
			memset(out, 0, sizeof *out);
			ret = STORE_ERR;
		} else {
			memcpy(out->sip_user, sip_user, strlen(sip_user) + 1);
			out->expires_at = sqlite3_column_int64(st, 4);
			out->updated_at = sqlite3_column_int64(st, 5);
		}
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

int
store_regs_expire(struct store *s, long long now)
{
	return expire(s, ST_REG_EXPIRE, now);
}

/* ---- meta ---------------------------------------------------------- */

int
store_meta_get(struct store *s, const char *key, char *buf, size_t len)
{
	sqlite3_stmt *st = s->st[ST_META_GET];
	int rc, ret;

	if (len > 0)
		buf[0] = '\0';
	if ((rc = bind_text(st, 1, key)) != SQLITE_OK) {
		ret = fail(s, rc);
	} else if ((rc = step(s, st)) == SQLITE_ROW) {
		ret = 1;
		if (len == 0 || col_copy(st, 0, buf, len) != 0) {
			set_err(s, "meta %.64s: value longer than the buffer", key);
			if (len > 0)
				buf[0] = '\0';
			ret = STORE_ERR;
		}
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

int
store_meta_put(struct store *s, const char *key, const char *value)
{
	sqlite3_stmt *st = s->st[value != NULL ? ST_META_PUT : ST_META_DEL];
	int b = SQLITE_OK;

	bind_ok(&b, bind_text(st, 1, key));
	if (value != NULL)
		bind_ok(&b, bind_text(st, 2, value));
	return run(s, st, b);
}

int
store_meta_put_synced(struct store *s, const char *key, const char *value)
{
	int rc;

	/* in WAL mode, FULL syncs the log at each commit: this one */
	if (exec_sql(s, "PRAGMA synchronous = FULL") != 0)
		return -1;
	rc = store_meta_put(s, key, value);
	if (exec_sql(s, "PRAGMA synchronous = NORMAL") != 0)
		rc = -1;
	return rc;
}

/* ---- publishing: versions, TFTP manifest, fetches ------------------ */

/* Statement i, prepared on first use; NULL with the error recorded. */
static sqlite3_stmt *
stmt_late(struct store *s, int i)
{
	int rc;

	if (s->st[i] == NULL &&
	    (rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
	                             NULL)) != SQLITE_OK) {
		(void)fail(s, rc);
		s->st[i] = NULL;
	}
	return s->st[i];
}

int
store_devcfg_each(struct store *s, store_devcfg_cb cb, void *arg)
{
	sqlite3_stmt *st = stmt_late(s, ST_DEVCFG_ALL);
	int rc, ret = 0;

	if (st == NULL)
		return -1;

	while ((rc = step(s, st)) == SQLITE_ROW) {
		const unsigned char *h = sqlite3_column_text(st, 2);
		const unsigned char *k = sqlite3_column_text(st, 3);
		const unsigned char *f = sqlite3_column_text(st, 4);
		const unsigned char *sums = sqlite3_column_text(st, 5);
		struct store_devcfg c = {
			sqlite3_column_int64(st, 0), (unsigned long long)sqlite3_column_int64(st, 1),
			h ? (const char *)h : "", k ? (const char *)k : "", f ? (const char *)f : "",
			sums ? (const char *)sums : ""
		};

		if ((ret = cb(&c, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = fail(s, rc);
	done(st);
	return ret;
}

int
store_devcfg_put(struct store *s, const struct store_devcfg *c, long long now)
{
	sqlite3_stmt *st = stmt_late(s, ST_DEVCFG_PUT);
	int b = SQLITE_OK;

	if (st == NULL)
		return -1;

	bind_ok(&b, bind_id(st, 1, c->dev));
	bind_ok(&b, sqlite3_bind_int64(st, 2, (sqlite3_int64)c->version));
	bind_ok(&b, bind_text(st, 3, c->hash));
	bind_ok(&b, sqlite3_bind_int64(st, 4, now));
	bind_ok(&b, bind_text_opt(st, 5, c->key != NULL && c->key[0] ? c->key : NULL));
	bind_ok(&b, bind_text_opt(st, 6, c->file_hash != NULL && c->file_hash[0] ? c->file_hash : NULL));
	bind_ok(&b, bind_text_opt(st, 7, c->file_sums != NULL && c->file_sums[0] ? c->file_sums : NULL));
	return run(s, st, b);
}

int
store_tftp_each(struct store *s, store_name_cb cb, void *arg)
{
	sqlite3_stmt *st = s->st[ST_TFTP_ALL];
	int rc, ret = 0;

	while ((rc = step(s, st)) == SQLITE_ROW) {
		if ((ret = cb((const char *)sqlite3_column_text(st, 0), arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = fail(s, rc);
	done(st);
	return ret;
}

int
store_tftp_add(struct store *s, const char *name)
{
	sqlite3_stmt *st = s->st[ST_TFTP_ADD];

	return run(s, st, bind_text(st, 1, name));
}

int
store_tftp_del(struct store *s, const char *name)
{
	sqlite3_stmt *st = s->st[ST_TFTP_DEL];

	return run(s, st, bind_text(st, 1, name));
}

int
store_fetch_put(struct store *s, hd_id dev, const char *source, const char *user_agent,
                unsigned long long version, long long at)
{
	sqlite3_stmt *st = s->st[ST_FETCH_PUT];
	int b = SQLITE_OK;

	bind_ok(&b, bind_id(st, 1, dev));
	bind_ok(&b, bind_text_opt(st, 2, source));
	bind_ok(&b, bind_text_opt(st, 3, user_agent));
	bind_ok(&b, sqlite3_bind_int64(st, 4, (sqlite3_int64)version));
	bind_ok(&b, sqlite3_bind_int64(st, 5, at));
	return run(s, st, b);
}

int
store_fetch_get(struct store *s, hd_id dev, struct store_fetch *out)
{
	sqlite3_stmt *st = s->st[ST_FETCH_GET];
	int rc, ret;

	memset(out, 0, sizeof(*out));
	if ((rc = sqlite3_bind_int64(st, 1, dev)) != SQLITE_OK) {
		ret = fail(s, rc);
	} else if ((rc = step(s, st)) == SQLITE_ROW) {
		/* what does not fit is cut: these are shown, never matched */
		const unsigned char *src = sqlite3_column_text(st, 0);
		const unsigned char *ua = sqlite3_column_text(st, 1);

		ret = 1;
		if (src != NULL && (size_t)snprintf(out->source, sizeof(out->source), "%s",
		                                    (const char *)src) >= sizeof(out->source))
			out->truncated = true;
		if (ua != NULL && (size_t)snprintf(out->user_agent, sizeof(out->user_agent), "%s",
		                                   (const char *)ua) >= sizeof(out->user_agent))
			out->truncated = true;
		out->version = (unsigned long long)sqlite3_column_int64(st, 2);
		out->at = sqlite3_column_int64(st, 3);
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

int
store_fetch_each(struct store *s, store_fetch_cb cb, void *arg)
{
	sqlite3_stmt *st = s->st[ST_FETCH_ALL];
	int rc, ret = 0;

	while ((rc = step(s, st)) == SQLITE_ROW) {
		const unsigned char *src = sqlite3_column_text(st, 1);
		const unsigned char *ua = sqlite3_column_text(st, 2);

		ret = cb(sqlite3_column_int64(st, 0), src ? (const char *)src : "",
		         ua ? (const char *)ua : "", (unsigned long long)sqlite3_column_int64(st, 3),
		         sqlite3_column_int64(st, 4), arg);
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = fail(s, rc);
	done(st);
	return ret;
}

/* ---- the resync outbox --------------------------------------------- */

int
store_resync_put(struct store *s, const struct store_resync *r)
{
	sqlite3_stmt *st = s->st[ST_RESYNC_PUT];
	int b = SQLITE_OK;

	bind_ok(&b, bind_id(st, 1, r->dev));
	bind_ok(&b, bind_text(st, 2, r->state));
	bind_ok(&b, sqlite3_bind_int64(st, 3, (sqlite3_int64)r->version));
	bind_ok(&b, sqlite3_bind_int(st, 4, r->attempts));
	bind_ok(&b, sqlite3_bind_int64(st, 5, r->next_at));
	bind_ok(&b, bind_text_opt(st, 6, r->last_result));
	bind_ok(&b, r->last_at ? sqlite3_bind_int64(st, 7, r->last_at) : sqlite3_bind_null(st, 7));
	bind_ok(&b, sqlite3_bind_int64(st, 8, r->created_at));
	return run(s, st, b);
}

int
store_resync_owe_put(struct store *s, struct store_resync *r)
{
	sqlite3_stmt *st = s->st[ST_RESYNC_OWE_PUT];
	struct store_resync got;
	int b = SQLITE_OK, rc, ret;

	bind_ok(&b, bind_id(st, 1, r->dev));
	bind_ok(&b, bind_text(st, 2, r->state));
	bind_ok(&b, sqlite3_bind_int64(st, 3, (sqlite3_int64)r->version));
	bind_ok(&b, sqlite3_bind_int64(st, 4, r->next_at));
	bind_ok(&b, bind_text_opt(st, 5, r->last_result));
	bind_ok(&b, sqlite3_bind_int64(st, 6, r->created_at));
	if (b != SQLITE_OK)
		ret = fail(s, b);
	else if ((rc = step(s, st)) != SQLITE_DONE)
		ret = fail(s, rc);
	else
		ret = 0;
	done(st);
	if (ret != 0)
		return ret;
	/* read back by its key, from the page just written: a RETURNING
	 * clause would build and drop a temporary table each time, which a
	 * profile of a move's commit showed as 40 % of this function */
	if ((ret = store_resync_get(s, r->dev, &got)) == 1) {
		*r = got;
		return 0;
	}
	if (ret == 0)
		set_err(s, "the resync row just written is not there");
	return ret < 0 ? ret : STORE_ERR; /* r as it was: its caller names r->dev */
}

static int
resync_row(sqlite3_stmt *st, struct store_resync *r)
{
	memset(r, 0, sizeof(*r));
	r->dev = col_id(st, 0);
	if (col_copy(st, 1, r->state, sizeof(r->state)) != 0 ||
	    col_copy(st, 5, r->last_result, sizeof(r->last_result)) != 0)
		return -1;
	r->version = (unsigned long long)sqlite3_column_int64(st, 2);
	r->attempts = sqlite3_column_int(st, 3);
	r->next_at = sqlite3_column_int64(st, 4);
	r->last_at = sqlite3_column_int64(st, 6);
	r->created_at = sqlite3_column_int64(st, 7);
	return 0;
}

int
store_resync_enqueue(struct store *s, hd_id dev, long long now)
{
	return store_resync_enqueue_at(s, dev, now, now);
}

void
store_resync_owe(struct store_resync *r, bool found, hd_id dev, long long now, long long due_at)
{
	if (!found)
		r->created_at = now;
	r->dev = dev;
	snprintf(r->state, sizeof(r->state), "pending");
	r->version = 0; /* the resync engine fills the version it must confirm */
	r->attempts = 0;
	r->next_at = due_at;
}

int
store_resync_enqueue_at(struct store *s, hd_id dev, long long now, long long due_at)
{
	struct store_resync r;
	int rc = store_resync_get(s, dev, &r);

	if (rc < 0)
		return rc;
	store_resync_owe(&r, rc == 1, dev, now, due_at);
	return store_resync_put(s, &r);
}

int
store_resync_enqueue_n(struct store *s, const hd_id *devs, size_t n, long long now)
{
	for (size_t i = 0; i < n; i++)
		if (store_resync_enqueue(s, devs[i], now) != 0)
			return -1;
	return 0;
}

int
store_resync_get(struct store *s, hd_id dev, struct store_resync *out)
{
	sqlite3_stmt *st = s->st[ST_RESYNC_GET];
	int rc, ret;

	memset(out, 0, sizeof(*out));
	if ((rc = bind_id(st, 1, dev)) != SQLITE_OK)
		ret = fail(s, rc);
	else if ((rc = step(s, st)) == SQLITE_ROW)
		ret = resync_row(st, out) == 0 ? 1 : STORE_ERR;
	else
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	done(st);
	return ret;
}

static int
resync_walk(struct store *s, sqlite3_stmt *st, int brc, store_resync_cb cb, void *arg)
{
	struct store_resync r;
	int rc = SQLITE_OK, ret = 0;

	if (brc != SQLITE_OK) {
		ret = fail(s, brc);
		goto out;
	}
	while ((rc = step(s, st)) == SQLITE_ROW) {
		if (resync_row(st, &r) != 0) {
			set_err(s, "resync row does not fit");
			ret = STORE_ERR;
			break;
		}
		if ((ret = cb(&r, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = fail(s, rc);
out:
	done(st);
	return ret;
}

int
store_resync_each(struct store *s, store_resync_cb cb, void *arg)
{
	return resync_walk(s, s->st[ST_RESYNC_ALL], SQLITE_OK, cb, arg);
}

/* Adds a row of SQL_RESYNC_COUNTS (state, count) to counts, or to *all
 * (every row); resync_count_end then counts the synced ones. */
static void
resync_count_row(sqlite3_stmt *st, size_t counts[STORE_RESYNC_STATES], size_t *all)
{
	static const char *const names[STORE_RESYNC_STATES] = { "pending", "notified", "synced",
		                                                 "stale" };
	const char *state = (const char *)sqlite3_column_text(st, 0);

	if (state != NULL && strcmp(state, "all") == 0)
		*all = (size_t)sqlite3_column_int64(st, 1);
	for (int i = 0; state != NULL && i < STORE_RESYNC_STATES; i++)
		if (strcmp(state, names[i]) == 0)
			counts[i] = (size_t)sqlite3_column_int64(st, 1);
}

static void
resync_count_end(size_t counts[STORE_RESYNC_STATES], size_t all)
{
	size_t open = 0;

	for (int i = 0; i < STORE_RESYNC_STATES; i++)
		open += counts[i]; /* the query counts no synced row */
	counts[2] = all > open ? all - open : 0; /* synced, in store.h's order */
}

int
store_resync_counts(struct store *s, size_t counts[STORE_RESYNC_STATES])
{
	sqlite3_stmt *st = s->st[ST_RESYNC_COUNTS];
	size_t all = 0;
	int rc;

	memset(counts, 0, STORE_RESYNC_STATES * sizeof(*counts));
	while ((rc = step(s, st)) == SQLITE_ROW)
		resync_count_row(st, counts, &all);
	done(st);
	resync_count_end(counts, all);
	return rc == SQLITE_DONE ? 0 : fail(s, rc);
}

int
store_resync_owed_each(struct store *s, store_resync_cb cb, void *arg)
{
	return resync_walk(s, s->st[ST_RESYNC_OWED], SQLITE_OK, cb, arg);
}

int
store_resync_any_open(struct store *s)
{
	sqlite3_stmt *st = s->st[ST_RESYNC_OPEN];
	int rc = step(s, st);

	done(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : fail(s, rc);
}

int
store_resync_due(struct store *s, long long now, int limit, store_resync_cb cb, void *arg)
{
	sqlite3_stmt *st = s->st[ST_RESYNC_DUE];
	int b = SQLITE_OK;

	bind_ok(&b, sqlite3_bind_int64(st, 1, now));
	bind_ok(&b, sqlite3_bind_int(st, 2, limit));
	return resync_walk(s, st, b, cb, arg);
}

/* ---- template versions --------------------------------------------- */

int
store_tmpl_add(struct store *s, const char *profile, const char *name, const char *content,
               const char *comment, long long now, int *version_out)
{
	sqlite3_stmt *st = s->st[ST_TMPL_NEXT];
	int b = SQLITE_OK, rc, version;

	bind_ok(&b, bind_text(st, 1, profile));
	bind_ok(&b, bind_text(st, 2, name));
	if (b != SQLITE_OK || (rc = step(s, st)) != SQLITE_ROW) {
		int ret = fail(s, b != SQLITE_OK ? b : rc);

		done(st);
		return ret;
	}
	version = sqlite3_column_int(st, 0);
	done(st);
	st = s->st[ST_TMPL_DEACT];
	b = SQLITE_OK;
	bind_ok(&b, bind_text(st, 1, profile));
	bind_ok(&b, bind_text(st, 2, name));
	if ((rc = run(s, st, b)) != 0)
		return rc;
	st = s->st[ST_TMPL_ADD];
	b = SQLITE_OK;
	bind_ok(&b, bind_text(st, 1, profile));
	bind_ok(&b, bind_text(st, 2, name));
	bind_ok(&b, sqlite3_bind_int(st, 3, version));
	bind_ok(&b, bind_text(st, 4, content));
	bind_ok(&b, bind_text(st, 5, comment));
	bind_ok(&b, sqlite3_bind_int64(st, 6, now));
	if ((rc = run(s, st, b)) != 0)
		return rc;
	if (version_out != NULL)
		*version_out = version;
	return 0;
}

static int
tmpl_walk(struct store *s, sqlite3_stmt *st, int brc, store_tmpl_cb cb, void *arg)
{
	int rc = SQLITE_OK, ret = 0, rows = 0;

	if (brc != SQLITE_OK) {
		ret = fail(s, brc);
		goto out;
	}
	while ((rc = step(s, st)) == SQLITE_ROW) {
		struct store_tmpl t = {
			(const char *)sqlite3_column_text(st, 0),
			(const char *)sqlite3_column_text(st, 1),
			sqlite3_column_int(st, 2),
			(const char *)sqlite3_column_text(st, 3),
			(const char *)sqlite3_column_text(st, 4),
			sqlite3_column_int64(st, 5),
			sqlite3_column_int(st, 6) != 0,
		};

		rows++;
		if ((ret = cb(&t, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = fail(s, rc);
out:
	done(st);
	return ret != 0 ? ret : rows;
}

int
store_tmpl_active_each(struct store *s, store_tmpl_cb cb, void *arg)
{
	int rc = tmpl_walk(s, s->st[ST_TMPL_ACTIVE], SQLITE_OK, cb, arg);

	return rc < 0 ? rc : 0;
}

int
store_tmpl_history(struct store *s, const char *profile, const char *name, store_tmpl_cb cb,
                   void *arg)
{
	sqlite3_stmt *st = s->st[ST_TMPL_HIST];
	int b = SQLITE_OK;

	bind_ok(&b, bind_text(st, 1, profile));
	bind_ok(&b, bind_text(st, 2, name));
	return tmpl_walk(s, st, b, cb, arg);
}

int
store_tmpl_get(struct store *s, const char *profile, const char *name, int version,
               store_tmpl_cb cb, void *arg)
{
	sqlite3_stmt *st = s->st[ST_TMPL_GET];
	int b = SQLITE_OK;

	bind_ok(&b, bind_text(st, 1, profile));
	bind_ok(&b, bind_text(st, 2, name));
	bind_ok(&b, sqlite3_bind_int(st, 3, version));
	return tmpl_walk(s, st, b, cb, arg);
}

int
store_tmpl_activate(struct store *s, const char *profile, const char *name, int version)
{
	sqlite3_stmt *st = s->st[ST_TMPL_DEACT];
	int b = SQLITE_OK, rc;

	bind_ok(&b, bind_text(st, 1, profile));
	bind_ok(&b, bind_text(st, 2, name));
	if ((rc = run(s, st, b)) != 0)
		return rc;
	st = s->st[ST_TMPL_ACT];
	b = SQLITE_OK;
	bind_ok(&b, bind_text(st, 1, profile));
	bind_ok(&b, bind_text(st, 2, name));
	bind_ok(&b, sqlite3_bind_int(st, 3, version));
	if ((rc = run(s, st, b)) != 0)
		return rc;
	return sqlite3_changes(s->db) == 1 ? 0 : STORE_NOTFOUND;
}

/* ---- where phones are registered (sql/004_resync.sql) -------------- */

int
store_devcontact_put(struct store *s, const struct store_devcontact *c)
{
	sqlite3_stmt *st = s->st[ST_DC_CLEAR_ADDR];
	int b = SQLITE_OK, rc;

	if (c->dev == 0 || c->addr[0] == '\0') {
		set_err(s, "device contact without device or address");
		return STORE_ERR;
	}
	bind_ok(&b, bind_text(st, 1, c->addr));
	bind_ok(&b, bind_id(st, 2, c->dev));
	if ((rc = run(s, st, b)) != 0)
		return rc;
	st = s->st[ST_DC_PUT];
	b = SQLITE_OK;
	bind_ok(&b, bind_id(st, 1, c->dev));
	bind_ok(&b, bind_text(st, 2, c->sip_user));
	bind_ok(&b, bind_text(st, 3, c->contact));
	bind_ok(&b, bind_text(st, 4, c->addr));
	bind_ok(&b, bind_text_opt(st, 5, c->source));
	bind_ok(&b, bind_text_opt(st, 6, c->call_id));
	bind_ok(&b, bind_text(st, 7, c->how));
	bind_ok(&b, sqlite3_bind_int64(st, 8, c->expires_at));
	bind_ok(&b, sqlite3_bind_int64(st, 9, c->at));
	return run(s, st, b);
}

/* Steps a device_contact SELECT bound by the caller: 1, 0 or < 0. */
static int
devcontact_one(struct store *s, sqlite3_stmt *st, int brc, struct store_devcontact *out)
{
	int rc, ret;

	memset(out, 0, sizeof(*out));
	if (brc != SQLITE_OK) {
		ret = fail(s, brc);
	} else if ((rc = step(s, st)) == SQLITE_ROW) {
		ret = 1;
		out->dev = col_id(st, 0);
		if (col_copy(st, 1, out->sip_user, sizeof(out->sip_user)) != 0 ||
		    col_copy(st, 2, out->contact, sizeof(out->contact)) != 0 ||
		    col_copy(st, 3, out->addr, sizeof(out->addr)) != 0 ||
		    col_copy(st, 4, out->source, sizeof(out->source)) != 0 ||
		    col_copy(st, 5, out->call_id, sizeof(out->call_id)) != 0 ||
		    col_copy(st, 6, out->how, sizeof(out->how)) != 0) {
			set_err(s, "device contact row does not fit");
			memset(out, 0, sizeof(*out));
			ret = STORE_ERR;
		} else {
			out->expires_at = sqlite3_column_int64(st, 7);
			out->at = sqlite3_column_int64(st, 8);
		}
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

int
store_devcontact_get(struct store *s, hd_id dev, struct store_devcontact *out)
{
	sqlite3_stmt *st = s->st[ST_DC_GET];

	return devcontact_one(s, st, bind_id(st, 1, dev), out);
}

int
store_devcontact_by_addr(struct store *s, const char *addr, struct store_devcontact *out)
{
	sqlite3_stmt *st = s->st[ST_DC_BY_ADDR];

	return devcontact_one(s, st, bind_text(st, 1, addr), out);
}

int
store_devcontact_forget(struct store *s, const char *sip_user, const char *addr)
{
	sqlite3_stmt *st = s->st[ST_DC_FORGET];
	int b = SQLITE_OK;

	bind_ok(&b, bind_text(st, 1, sip_user));
	bind_ok(&b, bind_text(st, 2, addr));
	return run(s, st, b);
}

/* ---- the move webhook's outbox ------------------------------------- */

int
store_pbxout_add(struct store *s, const struct store_pbxout *r, long long *id)
{
	sqlite3_stmt *st = s->st[ST_PBXOUT_ADD];
	int b = SQLITE_OK, rc;

	bind_ok(&b, sqlite3_bind_int64(st, 1, r->move));
	bind_ok(&b, sqlite3_bind_int64(st, 2, r->at));
	bind_ok(&b, bind_text(st, 3, r->sip_user));
	bind_ok(&b, bind_text(st, 4, r->device));
	bind_ok(&b, bind_text(st, 5, r->contact));
	bind_ok(&b, bind_text(st, 6, r->cause));
	if ((rc = run(s, st, b)) != 0)
		return rc;
	*id = sqlite3_last_insert_rowid(s->db);
	if (r->move != 0)
		return 0;
	st = s->st[ST_PBXOUT_FIRST_MOVE];
	return run(s, st, sqlite3_bind_int64(st, 1, *id));
}

int
store_pbxout_first(struct store *s, struct store_pbxout *out)
{
	sqlite3_stmt *st = s->st[ST_PBXOUT_FIRST];
	int rc, ret;

	memset(out, 0, sizeof(*out));
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = 1;
		out->id = sqlite3_column_int64(st, 0);
		out->move = sqlite3_column_int64(st, 1);
		out->at = sqlite3_column_int64(st, 2);
		if (col_copy(st, 3, out->sip_user, sizeof(out->sip_user)) != 0 ||
		    col_copy(st, 4, out->device, sizeof(out->device)) != 0 ||
		    col_copy(st, 5, out->contact, sizeof(out->contact)) != 0 ||
		    col_copy(st, 6, out->cause, sizeof(out->cause)) != 0) {
			set_err(s, "outbox row %lld does not fit", out->id);
			memset(out, 0, sizeof(*out));
			ret = STORE_ERR;
		}
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

int
store_pbxout_delete(struct store *s, long long id)
{
	sqlite3_stmt *st = s->st[ST_PBXOUT_DEL];

	return run(s, st, sqlite3_bind_int64(st, 1, id));
}

long long
store_pbxout_count(struct store *s)
{
	sqlite3_stmt *st = s->st[ST_PBXOUT_COUNT];
	long long n;
	int rc;

	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		n = fail(s, rc);
	done(st);
	return n;
}

long long
store_pbxout_clear(struct store *s)
{
	int rc = run(s, s->st[ST_PBXOUT_CLEAR], SQLITE_OK);

	return rc != 0 ? rc : sqlite3_changes(s->db);
}

/* ---- checkpoints off the writer's path ------------------------------ */

/*
 * In WAL mode SQLite copies the log back into the database file
 * ("checkpoint") from inside a commit once the log passes 1000 pages; that
 * commit then waits for fsyncs.  The daemon instead turns automatic
 * checkpoints off on the writer's connection and runs passive checkpoints
 * from a second connection (the service decides when: svc_checkpoint): a
 * passive checkpoint never blocks the writer, which keeps appending to
 * the log meanwhile.
 */
struct store_ckpt {
	sqlite3 *db;
};

/* The writer's WAL hook once automatic checkpoints are off: counts. */
static int
wal_count(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store *s = arg;

	(void)db;
	(void)name;
	atomic_store_explicit(&s->wal_frames, frames, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->wal_commits, 1, memory_order_relaxed);
	return SQLITE_OK;
}

int
store_autocheckpoint_off(struct store *s)
{
	(void)sqlite3_wal_hook(s->db, wal_count, s); /* replaces the automatic one */
	return 0;
}

long
store_wal_frames(const struct store *s)
{
	return atomic_load_explicit(&((struct store *)s)->wal_frames, memory_order_relaxed);
}

long
store_wal_commits(const struct store *s)
{
	return atomic_load_explicit(&((struct store *)s)->wal_commits, memory_order_relaxed);
}

struct store_ckpt *
store_ckpt_open(const char *path, char *err, size_t errlen)
{
	struct store_ckpt *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		hd_seterr(err, errlen, "%s: %s", path, c->db ? sqlite3_errmsg(c->db) : "cannot open");
		store_ckpt_close(c);
		return NULL;
	}
	/* A connection finds the log on its first read: before one, a
	 * checkpoint sees no log and copies nothing back. */
	sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
	if (sqlite3_exec(c->db, "PRAGMA schema_version", NULL, NULL, NULL) != SQLITE_OK) {
		hd_seterr(err, errlen, "%s: %s", path, sqlite3_errmsg(c->db));
		store_ckpt_close(c);
		return NULL;
	}
	sqlite3_busy_timeout(c->db, 0); /* never wait: the next second will do */
	return c;
}

int
store_ckpt_run(struct store_ckpt *c)
{
	int log = -1, copied = -1;
	int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);

	if (rc == SQLITE_OK)
		return copied == log ? 1 : 0; /* -1 both when there is no log */
	return rc == SQLITE_BUSY ? 0 : STORE_ERR;
}

int
store_ckpt_resync_counts(struct store_ckpt *c, size_t counts[STORE_RESYNC_STATES])
{
	sqlite3_stmt *st;
	size_t all = 0;
	int rc;

	memset(counts, 0, STORE_RESYNC_STATES * sizeof(*counts));
	if (sqlite3_prepare_v2(c->db, SQL_RESYNC_COUNTS, -1, &st, NULL) != SQLITE_OK)
		return STORE_ERR;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		resync_count_row(st, counts, &all);
	sqlite3_finalize(st);
	resync_count_end(counts, all);
	return rc == SQLITE_DONE ? 0 : STORE_ERR;
}

void
store_ckpt_close(struct store_ckpt *c)
{
	if (c == NULL)
		return;
	sqlite3_close(c->db);
	free(c);
}

unsigned long long
store_codes_gen(const struct store *s)
{
	return s->code_writes;
}

int
store_ext_secret(struct store *s, hd_id ext, char *buf, size_t len)
{
	sqlite3_stmt *st = s->st[ST_EXT_SECRET];
	int rc, ret;

	if (len > 0)
		buf[0] = '\0';
	if ((rc = bind_id(st, 1, ext)) != SQLITE_OK) {
		ret = fail(s, rc);
	} else if ((rc = step(s, st)) == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			ret = 0;
		else
			ret = col_copy(st, 0, buf, len) == 0 ? 1 : STORE_ERR;
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

/* ---- self-service web passwords (sql/008_people.sql) -------------------- */

int
store_webpw_get(struct store *s, hd_id ext, char *buf, size_t len)
{
	sqlite3_stmt *st = s->st[ST_WEBPW_GET];
	int rc, ret;

	if (len > 0)
		buf[0] = '\0';
	if ((rc = bind_id(st, 1, ext)) != SQLITE_OK)
		ret = fail(s, rc);
	else if ((rc = step(s, st)) == SQLITE_ROW)
		ret = col_copy(st, 0, buf, len) == 0 ? 1 : STORE_ERR;
	else
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	done(st);
	return ret;
}

int
store_hash_swap(struct store *s, enum store_hash kind, hd_id ext, const char *was,
                const char *hash)
{
	sqlite3_stmt *st = s->st[kind == STORE_HASH_CODE ? ST_EXT_SECRET_SWAP : ST_WEBPW_SWAP];
	int b = SQLITE_OK, rc;

	if (kind == STORE_HASH_CODE)
		s->code_writes++;
	bind_ok(&b, bind_id(st, 1, ext));
	bind_ok(&b, bind_text(st, 2, was));
	bind_ok(&b, bind_text(st, 3, hash));
	rc = run(s, st, b);
	return rc != 0 ? rc : sqlite3_changes(s->db);
}

int
store_webpw_put(struct store *s, hd_id ext, const char *hash, long long now)
{
	sqlite3_stmt *st = s->st[hash ? ST_WEBPW_PUT : ST_WEBPW_DEL];
	int b = SQLITE_OK;

	bind_ok(&b, bind_id(st, 1, ext));
	if (hash != NULL) {
		bind_ok(&b, bind_text(st, 2, hash));
		bind_ok(&b, sqlite3_bind_int64(st, 3, now));
	}
	return run(s, st, b);
}

int
store_webpair_get(struct store *s, const char *source, hd_id ext, struct store_pair *out)
{
	sqlite3_stmt *st = s->st[ST_WEBPAIR_GET];
	int b = SQLITE_OK, rc, ret;

	memset(out, 0, sizeof *out);
	bind_ok(&b, bind_text(st, 1, source));
	bind_ok(&b, bind_id(st, 2, ext));
	if (b != SQLITE_OK) {
		ret = fail(s, b);
	} else if ((rc = step(s, st)) == SQLITE_ROW) {
		pair_from_row(st, out);
		ret = 1;
	} else {
		ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
	}
	done(st);
	return ret;
}

int
store_webpair_put(struct store *s, const char *source, hd_id ext, const struct store_pair *p)
{
	sqlite3_stmt *st = s->st[ST_WEBPAIR_PUT];
	int b = SQLITE_OK;

	bind_ok(&b, bind_text(st, 1, source));
	bind_ok(&b, bind_id(st, 2, ext));
	bind_pair(&b, st, p);
	return run(s, st, b);
}
