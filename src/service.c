/*
 * service.c -- the application layer: one lock, one world, one store.
 *
 * Every change follows the same path (svc_commit):
 *   1. decide with the pure engine (a virt_plan) under the lock;
 *   2. apply the plan to the world and collect the changed devices;
 *   3. write the moves, the admin change and the events to the store in
 *      one transaction; on failure undo the plan in the world (the inverse
 *      moves, in reverse order) and report an internal error;
 *   4. after the commit, hand the changed devices to the change hook.
 * A crash between 3 and 4 loses nothing: on start every device is
 * rendered again from the store (the publisher reconciles).
 *
 * Secret codes: hashing and verification run without the lock.  A *30
 * with a code is decided twice: once to find the target and its hash, and
 * again after the verify, under the lock, with the code known good.  A
 * wrong code is counted per call, per (device, extension) across redials
 * and per (device, extension) pair by the pure guard policy; the counters
 * live in the store.  Before a verify starts, one try is reserved under
 * the lock (s->tries); a verify starts only while the call and the pair
 * have more tries left than reservations, otherwise the request waits
 * (tries_done) for a running verify to record its outcome and decides
 * again.  So parallel requests never check more codes than the limits
 * allow, per call and across calls.
 */
#include "service.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "demand.h"
#include "errbuf.h"
#include "event.h"
#include "idle.h"
#include "import.h"
#include "log.h"
#include "metrics.h"
#include "vendor.h"
#include "secret.h"
#include "store.h"
#include "wipe.h"
#include "lockorder.h"

/* A code verify running outside the lock: one try reserved (svc_star30). */
struct svc_try {
	hd_id dev, ext;
	const char *call_id; /* borrowed from the request, NULL when none */
	struct svc_try *next;
};

struct svc {
	struct store_ckpt *ckpt;   /* WAL checkpoints off the writer's path; NULL in memory */
	pthread_mutex_t ckpt_mu;   /* one checkpoint at a time on it */
	long ckpt_tick;            /* the writer's commits at the last tick (ckpt_mu) */
	long ckpt_done;            /* ... when a checkpoint last copied the whole log */
	pthread_mutex_t mu;
	struct world *w;
	struct store *st;
	struct svc_opts o;         /* strings not kept: tokens are hashed at once */
	svc_change_hook hook;
	void *hook_arg;
	svc_reg_hook reg_hook;   /* resync targeting, may be NULL */
	void *reg_hook_arg;
	svc_unlock_hook unlocked; /* after a locked part that handed changes on, may be NULL */
	void *unlocked_arg;
	svc_check_hook check;    /* renders before a commit, may be NULL */
	void *check_arg;
	svc_prerender_hook prerender; /* while a code is checked, may be NULL */
	void *prerender_arg;
	char check_err[200];     /* why the last check refused (lock held) */
	/* The device a delete removes (lock held; 0 = none): neither checked
	 * nor handed to the hook inside the commit, which would record a
	 * version of a row the same transaction deleted; the delete hands it
	 * over once it is gone from the world. */
	hd_id gone;
	struct svc_try *tries;     /* verifies running now, under mu */
	pthread_cond_t tries_done; /* broadcast when one of them ends */
	atomic_int waiting;        /* threads waiting for mu (svc_yield) */
};

/* The log's frames past which a job in steps checkpoints (svc_yield):
 * STORE_WAL_KEEP bytes of 4 KiB pages. */
#define SVC_WAL_LONG_FRAMES (STORE_WAL_KEEP / 4096)

/* Set on a thread whose work can wait (svc_thread_background). */
static _Thread_local bool tl_background;
/* Set on a thread running a job in steps (svc_thread_steps). */
static _Thread_local bool tl_steps;
/* Set on a thread that handed devices to the change hook since it took
 * mu: the unlock hook runs once it releases mu (mu_unlock). */
static _Thread_local bool tl_unlock_owed;

void
svc_thread_background(void)
{
	tl_background = true;
}

/* Threads running a job in steps now (a re-render): no caller waits for
 * its code's verify on its CPU meanwhile (verify_end). */
static atomic_int steps_running;

void
svc_thread_steps(bool on)
{
	if (on != tl_steps)
		atomic_fetch_add(&steps_running, on ? 1 : -1);
	tl_steps = on;
}

bool
svc_wanted(struct svc *s)
{
	return atomic_load(&s->waiting) > 0;
}

bool
svc_step_over(struct svc *s)
{
	return svc_wanted(s) || demand_move_now();
}

/* Takes mu, running the thread's idle work every IDLE_MS while it waits. */
static void
lock_idle(struct svc *s)
{
	for (;;) {
		struct timespec t = idle_deadline();
		int rc = pthread_mutex_timedlock(&s->mu, &t);

		if (rc != ETIMEDOUT) {
			if (rc != 0)
				pthread_mutex_lock(&s->mu);
			return;
		}
		idle_run();
	}
}

/*
 * Takes mu for a job in steps (svc_thread_steps) without queuing on the
 * mutex: it tries, and sleeps POLITE_NS between two tries, leaving the
 * lock to the threads that queue for it (svc_wanted).  A thread queued on
 * the mutex is woken by the unlock, in the unlocking thread's time: a
 * probe of *30 moves during a re-render of 100,000 devices (both CPUs
 * busy) saw the move's unlock take up to 4-5 ms, its CPU gone to the
 * thread it woke (the re-render's next step, or the resync engine, which
 * still queues), before its first NOTIFY.  A sleeper woken by its timer
 * takes no CPU from the thread that unlocked.
 */
#define POLITE_NS 100000 /* 0.1 ms */
static void
lock_polite(struct svc *s)
{
	struct timespec pause = { 0, POLITE_NS };

	while (svc_wanted(s) || pthread_mutex_trylock(&s->mu) != 0)
		nanosleep(&pause, NULL);
}

/* Takes mu, counting the threads that queue for it (svc_wanted): not
 * background threads, nor a job in steps, which polls (lock_polite). */
static void
mu_lock(struct svc *s)
{
	if (tl_steps) {
		lock_polite(s);
		return;
	}
	if (tl_background) {
		if (idle_wanted())
			lock_idle(s);
		else
			pthread_mutex_lock(&s->mu);
		return;
	}
	atomic_fetch_add(&s->waiting, 1);
	pthread_mutex_lock(&s->mu);
	atomic_fetch_sub(&s->waiting, 1);
}

/* Releases mu, then runs the unlock hook when the locked part handed
 * devices to the change hook (what it wakes finds the lock free). */
static void
mu_unlock(struct svc *s)
{
	svc_unlock_hook fn = s->unlocked;
	void *arg = s->unlocked_arg;

	pthread_mutex_unlock(&s->mu);
	if (tl_unlock_owed) {
		tl_unlock_owed = false;
		if (fn != NULL)
			fn(arg);
	}
}

static long long
now_s(void)
{
	return (long long)time(NULL);
}

/* ---- the actor of a change ---------------------------------------------- */

/* The API token the calling thread acts for (svc_actor): each HTTP request
 * is served on one thread from authentication to answer. */
static _Thread_local struct svc_principal tl_actor;

void
svc_actor(const struct svc_principal *who)
{
	static const struct svc_principal none;

	tl_actor = who != NULL ? *who : none;
}

static const char *
role_name(enum svc_role r)
{
	switch (r) {
	case SVC_ROLE_ADMIN: return "admin";
	case SVC_ROLE_ORG: return "org";
	case SVC_ROLE_PBX: return "pbx";
	default: return NULL;
	}
}

/* Takes the service lock; events written until unlock() carry the
 * calling thread's actor. */
static void
lock(struct svc *s)
{
	mu_lock(s);
	store_set_actor(s->st, tl_actor.token, tl_actor.token ? role_name(tl_actor.role) : NULL);
}

static void
unlock(struct svc *s)
{
	store_set_actor(s->st, 0, NULL);
	mu_unlock(s);
}

/* ---- events ------------------------------------------------------------- */

/* detail is built with jansson and may be NULL (event.h). */
static int
event(struct svc *s, const char *type, hd_id org, const char *ext, const char *mac,
      json_t *detail)
{
	return event_add(s->st, now_s(), type, org, ext, mac, detail);
}

void
svc_event(struct svc *s, const char *type, hd_id org, const char *ext, const char *mac,
          json_t *detail)
{
	lock(s);
	if (event(s, type, org, ext, mac, detail) != 0)
		log_warn("event %s not recorded: %s", type, store_errmsg(s->st));
	unlock(s);
}

static const char *
dev_mac(const struct svc *s, hd_id id)
{
	const struct hd_dev *d = world_dev(s->w, id);

	return d ? d->mac : NULL;
}

/* One event per move of a plan: extension.virtualized (to a device) or
 * extension.returned. */
static int
plan_events(struct svc *s, const struct virt_plan *p, const char *cause)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct virt_move *m = &p->moves[i];
		const struct hd_ext *e = world_ext(s->w, m->ext);
		const char *from = dev_mac(s, m->from);
		json_t *det;

		if (e == NULL)
			continue;
		det = json_pack("{s:s, s:s?}", "cause", cause, "from", from);
		if (m->to != 0) {
			if (event(s, EVENT_VIRTUALIZED, e->org, e->number, dev_mac(s, m->to), det) != 0)
				return -1;
		} else if (event(s, EVENT_RETURNED, e->org, e->number, dev_mac(s, e->home_dev), det) != 0) {
			return -1;
		}
	}
	return 0;
}

/* ---- transactions -------------------------------------------------------- */

/*
 * Every transaction of hotdeskd is opened here, and only here (tx), with
 * the lock held: store_txn begins, runs the body, commits when it returns
 * 0 and rolls back otherwise.  A BEGIN that fails is an error like any
 * other: the body does not run and nothing is written (never one
 * autocommit per row).
 */
typedef int (*tx_fn)(struct svc *s, void *arg);

/* What tx returns when BEGIN or COMMIT failed (nothing was written). */
#define TX_DB (-100)

struct tx_call {
	struct svc *s;
	tx_fn fn;
	void *arg;
	int rc;
	bool ran;
};

static int
tx_body(struct store *st, void *arg)
{
	struct tx_call *c = arg;

	(void)st;
	c->ran = true;
	c->rc = c->fn(c->s, c->arg);
	return c->rc;
}

/* 0 (committed), fn's non-zero result (rolled back) or TX_DB. */
static int
tx(struct svc *s, tx_fn fn, void *arg)
{
	struct tx_call c = { s, fn, arg, 0, false };

	if (store_txn(s->st, tx_body, &c) == 0)
		return 0;
	return c.ran && c.rc != 0 ? c.rc : TX_DB;
}

/* What a committed change hands on: `after`, then the change hook. */
struct handoff {
	struct svc *s;
	const char *why;
	unsigned flags;
	const hd_id *v;
	size_t n;
	svc_after_fn after; /* may be NULL */
	void *arg;
	bool ran;
};

static int
handoff_body(struct store *st, void *arg)
{
	struct handoff *h = arg;
	struct svc *s = h->s;

	h->ran = true;
	if (h->after != NULL && h->after(s->w, st, h->arg) != 0)
		return 0;
	if (s->hook != NULL && h->n > 0) {
		(void)s->hook(s->hook_arg, s->w, st, h->v, h->n, h->why, h->flags);
		tl_unlock_owed = true;
	}
	return 0;
}

/*
 * After a commit (lock held): what the hook records of its work (versions,
 * the TFTP manifest, resync rows) goes in one follow-up transaction.  When
 * that cannot begin, the hook runs without the store (st NULL): the files
 * are published all the same and nothing is recorded (start-up reconciles
 * the versions, the resync engine fills the outbox rows).
 */
static void
handoff(struct svc *s, const char *why, unsigned flags, const hd_id *v, size_t n,
        svc_after_fn after, void *arg)
{
	struct handoff h = { s, why, flags, v, n, after, arg, false };

	if (after == NULL && (s->hook == NULL || n == 0))
		return;
	if (store_txn(s->st, handoff_body, &h) == 0)
		return;
	log_error("after %s: what was published is not recorded: %s", why, store_errmsg(s->st));
	if (!h.ran)
		(void)handoff_body(NULL, &h);
}

/* ---- the change path ---------------------------------------------------- */

/*
 * The move webhook's outbox: one row per SIP user whose location the
 * change moved, with the device carrying it now and that device's last
 * contact, in the change's transaction (the webhook thread delivers them
 * after the commit).  Returns 0 or -1.
 */
static int
outbox_moves(struct svc *s, const struct virt_moved *m, const char *cause)
{
	struct store_pbxout r;
	struct store_devcontact dc;
	long long id;

	memset(&r, 0, sizeof(r));
	r.at = now_s();
	if ((size_t)snprintf(r.cause, sizeof(r.cause), "%s", cause) >= sizeof(r.cause))
		r.cause[0] = '\0'; /* causes are short static names */
	for (size_t i = 0; i < m->n; i++) {
		const struct hd_dev *d = virt_calling_device(s->w, m->sip_user[i]);

		if ((size_t)snprintf(r.sip_user, sizeof(r.sip_user), "%s", m->sip_user[i]) >=
		    sizeof(r.sip_user))
			continue; /* longer than any SIP user the API accepts */
		r.device[0] = r.contact[0] = '\0';
		if (d != NULL) {
			memcpy(r.device, d->mac, sizeof(r.device));
			if (store_devcontact_get(s->st, d->id, &dc) < 0)
				return -1;
			memcpy(r.contact, dc.contact, sizeof(r.contact));
		}
		if (store_pbxout_add(s->st, &r, &id) != 0)
			return -1;
		if (r.move == 0)
			r.move = id;
	}
	return 0;
}

static void
check_invariants(struct svc *s, const char *after)
{
	char err[256];

	if (s->o.check_invariants && virt_check_invariants(s->w, err, sizeof(err)) != 0)
		fatal("invariant broken after %s: %s", after, err);
}

/*
 * The resync outbox: every device whose configuration may have changed
 * gets a pending resync row in the same transaction as the change, so a
 * crash after the commit still owes it a NOTIFY.
 */
static int
outbox_add(struct svc *s, const hd_id *changed, size_t n, const hd_id *extra, size_t nextra)
{
	long long now = now_s();

	if (store_resync_enqueue_n(s->st, changed, n, now) != 0)
		return -1;
	for (size_t i = 0; i < nextra; i++)
		if (world_dev(s->w, extra[i]) != NULL && store_resync_enqueue(s->st, extra[i], now) != 0)
			return -1;
	return 0;
}

static void
undo_plan(struct svc *s, const struct virt_plan *p)
{
	for (size_t i = p->n; i-- > 0;)
		world_set_virtual_on(s->w, p->moves[i].ext, p->moves[i].from);
}

/* What svc_commit2 returns when the check hook refused the change. */
#define SVC_COMMIT_RENDER (-2)

/* One change of the world in one transaction (svc_commit2). */
struct commit {
	const struct virt_plan *p;
	const char *cause;
	tx_fn pre, post;
	void *arg;
	const hd_id *extra;
	size_t nextra;
	struct hd_idset changed;
	struct virt_moved moved; /* SIP users it moves (with [pbx] move_webhook) */
	bool applied; /* the plan is in the world: undone if the transaction fails */
	/* the hook runs in this transaction (svc_commit_move): only the plan
	 * changes the world, and undo_plan undoes all of it */
	bool fold;
	bool hooked;  /* it ran: the files are published, the commit may still fail */
};

/* Hands devs to the change hook in the transaction running now, which
 * it writes their outbox rows in (SVC_CHANGE_OUTBOX): a folded change. */
static int
hook_folded(struct svc *s, const hd_id *v, size_t n, const char *why, unsigned flags)
{
	tl_unlock_owed = true;
	return s->hook(s->hook_arg, s->w, s->st, v, n, why, flags | SVC_CHANGE_OUTBOX);
}

/* The plan's rows: each move's extension, and its event. */
static int
plan_rows(struct svc *s, const struct virt_plan *p, const char *cause)
{
	for (size_t i = 0; i < p->n; i++)
		if (store_ext_set_virtual_on(s->st, p->moves[i].ext, p->moves[i].to) != 0)
			return -1;
	return plan_events(s, p, cause);
}

/*
 * A change in its transaction: the world first, then what must render,
 * then the rows.  A move (c->fold) publishes before it writes its rows:
 * the TFTP writer puts its files in place on another CPU meanwhile.  Its
 * rows change nothing a render reads, and a failure after the hook ran
 * rolls back and publishes the world as it is again (svc_commit3).
 */
static int
commit_body(struct svc *s, void *arg)
{
	struct commit *c = arg;
	const struct virt_plan *p = c->p;

	/* a put's row first: a new object has its id before the world
	 * names it (a move's pre changes nothing in the world) */
	if (!c->fold && c->pre != NULL && c->pre(s, c->arg) != 0)
		return -1;
	c->applied = true;
	if (virt_apply_moved(s->w, p, &c->changed, s->o.move_outbox ? &c->moved : NULL) != 0)
		return -1;
	for (size_t i = 0; s->gone != 0 && i < c->changed.n; i++) {
		if (c->changed.v[i] == s->gone) {
			/* only v and n are read from here on (no lookups) */
			c->changed.v[i] = c->changed.v[--c->changed.n];
			break;
		}
	}
	/* what phones would get must render before anything is committed:
	 * the store and the served files never disagree */
	if (s->check != NULL &&
	    (s->check(s->check_arg, s->w, c->changed.v, c->changed.n, s->check_err,
	              sizeof(s->check_err)) != 0 ||
	     (c->nextra > 0 && s->check(s->check_arg, s->w, c->extra, c->nextra, s->check_err,
	                                sizeof(s->check_err)) != 0))) {
		log_warn("change refused (%s): %s", c->cause, s->check_err);
		return SVC_COMMIT_RENDER;
	}
	if (c->fold && s->hook != NULL && c->changed.n > 0) {
		/* what the hook records (versions, the manifest, resync rows)
		 * commits with the change: one transaction per move */
		c->hooked = true;
		if (hook_folded(s, c->changed.v, c->changed.n, c->cause, 0) != 0)
			return -1;
	}
	if ((c->fold && c->pre != NULL && c->pre(s, c->arg) != 0) ||
	    plan_rows(s, p, c->cause) != 0)
		return -1;
	/* the outbox before post: a deleted device's row goes with it (a
	 * move's hook wrote its changed devices' rows) */
	if (outbox_add(s, c->changed.v, c->hooked ? 0 : c->changed.n, c->extra, c->nextra) != 0 ||
	    (s->o.move_outbox && outbox_moves(s, &c->moved, c->cause) != 0) ||
	    (c->post != NULL && c->post(s, c->arg) != 0))
		return -1;
	return 0;
}

static int
svc_commit3(struct svc *s, const struct virt_plan *p, const char *cause, tx_fn pre, tx_fn post,
            void *arg, const hd_id *extra, size_t nextra, bool fold)
{
	struct commit c = { p, cause, pre, post, arg, extra, nextra, { 0 }, { 0 }, false, fold,
	                    false };
	int rc = tx(s, commit_body, &c);

	if (rc != 0) {
		if (c.applied)
			undo_plan(s, p);
		if (rc != SVC_COMMIT_RENDER) {
			log_error("transaction failed (%s): %s", cause, store_errmsg(s->st));
			rc = -1;
		}
		/* the hook published the change the commit then lost (its
		 * COMMIT failed): publish the world as it is again, so that the
		 * files served are those of the store (the writer runs its jobs
		 * in order: these replace the lost change's) */
		if (c.hooked)
			handoff(s, cause, 0, c.changed.v, c.changed.n, NULL, NULL);
		hd_idset_free(&c.changed);
		return rc;
	}
	check_invariants(s, cause);
	if (!c.hooked)
		handoff(s, cause, 0, c.changed.v, c.changed.n, NULL, NULL);
	/* devices whose render input changed with the object itself (they may
	 * repeat devices above: the hook renders and compares, so a device
	 * handed twice is published once) */
	handoff(s, cause, 0, extra, nextra, NULL, NULL);
	hd_idset_free(&c.changed);
	return 0;
}

static int
svc_commit2(struct svc *s, const struct virt_plan *p, const char *cause, tx_fn pre, tx_fn post,
            void *arg, const hd_id *extra, size_t nextra)
{
	return svc_commit3(s, p, cause, pre, post, arg, extra, nextra, false);
}

/*
 * Applies plan p to the world and the store in one transaction between
 * pre's writes and post's (a put runs first, so a new object has its id;
 * a delete runs last, after the moves that leave the object), records one event per move (cause), and calls the hook
 * with the changed devices plus `extra` devices.  Called with the lock
 * held.  Returns 0, or -1 with nothing changed, or SVC_COMMIT_RENDER with
 * nothing changed when a device's files would not render (s->check_err
 * says why).
 */
static int
svc_commit(struct svc *s, const struct virt_plan *p, const char *cause, tx_fn fn, void *arg,
           const hd_id *extra, size_t nextra)
{
	return svc_commit2(s, p, cause, fn, NULL, arg, extra, nextra);
}

/*
 * svc_commit of a move: plan p and pre's writes to the store, where pre
 * changes nothing in the world (it may be NULL).  The change hook runs in
 * the change's transaction, which spares a move the second one (a BEGIN,
 * a COMMIT, their locks, and the WAL frames of the pages both write);
 * when that COMMIT fails, the plan is undone and the changed devices are
 * handed to the hook again, which publishes them as the world is.
 */
static int
svc_commit_move(struct svc *s, const struct virt_plan *p, const char *cause, tx_fn pre,
                void *arg)
{
	return svc_commit3(s, p, cause, pre, NULL, arg, NULL, 0, true);
}

/* ---- open / close ------------------------------------------------------- */

/* Makes the configuration's token of a role the only one of the file
 * that works (none when token is NULL or ""). */
static int
record_token(struct svc *s, const char *token, const char *role, const char *name)
{
	char hash[65];
	bool none = token == NULL || token[0] == '\0';

	if (!none)
		secret_token_hash(token, hash);
	return store_token_config(s->st, role, none ? NULL : hash, name, now_s()) < 0 ? -1 : 0;
}

struct svc *
svc_open(const struct svc_opts *o, char *err, size_t errlen)
{
	struct svc *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	lockorder_register(&s->mu, LOCK_SERVICE, "service");
	pthread_mutex_init(&s->ckpt_mu, NULL);
	lockorder_register(&s->ckpt_mu, LOCK_CKPT, "checkpoint");
	pthread_cond_init(&s->tries_done, NULL);
	s->o = *o;
	/* the strings are the caller's, used only here: none is kept */
	s->o.admin_token = s->o.pbx_token = NULL;
	s->o.db_path = s->o.sql_dir = NULL;
	if (secret_init() != 0) {
		hd_seterr(err, errlen, "libsodium failed to initialise");
		goto fail;
	}
	if ((s->st = store_open(o->db_path, o->sql_dir, err, errlen)) == NULL)
		goto fail;
	if ((s->w = world_new()) == NULL || store_load_world(s->st, s->w, err, errlen) != 0)
		goto fail;
	if (record_token(s, o->admin_token, "admin", "config admin token") != 0 ||
	    record_token(s, o->pbx_token, "pbx", "config pbx token") != 0) {
		hd_seterr(err, errlen, "%s: cannot record tokens: %s", o->db_path,
		          store_errmsg(s->st));
		goto fail;
	}
	if (virt_check_invariants(s->w, err, errlen) != 0)
		goto fail;
	if (strcmp(o->db_path, ":memory:") != 0) {
		if ((s->ckpt = store_ckpt_open(o->db_path, err, errlen)) == NULL)
			goto fail;
		(void)store_autocheckpoint_off(s->st);
		/* a log left by an earlier run is copied back at the first
		 * quiet tick */
		s->ckpt_tick = s->ckpt_done = -1;
	}
	return s;
fail:
	svc_close(s);
	return NULL;
}

void
svc_close(struct svc *s)
{
	if (s == NULL)
		return;
	if (s->ckpt != NULL) {
		(void)store_ckpt_run(s->ckpt); /* leave a short log behind */
		store_ckpt_close(s->ckpt);
	}
	store_close(s->st);
	world_free(s->w);
	pthread_cond_destroy(&s->tries_done);
	pthread_mutex_destroy(&s->ckpt_mu);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void
svc_set_change_hook(struct svc *s, svc_change_hook hook, void *arg)
{
	mu_lock(s);
	s->hook = hook;
	s->hook_arg = arg;
	mu_unlock(s);
}

void
svc_set_unlock_hook(struct svc *s, svc_unlock_hook hook, void *arg)
{
	mu_lock(s);
	s->unlocked = hook;
	s->unlocked_arg = arg;
	mu_unlock(s);
}

void
svc_set_check_hook(struct svc *s, svc_check_hook hook, void *arg)
{
	mu_lock(s);
	s->check = hook;
	s->check_arg = arg;
	mu_unlock(s);
}

void
svc_set_prerender_hook(struct svc *s, svc_prerender_hook hook, void *arg)
{
	mu_lock(s);
	s->prerender = hook;
	s->prerender_arg = arg;
	mu_unlock(s);
}

void
svc_set_registration_hook(struct svc *s, svc_reg_hook hook, void *arg)
{
	mu_lock(s);
	s->reg_hook = hook;
	s->reg_hook_arg = arg;
	mu_unlock(s);
}

int
svc_reconfigure(struct svc *s, const struct svc_opts *o, char *err, size_t errlen)
{
	int rc = 0;

	mu_lock(s);
	s->o.code_min_len = o->code_min_len;
	s->o.guard = o->guard;
	s->o.check_invariants = o->check_invariants;
	if (record_token(s, o->admin_token, "admin", "config admin token") != 0 ||
	    record_token(s, o->pbx_token, "pbx", "config pbx token") != 0) {
		hd_seterr(err, errlen, "cannot record tokens: %s", store_errmsg(s->st));
		rc = -1;
	}
	mu_unlock(s);
	return rc;
}

int
svc_locked(struct svc *s, int (*fn)(const struct world *, struct store *, void *), void *arg)
{
	int rc;

	lock(s);
	rc = fn(s->w, s->st, arg);
	unlock(s);
	return rc;
}

/* A passive checkpoint (no service lock: it never blocks the writer),
 * ckpt_mu held.  Records the commits it covers when it copied the whole
 * log back: the commits counted before it started are in that log. */
static void
checkpoint_locked(struct svc *s)
{
	long commits = store_wal_commits(s->st);
	int rc = store_ckpt_run(s->ckpt);

	if (rc < 0)
		log_warn("checkpoint of the database log failed");
	else if (rc == 1)
		s->ckpt_done = commits;
}

/* checkpoint_locked, unless another checkpoint is running. */
static void
checkpoint_now(struct svc *s)
{
	if (pthread_mutex_trylock(&s->ckpt_mu) != 0)
		return;
	checkpoint_locked(s);
	pthread_mutex_unlock(&s->ckpt_mu);
}

/* A job in steps waits this long at most for the moves under way, then
 * takes its next step all the same: moves back to back (each one's grace
 * reaching the next) do not stop it. */
#define SVC_MOVE_WAIT_NS 20000000ull /* 20 ms */

void
svc_yield(struct svc *s)
{
	struct timespec pause = { 0, 200000 }; /* 0.2 ms */

	/* a mutex is not fair: the thread that just unlocked it would most
	 * often take it again before a waiter wakes up */
	for (int i = 0; i < 100 && svc_wanted(s); i++)
		nanosleep(&pause, NULL);
	/* and the CPUs go to a *30 under way (demand.h) */
	demand_move_wait(SVC_MOVE_WAIT_NS);
	/* A job in steps commits many times a second.  The checkpoints of the
	 * main loop copy its log back, but the log starts again from its
	 * beginning only when a commit finds every frame copied, which a
	 * commit every few milliseconds never does: the log would grow by the
	 * whole job (gigabytes for a million devices), and every page the
	 * store reads is looked for in all of it.  Past STORE_WAL_KEEP bytes
	 * the job checkpoints between two steps itself, so that its next
	 * commit starts the log again. */
	if (s->ckpt != NULL && store_wal_frames(s->st) > SVC_WAL_LONG_FRAMES)
		checkpoint_now(s);
}

/* svc_transact's body, run by tx. */
struct transact {
	const char *why;
	svc_txn_fn fn;
	void *arg;
	struct svc_change chg;
	bool hooked; /* the hook ran in the transaction (SVC_CHANGE_FOLD) */
};

static int
transact_body(struct svc *s, void *arg)
{
	struct transact *x = arg;
	size_t folded = 0; /* devices the hook has */

	for (;;) {
		int rc = x->fn(s->w, s->st, &x->chg, x->arg);

		if (rc != 0 || !(x->chg.flags & SVC_CHANGE_FOLD) || s->hook == NULL)
			return rc;
		/* folded: what the hook records, the outbox rows with it,
		 * commits with the body's writes (as a move's: commit_body) */
		if (x->chg.devs.n > folded) {
			x->hooked = true;
			if (hook_folded(s, x->chg.devs.v + folded, x->chg.devs.n - folded, x->why,
			                x->chg.flags & ~(SVC_CHANGE_FOLD | SVC_CHANGE_MORE)) != 0)
				return -1;
			folded = x->chg.devs.n;
		}
		if (!(x->chg.flags & SVC_CHANGE_MORE) || svc_step_over(s))
			return 0;
		x->chg.flags &= ~SVC_CHANGE_MORE;
	}
}

int
svc_transact(struct svc *s, const char *why, svc_txn_fn fn, svc_after_fn after, void *arg)
{
	struct transact x = { why, fn, arg, { { 0 }, 0 }, false };
	unsigned flags;
	int rc;

	lock(s);
	rc = tx(s, transact_body, &x);
	flags = x.chg.flags & ~(SVC_CHANGE_FOLD | SVC_CHANGE_MORE);
	if (rc == 0) {
		handoff(s, why, flags, x.chg.devs.v, x.hooked ? 0 : x.chg.devs.n, after, arg);
	} else {
		if (rc == TX_DB || x.hooked) {
			log_error("%s: transaction failed: %s", why, store_errmsg(s->st));
			rc = SVC_INTERNAL;
		}
		/* the hook published what the rollback then undid: publish the
		 * devices as they are again (svc_commit3) */
		if (x.hooked)
			handoff(s, why, flags, x.chg.devs.v, x.chg.devs.n, NULL, NULL);
	}
	unlock(s);
	hd_idset_free(&x.chg.devs);
	return rc;
}

/* ---- *30 ---------------------------------------------------------------- */

static void
fill_res(struct svc_star30_res *res, const struct virt_decision *d)
{
	res->result = d->result;
	res->reason = d->reason;
	if (d->ext != NULL)
		snprintf(res->extension, sizeof(res->extension), "%s", d->ext->number);
	if (d->dev != NULL && (d->result == VIRT_ACCEPTED || d->result == VIRT_RETURNED))
		snprintf(res->device, sizeof(res->device), "%s", d->dev->mac);
}

static int
denied_event(struct svc *s, const struct virt_decision *d, const char *caller_mac)
{
	const char *caller = caller_mac;
	json_t *det = json_pack("{s:s}", "reason", virt_reason_name(d->reason));

	return event(s, "move.denied", d->caller ? d->caller->org : 0, d->ext ? d->ext->number : NULL,
	             caller, det);
}

/*
 * Counters of one code attempt, read and written under the lock.  A wrong
 * code counts against the call (call_id) and against the calling device's
 * tries at this target across redials (redial); the attempt uses the
 * larger of the two (eff), and both records take the result.
 */
struct attempt {
	hd_id dev, ext;
	struct guard_call call;   /* the call_id's record (zero without call_id) */
	struct guard_call redial; /* (dev, ext) across redials, zero when expired */
	struct guard_call eff;    /* what this attempt counts against */
	struct guard_pair pair;
	long long pair_call_last;
	const char *call_id;
};

/* Whether per-call tries apply: a call_id, or redials counted per phone. */
static bool
attempt_counts_calls(const struct svc *s, const struct attempt *a)
{
	return a->call_id != NULL || s->o.guard.redial_window > 0;
}

static int
attempt_load(struct svc *s, struct attempt *a, long long now)
{
	struct store_pair sp;

	memset(&a->call, 0, sizeof(a->call));
	if (a->call_id != NULL &&
	    store_call_get(s->st, a->call_id, &a->call.failures, &a->call.hung_up) < 0)
		return -1;
	if (store_pair_get(s->st, a->dev, a->ext, &sp) < 0)
		return -1;
	a->pair.failures_in_window = sp.failures_in_window;
	a->pair.window_start = sp.window_start;
	a->pair.locked_until = sp.locked_until;
	a->pair.lock_level = sp.lock_level;
	a->redial.failures = sp.call_failures;
	a->redial.hung_up = false;
	a->redial.last_failure = sp.call_last;
	guard_redial_expire(&s->o.guard, &a->redial, now);
	a->redial.hung_up = guard_call_exhausted(&s->o.guard, &a->redial);
	a->eff = a->call.failures >= a->redial.failures ? a->call : a->redial;
	a->eff.hung_up = a->call.hung_up || a->redial.hung_up;
	return 0;
}

static int
attempt_save(struct svc *s, const struct attempt *a)
{
	struct store_pair sp = {
		a->pair.failures_in_window, a->pair.window_start,
		a->pair.locked_until, a->pair.lock_level,
		a->redial.failures, a->redial.last_failure,
	};

	if (a->call_id != NULL &&
	    store_call_put(s->st, a->call_id, a->call.failures, a->call.hung_up, now_s()) != 0)
		return -1;
	return store_pair_put(s->st, a->dev, a->ext, &sp);
}

/* A wrong code (code_failed): the attempt and what the guard decided. */
struct code_fail {
	struct attempt *a;
	struct guard_outcome g;
};

static int
code_failed_body(struct svc *s, void *arg)
{
	struct code_fail *f = arg;
	struct attempt *a = f->a;
	const struct hd_ext *e = world_ext(s->w, a->ext);
	const struct hd_dev *d = world_dev(s->w, a->dev);
	long long now = now_s();

	if (attempt_load(s, a, now) != 0)
		return -1;
	f->g = guard_on_failure(&s->o.guard, &a->eff, &a->pair, now);
	a->call = a->eff;
	a->redial = a->eff;
	if (s->o.guard.redial_window == 0)
		memset(&a->redial, 0, sizeof(a->redial));
	if (attempt_save(s, a) != 0)
		return -1;
	if (event(s, "code.failed", e ? e->org : 0, e ? e->number : NULL, d ? d->mac : NULL,
	          json_pack("{s:i, s:b}", "tries_left", f->g.tries_left, "hangup",
	                    f->g.hangup)) != 0)
		return -1;
	if (f->g.newly_locked &&
	    event(s, "code.locked", e ? e->org : 0, e ? e->number : NULL, d ? d->mac : NULL,
	          json_pack("{s:I}", "until", (json_int_t)f->g.locked_until)) != 0)
		return -1;
	return 0;
}

/* A wrong code: count it, answer retry or hangup, maybe lock the pair. */
static int
code_failed(struct svc *s, struct attempt *a, struct svc_star30_res *res)
{
	const struct hd_ext *e = world_ext(s->w, a->ext);
	const struct hd_dev *d = world_dev(s->w, a->dev);
	struct code_fail f = { a, { 0 } };

	if (tx(s, code_failed_body, &f) != 0) {
		log_error("cannot record a failed code: %s", store_errmsg(s->st));
		return -1;
	}
	if (f.g.newly_locked) {
		metrics_inc(METRICS_CODE_LOCKOUTS, 1);
		log_warn("code lockout: extension %s from device %s until %lld",
		         e ? e->number : "?", d ? d->mac : "?", f.g.locked_until);
	}
	res->result = f.g.hangup ? VIRT_HANGUP : VIRT_RETRY;
	res->tries_left = f.g.hangup ? 0 : f.g.tries_left;
	return 0;
}

/* A right code: forget the pair's failures and redials, and commit the
 * plan.  A pair with nothing to forget (no row, which reads as zeros, or
 * a row already reset) is not written: most moves are of that kind, and
 * the write would add the pair's table and index pages to the move's
 * commit. */
static int
pair_reset(struct svc *s, void *arg)
{
	struct attempt *a = arg;
	struct store_pair sp, old;

	if (store_pair_get(s->st, a->dev, a->ext, &sp) < 0)
		return -1;
	old = sp;
	a->pair.failures_in_window = sp.failures_in_window;
	a->pair.window_start = sp.window_start;
	a->pair.locked_until = sp.locked_until;
	a->pair.lock_level = sp.lock_level;
	guard_on_success(&a->pair);
	sp.failures_in_window = a->pair.failures_in_window;
	sp.window_start = a->pair.window_start;
	sp.lock_level = a->pair.lock_level;
	sp.call_failures = 0;
	sp.call_last = 0;
	if (sp.failures_in_window == old.failures_in_window &&
	    sp.window_start == old.window_start && sp.lock_level == old.lock_level &&
	    sp.call_failures == old.call_failures && sp.call_last == old.call_last)
		return 0;
	return store_pair_put(s->st, a->dev, a->ext, &sp);
}

/* Whether extension ext's stored hash is still `hash`, read when the
 * store's count of code writes was gen (lock held): 1 yes, 0 no, -1 the
 * store failed (a failure is not a changed code).  No code written since
 * is a yes without a read: the move's transaction then starts warm. */
static int
same_secret(struct svc *s, hd_id ext, const char *hash, unsigned long long gen)
{
	char now[SECRET_HASH_LEN];
	int rc, same;

	if (store_codes_gen(s->st) == gen)
		return 1;
	rc = store_ext_secret(s->st, ext, now, sizeof(now));
	same = rc < 0 ? -1 : rc == 1 && strcmp(now, hash) == 0;

	sodium_memzero(now, sizeof(now));
	return same;
}

/* A hash made again, stored in place of the one verified (renew_hash). */
struct swap_tx {
	enum store_hash kind;
	hd_id ext;
	const char *was, *hash;
	int swapped;
};

static int
swap_body(struct svc *s, void *arg)
{
	struct swap_tx *x = arg;

	x->swapped = store_hash_swap(s->st, x->kind, x->ext, x->was, x->hash);
	return x->swapped < 0 ? -1 : 0;
}

/*
 * After `clear` verified against `was`, the stored hash of ext: when
 * `was` was made with other limits than [secrets] hash_ops and
 * hash_mem_kib (an older default, or the settings changed since), hashes
 * clear again with them and stores that in its place, unless the secret
 * was set anew meanwhile.  So a change of the limits reaches every
 * secret at its next use, and the memory a check takes is what the
 * settings say.  Lock not held (the hash runs outside it).  Best effort:
 * on failure the old hash stays, and it still verifies.
 */
static void
renew_hash(struct svc *s, enum store_hash kind, hd_id ext, const char *was, const char *clear)
{
	char hash[SECRET_HASH_LEN], err[160];
	struct swap_tx x = { kind, ext, was, hash, 0 };
	const char *what = kind == STORE_HASH_CODE ? "secret code" : "web password";

	if (!secret_needs_rehash(was, s->o.hash_ops, s->o.hash_mem))
		return;
	if (secret_hash(clear, s->o.hash_ops, s->o.hash_mem, hash, err, sizeof(err)) != 0) {
		log_warn("%s of extension id %lld not hashed again: %s", what, (long long)ext, err);
		return;
	}
	mu_lock(s);
	if (tx(s, swap_body, &x) != 0) {
		log_warn("%s of extension id %lld not hashed again: %s", what, (long long)ext,
		         store_errmsg(s->st));
	} else if (x.swapped == 1) {
		const struct hd_ext *e = world_ext(s->w, ext);
		const struct hd_org *o = e != NULL ? world_org(s->w, e->org) : NULL;

		log_info("%s of %s/%s hashed again with the configured limits", what,
		         o != NULL ? o->name : "?", e != NULL ? e->number : "?");
	}
	mu_unlock(s);
	sodium_memzero(hash, sizeof(hash));
}

/* A *30 whose commit failed (crc from svc_commit): SVC_CONFLICT when a
 * phone's files would not render (recorded as an event "move.refused"),
 * else SVC_INTERNAL.  Nothing changed either way.  Lock held. */
static int
star30_failed(struct svc *s, const struct virt_decision *d, int crc)
{
	if (crc != SVC_COMMIT_RENDER)
		return SVC_INTERNAL;
	if (event(s, "move.refused", d->caller ? d->caller->org : 0,
	          d->ext ? d->ext->number : NULL, d->caller ? d->caller->mac : NULL,
	          json_pack("{s:s, s:s}", "reason", "render_failed", "error", s->check_err)) != 0)
		log_warn("event move.refused not recorded: %s", store_errmsg(s->st));
	return SVC_CONFLICT;
}

/*
 * Whether one more verify may start for attempt a (lock held): the tries
 * the call and the pair have left must exceed the verifies already running
 * for them (reservations), so that however many requests arrive at once,
 * no more codes are checked than the limits allow.
 */
static bool
attempt_has_room(const struct svc *s, const struct attempt *a, long long now)
{
	int calls = 0, pairs = 0;

	for (const struct svc_try *t = s->tries; t != NULL; t = t->next) {
		bool same_pair = t->dev == a->dev && t->ext == a->ext;

		pairs += same_pair;
		calls += (same_pair && s->o.guard.redial_window > 0) ||
		         (a->call_id != NULL && t->call_id != NULL && strcmp(a->call_id, t->call_id) == 0);
	}
	if (attempt_counts_calls(s, a) && guard_call_room(&s->o.guard, &a->eff) <= calls)
		return false;
	return guard_pair_room(&s->o.guard, &a->pair, now) > pairs;
}

static void
try_reserve(struct svc *s, struct svc_try *t, const struct attempt *a)
{
	t->dev = a->dev;
	t->ext = a->ext;
	t->call_id = a->call_id;
	t->next = s->tries;
	s->tries = t;
}

static void
try_release(struct svc *s, struct svc_try *t)
{
	for (struct svc_try **pp = &s->tries; *pp != NULL; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	pthread_cond_broadcast(&s->tries_done);
}

/* A code verify on a thread of its own (verify_start, verify_end). */
struct verify_job {
	const char *hash, *code;
	bool ok, threaded;
	bool apart;        /* on a CPU other than the caller's */
	/* the thread's CPU time, once it ended: learned by the caller once
	 * joined (verify_learn), not by the thread, whose caller reading its
	 * clock in its last microseconds would then find it still ahead of
	 * its end (verify_ahead_left) and rehearse a move already checked */
	uint64_t cpu_ns;
	pthread_t t;
	void (*rehearse)(void *); /* run once near the hash's end (verify_end) */
	void *rehearse_arg;
};

/* The CPU time of one hash, as the last verifies took it (0 before the
 * first): the same work each time, which the caches and the host make
 * 2-5 % longer or shorter from one to the next.  A shorter one is taken
 * at once, a longer one half way: the estimate errs short, and a move
 * back under way too early costs a job in steps a pause, too late only
 * what the move saved. */
static atomic_uint_fast64_t verify_cpu_ns;

static void *
verify_main(void *arg)
{
	struct verify_job *j = arg;

	j->ok = secret_verify(j->hash, j->code);
	j->cpu_ns = metrics_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	return NULL;
}

static void
verify_learn(uint64_t ns)
{
	uint64_t was = atomic_load(&verify_cpu_ns);

	if (ns != 0)
		atomic_store(&verify_cpu_ns, was == 0 || ns < was ? ns : was + (ns - was) / 2);
}

static atomic_int verifies_apart; /* verifies started and not ended */

/* A sched_yield that took this long ran another thread.  When other
 * threads had half the CPU over VERIFY_BUSY_WINDOW_NS, it is busy and
 * will not be left idle: the caller sleeps VERIFY_BUSY_SLEEP_NS. */
#define VERIFY_BUSY_NS 50000ULL
#define VERIFY_BUSY_WINDOW_NS 2000000ULL
#define VERIFY_BUSY_SLEEP_NS 20000000ULL

/* pthread_join for at most ns; whether t ended. */
static bool
join_within(pthread_t t, uint64_t ns)
{
	struct timespec ts = deadline_in(ns);

	return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

/* how far ahead of its hash's end, in the hash's CPU time, a move with a
 * code is under way again (join_ahead) and rehearsed (verify_end) */
#define VERIFY_AHEAD_NS 2000000ULL
/* the shortest wait between two reads of its clock: a hash kept off the
 * CPUs meanwhile is not read over and over */
#define VERIFY_AHEAD_POLL_NS 50000ULL

/* The CPU time j's hash has yet to take before the last VERIFY_AHEAD_NS
 * of it, as the verifies before took theirs (0 once there); UINT64_MAX
 * when that cannot be told: no hash learned yet or one too short to act
 * on, or no clock.  Its clock reads 0 before the thread first ran (on a
 * busy machine it may not have yet) and once it ended, when a join
 * returns at once. */
static uint64_t
verify_ahead_left(const struct verify_job *j)
{
	uint64_t need = atomic_load(&verify_cpu_ns), used;
	clockid_t cid;

	if (need <= VERIFY_AHEAD_NS || pthread_getcpuclockid(j->t, &cid) != 0)
		return UINT64_MAX;
	used = metrics_clock_ns(cid);
	return used + VERIFY_AHEAD_NS >= need ? 0 : need - used - VERIFY_AHEAD_NS;
}

/* j's rehearsal, once its hash is near its end (verify_end) */
static void
rehearse_ahead(struct verify_job *j)
{
	void (*fn)(void *) = j->rehearse;

	if (fn != NULL && atomic_load(&steps_running) == 0 && verify_ahead_left(j) == 0) {
		j->rehearse = NULL;
		fn(j->rehearse_arg);
	}
}

/* How long verify_end sleeps once other threads took half its CPU:
 * VERIFY_BUSY_SLEEP_NS, but not past the moment of j's rehearsal if it is
 * still due (a wall time no shorter than the hash's CPU time left) */
static uint64_t
busy_nap(const struct verify_job *j)
{
	uint64_t left = j->rehearse != NULL ? verify_ahead_left(j) : UINT64_MAX;

	if (left >= VERIFY_BUSY_SLEEP_NS)
		return VERIFY_BUSY_SLEEP_NS;
	return left > VERIFY_AHEAD_POLL_NS ? left : VERIFY_AHEAD_POLL_NS;
}

/*
 * Joins j's thread, the caller's move back under way (demand_move_resume)
 * VERIFY_AHEAD_NS of the hash's CPU time before its end.  While a move
 * checks its code, a job in steps (a re-render) and the TFTP writer's bulk
 * queue take both CPUs; the move then resumed into a busy machine and
 * waited for a CPU, for the step it found and for the writer's chunk: in
 * a probe of 100 moves during a 100k re-render, 23 of the 50 with a code
 * took over 1 ms after their hash, 1 of the 50 without.  Resumed ahead,
 * the step ends and the writer holds its bulk queue back (demand.h) while
 * the hash finishes.  The hash's CPU time, not the wall time, says when:
 * its thread shares a CPU with the re-render until then.
 */
static void
join_ahead(struct verify_job *j)
{
	for (;;) {
		uint64_t left = verify_ahead_left(j);

		if (left == UINT64_MAX)
			break;
		if (left == 0) {
			demand_move_resume();
			rehearse_ahead(j);
			break;
		}
		/* a wall time no shorter than the CPU time left */
		if (join_within(j->t, left > VERIFY_AHEAD_POLL_NS ? left : VERIFY_AHEAD_POLL_NS))
			return;
	}
	pthread_join(j->t, NULL);
}

/*
 * secret_verify(hash, code) started on a thread of its own; verify_end
 * waits for its outcome.  The caller then decides again and commits under
 * the lock: had it run the hash itself (about 100 ms of CPU), the
 * scheduler (EEVDF) would owe the other runnable threads that time and
 * preempt it within the locked part of the move, for milliseconds,
 * whenever the machine is busy; a thread that slept through the hash is
 * not behind.  Meanwhile the caller may render the move ahead
 * (prerender).  When no thread can be started, verify_end runs it.
 *
 * The one verify running goes to a CPU other than the caller's: its
 * memory (hash_mem_kib, 32 MiB by default) then leaves that CPU's own
 * cache to the move's locked part, which the scheduler resumes there when
 * it is idle.  On 2 cores of an AMD EPYC, runs of bench/move.sh with 99 %
 * of the moves published within 1 ms: 1 of 9 without, 2 of 4 with this
 * placement, 2 of 2 with every verify placed (bench/README.md).
 * Not while others run: tied to a CPU, two hashes could share one while
 * the other idled (concurrent moves fell from about 38 to 25 a second).
 *
 * While that verify is the only one, verify_end waits for it on the
 * caller's CPU, giving the CPU to any thread that wants it (sched_yield),
 * rather than asleep.  On a virtual machine a CPU left idle for the
 * hash's 100 ms is halted and given to others by the host: the move's
 * locked part then starts on cold caches, and the TFTP writer it wakes
 * takes a few hundred microseconds to run, so that the caller writes
 * the files itself after the commit instead of the writer during it.
 * Probed step by step on 2 cores of an AMD EPYC with bench/move.sh
 * (100k devices, TFTP root on disk), 300 moves of each kind per run:
 * 86-97 % of the moves were published within 1 ms asleep (5 runs),
 * 99.3-100 % waiting on the CPU (3 runs), the writer thread running every
 * accepted move's files during its commit.  The cost is the caller's
 * CPU during a code check that nothing else wanted.  While a job in
 * steps runs (a re-render) the CPUs are not left idle, and the caller
 * sleeps: yielding throughout, a 100k re-render with moves and fetches
 * took 15.5 s of CPU instead of 10.7.  While other threads (fetches)
 * take half of the CPU, the caller sleeps 20 ms at a time.  Asleep for
 * good at the first yield that ran another thread (the last move's
 * NOTIFYs, a checkpoint), the moves alone were published within 1 ms
 * 89.5 and 97.4 % of the time; asleep for good once others had half the
 * CPU over 5 ms, 96.9 and 99.8 %.
 */
static void
verify_start(struct verify_job *j, const char *hash, const char *code)
{
	pthread_attr_t at;
	cpu_set_t cpus;
	int cpu = sched_getcpu();
	bool attr = pthread_attr_init(&at) == 0,
	     alone = atomic_fetch_add(&verifies_apart, 1) == 0;

	*j = (struct verify_job){ .hash = hash, .code = code };
	if (attr && alone && cpu >= 0 && sched_getaffinity(0, sizeof(cpus), &cpus) == 0 &&
	    CPU_ISSET(cpu, &cpus) && CPU_COUNT(&cpus) > 1) {
		CPU_CLR(cpu, &cpus);
		j->apart = pthread_attr_setaffinity_np(&at, sizeof(cpus), &cpus) == 0;
	}
	j->threaded = pthread_create(&j->t, attr ? &at : NULL, verify_main, j) == 0;
	if (attr)
		pthread_attr_destroy(&at);
}

static bool
verify_end(struct verify_job *j, void (*rehearse)(void *), void *arg)
{
	j->rehearse = rehearse;
	j->rehearse_arg = arg;
	if (j->threaded) {
		/* on this CPU while the verify is the only one, and asleep
		 * for a while each time other threads took half of it (above) */
		uint64_t t0 = metrics_now_ns(), t = t0, others = 0;
		bool joined = false;

		while (j->apart && atomic_load(&verifies_apart) == 1 &&
		       atomic_load(&steps_running) == 0) {
			uint64_t was = t;

			if ((joined = pthread_tryjoin_np(j->t, NULL) == 0))
				break;
			rehearse_ahead(j);
			sched_yield();
			t = metrics_now_ns();
			if (t - was > VERIFY_BUSY_NS)
				others += t - was;
			if (t - t0 < VERIFY_BUSY_WINDOW_NS || others * 2 <= t - t0)
				continue;
			if ((joined = join_within(j->t, busy_nap(j))))
				break;
			t0 = t = metrics_now_ns();
			others = 0;
		}
		if (!joined)
			join_ahead(j);
		verify_learn(j->cpu_ns);
	} else
		j->ok = secret_verify(j->hash, j->code);
	atomic_fetch_sub(&verifies_apart, 1);
	return j->ok;
}

/*
 * The SIP user that dialed (lock held), from the forms a dialplan has: the
 * SIP user itself, a SIP URI ("sip:user@host", "<sip:user@host>": its user
 * part), or the extension number with its organization (r->org).  An
 * unknown number or organization gives "", which the engine answers
 * unknown_caller.  Returns buf or r->caller.
 */
static const char *
star30_caller(struct svc *s, const struct svc_star30_req *r, char *buf, size_t len)
{
	const char *c = r->caller, *end;
	size_t n;

	if (r->org != NULL) {
		const struct hd_org *o = world_org_by_name(s->w, r->org);
		const struct hd_ext *e = o ? world_ext_by_number(s->w, o->id, c) : NULL;

		return e != NULL ? e->sip_user : "";
	}
	if (*c == '<')
		c++;
	if (strncasecmp(c, "sip:", 4) == 0)
		c += 4;
	else if (strncasecmp(c, "sips:", 5) == 0)
		c += 5;
	else
		return r->caller;
	end = c + strcspn(c, "@;>:");
	n = (size_t)(end - c);
	if (n >= len)
		return "";
	memcpy(buf, c, n);
	buf[n] = '\0';
	return buf;
}

/* r decided as if its code were right (lock held): the move from a's
 * device for a's extension in the world as it is now
 * (virt_star30_checked) */
static void
star30_checked(struct svc *s, const struct svc_star30_req *r, const struct attempt *a,
               struct virt_decision *d)
{
	char caller_buf[160];

	virt_star30_checked(s->w, star30_caller(s, r, caller_buf, sizeof(caller_buf)), r->digits,
	                    a->dev, a->ext, d);
}

/*
 * While a's code is checked on another thread: the move the code would
 * make, applied to the world, its devices rendered (the prerender hook),
 * then undone, all under the lock.  The caller's CPU is idle meanwhile;
 * the locked part after the code then takes the files instead of
 * rendering them, and finds what it reads in that CPU's cache.  Nothing
 * is kept that the check does not find still true (render keys).
 */
static void
prerender_move(struct svc *s, const struct svc_star30_req *r, const struct attempt *a)
{
	struct virt_decision d;
	struct hd_idset changed = { 0 };

	if (s->prerender == NULL)
		return;
	mu_lock(s);
	star30_checked(s, r, a, &d);
	if (d.result == VIRT_ACCEPTED) {
		if (virt_apply_moved(s->w, &d.plan, &changed, NULL) == 0)
			s->prerender(s->prerender_arg, s->w, changed.v, changed.n);
		undo_plan(s, &d.plan);
	}
	mu_unlock(s);
	hd_idset_free(&changed);
}

/*
 * A move with a code rehearsed, near its hash's end (verify_end): under the
 * lock, decided again and its pair's row read, as its locked part will
 * once the hash ends; nothing is written.  While the hash runs the
 * caller's CPU has done nothing but wait for it, 100 ms, and the locked
 * part found its caches cold.  Rehearsed 2 ms ahead, moves alone on 2
 * cores of an AMD EPYC (bench/move.sh, 100k devices, TFTP on disk): the
 * locked part of a move with a code took 374-422 µs of CPU instead of
 * 448-564 (three and five runs of a probe build), and 99.40-99.85 % of
 * the moves were published within 1 ms (seven runs) instead of
 * 98.75-99.70 (seven).  Writing its rows in a
 * transaction rolled back warmed no more, and cost: SQLite drops the pages
 * a rollback touched, which the move then read again (8.6 a move).
 */
struct rehearsal {
	struct svc *s;
	const struct svc_star30_req *r;
	const struct attempt *a;
};

static void
rehearse_move(void *arg)
{
	const struct rehearsal *h = arg;
	struct svc *s = h->s;
	struct virt_decision d;
	struct store_pair sp;

	mu_lock(s);
	star30_checked(s, h->r, h->a, &d);
	(void)store_pair_get(s->st, h->a->dev, h->a->ext, &sp);
	mu_unlock(s);
	metrics_inc(METRICS_MOVE_REHEARSALS, 1);
}

static int
star30(struct svc *s, const struct svc_star30_req *r, struct svc_star30_res *res)
{
	char caller_buf[160];
	const char *caller;
	struct virt_decision d;
	struct attempt a = { 0 };
	struct svc_try reservation;
	struct verify_job vj;
	char *hash = NULL;
	unsigned long long gen = 0;
	uint64_t t_hash;
	bool ok = false;
	int rc = SVC_OK, crc, same = 1;

	a.call_id = (r->call_id && r->call_id[0]) ? r->call_id : NULL;
	mu_lock(s);
again:
	memset(res, 0, sizeof(*res));
	caller = star30_caller(s, r, caller_buf, sizeof(caller_buf));
	virt_star30(s->w, caller, r->digits, VIRT_CODE_NONE, &d);
	fill_res(res, &d);
	switch (d.result) {
	case VIRT_RETURNED:
		if ((crc = svc_commit_move(s, &d.plan, "star30", NULL, NULL)) != 0)
			rc = star30_failed(s, &d, crc);
		goto unlock;
	case VIRT_NOTHING:
		goto unlock;
	case VIRT_DENIED:
		if (denied_event(s, &d, d.caller ? d.caller->mac : NULL) != 0)
			rc = SVC_INTERNAL;
		mu_unlock(s);
		/* the same time whether or not the extension exists or has a code */
		if (r->code != NULL) {
			uint64_t t0 = metrics_now_ns();

			demand_move_pause(); /* nothing left to publish */
			secret_verify_dummy(r->code, s->o.hash_ops, s->o.hash_mem);
			metrics_move_hash(metrics_now_ns() - t0);
		}
		return rc;
	case VIRT_NEED_CODE:
		break;
	default:
		rc = SVC_INTERNAL;
		goto unlock;
	}
	a.dev = d.caller->id;
	a.ext = d.ext->id;
	if (attempt_load(s, &a, now_s()) != 0) {
		rc = SVC_INTERNAL;
		goto unlock;
	}
	if (guard_locked(&s->o.guard, &a.pair, now_s())) {
		res->result = VIRT_DENIED;
		res->reason = VIRT_R_LOCKED;
		if (denied_event(s, &(struct virt_decision){ .reason = VIRT_R_LOCKED,
		                 .caller = d.caller, .ext = d.ext }, d.caller->mac) != 0)
			rc = SVC_INTERNAL;
		goto unlock;
	}
	if (attempt_counts_calls(s, &a) && guard_call_exhausted(&s->o.guard, &a.eff)) {
		res->result = VIRT_HANGUP;
		goto unlock;
	}
	if (r->code == NULL) {
		res->tries_left = attempt_counts_calls(s, &a) ?
		    guard_call_room(&s->o.guard, &a.eff) : s->o.guard.tries_per_call;
		goto unlock; /* need_code */
	}
	if (!attempt_has_room(s, &a, now_s())) {
		/* the tries left are taken by verifies running now: wait for
		 * their outcome and decide again (needing no CPU meanwhile) */
		demand_move_pause();
		pthread_cond_wait(&s->tries_done, &s->mu);
		demand_move_resume();
		goto again;
	}
	if ((hash = malloc(SECRET_HASH_LEN)) == NULL ||
	    store_ext_secret(s->st, d.ext->id, hash, SECRET_HASH_LEN) != 1) {
		rc = SVC_INTERNAL;
		goto unlock;
	}
	gen = store_codes_gen(s->st);
	try_reserve(s, &reservation, &a);
	mu_unlock(s);

	t_hash = metrics_now_ns();
	demand_move_pause(); /* the check takes its own CPU, not a job's */
	verify_start(&vj, hash, r->code);
	if (vj.threaded)
		prerender_move(s, r, &a);
	ok = verify_end(&vj, rehearse_move, &(struct rehearsal){ s, r, &a });
	demand_move_resume();
	metrics_move_hash(metrics_now_ns() - t_hash);
	metrics_inc(METRICS_CODE_CHECKS, 1);

	mu_lock(s);
	memset(res, 0, sizeof(*res));
	/* decide again: the world may have changed while we verified
	 * (virt_star30_checked).  The reservation goes when the outcome is
	 * recorded (still under the lock), so waiters see both at once. */
	try_release(s, &reservation);
	star30_checked(s, r, &a, &d);
	if (ok && d.result == VIRT_ACCEPTED && (same = same_secret(s, a.ext, hash, gen)) <= 0) {
		if (same < 0) {
			rc = SVC_INTERNAL; /* the store cannot tell: nothing changed */
			goto unlock;
		}
		/* the code checked was replaced meanwhile: it proves nothing;
		 * ask for the code again, without counting a failure */
		d.result = VIRT_NEED_CODE;
	}
	if (!ok) {
		const struct hd_ext *e = world_ext(s->w, a.ext);

		if (e != NULL)
			snprintf(res->extension, sizeof(res->extension), "%s", e->number);
		if (code_failed(s, &a, res) != 0)
			rc = SVC_INTERNAL;
		goto unlock;
	}
	fill_res(res, &d);
	switch (d.result) {
	case VIRT_ACCEPTED:
	case VIRT_RETURNED: /* the calling device became the extension's home */
		if ((crc = svc_commit_move(s, &d.plan, "star30", pair_reset, &a)) != 0)
			rc = star30_failed(s, &d, crc);
		break;
	case VIRT_DENIED: /* recorded against the phone that asked (d.caller) */
		(void)denied_event(s, &d, d.caller ? d.caller->mac : NULL);
		break;
	default: /* NEED_CODE, NOTHING: answered as they are */
		break;
	}
unlock:
	mu_unlock(s);
	if (ok) /* the code is right: its hash may be made again (renew_hash) */
		renew_hash(s, STORE_HASH_CODE, a.ext, hash, r->code);
	if (hash != NULL) {
		sodium_memzero(hash, SECRET_HASH_LEN);
		free(hash);
	}
	return rc;
}

/* A *30 is a move under way (demand.h) from its start to its end, but for
 * its code check: jobs in steps leave it the CPUs. */
int
svc_star30(struct svc *s, const struct svc_star30_req *r, struct svc_star30_res *res)
{
	int rc;

	demand_move_begin();
	rc = star30(s, r, res);
	demand_move_end();
	return rc;
}

/* ---- registrations and status ------------------------------------------ */

static int
copy_field(char *dst, size_t len, const char *src, const char *name, char *err, size_t errlen)
{
	if ((size_t)snprintf(dst, len, "%s", src ? src : "") >= len) {
		hd_seterr(err, errlen, "%s is too long", name);
		return -1;
	}
	return 0;
}

/* A registration stored, then the resync engine told (svc_registration). */
struct reg_tx {
	const struct svc_registration *r;
	const struct store_reg *reg;
};

static int
reg_body(struct svc *s, void *arg)
{
	struct reg_tx *x = arg;

	if ((x->r->expires == 0 ? store_reg_delete(s->st, x->reg->sip_user)
	                        : store_reg_put(s->st, x->reg)) != 0)
		return -1;
	/* what the hook records goes with the registration, or nothing does */
	if (s->reg_hook != NULL &&
	    s->reg_hook(s->reg_hook_arg, s->w, s->st, x->r, x->reg->updated_at) != 0)
		return -1;
	return 0;
}

int
svc_registration(struct svc *s, const struct svc_registration *r, char *err, size_t errlen)
{
	struct store_reg reg;
	int rc;

	memset(&reg, 0, sizeof(reg));
	if (copy_field(reg.sip_user, sizeof(reg.sip_user), r->sip_user, "sip_user", err, errlen) ||
	    copy_field(reg.contact, sizeof(reg.contact), r->contact, "contact", err, errlen) ||
	    copy_field(reg.source, sizeof(reg.source), r->source, "source", err, errlen) ||
	    copy_field(reg.user_agent, sizeof(reg.user_agent), r->user_agent, "user_agent", err,
	               errlen) ||
	    copy_field(reg.call_id, sizeof(reg.call_id), r->call_id, "call_id", err, errlen))
		return SVC_BAD;
	reg.updated_at = now_s();
	reg.expires_at = reg.updated_at + r->expires;
	mu_lock(s);
	rc = tx(s, reg_body, &(struct reg_tx){ r, &reg });
	if (rc != 0) {
		hd_seterr(err, errlen, "cannot record the registration");
		log_error("registration: %s", store_errmsg(s->st));
	}
	mu_unlock(s);
	return rc == 0 ? SVC_OK : SVC_INTERNAL;
}

int
svc_caller_language(struct svc *s, const char *caller, char *buf, size_t len)
{
	const struct hd_ext *e;
	const struct hd_dev *d;
	const struct hd_org *o = NULL;
	int rc = SVC_NOTFOUND;

	if (len > 0)
		buf[0] = '\0';
	mu_lock(s);
	if ((e = world_ext_by_sip_user(s->w, caller)) != NULL)
		o = world_org(s->w, e->org);
	else if ((d = world_dev_by_parking_user(s->w, caller)) != NULL)
		o = world_org(s->w, d->org);
	if (o != NULL && o->site.language != NULL && strlen(o->site.language) < len) {
		strcpy(buf, o->site.language);
		rc = SVC_OK;
	}
	mu_unlock(s);
	return rc;
}

int
svc_ext_status(struct svc *s, const char *sip_user, enum virt_status *st,
               char mac[HD_MAC_LEN + 1])
{
	const struct hd_ext *e;
	const struct hd_dev *d = NULL;
	int rc = SVC_OK;

	mac[0] = '\0';
	mu_lock(s);
	if ((e = world_ext_by_sip_user(s->w, sip_user)) == NULL) {
		rc = SVC_NOTFOUND;
	} else {
		*st = virt_ext_status(s->w, e);
		if (*st == VIRT_ST_VIRTUALIZED)
			d = world_dev(s->w, e->virtual_on);
		else if (*st == VIRT_ST_HOME)
			d = world_dev(s->w, e->home_dev);
		if (d != NULL)
			memcpy(mac, d->mac, HD_MAC_LEN + 1);
	}
	mu_unlock(s);
	return rc;
}

/* ---- tokens ------------------------------------------------------------- */

struct svc_principal
svc_auth(struct svc *s, const char *token)
{
	struct svc_principal p = { SVC_ROLE_NONE, 0, 0 };
	char hash[65];

	if (token == NULL || token[0] == '\0' || strlen(token) > 256)
		return p;
	secret_token_hash(token, hash);
	return svc_auth_hash(s, hash);
}

struct svc_principal
svc_auth_hash(struct svc *s, const char *hash)
{
	struct svc_principal p = { SVC_ROLE_NONE, 0, 0 };
	char role[STORE_ROLE_MAX];
	hd_id org = 0;

	mu_lock(s);
	if (store_token_find_id(s->st, hash, role, &org, &p.token) == 1) {
		if (strcmp(role, "admin") == 0)
			p.role = SVC_ROLE_ADMIN;
		else if (strcmp(role, "pbx") == 0)
			p.role = SVC_ROLE_PBX;
		else if (strcmp(role, "org") == 0 && world_org(s->w, org) != NULL)
			p.role = SVC_ROLE_ORG, p.org = org;
	}
	mu_unlock(s);
	if (p.role == SVC_ROLE_NONE)
		p.token = 0;
	return p;
}

/* A token written with its event (svc_token_new, svc_token_rotate,
 * svc_token_revoke). */
struct token_tx {
	const char *hash; /* new and rotate */
	const char *role;
	hd_id org;
	const char *name;
	hd_id *id;
};

static int
token_new_body(struct svc *s, void *arg)
{
	struct token_tx *t = arg;

	if (store_token_add(s->st, t->hash, t->role, t->org, t->name, now_s(), t->id) != 0)
		return -1;
	return event(s, "token.new", t->org, NULL, NULL, json_pack("{s:I, s:s, s:s?}", "token",
	             (json_int_t)*t->id, "role", t->role, "name", t->name));
}

static int
token_rotate_body(struct svc *s, void *arg)
{
	struct token_tx *t = arg;

	if (store_token_rehash(s->st, *t->id, t->hash, now_s()) != 0)
		return -1;
	return event(s, "token.rotate", t->org, NULL, NULL,
	             json_pack("{s:I, s:s}", "token", (json_int_t)*t->id, "role", t->role));
}

static int
token_revoke_body(struct svc *s, void *arg)
{
	struct token_tx *t = arg;

	if (store_token_delete(s->st, *t->id) != 0)
		return -1;
	return event(s, "token.revoke", t->org, NULL, NULL,
	             json_pack("{s:I, s:s}", "token", (json_int_t)*t->id, "role", t->role));
}

int
svc_token_new(struct svc *s, enum svc_role role, const char *org, const char *name, char *out,
              size_t outlen, hd_id *id, char *err, size_t errlen)
{
	struct token_tx tn;
	char tok[SECRET_TOKEN_LEN + 1], hash[65];
	const char *rname = role == SVC_ROLE_ADMIN ? "admin" : role == SVC_ROLE_ORG ? "org" : "pbx";
	hd_id org_id = 0;
	int rc = SVC_OK;

	if (outlen <= SECRET_TOKEN_LEN) {
		hd_seterr(err, errlen, "token buffer too small");
		return SVC_INTERNAL;
	}
	secret_token_new(tok);
	secret_token_hash(tok, hash);
	lock(s);
	if (role == SVC_ROLE_ORG) {
		const struct hd_org *o = world_org_by_name(s->w, org);

		if (o == NULL) {
			hd_seterr(err, errlen, "no such organization");
			rc = SVC_NOTFOUND;
			goto out;
		}
		org_id = o->id;
	}
	tn.hash = hash;
	tn.role = rname;
	tn.org = org_id;
	tn.name = name;
	tn.id = id;
	if (tx(s, token_new_body, &tn) != 0) {
		hd_seterr(err, errlen, "cannot store the token");
		rc = SVC_INTERNAL;
		goto out;
	}
	memcpy(out, tok, SECRET_TOKEN_LEN + 1);
out:
	unlock(s);
	sodium_memzero(tok, sizeof(tok));
	return rc;
}

/* What rotate and revoke need to know of a token (store_token_get). */
struct token_info {
	char role[STORE_ROLE_MAX];
	hd_id org;
	bool from_config;
};

static int
token_info_cb(const struct store_token *t, void *arg)
{
	struct token_info *ti = arg;

	snprintf(ti->role, sizeof(ti->role), "%s", t->role); /* roles fit: CHECK in SQL */
	ti->org = t->org;
	ti->from_config = t->from_config;
	return 0;
}

/* Looks token id up for a change (lock held): SVC_OK, SVC_NOTFOUND, or
 * SVC_CONFLICT for a token of the configuration file. */
static int
token_changeable(struct svc *s, hd_id id, struct token_info *ti, char *err, size_t errlen)
{
	int rc = store_token_get(s->st, id, token_info_cb, ti);

	if (rc < 0) {
		hd_seterr(err, errlen, "database error");
		return SVC_INTERNAL;
	}
	if (rc == 0) {
		hd_seterr(err, errlen, "no token %lld", (long long)id);
		return SVC_NOTFOUND;
	}
	if (ti->from_config) {
		hd_seterr(err, errlen, "token %lld is set in the configuration file: change it "
		          "there", (long long)id);
		return SVC_CONFLICT;
	}
	return SVC_OK;
}

int
svc_token_rotate(struct svc *s, hd_id id, char *out, size_t outlen, char *err, size_t errlen)
{
	char tok[SECRET_TOKEN_LEN + 1], hash[65];
	struct token_info ti;
	struct token_tx tr;
	int rc;

	if (outlen <= SECRET_TOKEN_LEN) {
		hd_seterr(err, errlen, "token buffer too small");
		return SVC_INTERNAL;
	}
	secret_token_new(tok);
	secret_token_hash(tok, hash);
	lock(s);
	if ((rc = token_changeable(s, id, &ti, err, errlen)) != SVC_OK)
		goto out;
	tr = (struct token_tx){ .hash = hash, .role = ti.role, .org = ti.org, .id = &id };
	if (tx(s, token_rotate_body, &tr) != 0) {
		hd_seterr(err, errlen, "cannot store the token");
		rc = SVC_INTERNAL;
		goto out;
	}
	memcpy(out, tok, SECRET_TOKEN_LEN + 1);
out:
	unlock(s);
	sodium_memzero(tok, sizeof(tok));
	return rc;
}

int
svc_token_revoke(struct svc *s, hd_id id, char *err, size_t errlen)
{
	struct token_info ti;
	struct token_tx tr;
	int rc;

	lock(s);
	if ((rc = token_changeable(s, id, &ti, err, errlen)) != SVC_OK)
		goto out;
	tr = (struct token_tx){ .role = ti.role, .org = ti.org, .id = &id };
	if (tx(s, token_revoke_body, &tr) != 0) {
		hd_seterr(err, errlen, "database error");
		rc = SVC_INTERNAL;
	}
out:
	unlock(s);
	return rc;
}

/* ---- administration ----------------------------------------------------- */

static int
bad(struct svc_result *r, int code, const char *field, const char *fmt, const char *arg)
{
	hd_seterr(r->err, sizeof(r->err), fmt, arg);
	r->field = field;
	return code;
}

/* One value phones render, under the name the admin API gives it. */
struct rendered_value {
	const char *field; /* static */
	const char *value;
};

/* Whether every value can be rendered by profile p (NULL: by every
 * profile).  SVC_OK, or SVC_BAD with the field named. */
static int
renderable(const struct vendor_profile *p, const struct rendered_value *v, size_t n,
           struct svc_result *r)
{
	char err[200];

	for (size_t i = 0; i < n; i++) {
		if (vendor_field_check(p, v[i].field, v[i].value, err, sizeof(err)) != 0) {
			hd_seterr(r->err, sizeof(r->err), "%s: %s", v[i].field, err);
			r->field = v[i].field;
			return SVC_BAD;
		}
	}
	return SVC_OK;
}

/* An extension may be carried by a phone of any family: its values must
 * render on every profile. */
static int
ext_renderable(const struct hd_ext *e, struct svc_result *r)
{
	const struct rendered_value v[] = {
		{ "sip_user", e->sip_user },
		{ "sip_password", e->sip_password },
		{ "display_name", e->display_name },
		{ "label", e->label },
		{ "sip_server.host", e->sip.host },
		{ "voicemail", e->voicemail },
	};
	int rc = renderable(NULL, v, sizeof(v) / sizeof(v[0]), r);

	for (size_t i = 0; rc == SVC_OK && i < e->nkeys; i++) {
		const struct rendered_value k[] = {
			{ "keys.label", e->keys[i].label },
			{ "keys.value", e->keys[i].value },
		};

		rc = renderable(NULL, k, sizeof(k) / sizeof(k[0]), r);
		if (rc != SVC_OK)
			r->item = (int)i + 1;
	}
	return rc;
}

/* A device's own values render on its profile only. */
static int
dev_renderable(const struct hd_dev *d, struct svc_result *r)
{
	const struct rendered_value v[] = {
		{ "parking.sip_user", d->parking_user },
		{ "parking.sip_password", d->parking_password },
		{ "model", d->model },
	};
	const struct vendor_profile *p = vendor_profile_by_name(d->profile);

	if (p == NULL)
		return bad(r, SVC_BAD, "profile", "%s", "profile: unknown vendor profile");
	return renderable(p, v, sizeof(v) / sizeof(v[0]), r);
}

/* The answer to a change svc_commit2 refused (crc: its return value):
 * the files it would give some phone do not render (409: the change
 * conflicts with the templates or stored values), or the database failed. */
static int
commit_failed(struct svc *s, struct svc_result *r, int crc, const char *field)
{
	if (crc == SVC_COMMIT_RENDER)
		return bad(r, SVC_CONFLICT, field, "refused, nothing changed: %s", s->check_err);
	return bad(r, SVC_INTERNAL, NULL, "%s", "database error");
}

struct devlist {
	hd_id org;
	hd_id *v;
	size_t n, cap;
	const char *mac; /* svc_resync: the device named, or NULL */
};

static int
devlist_add(struct hd_dev *d, void *arg)
{
	struct devlist *l = arg;

	if (d->org != l->org)
		return 0;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		hd_id *v = realloc(l->v, ncap * sizeof(*v));

		if (v == NULL)
			return 1;
		l->v = v;
		l->cap = ncap;
	}
	l->v[l->n++] = d->id;
	return 0;
}

/* Hands every device of an organization to the hook (lock held). */
static void
touch_org(struct svc *s, hd_id org)
{
	struct devlist l = { org, NULL, 0, 0, NULL };

	if (world_each_dev(s->w, devlist_add, &l) == 0)
		handoff(s, "admin", 0, l.v, l.n, NULL, NULL);
	free(l.v);
}

/* The transaction body of an admin change: write one object. */
struct put_tx {
	int kind; /* 'o', 'e', 'd' */
	void *obj;
	hd_id del_id; /* deletes */
	const char *type;
	hd_id org;
	const char *ext_number, *mac;
	json_t *detail; /* consumed */
	bool created;
	int store_rc;
};

/* The answer to an admin change whose transaction failed: a conflict
 * names the field whose unique key collided. */
static int
put_failed(struct svc *s, struct svc_result *r, struct put_tx *t, int crc,
           const char *conflict_field)
{
	json_decref(t->detail); /* not consumed when the write failed */
	t->detail = NULL;
	if (crc == SVC_COMMIT_RENDER)
		return commit_failed(s, r, crc, NULL);
	return t->store_rc == STORE_CONFLICT ? bad(r, SVC_CONFLICT, conflict_field, "%s", "conflict")
	                                     : bad(r, SVC_INTERNAL, NULL, "%s", "database error");
}

static int
put_tx_run(struct svc *s, void *arg)
{
	struct put_tx *t = arg;
	int rc;

	switch (t->kind) {
	case 'o':
		/* a new organization has its id only now: its event names it */
		if ((rc = store_org_put(s->st, t->obj)) == 0)
			t->org = ((struct hd_org *)t->obj)->id;
		break;
	case 'e': rc = store_ext_put(s->st, t->obj); break;
	case 'd': rc = store_dev_put(s->st, t->obj); break;
	case 'O': rc = store_org_delete(s->st, t->del_id); break;
	case 'E': rc = store_ext_delete(s->st, t->del_id); break;
	case 'D': rc = store_dev_delete(s->st, t->del_id); break;
	default: rc = -1;
	}
	t->store_rc = rc;
	if (rc != 0)
		return -1;
	/* devices whose files change with this object, beyond the moves */
	if (t->kind == 'E') {
		const struct hd_ext *e = world_ext(s->w, t->del_id);

		if (e != NULL && e->home_dev != 0 && store_resync_enqueue(s->st, e->home_dev, now_s()) != 0)
			return -1;
	} else if (t->kind == 'o' && ((struct hd_org *)t->obj)->id != 0 && !t->created) {
		struct devlist l = { ((struct hd_org *)t->obj)->id, NULL, 0, 0, NULL };

		rc = world_each_dev(s->w, devlist_add, &l) ? -1 : 0;
		if (rc == 0)
			rc = store_resync_enqueue_n(s->st, l.v, l.n, now_s());
		free(l.v);
		if (rc != 0)
			return -1;
	}
	rc = event(s, t->type, t->org, t->ext_number, t->mac, t->detail);
	t->detail = NULL;
	return rc;
}

static void touch_org(struct svc *s, hd_id org);

int
svc_org_put(struct svc *s, struct hd_org *o, struct svc_result *r)
{
	int crc;
	struct hd_org *old, *copy = NULL;
	struct put_tx t = { .kind = 'o', .type = "org.put" };
	struct virt_plan none = { 0 };
	const struct rendered_value v[] = { { "sip_server.host", o->sip.host },
	                                    { "site.ntp_server", o->site.ntp_server } };
	char err[256];
	int rc = SVC_OK;

	if ((rc = renderable(NULL, v, 2, r)) != SVC_OK) {
		hd_org_free(o);
		return rc;
	}
	lock(s);
	old = world_org_by_name(s->w, o->name);
	o->id = old ? old->id : 0;
	r->created = old == NULL;
	t.obj = o;
	t.created = r->created;
	t.detail = json_pack("{s:b}", "created", r->created);
	if ((crc = svc_commit(s, &none, "admin", put_tx_run, &t, NULL, 0)) != 0) {
		rc = put_failed(s, r, &t, crc, "name");
		goto out;
	}
	t.org = o->id;
	if ((copy = hd_org_dup(o)) == NULL || world_put_org(s->w, copy, err, sizeof(err)) != 0)
		fatal("organization %s stored but not loaded: %s", o->name, copy ? err : "oom");
	/* the registrar default changed: every device of the org re-renders */
	if (!r->created)
		touch_org(s, o->id);
out:
	unlock(s);
	hd_org_free(o);
	return rc;
}

static int
org_has_members_ext(struct hd_ext *e, void *arg)
{
	return e->org == *(hd_id *)arg;
}

static int
org_has_members_dev(struct hd_dev *d, void *arg)
{
	return d->org == *(hd_id *)arg;
}

int
svc_org_delete(struct svc *s, const char *name, struct svc_result *r)
{
	struct hd_org *o;
	struct put_tx t = { .kind = 'O', .type = "org.delete" };
	struct virt_plan none = { 0 };
	int rc = SVC_OK;

	lock(s);
	if ((o = world_org_by_name(s->w, name)) == NULL) {
		rc = bad(r, SVC_NOTFOUND, NULL, "no organization %s", name);
		goto out;
	}
	if (world_each_ext(s->w, org_has_members_ext, &o->id) ||
	    world_each_dev(s->w, org_has_members_dev, &o->id)) {
		rc = bad(r, SVC_CONFLICT, NULL, "%s", "organization still has extensions or devices");
		goto out;
	}
	t.del_id = o->id;
	t.detail = json_pack("{s:s}", "name", name);
	if (svc_commit(s, &none, "admin", put_tx_run, &t, NULL, 0) != 0) {
		json_decref(t.detail);
		rc = bad(r, SVC_INTERNAL, NULL, "%s", "database error");
		goto out;
	}
	world_del_org(s->w, o->id);
out:
	unlock(s);
	return rc;
}

/*
 * The common shape of an admin change to an extension or device:
 *   - put the new object into the world (validates unique keys),
 *   - ask the engine which virtualizations the change breaks (virt_repair),
 *   - commit moves + the object + an event in one transaction,
 *   - on failure, put the old object back.
 * `touched` are devices whose render input changed with the object itself.
 */
int
svc_ext_put(struct svc *s, struct hd_ext *e, const char *secret, struct svc_result *r)
{
	int crc;
	char hash[crypto_pwhash_STRBYTES], err[256];
	struct hd_ext *old, *copy = NULL, *back = NULL;
	struct put_tx t = { .kind = 'e', .type = "extension.put" };
	struct virt_plan plan = { 0 };
	hd_id touched[1] = { 0 };
	size_t ntouched = 0;
	int rc = SVC_OK;

	if ((rc = ext_renderable(e, r)) != SVC_OK) {
		hd_ext_free(e);
		return rc;
	}
	if (secret != NULL && secret[0] != '\0') {
		if (secret_code_valid(secret, s->o.code_min_len, err, sizeof(err)) != 0) {
			hd_ext_free(e);
			return bad(r, SVC_BAD, "secret_code", "%s", err);
		}
		if (secret_hash(secret, s->o.hash_ops, s->o.hash_mem, hash, err, sizeof(err)) != 0) {
			hd_ext_free(e);
			return bad(r, SVC_INTERNAL, "secret_code", "%s", err);
		}
	}
	lock(s);
	old = world_ext_by_number(s->w, e->org, e->number);
	r->created = old == NULL;
	e->id = old ? old->id : 0;
	e->virtual_on = old ? old->virtual_on : 0;
	free(e->secret_hash);
	e->secret_hash = NULL;
	if (secret == NULL) { /* keep the code: the store keeps its hash */
		e->has_secret = old != NULL && old->has_secret;
	} else {
		e->has_secret = secret[0] != '\0';
		if (e->has_secret && (e->secret_hash = strdup(hash)) == NULL) {
			rc = bad(r, SVC_INTERNAL, NULL, "%s", "out of memory");
			goto out;
		}
	}
	if (world_check_ext(s->w, e, err, sizeof(err)) != 0) {
		rc = bad(r, SVC_CONFLICT, strstr(err, "sip_user") ? "sip_user" : "number", "%s", err);
		goto out;
	}
	/* store first to get an id for a new extension */
	t.obj = e;
	t.org = e->org;
	t.ext_number = e->number;
	t.detail = json_pack("{s:b, s:b, s:b}", "created", r->created, "allow_virtualization",
	                     e->allow_virtualization, "has_secret_code", e->has_secret);
	if (old != NULL) {
		if ((back = hd_ext_dup(old)) == NULL) {
			rc = bad(r, SVC_INTERNAL, NULL, "%s", "out of memory");
			goto out;
		}
		/* try the change in the world, see what it breaks */
		if ((copy = hd_ext_dup(e)) == NULL || world_put_ext(s->w, copy, err, sizeof(err)) != 0) {
			rc = bad(r, SVC_INTERNAL, NULL, "%s", "out of memory");
			goto out;
		}
		if (virt_repair(s->w, &plan) != 0) {
			rc = bad(r, SVC_INTERNAL, NULL, "%s", "too many virtualizations affected");
			goto restore;
		}
		{
			/* `old` was freed by world_put_ext: `back` is its copy */
			const struct hd_dev *dv = world_dev(s->w, back->virtual_on ? back->virtual_on
			                                                             : back->home_dev);

			if (dv != NULL)
				touched[ntouched++] = dv->id;
		}
	}
	if ((crc = svc_commit(s, &plan, "admin", put_tx_run, &t, touched, ntouched)) != 0) {
		rc = put_failed(s, r, &t, crc, "sip_user");
		goto restore;
	}
	if (old == NULL) {
		if ((copy = hd_ext_dup(e)) == NULL || world_put_ext(s->w, copy, err, sizeof(err)) != 0)
			fatal("extension stored but not loaded: %s", err);
	} else {
		/* the world holds the change; virtual_on as the plan left it */
		hd_ext_free(back);
	}
	goto out;
restore:
	if (back != NULL && world_put_ext(s->w, back, err, sizeof(err)) != 0)
		fatal("cannot restore an extension: %s", err);
out:
	unlock(s);
	sodium_memzero(hash, sizeof(hash));
	hd_ext_free(e);
	return rc;
}

/* Hands devices to the hook outside svc_commit (deletions; lock held). */
static void
hook_devs(struct svc *s, const hd_id *v, size_t n)
{
	handoff(s, "admin", 0, v, n, NULL, NULL);
}

int
svc_ext_delete(struct svc *s, hd_id org, const char *number, struct svc_result *r)
{
	int crc;
	struct hd_ext *e;
	struct put_tx t = { .kind = 'E', .type = "extension.delete" };
	struct virt_plan plan = { 0 };
	hd_id home;
	int rc = SVC_OK;

	lock(s);
	if ((e = world_ext_by_number(s->w, org, number)) == NULL) {
		rc = bad(r, SVC_NOTFOUND, NULL, "no extension %s", number);
		goto out;
	}
	if (virt_plan_delete_ext(s->w, e, &plan) != 0) {
		rc = bad(r, SVC_INTERNAL, NULL, "%s", "too many virtualizations affected");
		goto out;
	}
	t.del_id = e->id;
	t.org = org;
	t.ext_number = number;
	if ((crc = svc_commit2(s, &plan, "admin", NULL, put_tx_run, &t, NULL, 0)) != 0) {
		rc = commit_failed(s, r, crc, NULL);
		goto out;
	}
	home = e->home_dev;
	world_del_ext(s->w, e->id);
	check_invariants(s, "extension delete");
	if (home != 0)
		hook_devs(s, &home, 1); /* now without a home extension */
out:
	unlock(s);
	return rc;
}

int
svc_ext_return(struct svc *s, hd_id org, const char *number, struct svc_star30_res *res,
               struct svc_result *r)
{
	int crc;
	struct hd_ext *e;
	struct virt_decision d;
	int rc = SVC_OK;

	memset(res, 0, sizeof(*res));
	demand_move_begin(); /* a move, as a *30's (demand.h) */
	lock(s);
	if ((e = world_ext_by_number(s->w, org, number)) == NULL) {
		rc = bad(r, SVC_NOTFOUND, NULL, "no extension %s", number);
		goto out;
	}
	virt_return(s->w, e, &d);
	fill_res(res, &d);
	if (d.result == VIRT_RETURNED &&
	    (crc = svc_commit_move(s, &d.plan, "api", NULL, NULL)) != 0)
		rc = commit_failed(s, r, crc, NULL);
out:
	unlock(s);
	demand_move_end();
	return rc;
}

int
svc_dev_put(struct svc *s, struct hd_dev *d, struct svc_result *r)
{
	int crc;
	struct hd_dev *old, *copy = NULL, *back = NULL;
	struct put_tx t = { .kind = 'd', .type = "device.put" };
	struct virt_plan plan = { 0 };
	hd_id touched[2] = { 0, 0 };
	size_t ntouched = 0;
	char err[256];
	int rc = SVC_OK;

	if ((rc = dev_renderable(d, r)) != SVC_OK) {
		hd_dev_free(d);
		return rc;
	}
	lock(s);
	old = world_dev_by_mac(s->w, d->mac);
	r->created = old == NULL;
	d->id = old ? old->id : 0;
	if (world_check_dev(s->w, d, err, sizeof(err)) != 0) {
		const char *field = strstr(err, "parking") ? "parking"
		                  : strstr(err, "home") ? "home_extension"
		                  : strstr(err, "organization") ? "org" : "mac";

		rc = bad(r, strstr(err, "already") ? SVC_CONFLICT : SVC_BAD, field, "%s", err);
		goto out;
	}
	t.obj = d;
	t.org = d->org;
	t.mac = d->mac;
	t.detail = json_pack("{s:b, s:s?}", "created", r->created, "profile", d->profile);
	if (old != NULL) {
		if ((back = hd_dev_dup(old)) == NULL || (copy = hd_dev_dup(d)) == NULL ||
		    world_put_dev(s->w, copy, err, sizeof(err)) != 0) {
			rc = bad(r, SVC_INTERNAL, NULL, "%s", "out of memory");
			goto restore;
		}
		if (virt_repair(s->w, &plan) != 0) {
			rc = bad(r, SVC_INTERNAL, NULL, "%s", "too many virtualizations affected");
			goto restore;
		}
		touched[ntouched++] = d->id;
	}
	if ((crc = svc_commit(s, &plan, "admin", put_tx_run, &t, touched, ntouched)) != 0) {
		rc = put_failed(s, r, &t, crc, "mac");
		goto restore;
	}
	if (old == NULL) {
		if ((copy = hd_dev_dup(d)) == NULL || world_put_dev(s->w, copy, err, sizeof(err)) != 0)
			fatal("device stored but not loaded: %s", err);
		check_invariants(s, "device put");
		touched[0] = d->id;
		hook_devs(s, touched, 1);
	} else {
		hd_dev_free(back);
	}
	goto out;
restore:
	if (back != NULL && world_put_dev(s->w, back, err, sizeof(err)) != 0)
		fatal("cannot restore a device: %s", err);
out:
	unlock(s);
	hd_dev_free(d);
	return rc;
}

int
svc_dev_delete(struct svc *s, const char *mac, struct svc_result *r)
{
	int crc;
	struct hd_dev *d;
	struct put_tx t = { .kind = 'D', .type = "device.delete" };
	struct virt_plan plan = { 0 };
	hd_id id;
	int rc = SVC_OK;

	lock(s);
	if ((d = world_dev_by_mac(s->w, mac)) == NULL) {
		rc = bad(r, SVC_NOTFOUND, NULL, "no device %s", mac);
		goto out;
	}
	if (virt_plan_delete_dev(s->w, d, &plan) != 0) {
		rc = bad(r, SVC_INTERNAL, NULL, "%s", "too many virtualizations affected");
		goto out;
	}
	t.del_id = id = d->id;
	t.org = d->org;
	t.mac = d->mac;
	s->gone = id;
	crc = svc_commit2(s, &plan, "admin", NULL, put_tx_run, &t, NULL, 0);
	s->gone = 0;
	if (crc != 0) {
		rc = commit_failed(s, r, crc, NULL);
		goto out;
	}
	world_del_dev(s->w, id);
	check_invariants(s, "device delete");
	hook_devs(s, &id, 1); /* gone: the publisher removes its files */
out:
	unlock(s);
	return rc;
}

void
svc_housekeeping(struct svc *s)
{
	long long now = now_s();

	mu_lock(s);
	/* a call's tries matter while it lasts: a day is far more than enough */
	if (store_calls_expire(s->st, now - 86400) < 0 ||
	    store_pairs_expire(s->st, now - (long long)s->o.guard.window - s->o.guard.backoff_max) < 0 ||
	    store_regs_expire(s->st, now) < 0)
		log_warn("housekeeping: %s", store_errmsg(s->st));
	mu_unlock(s);
}

/* ---- resync on request -------------------------------------------------- */

/* The outbox rows of the devices of l and the event, in one transaction. */
static int
resync_body(struct svc *s, void *arg)
{
	struct devlist *l = arg;

	if (store_resync_enqueue_n(s->st, l->v, l->n, now_s()) != 0)
		return -1;
	return event(s, "resync.requested", l->org, NULL, l->mac,
	             json_pack("{s:I}", "devices", (json_int_t)l->n));
}

int
svc_resync(struct svc *s, const char *mac, const char *org, size_t *count, struct svc_result *r)
{
	struct devlist l = { 0, NULL, 0, 0, NULL };
	const struct hd_dev *d = NULL;
	const struct hd_org *o = NULL;
	int rc = SVC_OK;

	*count = 0;
	lock(s);
	if (mac != NULL) {
		if ((d = world_dev_by_mac(s->w, mac)) == NULL) {
			rc = bad(r, SVC_NOTFOUND, "mac", "no device %s", mac);
			goto out;
		}
		l.org = d->org;
		if ((l.v = malloc(sizeof(*l.v))) == NULL) {
			rc = bad(r, SVC_INTERNAL, NULL, "%s", "out of memory");
			goto out;
		}
		l.v[l.n++] = d->id;
	} else {
		if (org == NULL || (o = world_org_by_name(s->w, org)) == NULL) {
			rc = bad(r, SVC_NOTFOUND, "org", "no organization %s", org ? org : "");
			goto out;
		}
		l.org = o->id;
		if (world_each_dev(s->w, devlist_add, &l) != 0) {
			rc = bad(r, SVC_INTERNAL, NULL, "%s", "out of memory");
			goto out;
		}
	}
	l.mac = d ? d->mac : NULL;
	if (tx(s, resync_body, &l) != 0)
		goto fail;
	*count = l.n;
	handoff(s, "resync", 0, l.v, l.n, NULL, NULL);
	goto out;
fail:
	log_error("resync request not recorded: %s", store_errmsg(s->st));
	rc = bad(r, SVC_INTERNAL, NULL, "%s", "database error");
out:
	unlock(s);
	free(l.v);
	return rc;
}

/* A checkpoint copies pages into the database file and fsyncs it: on a
 * busy disk that delays the moves committing meanwhile, so one runs only
 * when it is worth it.  Each tick checkpoints when the log holds
 * SVC_CKPT_FRAMES frames or more, or when nothing was committed since the
 * tick before (the log stopped growing: a quiet daemon still copies its
 * log back); never twice for the same commits. */
void
svc_checkpoint(struct svc *s)
{
	long commits;
	bool quiet;

	if (s->ckpt == NULL)
		return;
	pthread_mutex_lock(&s->ckpt_mu);
	commits = store_wal_commits(s->st);
	quiet = commits == s->ckpt_tick;
	s->ckpt_tick = commits;
	if (commits != s->ckpt_done && (quiet || store_wal_frames(s->st) >= SVC_CKPT_FRAMES))
		checkpoint_locked(s);
	pthread_mutex_unlock(&s->ckpt_mu);
}

int
svc_resync_counts(struct svc *s, size_t counts[STORE_RESYNC_STATES], size_t *devices)
{
	int rc = 0;

	if (s->ckpt != NULL) {
		pthread_mutex_lock(&s->ckpt_mu);
		rc = store_ckpt_resync_counts(s->ckpt, counts);
		pthread_mutex_unlock(&s->ckpt_mu);
	}
	lock(s);
	if (s->ckpt == NULL)
		rc = store_resync_counts(s->st, counts);
	*devices = world_count_devs(s->w);
	unlock(s);
	return rc < 0 ? -1 : 0;
}

/* ---- CSV import --------------------------------------------------------- */

/* One object replaced in the world by an import: how to put it back. */
struct imp_undo {
	char kind;          /* 'e' or 'd' */
	hd_id id;
	void *old;          /* a copy of the object before, NULL if created */
};

struct imp {
	struct svc *s;
	hd_id org;
	const struct import_rows *rows;
	char **hashes;      /* per row: new code hash or NULL */
	struct imp_undo *undo;
	size_t nundo;
	struct hd_idset touched;   /* devices whose files change with an object */
	struct hd_idset seen_ext, seen_dev;
	struct svc_import_report *rep;
	struct svc_result *r;
	struct virt_plan *plan;    /* imp_body's */
	struct hd_idset *changed;
	bool dry_run;
};

void
svc_import_report_free(struct svc_import_report *rep)
{
	if (rep == NULL)
		return;
	json_decref(rep->ext_created);
	json_decref(rep->ext_changed);
	json_decref(rep->dev_created);
	json_decref(rep->dev_changed);
	memset(rep, 0, sizeof(*rep));
}

static bool
str_same(const char *a, const char *b)
{
	return (a == NULL || a[0] == '\0') ? (b == NULL || b[0] == '\0')
	                                   : (b != NULL && strcmp(a, b) == 0);
}

/* Replaces *dst with v unless v is NULL (keep); "" clears. */
static int
imp_set(char **dst, const char *v)
{
	char *c;

	if (v == NULL)
		return 0;
	if (v[0] == '\0') {
		wipe_free(*dst);
		*dst = NULL;
		return 0;
	}
	if ((c = strdup(v)) == NULL)
		return -1;
	wipe_free(*dst);
	*dst = c;
	return 0;
}

static int
imp_fail(struct imp *m, const struct import_row *row, int code, enum import_col col,
         const char *msg)
{
	/* a message cut to fit still names its line and column first */
	if (col < IMP_NCOLS && row->col_of[col] > 0)
		import_cell_error(row, col, msg, m->r->err, sizeof(m->r->err));
	else
		hd_seterr(m->r->err, sizeof(m->r->err), "line %d: %s", row->line, msg);
	m->r->field = "csv";
	return code;
}

static int
imp_push_undo(struct imp *m, char kind, hd_id id, void *old)
{
	m->undo[m->nundo].kind = kind;
	m->undo[m->nundo].id = id;
	m->undo[m->nundo].old = old;
	m->nundo++;
	return 0;
}

/* Puts the world back as it was before the import (plan already undone). */
static void
imp_undo_world(struct imp *m)
{
	char err[256];

	while (m->nundo > 0) {
		struct imp_undo *u = &m->undo[--m->nundo];

		if (u->kind == 'e') {
			if (u->old == NULL)
				world_del_ext(m->s->w, u->id);
			else if (world_put_ext(m->s->w, u->old, err, sizeof(err)) != 0)
				fatal("import: cannot restore an extension: %s", err);
		} else {
			if (u->old == NULL)
				world_del_dev(m->s->w, u->id);
			else if (world_put_dev(m->s->w, u->old, err, sizeof(err)) != 0)
				fatal("import: cannot restore a device: %s", err);
		}
		u->old = NULL;
	}
}

/* The CSV column of a field named by the render checks. */
static enum import_col
imp_col_of_field(const char *field)
{
	static const struct { const char *field; enum import_col col; } map[] = {
		{ "sip_user", IMP_SIP_USER }, { "sip_password", IMP_SIP_PASSWORD },
		{ "display_name", IMP_DISPLAY_NAME }, { "label", IMP_LABEL },
		{ "parking.sip_user", IMP_PARKING_USER },
		{ "parking.sip_password", IMP_PARKING_PASSWORD },
		{ "model", IMP_MODEL }, { "profile", IMP_PROFILE },
	};

	for (size_t i = 0; field != NULL && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].field, field) == 0)
			return map[i].col;
	return IMP_NCOLS;
}

static bool
ext_unchanged(const struct hd_ext *a, const struct hd_ext *b)
{
	return str_same(a->sip_user, b->sip_user) && str_same(a->sip_password, b->sip_password) &&
	       str_same(a->display_name, b->display_name) && str_same(a->label, b->label) &&
	       a->allow_virtualization == b->allow_virtualization;
}

static bool
dev_unchanged(const struct hd_dev *a, const struct hd_dev *b)
{
	return str_same(a->profile, b->profile) && str_same(a->model, b->model) &&
	       str_same(a->parking_user, b->parking_user) &&
	       str_same(a->parking_password, b->parking_password) && a->home_ext == b->home_ext;
}

static int
imp_ext(struct imp *m, size_t i)
{
	const struct import_row *row = &m->rows->v[i];
	const char *const *c = row->cell;
	struct svc *s = m->s;
	struct hd_ext *old = world_ext_by_number(s->w, m->org, c[IMP_EXTENSION]);
	struct hd_ext *e, *copy, *back = NULL;
	struct svc_result vr = { 0 };
	char err[256];
	int rc;

	if (old != NULL && hd_idset_has(&m->seen_ext, old->id))
		return imp_fail(m, row, SVC_BAD, IMP_EXTENSION, "extension given twice");
	if (old == NULL && (c[IMP_SIP_USER] == NULL || c[IMP_SIP_PASSWORD] == NULL))
		return imp_fail(m, row, SVC_BAD, c[IMP_SIP_USER] ? IMP_SIP_PASSWORD : IMP_SIP_USER,
		                "required for a new extension");
	if ((e = old ? hd_ext_dup(old) : calloc(1, sizeof(*e))) == NULL)
		return imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "out of memory");
	e->org = m->org;
	if (imp_set(&e->number, c[IMP_EXTENSION]) | imp_set(&e->sip_user, c[IMP_SIP_USER]) |
	    imp_set(&e->sip_password, c[IMP_SIP_PASSWORD]) |
	    imp_set(&e->display_name, c[IMP_DISPLAY_NAME]) | imp_set(&e->label, c[IMP_LABEL])) {
		hd_ext_free(e);
		return imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "out of memory");
	}
	if (row->allow_virt >= 0)
		e->allow_virtualization = row->allow_virt == 1;
	if (old != NULL && m->hashes[i] == NULL && ext_unchanged(old, e)) {
		m->rep->ext_unchanged++;
		hd_idset_add(&m->seen_ext, old->id);
		hd_ext_free(e);
		return SVC_OK;
	}
	if (ext_renderable(e, &vr) != SVC_OK) {
		hd_ext_free(e);
		return imp_fail(m, row, SVC_BAD, imp_col_of_field(vr.field), vr.err);
	}
	free(e->secret_hash);
	e->secret_hash = NULL;
	if (m->hashes[i] != NULL) {
		e->has_secret = true;
		if ((e->secret_hash = strdup(m->hashes[i])) == NULL) {
			hd_ext_free(e);
			return imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "out of memory");
		}
	}
	if (world_check_ext(s->w, e, err, sizeof(err)) != 0) {
		hd_ext_free(e);
		return imp_fail(m, row, SVC_CONFLICT, strstr(err, "sip_user") ? IMP_SIP_USER
		                                                              : IMP_EXTENSION, err);
	}
	if ((rc = store_ext_put(s->st, e)) != 0) {
		hd_ext_free(e);
		return imp_fail(m, row, rc == STORE_CONFLICT ? SVC_CONFLICT : SVC_INTERNAL,
		                IMP_SIP_USER, rc == STORE_CONFLICT ? "already used" : "database error");
	}
	if ((old != NULL && (back = hd_ext_dup(old)) == NULL) || (copy = hd_ext_dup(e)) == NULL) {
		hd_ext_free(back);
		hd_ext_free(e);
		return imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "out of memory");
	}
	if (old != NULL && (old->home_dev || old->virtual_on) &&
	    hd_idset_add(&m->touched, old->virtual_on ? old->virtual_on : old->home_dev) != 0) {
		hd_ext_free(back);
		hd_ext_free(copy);
		hd_ext_free(e);
		return imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "out of memory");
	}
	if (world_put_ext(s->w, copy, err, sizeof(err)) != 0)
		fatal("import: extension checked but not loaded: %s", err);
	imp_push_undo(m, 'e', e->id, back);
	hd_idset_add(&m->seen_ext, e->id);
	json_array_append_new(old ? m->rep->ext_changed : m->rep->ext_created,
	                      json_string(e->number));
	rc = event(s, "extension.put", m->org, e->number, NULL,
	           json_pack("{s:b, s:s, s:b, s:b}", "created", old == NULL, "via", "import",
	                     "allow_virtualization", e->allow_virtualization, "has_secret_code",
	                     e->has_secret));
	hd_ext_free(e);
	return rc == 0 ? SVC_OK : imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "database error");
}

static enum import_col
imp_dev_col(const char *err)
{
	return strstr(err, "parking") ? IMP_PARKING_USER
	     : strstr(err, "home") || strstr(err, "extension") ? IMP_EXTENSION : IMP_MAC;
}

static int
imp_dev(struct imp *m, size_t i)
{
	const struct import_row *row = &m->rows->v[i];
	const char *const *c = row->cell;
	struct svc *s = m->s;
	struct hd_dev *old = world_dev_by_mac(s->w, row->mac);
	struct hd_dev *d, *copy, *back = NULL;
	struct svc_result vr = { 0 };
	enum import_col col;
	char err[256];
	int rc;

	if (old != NULL && old->org != m->org)
		return imp_fail(m, row, SVC_CONFLICT, IMP_MAC, "MAC already used");
	if (old != NULL && hd_idset_has(&m->seen_dev, old->id))
		return imp_fail(m, row, SVC_BAD, IMP_MAC, "MAC given twice");
	if (old == NULL && c[IMP_PROFILE] == NULL)
		return imp_fail(m, row, SVC_BAD, IMP_PROFILE, "required for a new phone");
	if ((d = old ? hd_dev_dup(old) : calloc(1, sizeof(*d))) == NULL)
		return imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "out of memory");
	d->org = m->org;
	memcpy(d->mac, row->mac, sizeof(d->mac));
	if (imp_set(&d->profile, c[IMP_PROFILE]) | imp_set(&d->model, c[IMP_MODEL]) |
	    imp_set(&d->parking_user, c[IMP_PARKING_USER]) |
	    imp_set(&d->parking_password, c[IMP_PARKING_PASSWORD])) {
		hd_dev_free(d);
		return imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "out of memory");
	}
	/* a parking account is a pair: a new user needs its password */
	if ((d->parking_user == NULL) != (d->parking_password == NULL) ||
	    (c[IMP_PARKING_USER] != NULL && c[IMP_PARKING_PASSWORD] == NULL &&
	     !str_same(old ? old->parking_user : NULL, d->parking_user))) {
		col = d->parking_user ? IMP_PARKING_PASSWORD : IMP_PARKING_USER;
		hd_dev_free(d);
		return imp_fail(m, row, SVC_BAD, col, "parking_user and parking_password go together");
	}
	if (c[IMP_EXTENSION] != NULL) {
		const struct hd_ext *h = world_ext_by_number(s->w, m->org, c[IMP_EXTENSION]);

		if (h == NULL) { /* cannot happen: the row's extension was put first */
			hd_dev_free(d);
			return imp_fail(m, row, SVC_INTERNAL, IMP_EXTENSION, "extension not found");
		}
		d->home_ext = h->id;
	}
	if (dev_renderable(d, &vr) != SVC_OK) {
		hd_dev_free(d);
		return imp_fail(m, row, SVC_BAD, imp_col_of_field(vr.field), vr.err);
	}
	if (old != NULL && dev_unchanged(old, d)) {
		m->rep->dev_unchanged++;
		hd_idset_add(&m->seen_dev, old->id);
		hd_dev_free(d);
		return SVC_OK;
	}
	if (world_check_dev(s->w, d, err, sizeof(err)) != 0) {
		hd_dev_free(d);
		col = imp_dev_col(err);
		return imp_fail(m, row, SVC_CONFLICT, col, err);
	}
	if ((rc = store_dev_put(s->st, d)) != 0) {
		hd_dev_free(d);
		return imp_fail(m, row, rc == STORE_CONFLICT ? SVC_CONFLICT : SVC_INTERNAL,
		                IMP_PARKING_USER, rc == STORE_CONFLICT ? "already used"
		                                                       : "database error");
	}
	if ((old != NULL && (back = hd_dev_dup(old)) == NULL) || (copy = hd_dev_dup(d)) == NULL ||
	    hd_idset_add(&m->touched, d->id) != 0) {
		hd_dev_free(back);
		hd_dev_free(d);
		return imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "out of memory");
	}
	if (world_put_dev(s->w, copy, err, sizeof(err)) != 0)
		fatal("import: device checked but not loaded: %s", err);
	imp_push_undo(m, 'd', d->id, back);
	hd_idset_add(&m->seen_dev, d->id);
	json_array_append_new(old ? m->rep->dev_changed : m->rep->dev_created, json_string(d->mac));
	rc = event(s, "device.put", m->org, NULL, d->mac,
	           json_pack("{s:b, s:s, s:s}", "created", old == NULL, "via", "import",
	                     "profile", d->profile));
	hd_dev_free(d);
	return rc == 0 ? SVC_OK : imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "database error");
}

/* Hashes the rows' secret codes (no lock held).  SVC_OK or an error. */
static int
imp_hash_codes(struct imp *m)
{
	char err[160], hash[SECRET_HASH_LEN];

	for (size_t i = 0; i < m->rows->n; i++) {
		const struct import_row *row = &m->rows->v[i];
		const char *code = row->cell[IMP_SECRET_CODE];

		if (code == NULL)
			continue;
		if (secret_code_valid(code, m->s->o.code_min_len, err, sizeof(err)) != 0)
			return imp_fail(m, row, SVC_BAD, IMP_SECRET_CODE, err);
		if (secret_hash(code, m->s->o.hash_ops, m->s->o.hash_mem, hash, err, sizeof(err)) != 0)
			return imp_fail(m, row, SVC_INTERNAL, IMP_SECRET_CODE, err);
		m->hashes[i] = strdup(hash);
		sodium_memzero(hash, sizeof(hash));
		if (m->hashes[i] == NULL)
			return imp_fail(m, row, SVC_INTERNAL, IMP_NCOLS, "out of memory");
	}
	return SVC_OK;
}

/* The rows, the moves they cause and the events, inside the transaction
 * (lock held).  On failure the world may hold part of it: the caller
 * undoes. */
static int
imp_apply(struct imp *m, struct virt_plan *plan, struct hd_idset *changed)
{
	struct svc *s = m->s;
	struct virt_moved moved;
	int rc;

	for (size_t i = 0; i < m->rows->n; i++)
		if (m->rows->v[i].cell[IMP_EXTENSION] != NULL && (rc = imp_ext(m, i)) != SVC_OK)
			return rc;
	for (size_t i = 0; i < m->rows->n; i++)
		if (m->rows->v[i].cell[IMP_MAC] != NULL && (rc = imp_dev(m, i)) != SVC_OK)
			return rc;
	if (virt_repair(s->w, plan) != 0)
		return bad(m->r, SVC_BAD, "csv", "%s", "the import would return more than 64 "
		           "virtualized extensions at once: import it in parts");
	for (size_t i = 0; i < plan->n; i++)
		if (store_ext_set_virtual_on(s->st, plan->moves[i].ext, plan->moves[i].to) != 0)
			return bad(m->r, SVC_INTERNAL, NULL, "%s", "database error");
	if (plan_events(s, plan, "import") != 0)
		return bad(m->r, SVC_INTERNAL, NULL, "%s", "database error");
	if (virt_apply_moved(s->w, plan, changed, s->o.move_outbox ? &moved : NULL) != 0) {
		undo_plan(s, plan);
		plan->n = 0;
		return bad(m->r, SVC_INTERNAL, NULL, "%s", "out of memory");
	}
	m->rep->moves = plan->n;
	/* what phones would get must render before anything is committed */
	if (s->check != NULL &&
	    (s->check(s->check_arg, s->w, changed->v, changed->n, s->check_err,
	              sizeof(s->check_err)) != 0 ||
	     s->check(s->check_arg, s->w, m->touched.v, m->touched.n, s->check_err,
	              sizeof(s->check_err)) != 0))
		return bad(m->r, SVC_CONFLICT, "csv", "refused, nothing changed: %s", s->check_err);
	if (outbox_add(s, changed->v, changed->n, m->touched.v, m->touched.n) != 0 ||
	    (s->o.move_outbox && outbox_moves(s, &moved, "import") != 0) ||
	    event(s, "import.applied", m->org, NULL, NULL,
	          json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
	                    "rows", (json_int_t)m->rows->n,
	                    "extensions_created", (json_int_t)json_array_size(m->rep->ext_created),
	                    "extensions_changed", (json_int_t)json_array_size(m->rep->ext_changed),
	                    "devices_created", (json_int_t)json_array_size(m->rep->dev_created),
	                    "devices_changed", (json_int_t)json_array_size(m->rep->dev_changed),
	                    "returned", (json_int_t)plan->n)) != 0)
		return bad(m->r, SVC_INTERNAL, NULL, "%s", "database error");
	return SVC_OK;
}

/* What imp_body returns after a dry run that went through: roll back. */
#define IMP_DRY 1

static int
imp_body(struct svc *s, void *arg)
{
	struct imp *m = arg;
	int rc;

	(void)s;
	rc = imp_apply(m, m->plan, m->changed);
	return rc == SVC_OK && m->dry_run ? IMP_DRY : rc;
}

int
svc_import(struct svc *s, hd_id org, const struct import_rows *rows, bool dry_run,
           struct svc_import_report *rep, struct svc_result *r)
{
	struct imp m = { .s = s, .org = org, .rows = rows, .rep = rep, .r = r };
	struct virt_plan plan = { 0 };
	struct hd_idset changed = { 0 };
	int rc = SVC_OK;

	memset(rep, 0, sizeof(*rep));
	rep->ext_created = json_array();
	rep->ext_changed = json_array();
	rep->dev_created = json_array();
	rep->dev_changed = json_array();
	m.hashes = calloc(rows->n + 1, sizeof(char *));
	m.undo = calloc(2 * rows->n + 1, sizeof(*m.undo));
	if (!rep->ext_created || !rep->ext_changed || !rep->dev_created || !rep->dev_changed ||
	    m.hashes == NULL || m.undo == NULL) {
		rc = bad(r, SVC_INTERNAL, NULL, "%s", "out of memory");
		goto out;
	}
	if ((rc = imp_hash_codes(&m)) != SVC_OK)
		goto out;
	lock(s);
	if (world_org(s->w, org) == NULL) {
		rc = bad(r, SVC_NOTFOUND, NULL, "%s", "no such organization");
		goto unlock;
	}
	/* a large file's pages stay in memory until the commit (the default
	 * cache would spill them to the log, row after row) */
	if (rows->n > 1000)
		(void)store_cache_kib(s->st, 256 * 1024);
	m.plan = &plan;
	m.changed = &changed;
	m.dry_run = dry_run;
	rc = tx(s, imp_body, &m);
	if (rc == TX_DB)
		rc = bad(r, SVC_INTERNAL, NULL, "%s", "database error");
	else if (rc == IMP_DRY)
		rc = SVC_OK;
	if (rc != SVC_OK || dry_run) {
		if (rc == SVC_INTERNAL)
			log_error("import failed: %s", store_errmsg(s->st));
		undo_plan(s, &plan);
		imp_undo_world(&m);
		goto unlock;
	}
	for (size_t i = 0; i < m.nundo; i++) {
		if (m.undo[i].kind == 'e')
			hd_ext_free(m.undo[i].old);
		else
			hd_dev_free(m.undo[i].old);
	}
	m.nundo = 0;
	check_invariants(s, "import");
	handoff(s, "import", 0, changed.v, changed.n, NULL, NULL);
	handoff(s, "import", 0, m.touched.v, m.touched.n, NULL, NULL);
unlock:
	if (rows->n > 1000)
		(void)store_cache_kib(s->st, STORE_CACHE_DEFAULT_KIB);
	unlock(s);
out:
	if (m.hashes != NULL)
		for (size_t i = 0; i < rows->n; i++)
			wipe_free(m.hashes[i]);
	free(m.hashes);
	free(m.undo);
	hd_idset_free(&changed);
	hd_idset_free(&m.touched);
	hd_idset_free(&m.seen_ext);
	hd_idset_free(&m.seen_dev);
	return rc;
}

/* ---- self-service users (web passwords) --------------------------------- */

static int
webpw_form(const char *pw, struct svc_result *r)
{
	size_t n = pw ? strlen(pw) : 0;

	if (n < SVC_WEBPW_MIN || n > SVC_WEBPW_MAX)
		return bad(r, SVC_BAD, "password", "password: %s", "8 to 128 characters");
	for (const unsigned char *p = (const unsigned char *)pw; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return bad(r, SVC_BAD, "password", "password: %s", "no control characters");
	return SVC_OK;
}

/* Stores a new web password hash for ext with its event (lock held). */
struct webpw_tx {
	const struct hd_ext *e;
	const char *hash;
	bool by_user;
};

static int
webpw_body(struct svc *s, void *arg)
{
	struct webpw_tx *w = arg;

	if (store_webpw_put(s->st, w->e->id, w->hash, now_s()) != 0)
		return -1;
	return event(s, w->hash ? "web_password.set" : "web_password.clear", w->e->org,
	             w->e->number, NULL, json_pack("{s:s}", "by", w->by_user ? "user" : "admin"));
}

static int
webpw_store(struct svc *s, const struct hd_ext *e, const char *hash, bool by_user)
{
	struct webpw_tx w = { e, hash, by_user };

	return tx(s, webpw_body, &w) == 0 ? 0 : -1;
}

int
svc_webpw_set(struct svc *s, hd_id org, const char *number, const char *password,
              struct svc_result *r)
{
	char hash[SECRET_HASH_LEN] = "", err[160];
	const struct hd_ext *e;
	int rc = SVC_OK;

	if (password != NULL) {
		if ((rc = webpw_form(password, r)) != SVC_OK)
			return rc;
		if (secret_hash(password, s->o.hash_ops, s->o.hash_mem, hash, err, sizeof(err)) != 0)
			return bad(r, SVC_INTERNAL, NULL, "%s", err);
	}
	mu_lock(s);
	if ((e = world_ext_by_number(s->w, org, number)) == NULL)
		rc = bad(r, SVC_NOTFOUND, NULL, "no extension %s", number);
	else if (webpw_store(s, e, password ? hash : NULL, false) != 0)
		rc = bad(r, SVC_INTERNAL, NULL, "%s", "database error");
	mu_unlock(s);
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

static void
pair_to_guard(const struct store_pair *sp, struct guard_pair *gp)
{
	gp->failures_in_window = sp->failures_in_window;
	gp->window_start = sp->window_start;
	gp->locked_until = sp->locked_until;
	gp->lock_level = sp->lock_level;
}

static void
guard_to_pair(const struct guard_pair *gp, struct store_pair *sp)
{
	sp->failures_in_window = gp->failures_in_window;
	sp->window_start = gp->window_start;
	sp->locked_until = gp->locked_until;
	sp->lock_level = gp->lock_level;
}

/*
 * Before a web password is verified (lock held): unless the pair is
 * locked (SVC_CONFLICT, *until set), its try is counted as a failure at
 * once, so parallel sign-ins never verify more passwords than the limits
 * allow; a right password takes it back (web_attempt_done).  *newly_locked
 * says whether this try locked the pair.  SVC_OK, SVC_CONFLICT or
 * SVC_INTERNAL.
 */
static int
web_attempt_reserve(struct svc *s, hd_id ext, const char *source, long long *until,
                    bool *newly_locked)
{
	struct store_pair sp;
	struct guard_pair gp;
	struct guard_call call = { 0 };
	struct guard_outcome g;
	long long now = now_s();

	if (store_webpair_get(s->st, source, ext, &sp) < 0)
		return SVC_INTERNAL;
	pair_to_guard(&sp, &gp);
	if (guard_locked(&s->o.guard, &gp, now)) {
		*until = gp.locked_until;
		return SVC_CONFLICT;
	}
	g = guard_on_failure(&s->o.guard, &call, &gp, now);
	*newly_locked = g.newly_locked;
	guard_to_pair(&gp, &sp);
	return store_webpair_put(s->st, source, ext, &sp) == 0 ? SVC_OK : SVC_INTERNAL;
}

/* A web sign-in's outcome (web_attempt_done). */
struct web_done {
	const struct hd_ext *e;
	const char *source;
	bool ok, newly_locked;
};

static int
web_done_body(struct svc *s, void *arg)
{
	struct web_done *w = arg;
	const struct hd_ext *e = w->e;
	struct store_pair sp;
	struct guard_pair gp;

	if (store_webpair_get(s->st, w->source, e->id, &sp) < 0)
		return -1;
	if (!w->ok)
		return event(s, "web.login_failed", e->org, e->number, NULL, NULL) != 0 ||
		       (w->newly_locked &&
		        event(s, "web.locked", e->org, e->number, NULL,
		              json_pack("{s:I}", "until", (json_int_t)sp.locked_until)) != 0)
		           ? -1 : 0;
	pair_to_guard(&sp, &gp);
	guard_on_success(&gp);
	gp.locked_until = 0;
	guard_to_pair(&gp, &sp);
	if (store_webpair_put(s->st, w->source, e->id, &sp) != 0)
		return -1;
	return event(s, "web.login", e->org, e->number, NULL, NULL);
}

/* After the verify (lock held): a right password clears the pair, a wrong
 * one keeps the failure counted; the events.  Returns 0 or -1. */
static int
web_attempt_done(struct svc *s, const struct hd_ext *e, const char *source, bool ok,
                 bool newly_locked)
{
	struct web_done w = { e, source, ok, newly_locked };

	if (tx(s, web_done_body, &w) != 0) {
		log_error("cannot record a web sign-in: %s", store_errmsg(s->st));
		return -1;
	}
	return 0;
}

/* Checks ext's web password from source, with the guard.  SVC_OK,
 * SVC_FORBIDDEN, SVC_CONFLICT (locked), SVC_INTERNAL.  A right password
 * whose hash has other limits than the settings' is hashed again when
 * `renew` (a sign-in; not a change, which replaces it anyway).  Lock
 * NOT held. */
static int
web_check(struct svc *s, hd_id org, const char *number, hd_id ext_id, const char *password,
          bool renew, const char *source, hd_id *ext_out, long long *locked_until)
{
	char hash[SECRET_HASH_LEN] = "";
	const struct hd_ext *e;
	hd_id ext = 0;
	bool have = false, ok, newly_locked = false;
	int rc = SVC_OK;

	mu_lock(s);
	e = ext_id ? world_ext(s->w, ext_id) : world_ext_by_number(s->w, org, number);
	if (e != NULL) {
		ext = e->id;
		have = store_webpw_get(s->st, e->id, hash, sizeof(hash)) == 1;
		rc = web_attempt_reserve(s, e->id, source, locked_until, &newly_locked);
	}
	mu_unlock(s);
	if (rc != SVC_OK)
		goto out;
	/* the same time whether or not the extension exists or has a password */
	if (have)
		ok = secret_verify(hash, password);
	else
		ok = false, secret_verify_dummy(password, s->o.hash_ops, s->o.hash_mem);
	if (ext == 0)
		return SVC_FORBIDDEN;
	mu_lock(s);
	if ((e = world_ext(s->w, ext)) == NULL)
		rc = SVC_FORBIDDEN;
	else if (web_attempt_done(s, e, source, ok, newly_locked) != 0)
		rc = SVC_INTERNAL;
	else
		rc = ok ? SVC_OK : SVC_FORBIDDEN;
	mu_unlock(s);
	if (rc == SVC_OK && renew)
		renew_hash(s, STORE_HASH_WEBPW, ext, hash, password);
	*ext_out = ext;
out:
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

int
svc_web_login(struct svc *s, const char *org, const char *number, const char *password,
              const char *source, hd_id *org_id, hd_id *ext_id, long long *locked_until)
{
	const struct hd_org *o;
	hd_id oid = 0;

	mu_lock(s);
	if ((o = world_org_by_name(s->w, org)) != NULL)
		oid = o->id;
	mu_unlock(s);
	*org_id = oid;
	*ext_id = 0;
	if (oid == 0) {
		secret_verify_dummy(password, s->o.hash_ops, s->o.hash_mem);
		return SVC_FORBIDDEN;
	}
	return web_check(s, oid, number, 0, password, true, source, ext_id, locked_until);
}

int
svc_webpw_change(struct svc *s, hd_id ext, const char *current, const char *password,
                 const char *source, struct svc_result *r)
{
	char hash[SECRET_HASH_LEN], err[160];
	long long until = 0;
	const struct hd_ext *e;
	hd_id got = 0;
	int rc;

	if ((rc = webpw_form(password, r)) != SVC_OK)
		return rc;
	rc = web_check(s, 0, NULL, ext, current, false, source, &got, &until);
	if (rc == SVC_CONFLICT)
		return bad(r, rc, "current", "%s", "too many wrong passwords: try again later");
	if (rc != SVC_OK)
		return bad(r, rc, "current", "%s", rc == SVC_FORBIDDEN ? "wrong password"
		                                                       : "database error");
	if (secret_hash(password, s->o.hash_ops, s->o.hash_mem, hash, err, sizeof(err)) != 0)
		return bad(r, SVC_INTERNAL, NULL, "%s", err);
	mu_lock(s);
	if ((e = world_ext(s->w, ext)) == NULL)
		rc = bad(r, SVC_NOTFOUND, NULL, "%s", "no such extension");
	else if (webpw_store(s, e, hash, true) != 0)
		rc = bad(r, SVC_INTERNAL, NULL, "%s", "database error");
	mu_unlock(s);
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

int
svc_ext_code_set(struct svc *s, hd_id ext, const char *code, struct svc_result *r)
{
	const struct hd_ext *e;
	struct hd_ext *copy = NULL;

	if (code == NULL || code[0] == '\0')
		return bad(r, SVC_BAD, "secret_code", "%s", "secret_code: digits");
	mu_lock(s);
	if ((e = world_ext(s->w, ext)) != NULL)
		copy = hd_ext_dup(e);
	mu_unlock(s);
	if (e == NULL)
		return bad(r, SVC_NOTFOUND, NULL, "%s", "no such extension");
	if (copy == NULL)
		return bad(r, SVC_INTERNAL, NULL, "%s", "out of memory");
	/* the same path as an administrator's change of the code (a change
	 * made by an administrator in between is kept by svc_ext_put's
	 * object only for the code: the copy is a few microseconds old) */
	return svc_ext_put(s, copy, code, r);
}
