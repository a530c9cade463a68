/*
 * test_service.c -- the application layer (src/service.h) on an in-memory
 * store with the store's fault hook (tests/faults.h): every kind of change
 * -- moves, returns, administrators' changes and deletes, template saves
 * -- run once per store step with that step failing.  After each run the
 * world equals the store's, the invariants hold, the change happened whole
 * or not at all, and the files served are a fresh render of the stored
 * world.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "demand.h"
#include "event.h"
#include "idle.h"
#include "metrics.h"
#include "secret.h"
#include "faults.h"

/* ---- moves and returns ------------------------------------------------------ */

struct star30_op {
	const char *caller, *digits, *code;
	enum virt_result want;
};

static int
op_star30(struct fx *f, void *arg)
{
	const struct star30_op *o = arg;
	struct svc_star30_req rq = { .caller = o->caller, .digits = o->digits, .code = o->code,
	                             .call_id = "call-1@pbx" };
	struct svc_star30_res res;
	int rc = svc_star30(f->svc, &rq, &res);

	return rc == SVC_OK && res.result != o->want ? FX_WRONG + (int)res.result : rc;
}

Test(service_faults, move_onto_a_parked_phone)
{
	/* Eve (no home) onto Dee's parked phone */
	struct star30_op o = { "acme-park3", "104", FX_CODE, VIRT_ACCEPTED };

	fx_faults("*30 104 onto a parked phone", op_star30, &o);
}

Test(service_faults, move_displacing_a_visitor)
{
	/* 101 goes onto Ada's phone, where Dee (103) is visiting */
	struct star30_op o = { "acme103", "101", FX_CODE, VIRT_ACCEPTED };

	fx_faults("*30 101 onto a visited phone", op_star30, &o);
}

Test(service_faults, bare_star30_returns_home)
{
	/* Bob's phone hosts Cy: a bare *30 there sends Cy home */
	struct star30_op o = { "acme102", NULL, NULL, VIRT_RETURNED };

	fx_faults("bare *30", op_star30, &o);
}

static int
dev_id_locked(const struct world *w, struct store *st, void *arg)
{
	void **a = arg;
	const struct hd_dev *d = world_dev_by_mac(w, a[0]);

	(void)st;
	cr_assert_not_null(d, "%s", (const char *)a[0]);
	*(hd_id *)a[1] = d->id;
	return 0;
}

static hd_id
dev_id(struct fx *f, const char *mac)
{
	hd_id id = 0;
	void *a[2] = { (void *)mac, &id };

	cr_assert_eq(svc_locked(f->svc, dev_id_locked, a), 0);
	return id;
}

/* The rows of a move are written by the change hook (SVC_CHANGE_OUTBOX),
 * not by the service: each phone the move changes is owed a NOTIFY, and
 * no other. */
Test(service, a_move_owes_a_notify_to_each_phone_it_changes)
{
	struct fx *f = fx_new();
	struct star30_op o = { "acme102", NULL, NULL, VIRT_RETURNED };
	hd_id bob = dev_id(f, "0004f2000101"), cy = dev_id(f, "00605c000102");
	char *out, want[256];
	FILE *m = fmemopen(want, sizeof(want), "w");
	const char *macs[] = { "001565000100", "0004f2000101", "00605c000102", "001565000103" };

	cr_assert_not_null(m);
	for (size_t i = 0; i < 4; i++) {
		hd_id id = dev_id(f, macs[i]);

		fprintf(m, "%lld %s\n", (long long)id, id == bob || id == cy ? "pending" : "synced");
	}
	fclose(m);
	fx_outbox_synced(f);
	/* Bob's phone hosts Cy: a bare *30 there sends Cy home */
	cr_assert_eq(op_star30(f, &o), SVC_OK);
	out = fx_outbox(f);
	cr_assert_str_eq(out, want);
	free(out);
	fx_free(f);
}

/* The guard's record of a (phone, extension) pair after a *30 from the
 * parked phone 001565000103 for Eve (104): 1 and *sp, or 0 (no row). */
struct pair_q {
	hd_id ext;
	struct store_pair sp;
	int found;
};

static int
pair_locked(const struct world *w, struct store *st, void *arg)
{
	struct pair_q *q = arg;
	const struct hd_dev *d = world_dev_by_mac(w, "001565000103");

	cr_assert_not_null(d);
	q->found = store_pair_get(st, d->id, q->ext, &q->sp);
	return 0;
}

/* A right code with nothing to forget writes no pair row (the move's
 * commit stays small); after a wrong code the row is reset to zeros. */
Test(service, a_right_code_writes_a_pair_only_to_reset_it)
{
	struct fx *f = fx_new();
	struct pair_q q = { .ext = fx_ext_id(f, "104") };

	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	cr_assert_eq(svc_locked(f->svc, pair_locked, &q), 0);
	cr_assert_eq(q.found, 0, "a pair row was written for a first right code");
	fx_free(f);

	f = fx_new();
	q.ext = fx_ext_id(f, "104");
	fx_star30_ok(f, "acme-park3", "104", "0000", VIRT_RETRY);
	cr_assert_eq(svc_locked(f->svc, pair_locked, &q), 0);
	cr_assert_eq(q.found, 1);
	cr_assert_gt(q.sp.failures_in_window + q.sp.call_failures, 0);
	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	cr_assert_eq(svc_locked(f->svc, pair_locked, &q), 0);
	cr_assert_eq(q.found, 1);
	cr_assert_eq(q.sp.failures_in_window, 0);
	cr_assert_eq(q.sp.window_start, 0);
	cr_assert_eq(q.sp.call_failures, 0);
	cr_assert_eq(q.sp.lock_level, 0);
	fx_free(f);
}

/* What the change hook of a move found in its transaction. */
struct hook_seen {
	struct fx *f;
	int calls;
	int events; /* event rows, at its first call */
};

static int
seen_hook(void *arg, const struct world *w, struct store *st, const hd_id *devs, size_t n,
          const char *why, unsigned flags)
{
	struct hook_seen *h = arg;

	if (h->calls++ == 0)
		cr_assert_geq(h->events = (int)tu_events(st, NULL), 0);
	return fx_on_change(h->f, w, st, devs, n, why, flags);
}

static int
events_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	*(int *)arg = (int)tu_events(st, NULL);
	return *(int *)arg < 0 ? -1 : 0;
}

/* A move publishes before it writes its rows (the TFTP writer puts the
 * files in place while they are written): its hook, in its transaction,
 * does not find its event yet; it is there once the move committed. */
Test(service, a_move_publishes_before_it_writes_its_rows)
{
	struct fx *f = fx_new();
	struct hook_seen h = { .f = f };
	int before = 0, after = 0;

	cr_assert_eq(svc_locked(f->svc, events_locked, &before), 0);
	svc_set_change_hook(f->svc, seen_hook, &h);
	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	cr_assert_eq(h.calls, 1, "one transaction: the hook ran once");
	cr_assert_eq(h.events, before, "the move's event was written before its hook ran");
	cr_assert_eq(svc_locked(f->svc, events_locked, &after), 0);
	cr_assert_eq(after, before + 1, "the move's event is missing after its commit");
	fx_free(f);
}

/* What the prerender and check hooks of moves found. */
struct prerender_seen {
	struct fx *f;
	hd_id ext;         /* the extension that moves */
	int calls;         /* prerender hook runs */
	size_t n;          /* devices it was given, at its last call */
	hd_id on;          /* where the world had the extension then */
	int check_renders; /* renders in the check hook, at its last call */
	int checks;        /* check hook runs */
	/* a move under way (demand.h) at the last prerender, the last check */
	bool moving_prerender, moving_check;
};

static void
seen_prerender(void *arg, const struct world *w, const hd_id *devs, size_t n)
{
	struct prerender_seen *h = arg;
	const struct hd_ext *e = world_ext(w, h->ext);

	h->calls++;
	h->n = n;
	h->on = e != NULL ? e->virtual_on : 0;
	h->moving_prerender = demand_move_now();
	fx_on_prerender(h->f, w, devs, n);
}

static int
seen_check(void *arg, const struct world *w, const hd_id *devs, size_t n, char *err,
           size_t errlen)
{
	struct prerender_seen *h = arg;
	uint64_t r0 = metrics_counter(METRICS_DEVICE_RENDERS);
	int rc = fx_on_check(h->f, w, devs, n, err, errlen);

	h->check_renders = (int)(metrics_counter(METRICS_DEVICE_RENDERS) - r0);
	h->checks++;
	h->moving_check = demand_move_now();
	return rc;
}

/* in: an extension's id, or 0 for the parked device acme-park3 calls
 * from; out: where the extension is (virtual_on), or that device's id */
static int
where_locked(const struct world *w, struct store *st, void *arg)
{
	hd_id *v = arg;
	const struct hd_ext *e = *v != 0 ? world_ext(w, *v) : NULL;
	const struct hd_dev *d = world_dev_by_mac(w, "001565000103");

	(void)st;
	cr_assert(*v == 0 ? d != NULL : e != NULL);
	*v = *v != 0 ? e->virtual_on : d->id;
	return 0;
}

/* While the code is checked, the move it would make is rendered (with
 * the world as the move leaves it, then undone): a wrong code leaves the
 * world and the files as they were; after the right one the check takes
 * those files and renders nothing under the lock. */
Test(service, a_move_is_rendered_while_its_code_is_checked)
{
	struct fx *f = fx_new();
	struct prerender_seen h = { .f = f, .ext = fx_ext_id(f, "104") };
	hd_id park = 0, on = h.ext;

	svc_set_prerender_hook(f->svc, seen_prerender, &h);
	svc_set_check_hook(f->svc, seen_check, &h);
	cr_assert_eq(svc_locked(f->svc, where_locked, &park), 0);
	fx_star30_ok(f, "acme-park3", "104", "0000", VIRT_RETRY);
	cr_assert_eq(h.calls, 1);
	cr_assert_eq(h.on, park, "not prerendered with the world as the move leaves it");
	cr_assert_eq(svc_locked(f->svc, where_locked, &on), 0);
	cr_assert_eq(on, 0, "a wrong code's prerender left the move in the world");
	fx_check(f, "after a wrong code", NULL);

	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	cr_assert_eq(h.calls, 2);
	cr_assert_geq(h.n, 1);
	on = h.ext;
	cr_assert_eq(svc_locked(f->svc, where_locked, &on), 0);
	cr_assert_eq(on, park);
	cr_assert_eq(h.check_renders, 0, "the locked check rendered again what was prerendered");
	fx_check(f, "after the move", NULL);
	fx_free(f);
}

/* A change made while a *30's code is checked: the prerender hook (run
 * during the hash, lock held) starts it on a thread and returns once that
 * thread queues for the lock.  The *30's own thread takes the lock as a
 * job in steps does (svc_thread_steps: it leaves the lock to a thread
 * queued for it), so the change is made before the check. */
struct meanwhile {
	struct fx *f;
	int (*op)(struct fx *f, void *arg);
	void *arg;
	pthread_t t;
	bool started;
	int rc;
};

static void *
meanwhile_main(void *arg)
{
	struct meanwhile *m = arg;

	m->rc = m->op(m->f, m->arg);
	/* its files written, as a request's thread waits for them before it
	 * answers (main.c): pub_settle waits for the calling thread's own */
	pub_settle(m->f->pub);
	return NULL;
}

static void
meanwhile_prerender(void *arg, const struct world *w, const hd_id *devs, size_t n)
{
	struct meanwhile *m = arg;
	struct timespec pause = { 0, 100000 };

	fx_on_prerender(m->f, w, devs, n);
	if (m->started)
		return;
	cr_assert_eq(pthread_create(&m->t, NULL, meanwhile_main, m), 0);
	m->started = true;
	while (!svc_wanted(m->f->svc))
		nanosleep(&pause, NULL);
}

static struct svc_star30_res
star30_meanwhile(struct fx *f, const char *caller, const char *digits,
                 int (*op)(struct fx *f, void *arg), void *arg)
{
	struct meanwhile m = { .f = f, .op = op, .arg = arg };
	struct svc_star30_req rq = { .caller = caller, .digits = digits, .code = FX_CODE };
	struct svc_star30_res res;

	svc_set_prerender_hook(f->svc, meanwhile_prerender, &m);
	svc_thread_steps(true);
	cr_assert_eq(svc_star30(f->svc, &rq, &res), SVC_OK);
	svc_thread_steps(false);
	cr_assert(m.started, "the code was not checked apart");
	cr_assert_eq(pthread_join(m.t, NULL), 0);
	cr_assert_eq(m.rc, SVC_OK, "the change made meanwhile failed");
	svc_set_prerender_hook(f->svc, fx_on_prerender, f);
	return res;
}

static int
ada_phone_to_eve(struct fx *f, void *eve)
{
	struct svc_result r = { 0 };

	/* one lock: Eve's id was found before */
	return svc_dev_put(f->svc, fx_dev(f->org, "001565000100", "yealink", *(hd_id *)eve, NULL),
	                   &r);
}

static int
cy_returned(struct fx *f, void *arg)
{
	struct svc_star30_res res;
	struct svc_result r = { 0 };

	(void)arg;
	return svc_ext_return(f->svc, f->org, "102", &res, &r);
}

/* Dee, on Ada's phone, dials *30 104 with Eve's code; while it is checked
 * the phone becomes Eve's home: *30<Eve> from Eve's home is her return to
 * base, which the answer says and the move does (Dee leaves, Eve comes
 * back). */
/* Sleeps past the grace of the last move's end (demand.h). */
static void
demand_past_grace(void)
{
	struct timespec t = { 0, (long)(3 * DEMAND_MOVE_GRACE_NS) };

	nanosleep(&t, NULL);
}

/* What a *30 tells the jobs in steps (demand.h): a move under way while
 * it holds the lock, not while its code is checked, and none once it
 * returned (an error path included). */
Test(service, a_move_is_under_way_for_jobs_but_while_its_code_is_checked)
{
	struct fx *f = fx_new();
	struct prerender_seen h = { .f = f };

	svc_set_prerender_hook(f->svc, seen_prerender, &h);
	svc_set_check_hook(f->svc, seen_check, &h);
	demand_past_grace(); /* fx_new's own moves */
	cr_assert_not(demand_move_now());
	/* a wrong code: checked, nothing changed, over */
	fx_star30_ok(f, "acme-park3", "104", "0000", VIRT_RETRY);
	cr_assert_eq(h.calls, 1);
	cr_assert_not(h.moving_prerender, "a code check leaves the CPUs to jobs");
	demand_past_grace();
	cr_assert_not(demand_move_now(), "a move refused is over");
	/* the right one */
	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	cr_assert_eq(h.calls, 2);
	cr_assert_eq(h.checks, 1);
	cr_assert_not(h.moving_prerender);
	cr_assert(h.moving_check, "a move's locked part is a move under way");
	demand_past_grace();
	cr_assert_not(demand_move_now(), "a move made is over");
	/* a bare *30, no code at all */
	h.moving_check = false;
	fx_star30_ok(f, "acme102", NULL, NULL, VIRT_RETURNED); /* Cy goes home */
	cr_assert_eq(h.checks, 2);
	cr_assert(h.moving_check);
	demand_past_grace();
	cr_assert_not(demand_move_now());
	fx_free(f);
}

/* A move whose code is checked while a job in steps runs (a re-render):
 * under way again (demand.h) shortly before its hash ends, so that the
 * job's step has ended and the CPUs are free when the move goes on.  The
 * hash's time is learned from the checks before (here a wrong code). */
struct ahead_seen {
	struct fx *f;
	atomic_bool hashing;           /* the prerender ran: the hash runs */
	atomic_bool stop;
	atomic_uint_fast64_t back_at;  /* a move first seen under way again */
	atomic_uint_fast64_t checked_at; /* the check hook ran */
};

static void
ahead_prerender(void *arg, const struct world *w, const hd_id *devs, size_t n)
{
	struct ahead_seen *h = arg;

	fx_on_prerender(h->f, w, devs, n);
	atomic_store(&h->back_at, 0);
	atomic_store(&h->hashing, true);
}

static int
ahead_check(void *arg, const struct world *w, const hd_id *devs, size_t n, char *err,
            size_t errlen)
{
	struct ahead_seen *h = arg;

	if (atomic_load(&h->checked_at) == 0)
		atomic_store(&h->checked_at, metrics_now_ns());
	return fx_on_check(h->f, w, devs, n, err, errlen);
}

/* a job in steps, running until stop */
static void *
ahead_steps(void *arg)
{
	struct ahead_seen *h = arg;
	struct timespec t = { 0, 200000 };

	svc_thread_steps(true);
	while (!atomic_load(&h->stop))
		nanosleep(&t, NULL);
	svc_thread_steps(false);
	return NULL;
}

/* what the job sees of the moves while a hash runs */
static void *
ahead_watch(void *arg)
{
	struct ahead_seen *h = arg;
	struct timespec t = { 0, 20000 };

	while (!atomic_load(&h->stop)) {
		if (atomic_load(&h->hashing) && atomic_load(&h->back_at) == 0 && demand_move_now())
			atomic_store(&h->back_at, metrics_now_ns());
		nanosleep(&t, NULL);
	}
	return NULL;
}

/* An extension's code hashed again with mem bytes: 32 MiB, a hash of
 * about 10 ms of CPU; 128 MiB, four times that. */
struct slow_code {
	hd_id ext;
	size_t mem;
};

static int
slow_code_locked(const struct world *w, struct store *st, void *arg)
{
	const struct slow_code *c = arg;
	char was[SECRET_HASH_LEN], slow[SECRET_HASH_LEN], err[160];

	(void)w;
	cr_assert_eq(store_ext_secret(st, c->ext, was, sizeof(was)), 1);
	cr_assert_eq(secret_hash(FX_CODE, 1, c->mem, slow, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_hash_swap(st, STORE_HASH_CODE, c->ext, was, slow), 1);
	return 0;
}

Test(service, a_move_is_under_way_again_before_its_code_check_ends_while_a_job_runs)
{
	struct fx *f = fx_new();
	struct ahead_seen h = { .f = f };
	struct slow_code c = { fx_ext_id(f, "104"), 32u << 20 };
	pthread_t steps, watch;
	uint64_t back, checked;

	svc_set_prerender_hook(f->svc, ahead_prerender, &h);
	svc_set_check_hook(f->svc, ahead_check, &h);
	cr_assert_eq(svc_locked(f->svc, slow_code_locked, &c), 0);
	cr_assert_eq(pthread_create(&steps, NULL, ahead_steps, &h), 0);
	cr_assert_eq(pthread_create(&watch, NULL, ahead_watch, &h), 0);
	/* wrong codes: their checks' time is learned (the fixture's moves
	 * had codes hashed with 8 KiB) */
	fx_star30_ok(f, "acme-park3", "104", "0000", VIRT_RETRY);
	fx_star30_ok(f, "acme-park3", "104", "0001", VIRT_RETRY);
	atomic_store(&h.hashing, false);
	demand_past_grace();
	atomic_store(&h.checked_at, 0);
	/* the right one, with a job in steps running, its hash four times as
	 * long: on a busy machine a hash's CPU time varies, and one shorter
	 * than those learned ends before its move is back under way (the
	 * move then is as it was, not early) */
	c.mem = 128u << 20;
	cr_assert_eq(svc_locked(f->svc, slow_code_locked, &c), 0);
	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	atomic_store(&h.stop, true);
	pthread_join(steps, NULL);
	pthread_join(watch, NULL);
	back = atomic_load(&h.back_at);
	checked = atomic_load(&h.checked_at);
	cr_assert_neq(checked, 0, "the move's check did not run");
	cr_assert_neq(back, 0, "the move was not under way again before its check");
	/* without the early end of its pause, the move is under way again
	 * only microseconds before its locked part */
	cr_assert_gt(checked, back + 1000000,
	             "under way again only %.3f ms before its locked part",
	             (double)(checked > back ? checked - back : 0) / 1e6);
	/* the job's steps want the CPUs the rehearsal would take */
	cr_assert_eq(metrics_counter(METRICS_MOVE_REHEARSALS), 0,
	             "a move rehearsed while a job in steps ran");
	fx_check(f, "after the move", NULL);
	fx_free(f);
}

/* A pair's row, where its extension is and the events recorded so far. */
struct pair_seen {
	hd_id dev, ext;
	struct store_pair pair;
	hd_id on;
	long events, virtualized;
};

static int
pair_seen_locked(const struct world *w, struct store *st, void *arg)
{
	struct pair_seen *p = arg;
	const struct hd_ext *e = world_ext(w, p->ext);
	struct store_event_filter moved = { .type = EVENT_VIRTUALIZED };

	cr_assert_not_null(e);
	p->on = e->virtual_on;
	cr_assert_geq(store_pair_get(st, p->dev, p->ext, &p->pair), 0);
	p->events = tu_events(st, NULL);
	p->virtualized = tu_events(st, &moved);
	cr_assert(p->events >= 0 && p->virtualized >= 0);
	return 0;
}

static struct pair_seen
pair_seen(struct fx *f, hd_id dev, hd_id ext)
{
	struct pair_seen p = { .dev = dev, .ext = ext };

	cr_assert_eq(svc_locked(f->svc, pair_seen_locked, &p), 0);
	return p;
}

/* A move with a code is rehearsed before its hash ends (verify_end): read
 * again under the lock.  Nothing of it is kept: a wrong code rehearsed
 * counts its failure and records what one not rehearsed does; the right
 * one moves once, with one event, its pair reset, and the locked check
 * takes the move's prerender. */
Test(service, a_move_with_a_code_is_rehearsed_before_its_hash_ends_and_nothing_of_it_is_kept)
{
	struct fx *f = fx_new();
	struct prerender_seen h = { .f = f, .ext = fx_ext_id(f, "104") };
	struct slow_code c = { h.ext, 32u << 20 };
	struct pair_seen p0, p1, p2, p3;
	uint64_t r0 = metrics_counter(METRICS_MOVE_REHEARSALS);
	hd_id park = 0;

	svc_set_prerender_hook(f->svc, seen_prerender, &h);
	svc_set_check_hook(f->svc, seen_check, &h);
	cr_assert_eq(svc_locked(f->svc, where_locked, &park), 0);
	cr_assert_eq(svc_locked(f->svc, slow_code_locked, &c), 0);
	p0 = pair_seen(f, park, h.ext);
	/* the first check teaches the hash's time (the fixture's codes were
	 * hashed with 8 KiB, too short to rehearse): not rehearsed */
	fx_star30_ok(f, "acme-park3", "104", "0000", VIRT_RETRY);
	cr_assert_eq(metrics_counter(METRICS_MOVE_REHEARSALS), r0,
	             "a move rehearsed with no hash's time learned");
	p1 = pair_seen(f, park, h.ext);
	cr_assert_eq(p1.pair.failures_in_window, p0.pair.failures_in_window + 1);

	/* hashes four times as long from here: a hash shorter than those
	 * learned could end before its rehearsal */
	c.mem = 128u << 20;
	cr_assert_eq(svc_locked(f->svc, slow_code_locked, &c), 0);
	fx_star30_ok(f, "acme-park3", "104", "0001", VIRT_RETRY);
	cr_assert_eq(metrics_counter(METRICS_MOVE_REHEARSALS), r0 + 1,
	             "a wrong code's move not rehearsed once");
	p2 = pair_seen(f, park, h.ext);
	cr_assert_eq(p2.on, 0, "a rehearsal left the move in the world");
	cr_assert_eq(p2.pair.failures_in_window, p1.pair.failures_in_window + 1);
	cr_assert_eq(p2.pair.call_failures, p1.pair.call_failures + 1);
	cr_assert_eq(p2.events - p1.events, p1.events - p0.events,
	             "a rehearsed wrong code recorded %ld events, one not rehearsed %ld",
	             p2.events - p1.events, p1.events - p0.events);
	cr_assert_eq(p2.virtualized, p0.virtualized);
	fx_check(f, "after a rehearsed wrong code", NULL);

	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	cr_assert_eq(metrics_counter(METRICS_MOVE_REHEARSALS), r0 + 2,
	             "the right code's move not rehearsed once");
	cr_assert_eq(h.calls, 3, "%d renders ahead for 3 moves", h.calls);
	p3 = pair_seen(f, park, h.ext);
	cr_assert_eq(p3.on, park);
	cr_assert_eq(p3.virtualized, p2.virtualized + 1);
	cr_assert_eq(p3.events, p2.events + 1, "%ld events for one move", p3.events - p2.events);
	cr_assert_eq(p3.pair.failures_in_window, 0);
	cr_assert_eq(p3.pair.call_failures, 0);
	cr_assert_eq(h.check_renders, 0, "the locked check rendered again what was prerendered");
	fx_check(f, "after the move", NULL);
	fx_free(f);
}

Test(service, a_phone_made_the_home_while_the_code_is_checked_returns_its_extension)
{
	struct fx *f = fx_new();
	struct svc_star30_res res;
	hd_id eve = fx_ext_id(f, "104"), dee = fx_ext_id(f, "103"), id = eve;

	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED); /* Eve on Dee's phone */
	res = star30_meanwhile(f, "acme103", "104", ada_phone_to_eve, &id);
	cr_assert_eq(res.result, VIRT_RETURNED, "answered %s", virt_result_name(res.result));
	cr_assert_str_eq(res.extension, "104");
	cr_assert_str_eq(res.device, "001565000100");
	cr_assert_eq(svc_locked(f->svc, where_locked, &eve), 0);
	cr_assert_eq(eve, 0, "answered returned, but Eve was not returned");
	cr_assert_eq(svc_locked(f->svc, where_locked, &dee), 0);
	cr_assert_eq(dee, 0, "Dee still on the phone Eve came home to");
	fx_check(f, "after the return", NULL);
	fx_free(f);
}

/* 1 when one move.denied of acme's extension 100 names Bob's phone */
static int
denied_at_bob(const struct world *w, struct store *st, void *arg)
{
	const struct hd_org *o = world_org_by_name(w, "acme");
	struct store_event_filter ev = { .org = o != NULL ? o->id : -1, .type = "move.denied",
	                                 .extension = "100", .device = "0004f2000101" };

	(void)arg;
	return (int)tu_events(st, &ev);
}

/* Cy, on Bob's phone, dials *30 100 with Ada's code; while it is checked
 * Cy is returned (his SIP account is now on his own phone): which phone
 * dialed is no longer known, so nothing moves and the caller is asked
 * again (unknown_caller). */
Test(service, a_caller_moved_while_the_code_is_checked_moves_nothing)
{
	struct fx *f = fx_new();
	struct svc_star30_res res;
	hd_id ada = fx_ext_id(f, "100"), cy = fx_ext_id(f, "102");

	res = star30_meanwhile(f, "acme102", "100", cy_returned, NULL);
	cr_assert_eq(res.result, VIRT_DENIED, "answered %s", virt_result_name(res.result));
	cr_assert_eq(res.reason, VIRT_R_UNKNOWN_CALLER);
	cr_assert_str_eq(res.device, "");
	cr_assert_eq(svc_locked(f->svc, where_locked, &ada), 0);
	cr_assert_eq(ada, 0, "Ada moved to a phone that did not dial");
	cr_assert_eq(svc_locked(f->svc, where_locked, &cy), 0);
	cr_assert_eq(cy, 0);
	cr_assert_eq(svc_locked(f->svc, denied_at_bob, NULL), 1,
	             "the denial is not recorded against the phone that asked");
	fx_check(f, "after the denial", NULL);
	fx_free(f);
}

static int
op_return(struct fx *f, void *arg)
{
	struct svc_star30_res res;
	struct svc_result r = { 0 };
	int rc = svc_ext_return(f->svc, f->org, arg, &res, &r);

	return rc == SVC_OK && res.result != VIRT_RETURNED ? FX_WRONG + (int)res.result : rc;
}

Test(service_faults, return_via_the_api)
{
	fx_faults("return of 103", op_return, "103");
}

/* ---- administrators' changes ------------------------------------------------- */

static int
op_ext_rename(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };

	(void)arg;
	/* Cy is visiting Bob's phone: his new name goes there */
	return svc_ext_put(f->svc, fx_ext(f->org, "102", "Cyrus"), NULL, &r);
}

Test(service_faults, extension_change_renders_where_it_is)
{
	fx_faults("extension 102 renamed", op_ext_rename, NULL);
}

static int
op_ext_no_virt(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };
	struct hd_ext *e = fx_ext(f->org, "100", "Ada");

	(void)arg;
	/* Ada's phone stops hosting: Dee, visiting it, goes home */
	e->allow_virtualization = false;
	return svc_ext_put(f->svc, e, NULL, &r);
}

Test(service_faults, extension_change_sends_a_visitor_home)
{
	fx_faults("extension 100 stops hosting", op_ext_no_virt, NULL);
}

static int
op_ext_new(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };

	(void)arg;
	return svc_ext_put(f->svc, fx_ext(f->org, "105", "Fay"), FX_CODE, &r);
}

Test(service_faults, extension_created)
{
	fx_faults("extension 105 created", op_ext_new, NULL);
}

static int
op_dev_new(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };

	(void)arg;
	return svc_dev_put(f->svc, fx_dev(f->org, "001565000105", "yealink",
	                                  fx_ext_id(f, "104"), NULL), &r);
}

Test(service_faults, device_created)
{
	fx_faults("device for 104 created", op_dev_new, NULL);
}

static int
op_dev_profile(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };

	(void)arg;
	/* Ada's phone (visited by Dee) becomes a Grandstream: other file names */
	return svc_dev_put(f->svc, fx_dev(f->org, "001565000100", "grandstream",
	                                  fx_ext_id(f, "100"), NULL), &r);
}

Test(service_faults, device_changes_family)
{
	fx_faults("device 001565000100 becomes a grandstream", op_dev_profile, NULL);
}

static int
op_dev_rehome(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };

	(void)arg;
	/* Bob's phone (visited by Cy) gets Eve as its home extension */
	return svc_dev_put(f->svc, fx_dev(f->org, "0004f2000101", "polycom",
	                                  fx_ext_id(f, "104"), NULL), &r);
}

Test(service_faults, device_gets_another_home)
{
	fx_faults("device 0004f2000101 re-homed", op_dev_rehome, NULL);
}

static int
op_org_change(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };
	struct hd_org *o = fx_org("acme");

	(void)arg;
	free(o->sip.host);
	o->sip.host = strdup("pbx2.acme.test");
	return svc_org_put(f->svc, o, &r);
}

Test(service_faults, organization_change_renders_every_phone)
{
	fx_faults("organization's SIP server changed", op_org_change, NULL);
}

/* ---- deletes ----------------------------------------------------------------- */

static int
op_ext_delete(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };

	return svc_ext_delete(f->svc, f->org, arg, &r);
}

Test(service_faults, delete_a_visiting_extension)
{
	/* Dee visits Ada's phone and is home on her own parked phone */
	fx_faults("extension 103 deleted", op_ext_delete, "103");
}

Test(service_faults, delete_a_visited_extension)
{
	/* Bob's phone hosts Cy: Bob goes, his phone loses its home */
	fx_faults("extension 101 deleted", op_ext_delete, "101");
}

static int
op_dev_delete(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };

	return svc_dev_delete(f->svc, arg, &r);
}

Test(service_faults, delete_a_visited_device)
{
	/* Ada's phone hosts Dee: Dee goes home, Ada is nowhere */
	fx_faults("device 001565000100 deleted", op_dev_delete, "001565000100");
}

Test(service_faults, delete_a_parked_device)
{
	/* Dee's own phone, parked while she visits */
	fx_faults("device 001565000103 deleted", op_dev_delete, "001565000103");
}

static int
prep_org2(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };

	(void)arg;
	return svc_org_put(f->svc, fx_org("empty"), &r);
}

static int
op_org_delete(struct fx *f, void *arg)
{
	struct svc_result r = { 0 };

	(void)arg;
	return svc_org_delete(f->svc, "empty", &r);
}

Test(service_faults, delete_an_organization)
{
	fx_faults_world("organization deleted", prep_org2, op_org_delete, NULL, true);
}

/* ---- template saves (svc_transact) ----------------------------------------- */

/* A template save as the admin API makes it: in the service's transaction
 * the dry run finds the devices the candidate changes, the new version,
 * their outbox rows and the event are written; after the commit the
 * template is installed and the change hook publishes those devices. */
struct tsave {
	const char *profile, *name, *insert;
	struct fx *f;
	char *src;
	size_t len;
	struct hd_idset changed;
	bool installed;
};

static int
tsave_dry(const struct pub_dry_dev *d, void *arg)
{
	struct tsave *t = arg;

	cr_assert_geq(d->result, 0, "%s: %s", d->dev->mac, d->error);
	return d->result > 0 ? hd_idset_add(&t->changed, d->dev->id) : 0;
}

static int
tsave_body(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct tsave *t = arg;
	const struct vendor_profile *prof = vendor_profile_by_name(t->profile);
	long long now = 1000;
	char err[256];
	int version;

	if (pub_dry_run(t->f->pub, w, prof, t->name, t->src, t->len, tsave_dry, t, err,
	                sizeof(err)) != 0)
		return -1;
	if (store_tmpl_add(st, t->profile, t->name, t->src, "test", now, &version) != 0)
		return -1;
	for (size_t i = 0; i < t->changed.n; i++)
		if (store_resync_enqueue(st, t->changed.v[i], now) != 0)
			return -1;
	if (event_add(st, now, "template.put", 0, NULL, NULL, json_pack("{s:b}", "test", 1)) != 0)
		return -1;
	chg->devs = t->changed;
	memset(&t->changed, 0, sizeof(t->changed));
	return 0;
}

static int
tsave_install(const struct world *w, struct store *st, void *arg)
{
	struct tsave *t = arg;
	char err[256];

	(void)w;
	(void)st;
	cr_assert_eq(pub_template_set(t->f->pub, vendor_profile_by_name(t->profile), t->name,
	                              t->src, t->len, err, sizeof(err)), 0, "%s", err);
	t->installed = true;
	return 0;
}

static int
op_tsave(struct fx *f, void *arg)
{
	struct tsave *t = arg;
	const struct vendor_profile *prof = vendor_profile_by_name(t->profile);
	char *def = NULL, err[256];
	size_t len = 0, ilen = strlen(t->insert), first;
	const char *nl;
	int rc;

	t->f = f;
	t->installed = false;
	memset(&t->changed, 0, sizeof(t->changed));
	cr_assert_eq(pub_template_default(f->pub, prof, t->name, &def, &len, err, sizeof(err)), 0,
	             "%s", err);
	nl = memchr(def, '\n', len);
	cr_assert_not_null(nl);
	first = (size_t)(nl - def) + 1;
	t->src = malloc(len + ilen + 1);
	cr_assert_not_null(t->src);
	memcpy(t->src, def, first);
	memcpy(t->src + first, t->insert, ilen);
	memcpy(t->src + first + ilen, def + first, len - first + 1);
	t->len = len + ilen;
	free(def);
	rc = svc_transact(f->svc, "template", tsave_body, tsave_install, t);
	hd_idset_free(&t->changed);
	free(t->src);
	/* a save that committed installed its template; one that did not
	 * changed nothing */
	if (rc == SVC_OK && !t->installed)
		return FX_WRONG;
	return rc == SVC_OK ? SVC_OK : SVC_INTERNAL;
}

Test(service_faults, template_save)
{
	struct tsave t = { .profile = "yealink", .name = "device.cfg", .insert = "# saved by a test\n" };

	fx_faults_world("yealink device.cfg saved", NULL, op_tsave, &t, false);
}

/* ---- waiting for the lock ----------------------------------------------------- */

/* A background thread with idle work (the resync engine sending a move's
 * first NOTIFYs) runs it while it waits for the service lock, and not
 * once it has the lock, nor when the lock was free. */
struct idle_probe {
	struct svc *svc;
	pthread_t waiter;
	atomic_int idles;
	int idles_when_locked, idles_when_free;
};

static void
count_idle(void *arg)
{
	atomic_fetch_add(&((struct idle_probe *)arg)->idles, 1);
}

static int
note_locked(const struct world *w, struct store *st, void *arg)
{
	struct idle_probe *p = arg;

	p->idles_when_locked = atomic_load(&p->idles);
	return 0;
}

static int
note_free(const struct world *w, struct store *st, void *arg)
{
	struct idle_probe *p = arg;

	p->idles_when_free = atomic_load(&p->idles);
	return 0;
}

static void *
idle_waiter(void *arg)
{
	struct idle_probe *p = arg;

	svc_thread_background();
	idle_set(count_idle, p);
	svc_locked(p->svc, note_locked, p); /* waits for hold_a_while */
	svc_locked(p->svc, note_free, p);   /* nobody holds it */
	return NULL;
}

/* Holds the lock 100 ms with the waiter started. */
static int
hold_a_while(const struct world *w, struct store *st, void *arg)
{
	struct idle_probe *p = arg;
	struct timespec t = { 0, 100 * 1000000L };

	cr_assert_eq(pthread_create(&p->waiter, NULL, idle_waiter, p), 0);
	while (nanosleep(&t, &t) != 0)
		;
	return 0;
}

Test(service, a_background_thread_does_its_idle_work_while_it_waits_for_the_lock)
{
	struct fx *f = fx_new();
	struct idle_probe p = { .svc = f->svc };

	svc_locked(f->svc, hold_a_while, &p);
	cr_assert_eq(pthread_join(p.waiter, NULL), 0);
	/* every IDLE_MS of the 100 ms: a few at least, on a busy machine */
	cr_assert_geq(p.idles_when_locked, 3, "idle work ran %d times in 100 ms of waiting",
	              p.idles_when_locked);
	cr_assert_eq(p.idles_when_free, p.idles_when_locked, "idle work ran with the lock held");
	cr_assert_eq(atomic_load(&p.idles), p.idles_when_locked, "idle work ran after the wait");
	fx_free(f);
}

/* A job in steps (a template save) does not queue for the lock: a thread
 * that queued for it while the job waited too (a *30 move) has it first,
 * and its unlock wakes no thread that would take its CPU. */
struct order_probe {
	struct svc *svc;
	pthread_t job, move;
	atomic_int next;
	int job_at, move_at;
};

static int
note_job(const struct world *w, struct store *st, void *arg)
{
	struct order_probe *p = arg;

	p->job_at = atomic_fetch_add(&p->next, 1);
	return 0;
}

static int
note_move(const struct world *w, struct store *st, void *arg)
{
	struct order_probe *p = arg;

	p->move_at = atomic_fetch_add(&p->next, 1);
	return 0;
}

static void *
job_in_steps(void *arg)
{
	struct order_probe *p = arg;

	svc_thread_steps(true);
	svc_locked(p->svc, note_job, p);
	svc_thread_steps(false);
	return NULL;
}

static void *
a_move(void *arg)
{
	struct order_probe *p = arg;

	svc_locked(p->svc, note_move, p);
	return NULL;
}

/* Holds the lock while the job, then the move, start waiting for it: it
 * lets go once the move is queued (svc_wanted), however busy the machine
 * (at most 10 s). */
static int
hold_for_both(const struct world *w, struct store *st, void *arg)
{
	struct order_probe *p = arg;
	struct timespec t = { 0, 30 * 1000000L };

	cr_assert_eq(pthread_create(&p->job, NULL, job_in_steps, p), 0);
	while (nanosleep(&t, &t) != 0)
		;
	cr_assert_eq(pthread_create(&p->move, NULL, a_move, p), 0);
	for (int i = 0; i < 10000 && !svc_wanted(p->svc); i++) {
		t.tv_nsec = 1000000L;
		while (nanosleep(&t, &t) != 0)
			;
	}
	cr_assert(svc_wanted(p->svc), "the move did not queue for the lock within 10 s");
	return 0;
}

Test(service, a_job_in_steps_leaves_the_lock_to_a_thread_queued_for_it)
{
	struct fx *f = fx_new();
	struct order_probe p = { .svc = f->svc };

	svc_locked(f->svc, hold_for_both, &p);
	cr_assert_eq(pthread_join(p.job, NULL), 0);
	cr_assert_eq(pthread_join(p.move, NULL), 0);
	cr_assert_eq(p.move_at, 0, "the thread queued second had the lock at turn %d", p.move_at);
	cr_assert_eq(p.job_at, 1, "the job in steps had the lock at turn %d", p.job_at);
	fx_free(f);
}

/* ---- a job's step in parts (SVC_CHANGE_MORE) --------------------------------- */

/* A body that adds one of the fixture's phones per call and asks to be
 * called again (SVC_CHANGE_MORE) until its max-th call; with waiter, its
 * second call starts a thread that waits for the lock and returns once
 * that thread waits (svc_wanted). */
struct parts {
	struct fx *f;
	int calls, max;
	bool waiter;
	pthread_t t;
	atomic_bool had_lock;
	size_t last_n; /* the list's length at the body's last call */
};

static int
parts_note(const struct world *w, struct store *st, void *arg)
{
	atomic_store(&((struct parts *)arg)->had_lock, true);
	return 0;
}

static void *
parts_wait(void *arg)
{
	struct parts *p = arg;

	svc_locked(p->f->svc, parts_note, p);
	return NULL;
}

static int
parts_body(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	static const char *const macs[] = { "001565000100", "0004f2000101", "001565000103" };
	struct parts *p = arg;

	p->last_n = chg->devs.n;
	if (p->calls < 3) {
		const struct hd_dev *d = world_dev_by_mac(w, macs[p->calls]);

		cr_assert_not_null(d);
		cr_assert_eq(hd_idset_push(&chg->devs, d->id), 0);
	}
	p->calls++;
	chg->flags |= SVC_CHANGE_FOLD;
	if (p->calls < p->max)
		chg->flags |= SVC_CHANGE_MORE;
	if (p->waiter && p->calls == 2) {
		cr_assert_eq(pthread_create(&p->t, NULL, parts_wait, p), 0);
		for (int i = 0; i < 2000 && !svc_wanted(p->f->svc); i++)
			usleep(1000);
		cr_assert(svc_wanted(p->f->svc), "the thread never waited for the lock");
	}
	return 0;
}

Test(service, a_body_with_more_is_called_again_and_the_hook_has_each_part_once)
{
	struct fx *f = fx_new();
	struct parts p = { .f = f, .max = 4 };
	int hooks = f->hook_calls;

	demand_past_grace(); /* fx_new's moves: a part ends while one is under way */
	cr_assert_eq(svc_transact(f->svc, "test", parts_body, NULL, &p), SVC_OK);
	cr_assert_eq(p.calls, 4);
	/* the list keeps what the hook had: 3 phones, one per part */
	cr_assert_eq(p.last_n, 3);
	cr_assert_eq(f->hook_calls - hooks, 3, "the hook ran %d times for 3 parts",
	             f->hook_calls - hooks);
	fx_free(f);
}

Test(service, a_body_with_more_commits_what_it_has_once_a_thread_waits_for_the_lock)
{
	struct fx *f = fx_new();
	struct parts p = { .f = f, .max = 1000, .waiter = true };

	demand_past_grace(); /* fx_new's moves: a part ends while one is under way */
	cr_assert_eq(svc_transact(f->svc, "test", parts_body, NULL, &p), SVC_OK);
	cr_assert_eq(pthread_join(p.t, NULL), 0);
	cr_assert_eq(p.calls, 2, "the body was called %d times after a thread waited", p.calls);
	cr_assert(atomic_load(&p.had_lock));
	fx_free(f);
}

/* A move under way (demand.h) ends a body's part as a waiting thread does:
 * what it has commits, and the job takes its next step after the move. */
Test(service, a_body_with_more_commits_what_it_has_while_a_move_is_under_way)
{
	struct fx *f = fx_new();
	struct parts p = { .f = f, .max = 1000 };

	demand_past_grace();
	demand_move_begin();
	cr_assert(svc_step_over(f->svc));
	cr_assert_eq(svc_transact(f->svc, "test", parts_body, NULL, &p), SVC_OK);
	cr_assert_eq(p.calls, 1, "the body was called %d times during a move", p.calls);
	demand_move_end();
	demand_past_grace();
	cr_assert_not(svc_step_over(f->svc));
	fx_free(f);
}
