/*
 * test_store.c -- the SQLite store: migrations, round trips through the
 * world, constraints, transactions, events, attempts, lockout pairs,
 * tokens, registrations, meta, file mode and crash durability.
 *
 * Each test gets its own temporary directory (database and, where needed,
 * a private sql/ directory) removed at the end.  The only SQL here reads
 * the database behind the store's back to check what it wrote.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <glob.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"
#include "world.h"

static char *dir;
static char dbpath[512];

static void
setup(void)
{
	dir = tu_tmpdir();
	cr_assert_not_null(dir);
	cr_assert_lt((size_t)snprintf(dbpath, sizeof dbpath, "%s/hd.db", dir), sizeof dbpath);
}

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void
teardown(void)
{
	if (dir != NULL)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 60);

static struct store *
open_db(void)
{
	char err[512];
	struct store *s = store_open(dbpath, "sql", err, sizeof err);

	cr_assert_not_null(s, "store_open: %s", err);
	return s;
}

/* Writes text to dir/name. */
static void
write_file(const char *d, const char *name, const char *text)
{
	char p[1024];
	FILE *f;

	cr_assert_lt((size_t)snprintf(p, sizeof p, "%s/%s", d, name), sizeof p);
	f = fopen(p, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
}

/* The real migrations in sql/: how many, and the last version. */
static int
real_migrations(int *last)
{
	glob_t g;
	int n;

	cr_assert_eq(glob("sql/[0-9][0-9][0-9]_*.sql", 0, NULL, &g), 0,
	             "run the tests from the source root");
	n = (int)g.gl_pathc;
	*last = atoi(strrchr(g.gl_pathv[n - 1], '/') + 1);
	globfree(&g);
	return n;
}

/* Copies the real migrations of a version under `below` into directory d. */
static void
copy_migrations(const char *d, int below)
{
	glob_t g;

	cr_assert_eq(glob("sql/[0-9][0-9][0-9]_*.sql", 0, NULL, &g), 0,
	             "run the tests from the source root");
	for (size_t i = 0; i < g.gl_pathc; i++) {
		FILE *f;
		char *text;
		long n;

		if (atoi(strrchr(g.gl_pathv[i], '/') + 1) >= below)
			continue;
		f = fopen(g.gl_pathv[i], "r");
		cr_assert_not_null(f);
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		text = calloc(1, (size_t)n + 1);
		cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
		fclose(f);
		write_file(d, strrchr(g.gl_pathv[i], '/') + 1, text);
		free(text);
	}
	globfree(&g);
}

/* A private sql directory holding a copy of the real migrations. */
static void
make_sql_dir(char *out, size_t len)
{
	cr_assert_lt((size_t)snprintf(out, len, "%s/sql", dir), len);
	cr_assert_eq(mkdir(out, 0700), 0);
	copy_migrations(out, 1000);
}

/* One integer from the database file, read directly. */
static long long
peek_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -999;

	cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* ---- fixtures ------------------------------------------------------ */

static hd_id
add_org(struct store *s, const char *name)
{
	struct hd_org o = { .name = (char *)name };

	cr_assert_eq(store_org_put(s, &o), 0, "%s", store_errmsg(s));
	cr_assert_gt(o.id, 0);
	return o.id;
}

static hd_id
add_ext(struct store *s, hd_id org, const char *number, const char *sip_user)
{
	struct hd_ext e = {
		.org = org, .number = (char *)number, .sip_user = (char *)sip_user,
		.sip_password = "pw", .display_name = (char *)number,
	};

	cr_assert_eq(store_ext_put(s, &e), 0, "%s", store_errmsg(s));
	return e.id;
}

static hd_id
add_dev(struct store *s, hd_id org, const char *mac, hd_id home)
{
	struct hd_dev d = { .org = org, .profile = "yealink", .home_ext = home };

	memcpy(d.mac, mac, HD_MAC_LEN + 1);
	cr_assert_eq(store_dev_put(s, &d), 0, "%s", store_errmsg(s));
	return d.id;
}

static struct world *
load(struct store *s)
{
	char err[256];
	struct world *w = world_new();

	cr_assert_not_null(w);
	cr_assert_eq(store_load_world(s, w, err, sizeof err), 0, "load: %s", err);
	return w;
}

#define assert_str_or_null(a, b)                                          \
	do {                                                              \
		if ((b) == NULL)                                          \
			cr_assert_null((a));                              \
		else {                                                    \
			cr_assert_not_null((a));                          \
			cr_assert_str_eq((a), (b));                       \
		}                                                         \
	} while (0)

/* ---- migrations ---------------------------------------------------- */

Test(store, migrations_applied_once_and_recorded)
{
	struct store *s = open_db();
	char sqld[512];
	int last, n = real_migrations(&last);

	cr_assert_eq(store_schema_version(s), last);
	add_org(s, "acme");
	store_close(s);
	cr_assert_eq(peek_int("SELECT count(*) FROM schema_migrations"), n);
	cr_assert_eq(peek_int("SELECT applied_at > 1600000000 FROM schema_migrations "
	                      "WHERE version = 1 AND name = '001_init.sql'"), 1);

	/* Reopening applies nothing again (001 would fail: tables exist). */
	s = open_db();
	cr_assert_eq(store_schema_version(s), last);
	store_close(s);
	cr_assert_eq(peek_int("SELECT count(*) FROM orgs WHERE name = 'acme'"), 1);

	/* A new file is applied once, in order, on the next open. */
	make_sql_dir(sqld, sizeof sqld);
	write_file(sqld, "900_more.sql", "CREATE TABLE more (x INTEGER);");
	write_file(sqld, "README", "not a migration");
	write_file(sqld, "notes.sql", "not a migration either");
	char err[512];
	s = store_open(dbpath, sqld, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	cr_assert_eq(store_schema_version(s), 900);
	store_close(s);
	s = store_open(dbpath, sqld, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	store_close(s);
	cr_assert_eq(peek_int("SELECT count(*) FROM schema_migrations"), n + 1);
	cr_assert_eq(peek_int("SELECT count(*) FROM sqlite_master WHERE name = 'more'"), 1);
}

Test(store, broken_migration_names_its_file_and_rolls_back)
{
	char sqld[512], err[512], want[600];
	struct store *s;

	make_sql_dir(sqld, sizeof sqld);
	write_file(sqld, "900_broken.sql", "CREATE TABLE half (x);\nCREATE TABLE oops (;\n");
	s = store_open(dbpath, sqld, err, sizeof err);
	cr_assert_null(s);
	cr_assert_lt((size_t)snprintf(want, sizeof want, "%s/900_broken.sql: ", sqld), sizeof want);
	cr_assert_eq(strncmp(err, want, strlen(want)), 0, "err: %s", err);
	cr_assert_not_null(strstr(err, "syntax error"), "err: %s", err);
	/* each real migration went in its own transaction; 900 left nothing */
	int last;

	real_migrations(&last);
	cr_assert_eq(peek_int("SELECT max(version) FROM schema_migrations"), last);
	cr_assert_eq(peek_int("SELECT count(*) FROM sqlite_master WHERE name = 'half'"), 0);

	/* Fixed, it applies. */
	write_file(sqld, "900_broken.sql", "CREATE TABLE half (x);\n");
	s = store_open(dbpath, sqld, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	cr_assert_eq(store_schema_version(s), 900);
	store_close(s);
}

/* One text from the database file, read directly ("" when no row). */
static void
peek_text(const char *sql, char *out, size_t len)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	out[0] = '\0';
	cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* 016 renames the rows of the older event names (a store written before
 * it) to the names recorded now; ids, times, details and other rows kept. */
Test(store, migration_016_renames_older_event_names)
{
	static const char *const rows[][2] = {
		{ "virtualized", "extension.virtualized" }, { "returned", "extension.returned" },
		{ "denied", "move.denied" },                { "code_failed", "code.failed" },
		{ "locked", "code.locked" },                { "import", "import.applied" },
		{ "render_failed", "render.failed" },       { "device.put", "device.put" },
		{ "web.locked", "web.locked" },             { "virtualized_x", "virtualized_x" },
	};
	const size_t n = sizeof(rows) / sizeof(rows[0]);
	char sqld[512], err[512], q[256], got[64];
	struct store *s;

	cr_assert_lt((size_t)snprintf(sqld, sizeof sqld, "%s/sql", dir), sizeof sqld);
	cr_assert_eq(mkdir(sqld, 0700), 0);
	copy_migrations(sqld, 16);
	s = store_open(dbpath, sqld, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	cr_assert_lt(store_schema_version(s), 16);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(store_event_add(s, 1000 + (long long)i, rows[i][0], 0, "101",
		                             "0004f2000001", "{\"cause\":\"star30\"}"),
		             0, "%s", store_errmsg(s));
	store_close(s);

	copy_migrations(sqld, 1000);
	s = store_open(dbpath, sqld, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	cr_assert_geq(store_schema_version(s), 16);
	store_close(s);
	cr_assert_eq(peek_int("SELECT count(*) FROM events"), (long long)n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_lt((size_t)snprintf(q, sizeof q, "SELECT type FROM events WHERE id = %zu "
		                              "AND at = %zu AND detail = '{\"cause\":\"star30\"}'",
		                              i + 1, 1000 + i), sizeof q);
		peek_text(q, got, sizeof got);
		cr_assert_str_eq(got, rows[i][1], "row %zu (%s)", i + 1, rows[i][0]);
	}
}

Test(store, duplicate_version_and_newer_database_refused)
{
	char sqld[512], err[512];
	struct store *s;

	make_sql_dir(sqld, sizeof sqld);
	write_file(sqld, "900_a.sql", "CREATE TABLE a (x);");
	write_file(sqld, "900_b.sql", "CREATE TABLE b (x);");
	s = store_open(dbpath, sqld, err, sizeof err);
	cr_assert_null(s);
	cr_assert_not_null(strstr(err, "migration version 900"), "err: %s", err);

	/* The database at version 2, the binary's sql/ only knows 1. */
	char p[600];
	cr_assert_lt((size_t)snprintf(p, sizeof p, "%s/900_b.sql", sqld), sizeof p);
	cr_assert_eq(unlink(p), 0);
	s = store_open(dbpath, sqld, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	store_close(s);
	s = store_open(dbpath, "sql", err, sizeof err);
	cr_assert_null(s);
	cr_assert_not_null(strstr(err, "newer"), "err: %s", err);
}

Test(store, memory_database_and_missing_sql_dir)
{
	char err[512];
	struct store *s = store_open(":memory:", "sql", err, sizeof err);

	int last;

	cr_assert_not_null(s, "%s", err);
	real_migrations(&last);
	cr_assert_eq(store_schema_version(s), last);
	add_org(s, "mem");
	store_close(s);

	s = store_open(dbpath, "/nonexistent-hotdeskd-sql", err, sizeof err);
	cr_assert_null(s);
	cr_assert_not_null(strstr(err, "/nonexistent-hotdeskd-sql"), "err: %s", err);
}

/* ---- the log -------------------------------------------------------- */

/* With automatic checkpoints off the store counts the log's frames; they
 * grow commit after commit, and once a checkpoint has copied every one
 * back, the next commit starts the log again from its beginning. */
Test(store, the_log_grows_until_checkpointed_then_starts_again)
{
	char err[512], name[32];
	struct store *s = open_db();
	struct store_ckpt *c;
	long before, grown;

	cr_assert_eq(store_autocheckpoint_off(s), 0);
	add_org(s, "acme");
	before = store_wal_frames(s);
	cr_assert_gt(before, 0);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "org%d", i);
		add_org(s, name);
	}
	grown = store_wal_frames(s);
	cr_assert_gt(grown, before + 40, "%ld frames after 41 commits (%ld after one)", grown,
	             before);
	/* no checkpoint: the next commit adds to the log */
	add_org(s, "more");
	cr_assert_gt(store_wal_frames(s), grown);
	grown = store_wal_frames(s);

	c = store_ckpt_open(dbpath, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(store_ckpt_run(c), 1, "the whole log copied back");
	add_org(s, "after");
	cr_assert_lt(store_wal_frames(s), grown / 4, "%ld frames after the restart, %ld before",
	             store_wal_frames(s), grown);
	store_ckpt_close(c);
	store_close(s);
}

/* Inside a transaction: one stale row made synced, counted by both. */
struct inside {
	struct store_ckpt *c;
	hd_id dev;
};

static int
count_inside(struct store *s, void *arg)
{
	struct inside *x = arg;
	size_t n[STORE_RESYNC_STATES], m[STORE_RESYNC_STATES];
	struct store_resync r = { .dev = x->dev, .state = "synced", .version = 2, .created_at = 1 };

	cr_assert_eq(store_resync_put(s, &r), 0);
	cr_assert_eq(store_resync_counts(s, n), 0);
	cr_assert_eq(n[2], 2, "the writer sees its own change");
	cr_assert_eq(n[3], 2);
	cr_assert_eq(store_ckpt_resync_counts(x->c, m), 0);
	cr_assert_eq(m[2], 1, "the other connection sees what was committed");
	cr_assert_eq(m[3], 3);
	return 0;
}

/* Resync rows by state, on the writer's connection and on the checkpoint
 * connection: the same counts; the second sees only what was committed,
 * and counts while the writer holds a transaction open. */
Test(store, resync_rows_counted_by_state_on_either_connection)
{
	static const char *const states[] = { "pending", "notified", "notified", "synced",
		                              "stale", "stale", "stale" };
	static const size_t want[STORE_RESYNC_STATES] = { 1, 2, 1, 3 };
	char err[512], mac[HD_MAC_LEN + 1];
	struct store *s = open_db();
	struct store_ckpt *c;
	size_t n[STORE_RESYNC_STATES], m[STORE_RESYNC_STATES];
	hd_id org = add_org(s, "acme"), dev = 0;
	struct inside x;

	c = store_ckpt_open(dbpath, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(store_ckpt_resync_counts(c, m), 0);
	for (int i = 0; i < STORE_RESYNC_STATES; i++)
		cr_assert_eq(m[i], 0);
	for (size_t i = 0; i < sizeof(states) / sizeof(*states); i++) {
		struct store_resync r = { .version = 1, .created_at = 1 };

		snprintf(mac, sizeof mac, "0015650000%02zx", i);
		r.dev = dev = add_dev(s, org, mac, 0);
		snprintf(r.state, sizeof r.state, "%s", states[i]);
		cr_assert_eq(store_resync_put(s, &r), 0, "%s", store_errmsg(s));
	}
	cr_assert_eq(store_resync_counts(s, n), 0);
	cr_assert_eq(store_ckpt_resync_counts(c, m), 0);
	for (int i = 0; i < STORE_RESYNC_STATES; i++)
		cr_assert_eq(n[i], want[i], "state %d: %zu rows", i, n[i]);
	cr_assert_arr_eq(n, m, sizeof n, "the checkpoint connection counts the same");

	/* a transaction not committed yet: the writer counts it, the other
	 * connection does not, and is not held up by it */
	x = (struct inside){ c, dev };
	cr_assert_eq(store_txn(s, count_inside, &x), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_resync_counts(s, n), 0);
	cr_assert_eq(store_ckpt_resync_counts(c, m), 0);
	cr_assert_eq(m[3], 2, "committed");
	cr_assert_arr_eq(n, m, sizeof n);
	store_ckpt_close(c);
	store_close(s);
}

/* The plan of each statement, as "SQL\tstep\n" lines. */
static int
plan_line(const char *sql, const char *step, void *arg)
{
	fprintf(arg, "%s\t%s\n", sql, step);
	return 0;
}

/* Whether a plan step of the statement whose SQL contains sql_part
 * contains step_part. */
static bool
plan_has(const char *plans, const char *sql_part, const char *step_part)
{
	for (const char *l = plans; *l != '\0';) {
		const char *tab = strchr(l, '\t'), *nl = strchr(l, '\n');
		char *line = strndup(l, (size_t)(nl - l));
		bool in_sql = memmem(l, (size_t)(tab - l), sql_part, strlen(sql_part)) != NULL;
		bool hit = in_sql && strstr(line + (tab - l) + 1, step_part) != NULL;

		free(line);
		if (hit)
			return true;
		l = nl + 1;
	}
	return false;
}

/* The partial indexes (sql/019_resync_open.sql, 020_virtual_on_set.sql)
 * serve only a query whose WHERE has their own term: each query written
 * for one uses it, and only the walk of every row and the count of every
 * row read the whole outbox. */
Test(store, each_query_uses_the_index_it_is_written_for)
{
	struct store *s = open_db();
	char *plans = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&plans, &len);

	cr_assert_not_null(m);
	cr_assert_eq(store_query_plans(s, plan_line, m), 0, "%s", store_errmsg(s));
	fclose(m);
	cr_assert(plan_has(plans, "next_at <= ?1", "SEARCH resync USING INDEX resync_due"),
	          "the due scan:\n%s", plans);
	cr_assert(plan_has(plans, "('pending', 'notified')", "USING INDEX resync_due (state=?)"),
	          "the rows owed at a start:\n%s", plans);
	cr_assert(plan_has(plans, "LIMIT 1", "USING COVERING INDEX resync_due"),
	          "whether a row is open:\n%s", plans);
	cr_assert(plan_has(plans, "GROUP BY state", "USING COVERING INDEX resync_due"),
	          "the counts of open rows:\n%s", plans);
	cr_assert(plan_has(plans, "virtual_on IS NOT NULL", "extensions_virtual_on"),
	          "the virtualized extensions at start-up:\n%s", plans);
	for (const char *l = plans; *l != '\0'; l = strchr(l, '\n') + 1) {
		const char *nl = strchr(l, '\n');
		char *line = strndup(l, (size_t)(nl - l));
		const char *step = strchr(line, '\t') + 1;

		if (strcmp(step, "SCAN resync") == 0)
			cr_assert(strstr(line, "ORDER BY device_id") != NULL ||
			          strstr(line, "SELECT 'all', COUNT(*) FROM resync") != NULL,
			          "a query reads the whole outbox: %s", line);
		free(line);
	}
	free(plans);
	store_close(s);
}

/* A row is open unless synced: the engine asks once per slice of fetches
 * whether any is, and looks up no row per fetch when none is. */
Test(store, an_open_resync_row_is_found_and_synced_ones_are_not)
{
	static const char *const open_states[] = { "pending", "notified", "stale" };
	struct store *s = open_db();
	hd_id org = add_org(s, "acme");
	hd_id a = add_dev(s, org, "001565000001", 0), b = add_dev(s, org, "001565000002", 0);
	struct store_resync r = { .dev = a, .state = "synced", .version = 1, .created_at = 1 };

	cr_assert_eq(store_resync_any_open(s), 0, "no row at all");
	cr_assert_eq(store_resync_put(s, &r), 0);
	r.dev = b;
	cr_assert_eq(store_resync_put(s, &r), 0);
	cr_assert_eq(store_resync_any_open(s), 0, "synced rows only");
	for (size_t i = 0; i < 3; i++) {
		snprintf(r.state, sizeof r.state, "%s", open_states[i]);
		cr_assert_eq(store_resync_put(s, &r), 0);
		cr_assert_eq(store_resync_any_open(s), 1, "a %s row", open_states[i]);
	}
	cr_assert_eq(store_resync_enqueue(s, a, 5), 0);
	snprintf(r.state, sizeof r.state, "synced");
	cr_assert_eq(store_resync_put(s, &r), 0);
	cr_assert_eq(store_resync_any_open(s), 1, "the enqueued row");
	r.dev = a;
	cr_assert_eq(store_resync_put(s, &r), 0);
	cr_assert_eq(store_resync_any_open(s), 0, "both synced again");
	store_close(s);
}

/* Device dev's outbox row as stored, field by field. */
static void
assert_row(struct store *s, hd_id dev, const char *state, unsigned long long version,
           long long next_at, const char *last_result, long long last_at, long long created_at)
{
	struct store_resync got;

	cr_assert_eq(store_resync_get(s, dev, &got), 1);
	cr_assert_str_eq(got.state, state);
	cr_assert_eq(got.version, version);
	cr_assert_eq(got.attempts, 0);
	cr_assert_eq(got.next_at, next_at);
	cr_assert_str_eq(got.last_result, last_result);
	cr_assert_eq(got.last_at, last_at);
	cr_assert_eq(got.created_at, created_at);
}

/* A row owed is written with no read first (store_resync_owe_put): a new
 * one as given, attempts 0; one already there keeps its created_at,
 * last_at and last_result unless a result is given, and the caller's
 * copy ends as stored. */
Test(store, a_row_owed_keeps_what_the_row_had_beyond_it)
{
	struct store *s = open_db();
	hd_id org = add_org(s, "acme");
	hd_id a = add_dev(s, org, "001565000001", 0);
	struct store_resync r = { .dev = a, .state = "pending", .version = 3, .attempts = 9,
	                          .next_at = 40, .created_at = 30 }, got;

	cr_assert_eq(store_resync_owe_put(s, &r), 0, "%s", store_errmsg(s));
	assert_row(s, a, "pending", 3, 40, "", 0, 30);
	cr_assert_eq(r.attempts, 0);
	cr_assert_eq(r.created_at, 30);

	/* a row the engine wrote since */
	cr_assert_eq(store_resync_get(s, a, &got), 1);
	got.attempts = 2;
	snprintf(got.state, sizeof got.state, "notified");
	snprintf(got.last_result, sizeof got.last_result, "200 OK");
	got.last_at = 45;
	cr_assert_eq(store_resync_put(s, &got), 0);
	r = (struct store_resync){ .dev = a, .state = "pending", .version = 4, .attempts = 5,
	                           .next_at = 50, .created_at = 50 };
	cr_assert_eq(store_resync_owe_put(s, &r), 0, "%s", store_errmsg(s));
	cr_assert_str_eq(r.last_result, "200 OK", "read back");
	cr_assert_eq(r.last_at, 45);
	cr_assert_eq(r.created_at, 30);
	assert_row(s, a, "pending", 4, 50, "200 OK", 45, 30);

	/* a result given replaces the one there */
	r = (struct store_resync){ .dev = a, .state = "synced", .version = 4, .created_at = 60,
	                           .last_result = "unchanged" };
	cr_assert_eq(store_resync_owe_put(s, &r), 0, "%s", store_errmsg(s));
	assert_row(s, a, "synced", 4, 0, "unchanged", 45, 30);
	cr_assert_str_eq(r.last_result, "unchanged");

	/* a device that is not there: refused (its foreign key), nothing written */
	r = (struct store_resync){ .dev = a + 1000, .state = "pending", .created_at = 1 };
	cr_assert_lt(store_resync_owe_put(s, &r), 0);
	cr_assert_eq(r.dev, a + 1000, "r as it was: the caller's log names its device");
	cr_assert_eq(store_resync_get(s, a + 1000, &got), 0);
	store_close(s);
}

/* The log a job in steps leaves (a little past STORE_WAL_KEEP: svc_yield
 * checkpoints once it passes that) is not cut when it starts again: the
 * cut is made by the commit that starts it, under the service lock. */
Test(store, a_log_just_past_the_keep_size_is_not_cut_when_it_starts_again)
{
	char err[512], wal[600];
	struct store *s = open_db();
	struct store_ckpt *c;
	sqlite3 *raw;
	struct stat sb;
	off_t grown;

	cr_assert_eq(store_autocheckpoint_off(s), 0);
	add_org(s, "acme");
	/* a second connection writes the log past STORE_WAL_KEEP */
	cr_assert_eq(sqlite3_open(dbpath, &raw), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(raw,
	                          "PRAGMA wal_autocheckpoint = 0; CREATE TABLE big(b); BEGIN;",
	                          NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(raw));
	for (long i = 0; i <= STORE_WAL_KEEP / (1024 * 1024); i++)
		cr_assert_eq(sqlite3_exec(raw, "INSERT INTO big VALUES (zeroblob(1048576))", NULL,
		                          NULL, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	cr_assert_lt((size_t)snprintf(wal, sizeof wal, "%s-wal", dbpath), sizeof wal);
	cr_assert_eq(stat(wal, &sb), 0);
	grown = sb.st_size;
	cr_assert_gt(grown, STORE_WAL_KEEP);

	c = store_ckpt_open(dbpath, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(store_ckpt_run(c), 1, "the whole log copied back");
	add_org(s, "after"); /* starts the log again */
	cr_assert_lt(store_wal_frames(s), 100, "the log started again");
	cr_assert_eq(stat(wal, &sb), 0);
	cr_assert_eq(sb.st_size, grown, "the log's file, %lld bytes, was cut to %lld",
	             (long long)grown, (long long)sb.st_size);
	store_ckpt_close(c);
	store_close(s);
}

/* ---- file mode and durability -------------------------------------- */

Test(store, database_files_are_private)
{
	struct stat sb;
	char wal[600];
	struct store *s;
	mode_t old = umask(0);

	s = open_db();
	umask(old);
	add_org(s, "acme"); /* makes sure the WAL exists */
	cr_assert_eq(stat(dbpath, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "db mode %o", sb.st_mode & 0777);
	cr_assert_lt((size_t)snprintf(wal, sizeof wal, "%s-wal", dbpath), sizeof wal);
	cr_assert_eq(stat(wal, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "wal mode %o", sb.st_mode & 0777);
	store_close(s);

	/* An existing world-readable file is tightened. */
	cr_assert_eq(chmod(dbpath, 0644), 0);
	s = open_db();
	cr_assert_eq(stat(dbpath, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	store_close(s);
}

/* store_txn bodies. */
static int
put_org_tx(struct store *s, void *arg)
{
	return store_org_put(s, arg);
}

static int
put_org_killed_tx(struct store *s, void *arg)
{
	if (store_org_put(s, arg) == 0)
		kill(getpid(), SIGKILL);
	return -1;
}

Test(store, committed_change_survives_kill_9)
{
	pid_t pid = fork();
	int status;

	cr_assert_neq(pid, -1);
	if (pid == 0) {
		char err[256];
		struct store *s = store_open(dbpath, "sql", err, sizeof err);
		struct hd_org o = { .name = "kept" }, o2 = { .name = "lost" };

		if (s == NULL || store_txn(s, put_org_tx, &o) != 0)
			_exit(1);
		/* A second transaction that never commits. */
		(void)store_txn(s, put_org_killed_tx, &o2);
		_exit(2);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);

	struct store *s = open_db();
	struct world *w = load(s);

	cr_assert_not_null(world_org_by_name(w, "kept"));
	cr_assert_null(world_org_by_name(w, "lost"));
	world_free(w);
	store_close(s);
}

/* ---- organizations, extensions, devices ---------------------------- */

Test(store, round_trip_through_world)
{
	struct store *s = open_db();
	struct hd_org o = {
		.name = "acme", .display_name = "Acme Inc",
		.sip = { .host = "pbx.acme.test", .port = 5061, .transport = "tls" },
	};
	struct hd_org bare = { .name = "bare" };
	struct hd_ext a = {
		.number = "201", .sip_user = "acme-201", .sip_password = "s3cr&t<",
		.display_name = "Alice", .label = "Alice desk",
		.sip = { .host = "other.acme.test", .port = 5080, .transport = "tcp" },
		.allow_virtualization = true, .secret_hash = "$argon2id$v=19$fake",
	};
	struct hd_ext b = { .number = "202", .sip_user = "acme-202", .sip_password = "x" };
	struct hd_dev d1 = { .mac = "0004f2aabbcc", .profile = "polycom", .model = "VVX411",
	                     .parking_user = "park-1", .parking_password = "ppw",
	                     .static_contact = "sip:10.0.0.5:5060" };
	struct hd_dev d2 = { .mac = "805ec0000001", .profile = "yealink" };
	struct world *w;

	cr_assert_eq(store_org_put(s, &o), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_org_put(s, &bare), 0, "%s", store_errmsg(s));
	a.org = b.org = d1.org = d2.org = o.id;
	cr_assert_eq(store_ext_put(s, &a), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_ext_put(s, &b), 0, "%s", store_errmsg(s));
	d1.home_ext = a.id;
	d2.home_ext = b.id;
	cr_assert_eq(store_dev_put(s, &d1), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_dev_put(s, &d2), 0, "%s", store_errmsg(s));
	cr_assert_neq(a.id, b.id);
	/* b virtualized on a's phone. */
	cr_assert_eq(store_ext_set_virtual_on(s, b.id, d1.id), 0, "%s", store_errmsg(s));

	w = load(s);
	cr_assert_eq(world_count_orgs(w), 2);
	cr_assert_eq(world_count_exts(w), 2);
	cr_assert_eq(world_count_devs(w), 2);

	const struct hd_org *wo = world_org(w, o.id), *wb = world_org(w, bare.id);
	cr_assert_not_null(wo);
	cr_assert_str_eq(wo->name, "acme");
	cr_assert_str_eq(wo->display_name, "Acme Inc");
	cr_assert_str_eq(wo->sip.host, "pbx.acme.test");
	cr_assert_eq(wo->sip.port, 5061);
	cr_assert_str_eq(wo->sip.transport, "tls");
	cr_assert_not_null(wb);
	cr_assert_null(wb->display_name);
	cr_assert_null(wb->sip.host);
	cr_assert_eq(wb->sip.port, 0);
	cr_assert_null(wb->sip.transport);

	const struct hd_ext *wa = world_ext(w, a.id), *wbx = world_ext(w, b.id);
	cr_assert_not_null(wa);
	cr_assert_eq(wa->org, o.id);
	cr_assert_str_eq(wa->number, "201");
	cr_assert_str_eq(wa->sip_user, "acme-201");
	cr_assert_str_eq(wa->sip_password, "s3cr&t<");
	cr_assert_str_eq(wa->display_name, "Alice");
	cr_assert_str_eq(wa->label, "Alice desk");
	cr_assert_str_eq(wa->sip.host, "other.acme.test");
	cr_assert_eq(wa->sip.port, 5080);
	cr_assert_str_eq(wa->sip.transport, "tcp");
	cr_assert(wa->allow_virtualization);
	/* the world keeps no hash, only that there is one; the store has it */
	cr_assert(wa->has_secret);
	cr_assert_null(wa->secret_hash);
	{
		char h[128];

		cr_assert_eq(store_ext_secret(s, a.id, h, sizeof(h)), 1);
		cr_assert_str_eq(h, "$argon2id$v=19$fake");
		cr_assert_eq(store_ext_secret(s, b.id, h, sizeof(h)), 0);
		cr_assert_str_eq(h, "");
	}
	cr_assert_eq(wa->virtual_on, 0);
	cr_assert_eq(wa->home_dev, d1.id);
	cr_assert_not_null(wbx);
	cr_assert_null(wbx->display_name);
	cr_assert_null(wbx->label);
	cr_assert_not(wbx->has_secret);
	cr_assert_null(wbx->sip.host);
	cr_assert_not(wbx->allow_virtualization);
	cr_assert_eq(wbx->virtual_on, d1.id);
	cr_assert_eq(wbx->home_dev, d2.id);

	const struct hd_dev *w1 = world_dev_by_mac(w, "0004f2aabbcc");
	const struct hd_dev *w2 = world_dev(w, d2.id);
	cr_assert_not_null(w1);
	cr_assert_eq(w1->id, d1.id);
	cr_assert_eq(w1->org, o.id);
	cr_assert_str_eq(w1->profile, "polycom");
	cr_assert_str_eq(w1->model, "VVX411");
	cr_assert_eq(w1->home_ext, a.id);
	cr_assert_str_eq(w1->parking_user, "park-1");
	cr_assert_str_eq(w1->parking_password, "ppw");
	cr_assert_str_eq(w1->static_contact, "sip:10.0.0.5:5060");
	cr_assert_eq(w1->guest, b.id);
	cr_assert_not_null(w2);
	cr_assert_null(w2->model);
	cr_assert_null(w2->parking_user);
	cr_assert_null(w2->parking_password);
	cr_assert_null(w2->static_contact);
	cr_assert_eq(w2->guest, 0);
	world_free(w);

	/* An update without a new hash keeps the stored one while the code
	 * is kept (has_secret) */
	a.secret_hash = NULL;
	a.has_secret = true;
	cr_assert_eq(store_ext_put(s, &a), 0, "%s", store_errmsg(s));
	{
		char h[128];

		cr_assert_eq(store_ext_secret(s, a.id, h, sizeof(h)), 1);
		cr_assert_str_eq(h, "$argon2id$v=19$fake");
	}
	/* A hash made again replaces only the hash it was made from: a code
	 * or web password set meanwhile stays */
	{
		char h[128];

		cr_assert_eq(store_hash_swap(s, STORE_HASH_CODE, a.id, "$argon2id$v=19$other",
		                             "$argon2id$v=19$again"), 0);
		cr_assert_eq(store_ext_secret(s, a.id, h, sizeof(h)), 1);
		cr_assert_str_eq(h, "$argon2id$v=19$fake");
		cr_assert_eq(store_hash_swap(s, STORE_HASH_CODE, a.id, "$argon2id$v=19$fake",
		                             "$argon2id$v=19$again"), 1);
		cr_assert_eq(store_ext_secret(s, a.id, h, sizeof(h)), 1);
		cr_assert_str_eq(h, "$argon2id$v=19$again");
		cr_assert_eq(store_hash_swap(s, STORE_HASH_WEBPW, a.id, "$argon2id$v=19$again",
		                             "$argon2id$v=19$web"), 0, "no web password to replace");
		cr_assert_eq(store_webpw_put(s, a.id, "$argon2id$v=19$web1", 5), 0);
		cr_assert_eq(store_hash_swap(s, STORE_HASH_WEBPW, a.id, "$argon2id$v=19$again",
		                             "$argon2id$v=19$web2"), 0);
		cr_assert_eq(store_hash_swap(s, STORE_HASH_WEBPW, a.id, "$argon2id$v=19$web1",
		                             "$argon2id$v=19$web2"), 1);
		cr_assert_eq(store_webpw_get(s, a.id, h, sizeof(h)), 1);
		cr_assert_str_eq(h, "$argon2id$v=19$web2");
		cr_assert_eq(store_ext_secret(s, a.id, h, sizeof(h)), 1);
		cr_assert_str_eq(h, "$argon2id$v=19$again", "the code's hash is not the password's");
	}
	/* Updates by id replace every field, NULLs included (no code: the
	 * hash goes); virtual_on back to base. */
	a.label = NULL;
	a.has_secret = false;
	a.allow_virtualization = false;
	a.sip = (struct hd_sip_server){ 0 };
	cr_assert_eq(store_ext_put(s, &a), 0, "%s", store_errmsg(s));
	d1.model = NULL;
	d1.home_ext = 0;
	cr_assert_eq(store_dev_put(s, &d1), 0, "%s", store_errmsg(s));
	o.name = "acme2";
	cr_assert_eq(store_org_put(s, &o), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_ext_set_virtual_on(s, b.id, 0), 0);
	w = load(s);
	wa = world_ext(w, a.id);
	cr_assert_null(wa->label);
	cr_assert_not(wa->has_secret);
	{
		char h[128];

		cr_assert_eq(store_ext_secret(s, a.id, h, sizeof(h)), 0, "the hash is gone");
	}
	cr_assert_not(wa->allow_virtualization);
	cr_assert_null(wa->sip.host);
	cr_assert_eq(wa->home_dev, 0);
	cr_assert_null(world_dev(w, d1.id)->model);
	cr_assert_eq(world_dev(w, d1.id)->home_ext, 0);
	cr_assert_eq(world_ext(w, b.id)->virtual_on, 0);
	cr_assert_eq(world_dev(w, d1.id)->guest, 0);
	cr_assert_not_null(world_org_by_name(w, "acme2"));
	world_free(w);

	/* Unknown ids. */
	struct hd_org ghost = { .id = 9999, .name = "ghost" };
	cr_assert_eq(store_org_put(s, &ghost), STORE_NOTFOUND);
	cr_assert_not_null(strstr(store_errmsg(s), "9999"));
	cr_assert_eq(store_ext_set_virtual_on(s, 9999, 0), STORE_NOTFOUND);
	cr_assert_eq(store_dev_delete(s, 9999), STORE_NOTFOUND);
	cr_assert_eq(store_ext_delete(s, 9999), STORE_NOTFOUND);
	store_close(s);
}

Test(store, unique_and_foreign_key_conflicts)
{
	struct store *s = open_db();
	hd_id org = add_org(s, "acme"), org2 = add_org(s, "beta");
	hd_id e1 = add_ext(s, org, "201", "acme-201");
	hd_id e2 = add_ext(s, org, "202", "acme-202");
	hd_id d1 = add_dev(s, org, "0004f2000001", e1);

	struct hd_org dup_org = { .name = "acme" };
	cr_assert_eq(store_org_put(s, &dup_org), STORE_CONFLICT);
	cr_assert_eq(dup_org.id, 0);
	cr_assert_not_null(strstr(store_errmsg(s), "UNIQUE"), "%s", store_errmsg(s));

	struct hd_ext same_number = { .org = org, .number = "201", .sip_user = "x-201" };
	cr_assert_eq(store_ext_put(s, &same_number), STORE_CONFLICT);
	/* The same number in another organization is fine. */
	same_number.org = org2;
	cr_assert_eq(store_ext_put(s, &same_number), 0, "%s", store_errmsg(s));

	struct hd_ext same_user = { .org = org, .number = "299", .sip_user = "acme-202" };
	cr_assert_eq(store_ext_put(s, &same_user), STORE_CONFLICT);

	struct hd_dev same_mac = { .org = org, .mac = "0004f2000001", .profile = "p" };
	cr_assert_eq(store_dev_put(s, &same_mac), STORE_CONFLICT);

	struct hd_dev same_home = { .org = org, .mac = "0004f2000002", .profile = "p",
	                            .home_ext = e1 };
	cr_assert_eq(store_dev_put(s, &same_home), STORE_CONFLICT);

	/* One SIP username, one account: parking user vs extension. */
	struct hd_dev park = { .org = org, .mac = "0004f2000003", .profile = "p",
	                       .home_ext = e2, .parking_user = "acme-201" };
	cr_assert_eq(store_dev_put(s, &park), STORE_CONFLICT, "%s", store_errmsg(s));
	park.parking_user = "park-3";
	cr_assert_eq(store_dev_put(s, &park), 0, "%s", store_errmsg(s));
	struct hd_ext takes_park = { .org = org, .number = "203", .sip_user = "park-3" };
	cr_assert_eq(store_ext_put(s, &takes_park), STORE_CONFLICT);
	struct hd_dev park2 = { .org = org, .mac = "0004f2000004", .profile = "p",
	                        .parking_user = "park-3" };
	cr_assert_eq(store_dev_put(s, &park2), STORE_CONFLICT);

	/* References to rows that do not exist. */
	struct hd_ext no_org = { .org = 777, .number = "1", .sip_user = "n1" };
	cr_assert_eq(store_ext_put(s, &no_org), STORE_CONFLICT);
	cr_assert_eq(store_ext_set_virtual_on(s, e2, 777), STORE_CONFLICT);

	/* A non-empty organization cannot go. */
	cr_assert_eq(store_org_delete(s, org), STORE_CONFLICT);

	/* CHECK failures are plain errors, not conflicts. */
	struct hd_dev bad_mac = { .org = org, .mac = "0004F2000009", .profile = "p" };
	cr_assert_eq(store_dev_put(s, &bad_mac), STORE_ERR);
	struct hd_ext bad_number = { .org = org, .number = "20a", .sip_user = "q" };
	cr_assert_eq(store_ext_put(s, &bad_number), STORE_ERR);
	struct hd_org bad_name = { .name = "Acme" };
	cr_assert_eq(store_org_put(s, &bad_name), STORE_ERR);
	struct hd_org bad_tr = { .name = "ok", .sip = { .transport = "sctp" } };
	cr_assert_eq(store_org_put(s, &bad_tr), STORE_ERR);

	/* Nothing of the failures was stored. */
	struct world *w = load(s);
	cr_assert_eq(world_count_orgs(w), 2);
	cr_assert_eq(world_count_exts(w), 3);
	cr_assert_eq(world_count_devs(w), 2);
	cr_assert_eq(world_dev(w, d1)->home_ext, e1);
	world_free(w);
	store_close(s);
}

Test(store, deletes_cascade_as_documented)
{
	struct store *s = open_db();
	hd_id org = add_org(s, "acme");
	hd_id a = add_ext(s, org, "201", "acme-201");
	hd_id b = add_ext(s, org, "202", "acme-202");
	hd_id da = add_dev(s, org, "000000000001", a);
	hd_id db = add_dev(s, org, "000000000002", b);
	struct store_pair p = { .failures_in_window = 3, .window_start = 10 }, q;

	cr_assert_eq(store_ext_set_virtual_on(s, b, da), 0);
	cr_assert_eq(store_pair_put(s, db, a, &p), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_pair_put(s, da, b, &p), 0, "%s", store_errmsg(s));

	/* Device gone: b returns to base, pairs of da go. */
	cr_assert_eq(store_dev_delete(s, da), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_pair_get(s, da, b, &q), 0);
	cr_assert_eq(store_pair_get(s, db, a, &q), 1);
	/* Extension gone: its home device loses it, its pairs go. */
	cr_assert_eq(store_ext_delete(s, b), 0, "%s", store_errmsg(s));

	struct world *w = load(s);
	cr_assert_eq(world_count_devs(w), 1);
	cr_assert_eq(world_dev(w, db)->home_ext, 0);
	cr_assert_eq(world_ext(w, a)->virtual_on, 0);
	world_free(w);

	cr_assert_eq(store_ext_delete(s, a), 0);
	cr_assert_eq(store_pair_get(s, db, a, &q), 0);
	cr_assert_eq(store_dev_delete(s, db), 0);
	cr_assert_eq(store_org_delete(s, org), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_org_delete(s, org), STORE_NOTFOUND);
	store_close(s);
}

/* ---- events -------------------------------------------------------- */

struct ev_seen {
	int n;
	long long ids[64];
	char types[64][16];
	int stop_after; /* 0 = never */
};

static int
ev_collect(const struct store_event *ev, void *arg)
{
	struct ev_seen *c = arg;

	cr_assert_lt(c->n, 64);
	c->ids[c->n] = ev->id;
	cr_assert_lt((size_t)snprintf(c->types[c->n], sizeof c->types[0], "%s", ev->type),
	             sizeof c->types[0]);
	c->n++;
	return c->stop_after != 0 && c->n >= c->stop_after ? 7 : 0;
}

/* ---- transactions -------------------------------------------------- */

/* The transactions of rollback_discards_commit_keeps. */
struct rb_tx {
	hd_id a, d, org;
	int ran;
};

static int
rb_rolled_back(struct store *s, void *arg)
{
	struct rb_tx *rb = arg;
	struct hd_org o = { .name = "tmp" };

	rb->ran++;
	cr_assert_eq(store_org_put(s, &o), 0);
	cr_assert_eq(store_ext_set_virtual_on(s, rb->a, rb->d), 0);
	cr_assert_eq(store_event_add(s, 1, "move", rb->org, "201", "000000000001", NULL), 0);
	return 7; /* any non-zero result rolls back, and is returned */
}

static int
rb_conflict_kept(struct store *s, void *arg)
{
	struct rb_tx *rb = arg;
	struct hd_org dup = { .name = "acme" };

	cr_assert_eq(store_ext_set_virtual_on(s, rb->a, rb->d), 0);
	cr_assert_eq(store_org_put(s, &dup), STORE_CONFLICT);
	return 0;
}

static int
rb_inner(struct store *s, void *arg)
{
	struct rb_tx *rb = arg;
	struct hd_org o = { .name = "inner" };

	rb->ran += 100;
	return store_org_put(s, &o);
}

static int
rb_nested(struct store *s, void *arg)
{
	struct rb_tx *rb = arg;
	struct hd_org o = { .name = "outer" };

	rb->ran++;
	cr_assert_eq(store_txn(s, rb_inner, rb), STORE_ERR);
	cr_assert_neq(store_errmsg(s)[0], '\0');
	return store_org_put(s, &o);
}

Test(store, rollback_discards_commit_keeps)
{
	struct store *s = open_db();
	hd_id org = add_org(s, "acme");
	hd_id a = add_ext(s, org, "201", "acme-201");
	hd_id d = add_dev(s, org, "000000000001", 0);
	struct world *w;

	struct rb_tx rb = { a, d, org, 0 };

	cr_assert_eq(store_txn(s, rb_rolled_back, &rb), 7, "%s", store_errmsg(s));
	cr_assert_eq(rb.ran, 1);
	w = load(s);
	cr_assert_null(world_org_by_name(w, "tmp"));
	cr_assert_eq(world_ext(w, a)->virtual_on, 0);
	world_free(w);
	struct ev_seen none = { 0 };
	cr_assert_eq(store_events_list(s, NULL, ev_collect, &none), 0);
	cr_assert_eq(none.n, 0, "the event went with the rollback");

	/* A failing statement inside a transaction does not end it. */
	cr_assert_eq(store_txn(s, rb_conflict_kept, &rb), 0, "%s", store_errmsg(s));
	store_close(s);

	s = open_db();
	w = load(s);
	cr_assert_eq(world_ext(w, a)->virtual_on, d);
	cr_assert_eq(world_dev(w, d)->guest, a);
	world_free(w);

	/* A transaction inside a transaction cannot begin: its body does not
	 * run and the outer one goes on. */
	rb.ran = 0;
	cr_assert_eq(store_txn(s, rb_nested, &rb), 0, "%s", store_errmsg(s));
	cr_assert_eq(rb.ran, 1, "the inner body never ran");
	w = load(s);
	cr_assert_not_null(world_org_by_name(w, "outer"));
	cr_assert_null(world_org_by_name(w, "inner"));
	world_free(w);
	cr_assert_neq(store_errmsg(s)[0], '\0');
	store_close(s);
}

static struct ev_seen
list(struct store *s, const struct store_event_filter *f)
{
	struct ev_seen c = { 0 };

	cr_assert_eq(store_events_list(s, f, ev_collect, &c), 0, "%s", store_errmsg(s));
	return c;
}

static int
ev_check_fields(const struct store_event *ev, void *arg)
{
	int *n = arg;

	if (ev->id == 2) {
		cr_assert_eq(ev->at, 1001);
		cr_assert_str_eq(ev->type, "move.denied");
		cr_assert_eq(ev->org, 0);
		cr_assert_null(ev->extension);
		cr_assert_null(ev->device);
		cr_assert_null(ev->detail);
	} else if (ev->id == 1) {
		cr_assert_eq(ev->at, 1000);
		cr_assert_eq(ev->org, 5);
		cr_assert_str_eq(ev->extension, "201");
		cr_assert_str_eq(ev->device, "000000000001");
		cr_assert_str_eq(ev->detail, "{\"from\":null,\"to\":\"000000000001\"}");
	}
	(*n)++;
	return 0;
}

Test(store, events_filters_and_paging)
{
	struct store *s = open_db();
	struct store_event_filter f = { 0 };
	struct ev_seen c;
	long long id = 0;
	int n = 0;

	/* ids 1..10; org 5 on odd ids, org 6 on even; type alternates. */
	cr_assert_eq(store_event_add_id(s, 1000, "move", 5, "201", "000000000001",
	                                "{\"from\":null,\"to\":\"000000000001\"}", &id),
	             0, "%s", store_errmsg(s));
	cr_assert_eq(id, 1);
	cr_assert_eq(store_event_add(s, 1001, "move.denied", 0, NULL, NULL, NULL), 0);
	for (int i = 3; i <= 10; i++)
		cr_assert_eq(store_event_add(s, 1000 + i, i % 3 == 0 ? "lockout" : "move",
		                             i % 2 ? 5 : 6, i % 2 ? "201" : "202",
		                             i % 4 == 0 ? "000000000004" : "000000000001", "{}"),
		             0, "%s", store_errmsg(s));
	cr_assert_eq(store_event_add(s, 1, "move", 0, NULL, NULL, "{not json"), STORE_ERR);
	cr_assert_eq(store_event_add(s, 1, NULL, 0, NULL, NULL, NULL), STORE_ERR);

	cr_assert_eq(store_events_list(s, NULL, ev_check_fields, &n), 0);
	cr_assert_eq(n, 10);

	c = list(s, NULL);
	cr_assert_eq(c.n, 10);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(c.ids[i], i + 1, "ascending by id");

	f.org = 5;
	c = list(s, &f);
	cr_assert_eq(c.n, 5); /* 1, 3, 5, 7, 9 */
	cr_assert_eq(c.ids[4], 9);

	f = (struct store_event_filter){ .type = "lockout" };
	c = list(s, &f);
	cr_assert_eq(c.n, 3); /* 3, 6, 9 */
	cr_assert_eq(c.ids[0], 3);
	cr_assert_eq(c.ids[2], 9);

	f = (struct store_event_filter){ .extension = "202", .device = "000000000004" };
	c = list(s, &f);
	cr_assert_eq(c.n, 2); /* 4, 8 */
	cr_assert_eq(c.ids[0], 4);
	cr_assert_eq(c.ids[1], 8);

	f = (struct store_event_filter){ .org = 6, .type = "move", .extension = "202" };
	c = list(s, &f);
	cr_assert_eq(c.n, 3); /* 4, 8, 10 */

	/* Paging forward, 4 at a time. */
	long long since = 0;
	int pages = 0, total = 0;
	for (;;) {
		f = (struct store_event_filter){ .since_id = since, .limit = 4 };
		c = list(s, &f);
		if (c.n == 0)
			break;
		cr_assert_eq(c.ids[0], since + 1);
		since = c.ids[c.n - 1];
		total += c.n;
		pages++;
	}
	cr_assert_eq(pages, 3);
	cr_assert_eq(total, 10);

	/* Newest first, paging back with before_id. */
	f = (struct store_event_filter){ .newest_first = true, .limit = 3 };
	c = list(s, &f);
	cr_assert_eq(c.n, 3);
	cr_assert_eq(c.ids[0], 10);
	cr_assert_eq(c.ids[2], 8);
	f.before_id = c.ids[2];
	c = list(s, &f);
	cr_assert_eq(c.ids[0], 7);
	cr_assert_eq(c.ids[2], 5);

	/* Bounded on both sides. */
	f = (struct store_event_filter){ .since_id = 3, .before_id = 7 };
	c = list(s, &f);
	cr_assert_eq(c.n, 3); /* 4, 5, 6 */

	/* The callback stops the walk and its value comes back. */
	c = (struct ev_seen){ .stop_after = 2 };
	cr_assert_eq(store_events_list(s, NULL, ev_collect, &c), 7);
	cr_assert_eq(c.n, 2);
	/* ...and the statement was reset: a new list starts from the top. */
	c = list(s, NULL);
	cr_assert_eq(c.n, 10);
	store_close(s);
}

/* ---- attempts and pairs -------------------------------------------- */

static int
put_ext_then_fail(struct store *s, void *arg)
{
	cr_assert_eq(store_ext_put(s, arg), 0, "%s", store_errmsg(s));
	return -1;
}

/* The count of code writes (store_codes_gen) moves with each write that
 * may change an extension's code, whether it commits or not, and with no
 * other: an unchanged count is what lets a *30 move skip reading the
 * code again after its verify. */
Test(store, the_count_of_code_writes_moves_with_every_code_write_and_no_other)
{
	struct store *s = open_db();
	struct hd_org o = { .name = "acme" };
	struct hd_ext a = { .number = "201", .sip_user = "acme-201", .sip_password = "x",
	                    .secret_hash = "$argon2id$v=19$one" };
	struct hd_ext b = { .number = "202", .sip_user = "acme-202", .sip_password = "x" };
	struct hd_dev d = { .mac = "0004f2aabbcc", .profile = "polycom" };
	unsigned long long g;

	cr_assert_eq(store_org_put(s, &o), 0, "%s", store_errmsg(s));
	a.org = d.org = o.id;
	g = store_codes_gen(s);
	cr_assert_eq(store_ext_put(s, &a), 0, "%s", store_errmsg(s));
	cr_assert_neq(store_codes_gen(s), g, "a new extension (an id that may be reused)");
	d.home_ext = a.id;
	g = store_codes_gen(s);
	cr_assert_eq(store_dev_put(s, &d), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_ext_set_virtual_on(s, a.id, d.id), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_webpw_put(s, a.id, "$argon2id$v=19$web", 5), 0);
	cr_assert_eq(store_hash_swap(s, STORE_HASH_WEBPW, a.id, "$argon2id$v=19$web",
	                             "$argon2id$v=19$web2"), 1);
	cr_assert_eq(store_codes_gen(s), g, "a device, a move and a web password are no code");
	cr_assert_eq(store_hash_swap(s, STORE_HASH_CODE, a.id, "$argon2id$v=19$one",
	                             "$argon2id$v=19$two"), 1);
	cr_assert_neq(store_codes_gen(s), g, "a code's hash made again");
	/* a write rolled back counts too: the count errs towards a read */
	g = store_codes_gen(s);
	a.secret_hash = "$argon2id$v=19$three";
	cr_assert_neq(store_txn(s, put_ext_then_fail, &a), 0);
	cr_assert_neq(store_codes_gen(s), g, "an update of the extension, rolled back");
	{
		char h[128];

		cr_assert_eq(store_ext_secret(s, a.id, h, sizeof(h)), 1);
		cr_assert_str_eq(h, "$argon2id$v=19$two", "rolled back");
	}
	b.org = o.id;
	cr_assert_eq(store_ext_put(s, &b), 0, "%s", store_errmsg(s));
	g = store_codes_gen(s);
	cr_assert_eq(store_ext_delete(s, b.id), 0, "%s", store_errmsg(s));
	cr_assert_neq(store_codes_gen(s), g, "a deleted extension");
	store_close(s);
}

Test(store, call_attempts)
{
	struct store *s = open_db();
	int failures = 99;
	bool hung = true;

	cr_assert_eq(store_call_get(s, "call-1", &failures, &hung), 0);
	cr_assert_eq(failures, 0);
	cr_assert_not(hung);
	cr_assert_eq(store_call_put(s, "call-1", 2, false, 100), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_call_put(s, "call-2", 1, false, 200), 0);
	cr_assert_eq(store_call_get(s, "call-1", &failures, &hung), 1);
	cr_assert_eq(failures, 2);
	cr_assert_not(hung);
	cr_assert_eq(store_call_put(s, "call-1", 3, true, 150), 0);
	cr_assert_eq(store_call_get(s, "call-1", &failures, &hung), 1);
	cr_assert_eq(failures, 3);
	cr_assert(hung);

	cr_assert_eq(store_calls_expire(s, 150), 0); /* strictly older only */
	cr_assert_eq(store_calls_expire(s, 151), 1);
	cr_assert_eq(store_call_get(s, "call-1", &failures, &hung), 0);
	cr_assert_eq(store_call_get(s, "call-2", &failures, &hung), 1);
	cr_assert_eq(failures, 1);
	store_close(s);
}

Test(store, lockout_pairs)
{
	struct store *s = open_db();
	hd_id org = add_org(s, "acme");
	hd_id e0 = add_ext(s, org, "200", "acme-200");
	hd_id e = add_ext(s, org, "201", "acme-201");
	hd_id d = add_dev(s, org, "000000000001", 0);
	struct store_pair p = { .failures_in_window = 9, .window_start = 1000,
	                        .locked_until = 5000000000LL, .lock_level = 2 };
	struct store_pair q = { .failures_in_window = 1 };

	cr_assert_eq(store_pair_get(s, d, e, &q), 0);
	cr_assert_eq(q.failures_in_window, 0);
	cr_assert_eq(q.locked_until, 0);
	cr_assert_eq(store_pair_put(s, d, e, &p), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_pair_get(s, d, e, &q), 1);
	cr_assert_eq(q.failures_in_window, 9);
	cr_assert_eq(q.window_start, 1000);
	cr_assert_eq(q.locked_until, 5000000000LL);
	cr_assert_eq(q.lock_level, 2);
	p.failures_in_window = 0;
	p.lock_level = 3;
	cr_assert_eq(store_pair_put(s, d, e, &p), 0);
	cr_assert_eq(store_pair_get(s, d, e, &q), 1);
	cr_assert_eq(q.lock_level, 3);
	cr_assert_eq(q.locked_until, 5000000000LL, "64-bit times survive");
	cr_assert_eq(d, e0, "ids chosen so that (e, d) is another pair");
	cr_assert_eq(store_pair_put(s, e, d, &q), STORE_CONFLICT, "no device %lld", (long long)e);
	struct store_pair other = { .failures_in_window = 1, .window_start = 1500 };
	cr_assert_eq(store_pair_put(s, d, e0, &other), 0);
	cr_assert_eq(store_pair_get(s, d, e0, &q), 1);
	cr_assert_eq(q.failures_in_window, 1);
	cr_assert_eq(q.lock_level, 0, "pairs are kept apart");

	cr_assert_eq(store_pair_put(s, d, 4242, &p), STORE_CONFLICT);

	cr_assert_eq(store_pairs_expire(s, 1500), 0);
	cr_assert_eq(store_pairs_expire(s, 2000), 1, "the unlocked one only");
	cr_assert_eq(store_pair_get(s, d, e0, &q), 0);
	cr_assert_eq(store_pairs_expire(s, 5000000001LL), 1);
	cr_assert_eq(store_pair_get(s, d, e, &q), 0);
	store_close(s);
}

/* ---- tokens -------------------------------------------------------- */

struct tok_seen {
	int n;
	hd_id ids[8];
	char roles[8][STORE_ROLE_MAX];
	hd_id orgs[8];
};

static int
tok_collect(const struct store_token *t, void *arg)
{
	struct tok_seen *c = arg;

	cr_assert_lt(c->n, 8);
	c->ids[c->n] = t->id;
	cr_assert_lt((size_t)snprintf(c->roles[c->n], STORE_ROLE_MAX, "%s", t->role),
	             (size_t)STORE_ROLE_MAX);
	c->orgs[c->n] = t->org;
	cr_assert_not_null(t->hash);
	cr_assert_gt(t->created_at, 0);
	c->n++;
	return 0;
}

Test(store, tokens)
{
	struct store *s = open_db();
	hd_id org = add_org(s, "acme"), id1 = 0, id2 = 0, id3 = 0, got_org = 99;
	char role[STORE_ROLE_MAX];
	struct tok_seen c = { 0 };

	cr_assert_eq(store_token_add(s, "aa11", "admin", 0, "bootstrap", 100, &id1), 0,
	             "%s", store_errmsg(s));
	cr_assert_eq(store_token_add(s, "bb22", "org", org, NULL, 101, &id2), 0,
	             "%s", store_errmsg(s));
	cr_assert_eq(store_token_add(s, "cc33", "pbx", 0, "asterisk", 102, &id3), 0);
	cr_assert(id1 > 0 && id2 > id1 && id3 > id2);

	cr_assert_eq(store_token_add(s, "aa11", "pbx", 0, "again", 103, NULL), STORE_CONFLICT);
	cr_assert_eq(store_token_add(s, "dd44", "root", 0, NULL, 103, NULL), STORE_ERR);
	cr_assert_eq(store_token_add(s, "dd44", "org", 0, NULL, 103, NULL), STORE_ERR,
	             "an org token names its org");
	cr_assert_eq(store_token_add(s, "dd44", "admin", org, NULL, 103, NULL), STORE_ERR);

	cr_assert_eq(store_token_find(s, "bb22", role, &got_org), 1);
	cr_assert_str_eq(role, "org");
	cr_assert_eq(got_org, org);
	cr_assert_eq(store_token_find(s, "aa11", role, &got_org), 1);
	cr_assert_str_eq(role, "admin");
	cr_assert_eq(got_org, 0);
	cr_assert_eq(store_token_find(s, "AA11", role, &got_org), 0, "exact match only");
	cr_assert_eq(store_token_find(s, "zz", NULL, NULL), 0);

	cr_assert_eq(store_token_list(s, tok_collect, &c), 0);
	cr_assert_eq(c.n, 3);
	cr_assert_eq(c.ids[0], id1);
	cr_assert_str_eq(c.roles[2], "pbx");
	cr_assert_eq(c.orgs[1], org);

	cr_assert_eq(store_token_delete(s, id3), 0);
	cr_assert_eq(store_token_delete(s, id3), STORE_NOTFOUND);
	cr_assert_eq(store_token_find(s, "cc33", role, NULL), 0);
	/* An organization's tokens go with it. */
	cr_assert_eq(store_org_delete(s, org), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_token_find(s, "bb22", role, NULL), 0);
	cr_assert_eq(store_token_find(s, "aa11", role, NULL), 1);
	store_close(s);
}

static int
ev_actor(const struct store_event *ev, void *arg)
{
	hd_id *seen = arg;

	cr_assert_lt(seen[0], 4);
	seen[1 + seen[0]++] = ev->actor_token;
	if (ev->actor_token != 0)
		cr_assert_str_eq(ev->actor_role, "org");
	else
		cr_assert_null(ev->actor_role);
	return 0;
}

static int
tok_flags(const struct store_token *t, void *arg)
{
	bool *cfg = arg;

	*cfg = t->from_config;
	cr_assert_eq(t->rotated_at, t->from_config ? 0 : 500);
	return 0;
}

Test(store, tokens_rotated_configured_and_actors)
{
	struct store *s = open_db();
	hd_id org = add_org(s, "acme"), id = 0, got = 0;
	hd_id seen[5] = { 0 };
	char role[STORE_ROLE_MAX];
	bool cfg = true;

	cr_assert_eq(store_token_add(s, "aa11", "org", org, "desk", 100, &id), 0);
	cr_assert_eq(store_token_find_id(s, "aa11", role, NULL, &got), 1);
	cr_assert_eq(got, id);
	/* rotate: the old hash is gone, the id stays */
	cr_assert_eq(store_token_rehash(s, id, "bb22", 500), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_token_find(s, "aa11", role, NULL), 0);
	cr_assert_eq(store_token_find_id(s, "bb22", role, NULL, &got), 1);
	cr_assert_eq(got, id);
	cr_assert_eq(store_token_get(s, id, tok_flags, &cfg), 1);
	cr_assert(!cfg);
	cr_assert_eq(store_token_rehash(s, id + 100, "cc33", 500), STORE_NOTFOUND);
	cr_assert_eq(store_token_get(s, id + 100, tok_flags, &cfg), 0);
	/* the configuration's token of a role: one, the one the file names */
	cr_assert_eq(store_token_config(s, "admin", "c1", "config admin token", 1), 0);
	cr_assert_eq(store_token_config(s, "admin", "c1", "config admin token", 2), 0);
	cr_assert_eq(store_token_find_id(s, "c1", role, NULL, &got), 1);
	cr_assert_eq(store_token_get(s, got, tok_flags, &cfg), 1);
	cr_assert(cfg);
	cr_assert_eq(store_token_config(s, "admin", "c2", "config admin token", 3), 0);
	cr_assert_eq(store_token_find(s, "c1", role, NULL), 0, "the replaced one still works");
	cr_assert_eq(store_token_find(s, "c2", role, NULL), 1);
	cr_assert_eq(store_token_config(s, "pbx", NULL, "config pbx token", 3), 0);
	cr_assert_eq(store_token_find(s, "c2", role, NULL), 1, "another role's token went");
	cr_assert_eq(store_token_config(s, "admin", NULL, "config admin token", 4), 0);
	cr_assert_eq(store_token_find(s, "c2", role, NULL), 0);
	cr_assert_eq(store_token_find(s, "bb22", role, NULL), 1, "an API token went");
	/* events carry the actor set while they are added */
	store_set_actor(s, id, "org");
	cr_assert_eq(store_event_add(s, 1, "org.put", org, NULL, NULL, NULL), 0);
	store_set_actor(s, 0, NULL);
	cr_assert_eq(store_event_add(s, 2, "extension.virtualized", org, "101", NULL, NULL), 0);
	cr_assert_eq(store_events_list(s, NULL, ev_actor, seen), 0);
	cr_assert_eq(seen[0], 2);
	cr_assert_eq(seen[1], id);
	cr_assert_eq(seen[2], 0);
	store_close(s);
}

/* ---- registrations and meta ---------------------------------------- */

Test(store, registrations)
{
	struct store *s = open_db();
	struct store_reg r = { .expires_at = 2000, .updated_at = 1000 }, g;

	strcpy(r.sip_user, "acme-201");
	strcpy(r.contact, "sip:acme-201@192.0.2.10:5062;transport=udp");
	strcpy(r.source, "192.0.2.10:5062");
	strcpy(r.user_agent, "Yealink SIP-T46S 66.86.0.15");
	cr_assert_eq(store_reg_get(s, "acme-201", &g), 0);
	cr_assert_eq(g.contact[0], '\0');
	cr_assert_eq(store_reg_put(s, &r), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_reg_get(s, "acme-201", &g), 1);
	cr_assert_str_eq(g.sip_user, "acme-201");
	cr_assert_str_eq(g.contact, r.contact);
	cr_assert_str_eq(g.source, r.source);
	cr_assert_str_eq(g.user_agent, r.user_agent);
	cr_assert_str_eq(g.call_id, "");
	cr_assert_eq(g.expires_at, 2000);
	cr_assert_eq(g.updated_at, 1000);

	/* Replace: the newest fact wins. */
	strcpy(r.contact, "sip:acme-201@192.0.2.99:5060");
	r.source[0] = '\0';
	strcpy(r.call_id, "abc@host");
	r.expires_at = 3000;
	cr_assert_eq(store_reg_put(s, &r), 0);
	cr_assert_eq(store_reg_get(s, "acme-201", &g), 1);
	cr_assert_str_eq(g.contact, "sip:acme-201@192.0.2.99:5060");
	cr_assert_str_eq(g.source, "");
	cr_assert_str_eq(g.call_id, "abc@host");
	cr_assert_eq(peek_int("SELECT source IS NULL FROM registrations"), 1);

	/* Unterminated or empty fields are refused. */
	struct store_reg bad = r;
	memset(bad.user_agent, 'x', sizeof bad.user_agent);
	cr_assert_eq(store_reg_put(s, &bad), STORE_ERR);
	bad = r;
	bad.contact[0] = '\0';
	cr_assert_eq(store_reg_put(s, &bad), STORE_ERR);

	strcpy(r.sip_user, "acme-202");
	r.expires_at = 1500;
	cr_assert_eq(store_reg_put(s, &r), 0);
	cr_assert_eq(store_regs_expire(s, 1499), 0);
	cr_assert_eq(store_regs_expire(s, 1500), 1);
	cr_assert_eq(store_reg_get(s, "acme-202", &g), 0);
	cr_assert_eq(store_reg_delete(s, "acme-201"), 0);
	cr_assert_eq(store_reg_get(s, "acme-201", &g), 0);
	cr_assert_eq(store_reg_delete(s, "acme-201"), 0, "idempotent");
	store_close(s);
}

Test(store, meta)
{
	struct store *s = open_db();
	char buf[8];

	cr_assert_eq(store_meta_get(s, "k", buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "");
	cr_assert_eq(store_meta_put(s, "k", "v1"), 0);
	cr_assert_eq(store_meta_put(s, "k", "v2"), 0);
	cr_assert_eq(store_meta_get(s, "k", buf, sizeof buf), 1);
	cr_assert_str_eq(buf, "v2");
	cr_assert_eq(store_meta_put(s, "long", "12345678"), 0);
	cr_assert_eq(store_meta_get(s, "long", buf, sizeof buf), STORE_ERR, "does not fit");
	cr_assert_str_eq(buf, "");
	cr_assert_eq(store_meta_put(s, "k", NULL), 0);
	cr_assert_eq(store_meta_get(s, "k", buf, sizeof buf), 0);
	store_close(s);
}

static int
put_then_busy(struct store *s, void *arg)
{
	struct store *other = arg;
	struct hd_org o = { .name = "first" }, o2 = { .name = "second" };
	struct rb_tx rb = { 0, 0, 0, 0 };

	cr_assert_eq(store_org_put(s, &o), 0);
	/* the other connection cannot begin while this one writes: its
	 * body never runs, and it writes nothing of its own */
	cr_assert_eq(store_txn(other, rb_inner, &rb), STORE_ERR);
	cr_assert_eq(rb.ran, 0);
	cr_assert_neq(store_org_put(other, &o2), 0, "busy outside a transaction too");
	return 0;
}

Test(store, begin_that_fails_runs_nothing)
{
	struct store *s = open_db(), *other = open_db();
	struct world *w;

	store_close(NULL);
	cr_assert_eq(store_txn(s, put_then_busy, other), 0, "%s", store_errmsg(s));
	store_close(other);
	w = load(s);
	cr_assert_not_null(world_org_by_name(w, "first"));
	cr_assert_null(world_org_by_name(w, "inner"));
	cr_assert_null(world_org_by_name(w, "second"));
	cr_assert_eq(world_count_orgs(w), 1);
	world_free(w);
	store_close(s);
}

Test(store, move_webhook_outbox)
{
	struct store *s = open_db();
	struct store_pbxout r, got;
	long long id1, id2, id3;

	cr_assert_eq(store_pbxout_first(s, &got), 0, "a new store owes nothing");
	cr_assert_eq(store_pbxout_count(s), 0);
	memset(&r, 0, sizeof(r));
	r.at = 1000;
	strcpy(r.sip_user, "acme-102");
	strcpy(r.device, "0004f2000101");
	strcpy(r.contact, "sip:acme-101@127.0.0.1:5091");
	strcpy(r.cause, "star30");
	cr_assert_eq(store_pbxout_add(s, &r, &id1), 0, "%s", store_errmsg(s));
	r.move = id1; /* the same change */
	strcpy(r.sip_user, "acme-101");
	r.device[0] = r.contact[0] = '\0';
	cr_assert_eq(store_pbxout_add(s, &r, &id2), 0);
	r.move = 0; /* the next change */
	strcpy(r.sip_user, "acme-103");
	cr_assert_eq(store_pbxout_add(s, &r, &id3), 0);
	cr_assert(id1 < id2 && id2 < id3);
	cr_assert_eq(store_pbxout_count(s), 3);

	cr_assert_eq(store_pbxout_first(s, &got), 1);
	cr_assert_eq(got.id, id1);
	cr_assert_eq(got.move, id1, "the first row of a change names it");
	cr_assert_eq(got.at, 1000);
	cr_assert_str_eq(got.sip_user, "acme-102");
	cr_assert_str_eq(got.device, "0004f2000101");
	cr_assert_str_eq(got.contact, "sip:acme-101@127.0.0.1:5091");
	cr_assert_str_eq(got.cause, "star30");
	cr_assert_eq(store_pbxout_delete(s, id1), 0);
	cr_assert_eq(store_pbxout_first(s, &got), 1);
	cr_assert_eq(got.id, id2);
	cr_assert_eq(got.move, id1);
	cr_assert_str_eq(got.device, "");
	cr_assert_eq(store_pbxout_delete(s, id2), 0);
	cr_assert_eq(store_pbxout_first(s, &got), 1);
	cr_assert_eq(got.move, id3, "a new change starts a new move id");
	cr_assert_eq(store_pbxout_clear(s), 1);
	cr_assert_eq(store_pbxout_count(s), 0);
	cr_assert_eq(store_pbxout_first(s, &got), 0);
	/* ids keep growing after deletes (AUTOINCREMENT): order = commit order */
	cr_assert_eq(store_pbxout_add(s, &r, &id1), 0);
	cr_assert_gt(id1, id3);
	store_close(s);
}

/* ---- store_after_txn: what runs once a transaction's writes are durable -- */

struct ends {
	int runs;
	bool committed;
};

static void
on_end(void *arg, bool committed)
{
	struct ends *e = arg;

	e->runs++;
	e->committed = committed;
}

static int
add_then(struct store *s, void *arg)
{
	struct ends *e = arg;

	cr_assert_eq(store_tftp_add(s, "a.cfg"), 0);
	cr_assert_eq(store_after_txn(s, on_end, e), 0);
	cr_assert_eq(store_after_txn(s, on_end, e), 0); /* once per transaction */
	cr_assert_eq(e->runs, 0, "before the transaction ended");
	return e->committed ? 0 : 7; /* committed set beforehand: commit, else roll back */
}

static int
count_name(const char *name, void *arg)
{
	(void)name;
	(*(int *)arg)++;
	return 0;
}

Test(store, after_txn_runs_when_the_transaction_ends)
{
	struct store *s = open_db();
	struct ends e = { 0, false };
	int names = 0;

	/* rolled back: told so, nothing recorded */
	cr_assert_eq(store_txn(s, add_then, &e), 7);
	cr_assert_eq(e.runs, 1);
	cr_assert(!e.committed);
	cr_assert_eq(store_tftp_each(s, count_name, &names), 0);
	cr_assert_eq(names, 0);
	/* committed: told so after the COMMIT */
	e = (struct ends){ 0, true };
	cr_assert_eq(store_txn(s, add_then, &e), 0);
	cr_assert_eq(e.runs, 1);
	cr_assert(e.committed);
	cr_assert_eq(store_tftp_each(s, count_name, &names), 0);
	cr_assert_eq(names, 1);
	/* outside a transaction every statement committed itself: at once */
	e = (struct ends){ 0, false };
	cr_assert_eq(store_after_txn(s, on_end, &e), 0);
	cr_assert_eq(e.runs, 1);
	cr_assert(e.committed);
	store_close(s);
}
