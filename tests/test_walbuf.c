/*
 * test_walbuf.c -- each commit's log written at once (walbuf.h), checked
 * with SQLite itself: what one connection commits, another reads; a
 * transaction larger than what is held reads back its own pages; a commit
 * that cannot be written fails and leaves nothing; a process killed with
 * frames held keeps exactly what it committed.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "walbuf.h"

static char *dir;
static char dbpath[512];

static void
setup(void)
{
	dir = tu_tmpdir();
	cr_assert_not_null(dir);
	cr_assert_lt((size_t)snprintf(dbpath, sizeof dbpath, "%s/w.db", dir), sizeof dbpath);
	cr_assert_eq(walbuf_register(), 0);
}

static void
teardown(void)
{
	tu_rmtree(dir);
}

TestSuite(walbuf, .init = setup, .fini = teardown, .timeout = 60);

/* The rows value = 1..n, as s(value), before a SELECT. */
#define SERIES(n) "WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s " \
                  "WHERE value < " #n ") "

/* A connection in WAL mode, through WALBUF_VFS or the default VFS. */
static sqlite3 *
open_db(bool held)
{
	sqlite3 *db = NULL;

	cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                             held ? WALBUF_VFS : NULL),
	             SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL", NULL,
	                          NULL, NULL),
	             SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void
exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK, "%s: %s", sql,
	             err ? err : "");
}

static long long
one_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	long long v;

	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sqlite3_errmsg(db));
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void
integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *st;

	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
}

static void
schema(sqlite3 *db)
{
	exec(db, "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);"
	         "CREATE INDEX a_v ON a (v);"
	         "CREATE TABLE b (id INTEGER PRIMARY KEY, blob BLOB);"
	         "CREATE TABLE c (k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;");
}

Test(walbuf, a_commit_of_many_pages_reaches_the_log_in_one_write)
{
	sqlite3 *db = open_db(true);
	struct walbuf_stats before, after;

	schema(db);
	/* pages of three tables and an index, in one transaction */
	walbuf_stats(&before);
	exec(db, "BEGIN;"
	         "INSERT INTO a (v) " SERIES(400) "SELECT 'row ' || value FROM s;"
	         "INSERT INTO b (blob) " SERIES(5) "SELECT randomblob(3000) FROM s;"
	         "INSERT INTO c VALUES ('x', 1), ('y', 2);"
	         "COMMIT");
	walbuf_stats(&after);
	/* two writes asked for each frame, at least 8 frames */
	cr_assert_geq(after.writes - before.writes, 16, "%llu writes",
	              (unsigned long long)(after.writes - before.writes));
	cr_assert_eq(after.flushes - before.flushes, 1, "%llu flushes",
	             (unsigned long long)(after.flushes - before.flushes));
	cr_assert_eq(one_int(db, "SELECT count(*) FROM a"), 400);
	sqlite3_close(db);
}

Test(walbuf, another_connection_reads_every_commit_at_once)
{
	sqlite3 *w = open_db(true), *r;

	schema(w);
	r = open_db(false);
	for (int i = 1; i <= 200; i++) {
		char sql[160];

		snprintf(sql, sizeof sql,
		         "BEGIN; INSERT INTO a (v) VALUES ('%d'); INSERT OR REPLACE INTO c VALUES "
		         "('last', %d); COMMIT",
		         i, i);
		exec(w, sql);
		cr_assert_eq(one_int(r, "SELECT count(*) FROM a"), i);
		cr_assert_eq(one_int(r, "SELECT n FROM c WHERE k = 'last'"), i);
		if (i % 50 == 0) /* the other connection copies the log back */
			cr_assert_eq(sqlite3_wal_checkpoint_v2(r, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
			                                       NULL),
			             SQLITE_OK);
	}
	integrity_ok(r);
	sqlite3_close(r);
	sqlite3_close(w);
}

Test(walbuf, a_transaction_larger_than_what_is_held_reads_its_own_pages_back)
{
	sqlite3 *db = open_db(true), *r;
	struct walbuf_stats before, after;

	schema(db);
	/* a cache of 20 pages: the transaction's pages go to the log before
	 * its commit, and are read back from it */
	exec(db, "PRAGMA cache_size = 20");
	walbuf_stats(&before);
	exec(db, "BEGIN; INSERT INTO b (blob) " SERIES(1000) "SELECT randomblob(3000) FROM s");
	walbuf_stats(&after);
	/* runs of WALBUF's size (30 frames, 60 writes asked) */
	cr_assert_gt(after.flushes - before.flushes, 10);
	cr_assert_lt((after.flushes - before.flushes) * 20, after.writes - before.writes,
	             "%llu flushes, %llu writes",
	             (unsigned long long)(after.flushes - before.flushes),
	             (unsigned long long)(after.writes - before.writes));
	cr_assert_eq(one_int(db, "SELECT sum(length(blob)) FROM b"), 3000000);
	/* pages of the transaction written again, in place: SQLite then
	 * writes their frames' checksums again after the commit frame */
	exec(db, "UPDATE b SET blob = zeroblob(10) WHERE id % 2 = 0; COMMIT");
	r = open_db(false);
	cr_assert_eq(one_int(r, "SELECT sum(length(blob)) FROM b"), 500 * 3000 + 500 * 10);
	integrity_ok(r);
	cr_assert_eq(sqlite3_wal_checkpoint_v2(r, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
	             SQLITE_OK);
	integrity_ok(r);
	sqlite3_close(r);
	sqlite3_close(db);
}

/* Removes the wal-index (-shm): the next open reads the log again from
 * its file, checking every frame's checksum, as after a crash of the
 * machine. */
static void
drop_wal_index(void)
{
	char p[600];

	snprintf(p, sizeof p, "%s-shm", dbpath);
	cr_assert_eq(unlink(p), 0);
}

/* A child that runs sql through WALBUF_VFS (pragmas first; the database
 * opened as the URI uri when not NULL), then is killed with its
 * connection open; what it committed is then read from the log's file
 * alone. */
static void
commit_then_die(const char *uri, const char *pragmas, const char *sql)
{
	pid_t pid = fork();
	int status;

	cr_assert_neq(pid, -1);
	if (pid == 0) {
		sqlite3 *c = NULL;

		if (uri != NULL ? sqlite3_open_v2(uri, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI,
		                                  WALBUF_VFS) != SQLITE_OK :
		                  (c = open_db(true)) == NULL)
			_exit(1);
		if (sqlite3_exec(c, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(c, sql, NULL, NULL, NULL) != SQLITE_OK)
			_exit(1);
		kill(getpid(), SIGKILL);
		_exit(2);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
	drop_wal_index();
}

Test(walbuf, a_commit_whose_checksums_were_written_again_survives_a_crash)
{
	sqlite3 *db = open_db(true);

	schema(db);
	sqlite3_close(db);
	commit_then_die(NULL, "PRAGMA cache_size = 20",
	                "BEGIN; INSERT INTO b (blob) " SERIES(300) "SELECT randomblob(3000) FROM s;"
	                "UPDATE b SET blob = zeroblob(10) WHERE id % 3 = 0;"
	                "INSERT INTO a (v) VALUES ('last'); COMMIT");
	db = open_db(false);
	cr_assert_eq(one_int(db, "SELECT count(*) FROM b"), 300);
	cr_assert_eq(one_int(db, "SELECT sum(length(blob)) FROM b"), 200 * 3000 + 100 * 10);
	cr_assert_eq(one_int(db, "SELECT count(*) FROM a WHERE v = 'last'"), 1);
	integrity_ok(db);
	sqlite3_close(db);
}

Test(walbuf, commits_padded_to_a_sector_survive_a_crash)
{
	sqlite3 *db = open_db(true);
	char sql[4096], uri[700];
	size_t n = 0;

	schema(db);
	sqlite3_close(db);
	for (int i = 1; i <= 20; i++)
		n += (size_t)snprintf(sql + n, sizeof sql - n,
		                      "INSERT INTO a (v) VALUES ('%d'); INSERT INTO b (blob) VALUES "
		                      "(randomblob(%d));",
		                      i, 100 * i);
	cr_assert_lt(n, sizeof sql);
	/* synchronous=FULL on a file that does not overwrite safely (psow=0):
	 * SQLite pads each commit with copies of its commit frame */
	snprintf(uri, sizeof uri, "file:%s?psow=0", dbpath);
	commit_then_die(uri, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL", sql);
	db = open_db(false);
	cr_assert_eq(one_int(db, "SELECT count(*) FROM a"), 20);
	cr_assert_eq(one_int(db, "SELECT sum(length(blob)) FROM b"), 100 * 210);
	integrity_ok(db);
	sqlite3_close(db);
}

/* The log's size now. */
static off_t
wal_size(void)
{
	char p[600];
	struct stat st;

	snprintf(p, sizeof p, "%s-wal", dbpath);
	return stat(p, &st) == 0 ? st.st_size : 0;
}

Test(walbuf, a_commit_that_cannot_be_written_fails_and_changes_nothing)
{
	sqlite3 *db = open_db(true);
	pid_t pid;
	int status;

	schema(db);
	exec(db, "INSERT INTO a (v) VALUES ('kept')");
	sqlite3_close(db); /* the log is copied back and removed */
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		/* files may not grow past the log's size and a page or two
		 * more: the commit's write fails (EFBIG, its signal ignored) */
		sqlite3 *c = open_db(true);
		struct rlimit lim;
		int rc;

		exec(c, "SELECT count(*) FROM a"); /* the log exists from here */
		lim.rlim_cur = lim.rlim_max = (rlim_t)wal_size() + 2 * 4096 + 4096;
		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
			_exit(3);
		exec(c, "BEGIN; INSERT INTO a (v) " SERIES(2000) "SELECT 'lost ' || value FROM s");
		rc = sqlite3_exec(c, "COMMIT", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			_exit(1);
		(void)sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
		/* still usable, and still what was committed before */
		_exit(one_int(c, "SELECT count(*) FROM a") == 1 ? 0 : 2);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	db = open_db(false);
	cr_assert_eq(one_int(db, "SELECT count(*) FROM a"), 1);
	integrity_ok(db);
	sqlite3_close(db);
}

Test(walbuf, a_process_killed_with_frames_held_keeps_what_it_committed)
{
	sqlite3 *db = open_db(true);

	schema(db);
	sqlite3_close(db);
	/* a last transaction larger than the cache: some of its frames are
	 * in the log's file, the last ones held, none committed */
	commit_then_die(NULL, "PRAGMA cache_size = 20",
	                "INSERT INTO a (v) VALUES ('one'); INSERT INTO a (v) VALUES ('two');"
	                "BEGIN; INSERT INTO b (blob) " SERIES(300) "SELECT randomblob(3000) FROM s");
	cr_assert_gt(wal_size(), 200 * 4096, "%lld bytes", (long long)wal_size());
	db = open_db(false);
	cr_assert_eq(one_int(db, "SELECT count(*) FROM a"), 2);
	cr_assert_eq(one_int(db, "SELECT count(*) FROM b"), 0);
	integrity_ok(db);
	sqlite3_close(db);
}
