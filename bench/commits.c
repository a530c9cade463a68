/*
 * commits.c -- bench/walbuf.sh's driver: the store's writes of *30 moves,
 * committed on a hotdeskd database through SQLite's own "unix" VFS or
 * through WALBUF_VFS (src/walbuf.h), timed.
 *
 *   commits DB unix|walbuf N
 *
 * Each move is two transactions, as the daemon commits them: the move
 * (an extension's location, two devices' versions and resync rows made
 * pending, one event) and its NOTIFYs' outcome (both rows synced).  The
 * connection is set up as the store's (WAL, synchronous=NORMAL, foreign
 * keys, secure_delete, no automatic checkpoint), and a second connection
 * copies the log back every 100 moves, untimed, as the daemon's
 * checkpoints do.  Prints one line: the move's transaction (p50, p99),
 * its COMMIT alone, and the write(2) calls per move (/proc/self/io).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "metrics.h"
#include "walbuf.h"

/* the daemon's monotonic clock, in microseconds */
static double
now_us(void)
{
	return (double)metrics_now_ns() / 1e3;
}

static void
die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "commits: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
	exit(1);
}

static void
exec(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		die(db, sql);
}

static sqlite3_stmt *
prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		die(db, sql);
	return st;
}

static void
run(sqlite3 *db, sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		die(db, sqlite3_sql(st));
	sqlite3_reset(st);
}

/* The ids of a table, in *n. */
static long long *
ids(sqlite3 *db, const char *sql, size_t *n)
{
	sqlite3_stmt *st = prep(db, sql);
	long long *v = NULL;
	size_t cap = 0;

	*n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap && (v = realloc(v, (cap = cap ? cap * 2 : 1024) * sizeof(*v))) == NULL)
			die(NULL, "out of memory");
		v[(*n)++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (*n == 0)
		die(db, sql);
	return v;
}

/* write(2)-family calls of this process so far */
static long long
syscw(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	long long v = -1;

	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "syscw: %lld", &v) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return v;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
pct(double *v, size_t n, double p)
{
	return v[(size_t)((double)(n - 1) * p)];
}

int
main(int argc, char **argv)
{
	sqlite3 *db = NULL, *ck = NULL;
	sqlite3_stmt *begin, *commit, *ext, *cfg, *pend, *ev, *sync;
	long long *exts, *devs, w0, w1;
	size_t next, ndev, n;
	double *tx, *cm;
	bool held;

	if (argc != 4 || (strcmp(argv[2], "unix") != 0 && strcmp(argv[2], "walbuf") != 0) ||
	    (n = strtoul(argv[3], NULL, 10)) == 0) {
		fprintf(stderr, "usage: commits DB unix|walbuf N\n");
		return 2;
	}
	held = strcmp(argv[2], "walbuf") == 0;
	if (walbuf_register() != 0)
		die(NULL, "walbuf_register");
	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, held ? WALBUF_VFS : "unix") !=
	        SQLITE_OK ||
	    sqlite3_open_v2(argv[1], &ck, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK)
		die(db, argv[1]);
	exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
	         "PRAGMA secure_delete = ON; PRAGMA wal_autocheckpoint = 0");
	sqlite3_busy_timeout(ck, 5000);
	exts = ids(db, "SELECT id FROM extensions", &next);
	devs = ids(db, "SELECT device_id FROM device_config", &ndev);
	begin = prep(db, "BEGIN IMMEDIATE");
	commit = prep(db, "COMMIT");
	ext = prep(db, "UPDATE extensions SET virtual_on = ?1 WHERE id = ?2");
	cfg = prep(db, "UPDATE device_config SET version = version + 1, hash = hex(randomblob(16)), "
	               "updated_at = ?1 WHERE device_id = ?2");
	pend = prep(db, "UPDATE resync SET state = 'pending', version = version + 1, attempts = 0, "
	                "next_at = ?1 WHERE device_id = ?2");
	ev = prep(db, "INSERT INTO events (at, type, org_id, extension, device, detail) "
	              "VALUES (?1, 'extension.virtualized', 1, ?2, ?3, NULL)");
	sync = prep(db, "UPDATE resync SET state = 'synced', last_result = '200', last_at = ?1 "
	                "WHERE device_id = ?2");
	if ((tx = malloc(n * sizeof(*tx))) == NULL || (cm = malloc(n * sizeof(*cm))) == NULL)
		die(NULL, "out of memory");
	srand(1);
	w0 = syscw();
	for (size_t i = 0; i < n; i++) {
		long long e = exts[(size_t)rand() % next], d[2];
		char num[24], mac[24];
		double t0, t1;

		d[0] = devs[(size_t)rand() % ndev];
		d[1] = devs[(size_t)rand() % ndev];
		snprintf(num, sizeof num, "%lld", e);
		snprintf(mac, sizeof mac, "0004f2%06llx", d[0]);
		t0 = now_us();
		run(db, begin);
		if (i % 2 == 0)
			sqlite3_bind_int64(ext, 1, d[0]);
		else
			sqlite3_bind_null(ext, 1);
		sqlite3_bind_int64(ext, 2, e);
		run(db, ext);
		for (int k = 0; k < 2; k++) {
			sqlite3_bind_int64(cfg, 1, (long long)i);
			sqlite3_bind_int64(cfg, 2, d[k]);
			run(db, cfg);
			sqlite3_bind_int64(pend, 1, (long long)i);
			sqlite3_bind_int64(pend, 2, d[k]);
			run(db, pend);
		}
		sqlite3_bind_int64(ev, 1, (long long)i);
		sqlite3_bind_text(ev, 2, num, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(ev, 3, mac, -1, SQLITE_TRANSIENT);
		run(db, ev);
		t1 = now_us();
		run(db, commit);
		cm[i] = now_us() - t1;
		tx[i] = now_us() - t0;
		/* the NOTIFYs' outcome, in a transaction of its own */
		run(db, begin);
		for (int k = 0; k < 2; k++) {
			sqlite3_bind_int64(sync, 1, (long long)i);
			sqlite3_bind_int64(sync, 2, d[k]);
			run(db, sync);
		}
		run(db, commit);
		if (i % 100 == 99 &&
		    sqlite3_wal_checkpoint_v2(ck, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) !=
		        SQLITE_OK)
			die(ck, "checkpoint");
	}
	w1 = syscw();
	qsort(tx, n, sizeof(*tx), cmp_double);
	qsort(cm, n, sizeof(*cm), cmp_double);
	printf("%-7s move's transaction p50 %6.1f us  p99 %6.1f us; its COMMIT p50 %5.1f us  "
	       "p99 %6.1f us; write(2) calls per move %.1f\n",
	       argv[2], pct(tx, n, 0.5), pct(tx, n, 0.99), pct(cm, n, 0.5), pct(cm, n, 0.99),
	       w0 >= 0 && w1 >= 0 ? (double)(w1 - w0) / (double)n : -1.0);
	free(tx);
	free(cm);
	free(exts);
	free(devs);
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_finalize(ext);
	sqlite3_finalize(cfg);
	sqlite3_finalize(pend);
	sqlite3_finalize(ev);
	sqlite3_finalize(sync);
	sqlite3_close(ck);
	sqlite3_close(db);
	return 0;
}
