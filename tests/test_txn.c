/*
 * test_txn.c -- the service owns every transaction (svc_transact and the
 * service's own operations over store_txn).
 *
 * A service runs on a database file in a temporary directory; a second
 * connection to the same file takes the write lock when a test needs a
 * BEGIN that fails.  Checked: a body's writes commit or go together; a
 * BEGIN that fails is an error to the caller and writes nothing (the
 * body does not run, no autocommit row by row); the change hook runs
 * after the commit, in a transaction of its own, with the body's devices.
 */
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "service.h"
#include "store.h"
#include "testutil.h"
#include "world.h"

static char *dir;
static char dbpath[512];

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void
setup(void)
{
	dir = tu_tmpdir();
	cr_assert_not_null(dir);
	cr_assert_lt((size_t)snprintf(dbpath, sizeof dbpath, "%s/hd.db", dir), sizeof dbpath);
}

static void
teardown(void)
{
	if (dir != NULL)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

TestSuite(txn, .init = setup, .fini = teardown, .timeout = 120);

static struct svc *
open_svc(void)
{
	struct svc_opts o = { .db_path = dbpath, .sql_dir = "sql", .hash_ops = 1,
	                      .hash_mem = 8192, .code_min_len = 4, .check_invariants = true };
	char err[512];
	struct svc *s = svc_open(&o, err, sizeof err);

	cr_assert_not_null(s, "svc_open: %s", err);
	return s;
}

static struct store *
open_other(void)
{
	char err[512];
	struct store *st = store_open(dbpath, "sql", err, sizeof err);

	cr_assert_not_null(st, "store_open: %s", err);
	return st;
}

/* ---- the change hook, recorded ------------------------------------------ */

struct seen {
	int calls;
	size_t n;
	hd_id first;
	unsigned flags;
	bool had_store;
	int nested; /* store_txn inside the hook: STORE_ERR when one is open */
	int events; /* events listed from inside the hook */
	bool peek;  /* count the events another connection sees, too */
	int other_events;
	bool fail_outbox;  /* fail a call that must write the outbox rows */
	unsigned flags_of[4]; /* flags of the first calls */
};

static int events_committed(void);

static int
nop_tx(struct store *st, void *arg)
{
	(void)st, (void)arg;
	return 0;
}

static int
hook(void *arg, const struct world *w, struct store *st, const hd_id *devs, size_t n,
     const char *why, unsigned flags)
{
	struct seen *sn = arg;

	(void)w, (void)why;
	if (sn->calls < 4)
		sn->flags_of[sn->calls] = flags;
	sn->calls++;
	sn->n = n;
	sn->first = n > 0 ? devs[0] : 0;
	sn->flags = flags;
	sn->had_store = st != NULL;
	if (st != NULL) {
		sn->nested = store_txn(st, nop_tx, NULL);
		sn->events = (int)tu_events(st, NULL);
	}
	if (sn->peek)
		sn->other_events = events_committed();
	return sn->fail_outbox && (flags & SVC_CHANGE_OUTBOX) ? -1 : 0;
}

/* Events in the database, read through a connection of its own. */
static int
events_in_db(void)
{
	struct store *st = open_other();
	long n = tu_events(st, NULL);

	cr_assert_geq(n, 0);
	store_close(st);
	return (int)n;
}

/* Events committed, as a reader sees them meanwhile (a plain read-only
 * connection: store_open would wait for the write lock to migrate). */
static int
events_committed(void)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;

	cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM events", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* ---- bodies -------------------------------------------------------------- */

struct body {
	int ran;
	int result;  /* what the body returns */
	hd_id dev;   /* handed to the hook when non-zero */
	unsigned flags;
};

static int
two_events(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct body *b = arg;

	(void)w;
	b->ran++;
	cr_assert_eq(store_event_add(st, 1, "test.first", 0, NULL, NULL, NULL), 0);
	cr_assert_eq(store_event_add(st, 2, "test.second", 0, NULL, NULL, NULL), 0);
	if (b->dev != 0)
		cr_assert_eq(hd_idset_add(&chg->devs, b->dev), 0);
	chg->flags = b->flags;
	return b->result;
}

/* A device, so that the hook has something to be handed. */
static void
add_device(struct svc *s)
{
	struct svc_result r = { 0 };
	struct hd_org *o = calloc(1, sizeof(*o));
	struct hd_dev *d = calloc(1, sizeof(*d));

	cr_assert(o != NULL && d != NULL);
	o->name = strdup("acme");
	cr_assert_eq(svc_org_put(s, o, &r), SVC_OK, "%s", r.err);
	memcpy(d->mac, "0004f2000001", sizeof(d->mac));
	d->profile = strdup("polycom");
	d->model = strdup("VVX411");
	d->org = 1;
	cr_assert_eq(svc_dev_put(s, d, &r), SVC_OK, "%s", r.err);
}

static int
find_dev(const struct world *w, struct store *st, void *arg)
{
	const struct hd_dev *d = world_dev_by_mac(w, "0004f2000001");

	(void)st;
	*(hd_id *)arg = d ? d->id : 0;
	return 0;
}

/* ---- tests --------------------------------------------------------------- */

/* A service with one device, which b hands to the hook sn records; the
 * events in the database before. */
static struct svc *
open_with_device(struct seen *sn, struct body *b, int *before)
{
	struct svc *s = open_svc();

	add_device(s);
	cr_assert_eq(svc_locked(s, find_dev, &b->dev), 0);
	cr_assert_neq(b->dev, 0);
	svc_set_change_hook(s, hook, sn);
	*before = events_in_db();
	return s;
}

Test(txn, body_commits_then_hook_runs_in_its_own_transaction)
{
	struct seen sn = { 0 };
	struct body b = { 0 };
	int before;
	struct svc *s = open_with_device(&sn, &b, &before);

	b.flags = SVC_CHANGE_NOTIFY_ALL;
	cr_assert_eq(svc_transact(s, "test", two_events, NULL, &b), SVC_OK);
	cr_assert_eq(b.ran, 1);
	cr_assert_eq(events_in_db(), before + 2);
	cr_assert_eq(sn.calls, 1);
	cr_assert_eq(sn.n, 1);
	cr_assert_eq(sn.first, b.dev);
	cr_assert_eq(sn.flags, SVC_CHANGE_NOTIFY_ALL);
	cr_assert(sn.had_store);
	cr_assert_eq(sn.nested, STORE_ERR, "the hook runs inside a transaction");
	cr_assert_eq(sn.events, before + 2, "the hook sees what was committed");
	svc_close(s);
}

Test(txn, a_folded_body_hands_its_devices_to_the_hook_in_its_own_transaction)
{
	struct seen sn = { .peek = true };
	struct body b = { 0 };
	int before;
	struct svc *s = open_with_device(&sn, &b, &before);

	b.flags = SVC_CHANGE_BULK | SVC_CHANGE_FOLD;
	cr_assert_eq(svc_transact(s, "test", two_events, NULL, &b), SVC_OK);
	cr_assert_eq(sn.calls, 1, "handed once: no second transaction");
	cr_assert_eq(sn.first, b.dev);
	cr_assert_eq(sn.flags, SVC_CHANGE_BULK | SVC_CHANGE_OUTBOX,
	             "the hook writes the outbox rows; the fold is the service's");
	cr_assert(sn.had_store);
	cr_assert_eq(sn.nested, STORE_ERR, "inside a transaction");
	cr_assert_eq(sn.events, before + 2, "the body's writes, in the same transaction");
	cr_assert_eq(sn.other_events, before, "not committed yet when the hook runs");
	cr_assert_eq(events_in_db(), before + 2);
	svc_close(s);
}

Test(txn, a_folded_hook_that_fails_rolls_the_body_back_and_publishes_again)
{
	struct seen sn = { .fail_outbox = true };
	struct body b = { 0 };
	int before;
	struct svc *s = open_with_device(&sn, &b, &before);

	b.flags = SVC_CHANGE_FOLD;
	cr_assert_eq(svc_transact(s, "test", two_events, NULL, &b), SVC_INTERNAL);
	cr_assert_eq(events_in_db(), before, "the body's writes went with the rollback");
	cr_assert_eq(sn.calls, 2);
	cr_assert_eq(sn.flags_of[0], SVC_CHANGE_OUTBOX);
	cr_assert_eq(sn.flags_of[1], 0, "then the devices as they are, in a transaction of its own");
	cr_assert(sn.had_store);
	cr_assert_eq(sn.first, b.dev);
	svc_close(s);
}

/* The unlock hook: what it saw of the service when it ran. */
struct unlocked {
	struct svc *s;
	struct seen *sn;
	int calls;
	int hook_calls; /* the change hook's calls by then */
	int lock_rc;    /* svc_locked from inside it: the lock is free */
};

static int
nop_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w, (void)st;
	return *(int *)arg;
}

static void
on_unlocked(void *arg)
{
	struct unlocked *u = arg;
	int v = 7;

	u->calls++;
	u->hook_calls = u->sn->calls;
	/* deadlocks (the suite's timeout) were the service lock still held */
	u->lock_rc = svc_locked(u->s, nop_locked, &v);
}

Test(txn, the_unlock_hook_runs_once_the_lock_is_released_after_a_change_only)
{
	struct svc *s = open_svc();
	struct seen sn = { 0 };
	struct unlocked u = { s, &sn, 0, 0, 0 };
	struct body b = { 0 };

	add_device(s);
	cr_assert_eq(svc_locked(s, find_dev, &b.dev), 0);
	svc_set_change_hook(s, hook, &sn);
	svc_set_unlock_hook(s, on_unlocked, &u);
	cr_assert_eq(svc_transact(s, "test", two_events, NULL, &b), SVC_OK);
	cr_assert_eq(sn.calls, 1);
	cr_assert_eq(u.calls, 1, "one change, one call");
	cr_assert_eq(u.hook_calls, 1, "after the change hook");
	cr_assert_eq(u.lock_rc, 7, "with the lock free");
	/* nothing handed on: no call */
	b.dev = 0;
	cr_assert_eq(svc_transact(s, "test", two_events, NULL, &b), SVC_OK);
	cr_assert_eq(u.calls, 1, "no device changed: not called");
	b.result = 42;
	b.dev = 0;
	cr_assert_eq(svc_locked(s, find_dev, &b.dev), 0);
	cr_assert_eq(svc_transact(s, "test", two_events, NULL, &b), 42);
	cr_assert_eq(u.calls, 1, "rolled back: not called");
	/* and once more for the next change */
	b.result = 0;
	cr_assert_eq(svc_transact(s, "test", two_events, NULL, &b), SVC_OK);
	cr_assert_eq(u.calls, 2);
	cr_assert_eq(u.lock_rc, 7);
	svc_close(s);
}

Test(txn, body_failing_rolls_back_everything)
{
	struct svc *s = open_svc();
	struct seen sn = { 0 };
	struct body b = { .result = 42, .dev = 7 };
	int before = events_in_db();

	svc_set_change_hook(s, hook, &sn);
	cr_assert_eq(svc_transact(s, "test", two_events, NULL, &b), 42);
	cr_assert_eq(b.ran, 1);
	cr_assert_eq(events_in_db(), before, "both events went with the rollback");
	cr_assert_eq(sn.calls, 0, "nothing committed: nothing handed on");
	svc_close(s);
}

/* Runs while `other` holds the database's write lock. */
struct locked_call {
	struct svc *s;
	struct body b;
	struct seen *sn;
	int rc, org_rc;
	size_t count;
	int resync_rc;
};

static int
while_locked(struct store *other, void *arg)
{
	struct locked_call *c = arg;
	struct svc_result r = { 0 };
	struct hd_org *o = calloc(1, sizeof(*o));

	(void)other;
	cr_assert_not_null(o);
	o->name = strdup("beta");
	c->rc = svc_transact(c->s, "test", two_events, NULL, &c->b);
	c->org_rc = svc_org_put(c->s, o, &r);
	c->resync_rc = svc_resync(c->s, NULL, "acme", &c->count, &r);
	return 1; /* the lock holder writes nothing */
}

static int
count_orgs(const struct world *w, struct store *st, void *arg)
{
	(void)st;
	*(size_t *)arg = world_count_orgs(w);
	return 0;
}

Test(txn, begin_that_fails_fails_the_operation_and_writes_nothing)
{
	struct svc *s = open_svc();
	struct store *other;
	struct seen sn = { 0 };
	struct locked_call c = { .s = s, .sn = &sn, .b = { .dev = 1 } };
	size_t orgs = 0;
	int before;

	add_device(s);
	svc_set_change_hook(s, hook, &sn);
	before = events_in_db();
	other = open_other();
	cr_assert_eq(store_txn(other, while_locked, &c), 1);
	store_close(other);
	cr_assert_eq(c.rc, SVC_INTERNAL);
	cr_assert_eq(c.b.ran, 0, "the body never runs without its transaction");
	cr_assert_eq(c.org_rc, SVC_INTERNAL);
	cr_assert_eq(c.resync_rc, SVC_INTERNAL);
	cr_assert_eq(c.count, 0);
	cr_assert_eq(sn.calls, 0, "nothing committed: nothing handed on");
	cr_assert_eq(events_in_db(), before, "not one row was written");
	cr_assert_eq(svc_locked(s, count_orgs, &orgs), 0);
	cr_assert_eq(orgs, 1, "the world is as before");

	/* the lock gone, the same calls work */
	cr_assert_eq(svc_transact(s, "test", two_events, NULL, &c.b), SVC_OK);
	cr_assert_eq(events_in_db(), before + 2);
	svc_close(s);
}

/* `after` runs after the commit, before the hook; non-zero skips it. */
static int
after_skip(const struct world *w, struct store *st, void *arg)
{
	struct body *b = arg;

	(void)w;
	cr_assert_not_null(st);
	b->ran += 10;
	return -1;
}

Test(txn, after_runs_once_committed_and_may_stop_the_hook)
{
	struct svc *s = open_svc();
	struct seen sn = { 0 };
	struct body b = { .dev = 1 };

	svc_set_change_hook(s, hook, &sn);
	cr_assert_eq(svc_transact(s, "test", two_events, after_skip, &b), SVC_OK);
	cr_assert_eq(b.ran, 11);
	cr_assert_eq(sn.calls, 0);
	b.result = 3;
	cr_assert_eq(svc_transact(s, "test", two_events, after_skip, &b), 3);
	cr_assert_eq(b.ran, 12, "after does not run when the body rolled back");
	svc_close(s);
}
