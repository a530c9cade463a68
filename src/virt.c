/*
 * virt.c -- the virtualization rules of SPEC 2, as pure functions.
 *
 * State: virtual_on(X) for each extension X (world.h keeps the reverse
 * link dev->guest).  Everything else is derived:
 *
 *   carried(D) = D->guest                      if D hosts a virtual extension
 *              = D->home_ext                   if it is not virtualized elsewhere
 *              = parked                        otherwise (or when D has no home)
 *
 * Transitions of one extension X, with the function that decides each:
 *
 *                 virt_star30 (*30<X> + code, from D)
 *     at base  ------------------------------------------>  on D
 *   (virtual_on   <------------------------------------------  (virtual_on
 *     = none)     virt_star30 (bare *30 from D or X's home,     = D)
 *                 *30<X> from X's home), virt_return,
 *                 virt_repair / virt_plan_delete_* (admin)
 *
 *     on D  --- virt_star30 (*30<X> + code from D2) --->  on D2   (move)
 *     on D  --- virt_star30 (*30<Y> + code from D)  --->  at base (displaced)
 *
 * Deciding functions never change the world; they fill a plan that
 * virt_apply carries out.  Within one plan an extension appears at most
 * once, and moves are applied in order.
 */
#include "virt.h"

#include <stdio.h>
#include <string.h>

static const char *const result_names[] = {
	[VIRT_NEED_CODE] = "need_code", [VIRT_ACCEPTED] = "accepted",
	[VIRT_RETURNED] = "returned",   [VIRT_NOTHING] = "nothing",
	[VIRT_RETRY] = "retry",         [VIRT_HANGUP] = "hangup",
	[VIRT_DENIED] = "denied",
};

static const char *const reason_names[] = {
	[VIRT_R_NONE] = "",
	[VIRT_R_UNKNOWN_CALLER] = "unknown_caller",
	[VIRT_R_UNKNOWN_EXTENSION] = "unknown_extension",
	[VIRT_R_BASE_NOT_ALLOWED] = "base_not_allowed",
	[VIRT_R_NO_SECRET] = "no_secret",
	[VIRT_R_LOCKED] = "locked",
};

static const char *const status_names[] = {
	[VIRT_ST_HOME] = "home", [VIRT_ST_VIRTUALIZED] = "virtualized",
	[VIRT_ST_INACTIVE] = "inactive", [VIRT_ST_UNPLACED] = "unplaced",
};

const char *
virt_result_name(enum virt_result r)
{
	return result_names[r];
}

const char *
virt_reason_name(enum virt_reason r)
{
	return reason_names[r];
}

const char *
virt_status_name(enum virt_status s)
{
	return status_names[s];
}

int
virt_sip_status(enum virt_result r, enum virt_reason why, int tries_left, char *buf,
                size_t len)
{
	static const char *const denied[] = {
		[VIRT_R_NONE] = "Denied",
		[VIRT_R_UNKNOWN_CALLER] = "Unknown caller",
		[VIRT_R_UNKNOWN_EXTENSION] = "Unknown extension",
		[VIRT_R_BASE_NOT_ALLOWED] = "Base not allowed",
		[VIRT_R_NO_SECRET] = "No secret code",
		[VIRT_R_LOCKED] = "Locked",
	};
	const char *phrase = "Server error";
	int code = 500;

	switch (r) {
	case VIRT_ACCEPTED: code = 200; phrase = "Extension moved"; break;
	case VIRT_RETURNED: code = 200; phrase = "Extension returned"; break;
	case VIRT_NOTHING: code = 200; phrase = "Nothing to return"; break;
	case VIRT_NEED_CODE: code = 484; phrase = "Code needed"; break;
	case VIRT_RETRY: code = 484; phrase = NULL; break;
	case VIRT_HANGUP: code = 603; phrase = "Too many wrong codes"; break;
	case VIRT_DENIED: code = 403; phrase = denied[why]; break;
	}
	if (len == 0)
		return code;
	if (phrase == NULL)
		(void)snprintf(buf, len, "Wrong code, %d %s left", tries_left,
		               tries_left == 1 ? "try" : "tries"); /* < 40 bytes */
	else
		(void)snprintf(buf, len, "%s", phrase);
	return code;
}

struct virt_carried
virt_carried(const struct world *w, const struct hd_dev *d)
{
	struct virt_carried c = { VIRT_CARRY_PARKED, NULL, false };
	const struct hd_ext *h;

	if (d->guest != 0 && (c.ext = world_ext(w, d->guest)) != NULL) {
		c.kind = VIRT_CARRY_EXT;
		c.guest = true;
		return c;
	}
	h = world_ext(w, d->home_ext);
	if (h != NULL && h->virtual_on == 0) {
		c.kind = VIRT_CARRY_EXT;
		c.ext = h;
		return c;
	}
	c.ext = NULL;
	return c;
}

enum virt_status
virt_ext_status(const struct world *w, const struct hd_ext *e)
{
	const struct hd_dev *home;

	if (e->virtual_on != 0)
		return VIRT_ST_VIRTUALIZED;
	home = world_dev(w, e->home_dev);
	if (home == NULL)
		return VIRT_ST_UNPLACED;
	return home->guest != 0 ? VIRT_ST_INACTIVE : VIRT_ST_HOME;
}

const struct hd_dev *
virt_calling_device(const struct world *w, const char *caller)
{
	const struct hd_ext *e = world_ext_by_sip_user(w, caller);
	const struct hd_dev *d;

	if (e != NULL) {
		if (e->virtual_on != 0)
			return world_dev(w, e->virtual_on);
		d = world_dev(w, e->home_dev);
		return (d != NULL && d->guest == 0) ? d : NULL;
	}
	d = world_dev_by_parking_user(w, caller);
	if (d != NULL && virt_carried(w, d).kind == VIRT_CARRY_PARKED)
		return d;
	return NULL;
}

/* ---- plans -------------------------------------------------------------- */

/* The virtual_on an extension has once the moves already in the plan are
 * applied. */
static hd_id
planned_on(const struct hd_ext *e, const struct virt_plan *p)
{
	hd_id on = e->virtual_on;

	for (size_t i = 0; i < p->n; i++)
		if (p->moves[i].ext == e->id)
			on = p->moves[i].to;
	return on;
}

static int
plan_add(struct virt_plan *p, const struct hd_ext *e, hd_id to)
{
	hd_id from = planned_on(e, p);

	if (from == to)
		return 0;
	for (size_t i = 0; i < p->n; i++) {
		if (p->moves[i].ext == e->id) { /* merge into the earlier move */
			p->moves[i].to = to;
			return 0;
		}
	}
	if (p->n == VIRT_MAX_MOVES)
		return -1;
	p->moves[p->n].ext = e->id;
	p->moves[p->n].from = from;
	p->moves[p->n].to = to;
	p->n++;
	return 0;
}

static void
decide(struct virt_decision *out, enum virt_result r, enum virt_reason why)
{
	out->result = r;
	out->reason = why;
}

/* X returns to base: it leaves the device it is on, whoever hosts its home
 * device stays (X is then inactive until that device is freed). */
static void
plan_return(const struct world *w, const struct hd_ext *x, struct virt_decision *out)
{
	out->ext = x;
	out->dev = world_dev(w, x->home_dev);
	if (x->virtual_on == 0) {
		decide(out, VIRT_NOTHING, VIRT_R_NONE);
		return;
	}
	(void)plan_add(&out->plan, x, 0);
	decide(out, VIRT_RETURNED, VIRT_R_NONE);
}

void
virt_return(const struct world *w, const struct hd_ext *x, struct virt_decision *out)
{
	memset(out, 0, sizeof(*out));
	plan_return(w, x, out);
}

/* bare *30 from d */
static void
star30_bare(const struct world *w, const struct hd_dev *d, struct virt_decision *out)
{
	struct virt_carried c = virt_carried(w, d);
	const struct hd_ext *home;

	if (c.kind == VIRT_CARRY_EXT && c.guest) {
		plan_return(w, c.ext, out);
		return;
	}
	home = world_ext(w, d->home_ext);
	if (c.kind == VIRT_CARRY_PARKED && home != NULL) {
		plan_return(w, home, out);
		return;
	}
	decide(out, VIRT_NOTHING, VIRT_R_NONE);
}

/* *30<X> from X's own home device d: a return to base that needs no code.
 * Whoever d hosts leaves, and X comes back from wherever it is. */
static void
star30_own(const struct world *w, const struct hd_dev *d, const struct hd_ext *x,
           struct virt_decision *out)
{
	const struct hd_ext *g = world_ext(w, d->guest);

	out->ext = x;
	out->dev = d;
	if (g != NULL)
		(void)plan_add(&out->plan, g, 0);
	if (x->virtual_on != 0)
		(void)plan_add(&out->plan, x, 0);
	decide(out, out->plan.n ? VIRT_RETURNED : VIRT_NOTHING, VIRT_R_NONE);
}

void
virt_star30(const struct world *w, const char *caller, const char *digits,
            enum virt_code code, struct virt_decision *out)
{
	const struct hd_dev *d;
	const struct hd_ext *x, *base, *g;

	memset(out, 0, sizeof(*out));
	d = virt_calling_device(w, caller);
	out->caller = d;
	if (d == NULL) {
		decide(out, VIRT_DENIED, VIRT_R_UNKNOWN_CALLER);
		return;
	}
	if (digits == NULL || digits[0] == '\0') {
		star30_bare(w, d, out);
		return;
	}
	x = world_ext_by_number(w, d->org, digits);
	if (x == NULL) {
		decide(out, VIRT_DENIED, VIRT_R_UNKNOWN_EXTENSION);
		return;
	}
	out->ext = x;
	if (x->home_dev == d->id) {
		star30_own(w, d, x, out);
		return;
	}
	if (!x->has_secret) {
		decide(out, VIRT_DENIED, VIRT_R_NO_SECRET);
		return;
	}
	base = world_ext(w, d->home_ext);
	if (base == NULL || !base->allow_virtualization) {
		decide(out, VIRT_DENIED, VIRT_R_BASE_NOT_ALLOWED);
		return;
	}
	if (code != VIRT_CODE_VERIFIED) {
		decide(out, VIRT_NEED_CODE, VIRT_R_NONE);
		return;
	}
	/* the displaced guest returns, then X moves here (leaving where it was;
	 * its own home device is parked by derivation) */
	g = world_ext(w, d->guest);
	if (g != NULL && g != x)
		(void)plan_add(&out->plan, g, 0);
	(void)plan_add(&out->plan, x, d->id);
	out->dev = d;
	decide(out, VIRT_ACCEPTED, VIRT_R_NONE);
}

void
virt_star30_checked(const struct world *w, const char *caller, const char *digits,
                    hd_id dev, hd_id ext, struct virt_decision *out)
{
	virt_star30(w, caller, digits, VIRT_CODE_VERIFIED, out);
	if (out->caller == NULL || out->caller->id != dev) {
		const struct hd_ext *x = out->ext;

		memset(out, 0, sizeof(*out));
		out->caller = world_dev(w, dev);
		out->ext = x;
		decide(out, VIRT_DENIED, VIRT_R_UNKNOWN_CALLER);
	} else if (out->result == VIRT_ACCEPTED && out->ext->id != ext) {
		memset(&out->plan, 0, sizeof(out->plan));
		out->dev = NULL;
		decide(out, VIRT_NEED_CODE, VIRT_R_NONE);
	}
}

/* ---- admin consistency -------------------------------------------------- */

/* Whether extension e may stay virtualized on device d (I2, I3, code). */
static bool
may_stay(const struct world *w, const struct hd_ext *e, const struct hd_dev *d)
{
	const struct hd_ext *base;

	if (d == NULL || d->org != e->org || d->home_ext == e->id || !e->has_secret)
		return false;
	base = world_ext(w, d->home_ext);
	return base != NULL && base->allow_virtualization;
}

struct repair_ctx {
	const struct world *w;
	struct virt_plan *plan;
	int rc;
};

static int
repair_one(struct hd_ext *e, void *arg)
{
	struct repair_ctx *c = arg;

	if (e->virtual_on != 0 && !may_stay(c->w, e, world_dev(c->w, e->virtual_on)) &&
	    plan_add(c->plan, e, 0) == -1) {
		c->rc = -1;
		return 1;
	}
	return 0;
}

int
virt_repair(const struct world *w, struct virt_plan *plan)
{
	struct repair_ctx c = { w, plan, 0 };

	world_each_ext(w, repair_one, &c);
	return c.rc;
}

int
virt_plan_delete_dev(const struct world *w, const struct hd_dev *d, struct virt_plan *plan)
{
	const struct hd_ext *g = world_ext(w, d->guest);

	return g != NULL ? plan_add(plan, g, 0) : 0;
}

int
virt_plan_delete_ext(const struct world *w, const struct hd_ext *e, struct virt_plan *plan)
{
	const struct hd_dev *home = world_dev(w, e->home_dev);
	const struct hd_ext *g;

	/* a guest on its home device loses its base */
	if (home != NULL && (g = world_ext(w, home->guest)) != NULL && plan_add(plan, g, 0) == -1)
		return -1;
	return plan_add(plan, e, 0);
}

/* ---- applying ----------------------------------------------------------- */

struct snap {
	hd_id dev;
	struct virt_carried c;
};

static bool
same_carried(struct virt_carried a, struct virt_carried b)
{
	return a.kind == b.kind && a.ext == b.ext;
}

/* The SIP identity a device carrying c registers: NULL when none. */
static const char *
carried_user(const struct hd_dev *d, struct virt_carried c)
{
	if (c.kind == VIRT_CARRY_EXT)
		return c.ext != NULL ? c.ext->sip_user : NULL;
	return d->parking_user;
}

static void
moved_add(struct virt_moved *m, const char *sip_user)
{
	size_t i;

	if (m == NULL || sip_user == NULL)
		return;
	for (i = 0; i < m->n && strcmp(m->sip_user[i], sip_user) != 0; i++)
		;
	if (i == m->n && m->n < VIRT_MAX_MOVED) /* 2 per snapshot: never full */
		m->sip_user[m->n++] = sip_user;
}

int
virt_apply(struct world *w, const struct virt_plan *plan, struct hd_idset *changed)
{
	return virt_apply_moved(w, plan, changed, NULL);
}

int
virt_apply_moved(struct world *w, const struct virt_plan *plan, struct hd_idset *changed,
                 struct virt_moved *moved)
{
	struct snap snaps[VIRT_MAX_MOVES * 3];
	size_t ns = 0;

	/* every device whose carried() a move can change: the one left, the
	 * one reached, and the extension's home device */
	for (size_t i = 0; i < plan->n; i++) {
		const struct hd_ext *e = world_ext(w, plan->moves[i].ext);
		hd_id cand[3] = { plan->moves[i].from, plan->moves[i].to, e ? e->home_dev : 0 };

		for (size_t k = 0; k < 3; k++) {
			const struct hd_dev *d = world_dev(w, cand[k]);
			size_t j;

			if (d == NULL)
				continue;
			for (j = 0; j < ns && snaps[j].dev != d->id; j++)
				;
			if (j == ns) {
				snaps[ns].dev = d->id;
				snaps[ns].c = virt_carried(w, d);
				ns++;
			}
		}
	}
	for (size_t i = 0; i < plan->n; i++)
		world_set_virtual_on(w, plan->moves[i].ext, plan->moves[i].to);
	if (moved != NULL)
		moved->n = 0;
	for (size_t j = 0; j < ns; j++) {
		const struct hd_dev *d = world_dev(w, snaps[j].dev);
		struct virt_carried now = virt_carried(w, d);

		if (same_carried(snaps[j].c, now))
			continue;
		if (hd_idset_add(changed, d->id) == -1)
			return -1;
		moved_add(moved, carried_user(d, snaps[j].c));
		moved_add(moved, carried_user(d, now));
	}
	return 0;
}

/* ---- invariants --------------------------------------------------------- */

struct inv_ctx {
	const struct world *w;
	char *err;
	size_t errlen;
	int rc;
};

static int
inv_fail(struct inv_ctx *c, const char *what, const char *mac)
{
	snprintf(c->err, c->errlen, "%s (device %s)", what, mac ? mac : "-");
	c->rc = -1;
	return 1;
}

static int
inv_ext(struct hd_ext *e, void *arg)
{
	struct inv_ctx *c = arg;
	const struct hd_dev *d;
	const struct hd_ext *base;

	if (e->virtual_on == 0)
		return 0;
	d = world_dev(c->w, e->virtual_on);
	if (d == NULL)
		return inv_fail(c, "virtualized on a missing device", NULL);
	if (d->guest != e->id) /* I1: a second guest would break the link */
		return inv_fail(c, "I1: two virtual extensions on one device", d->mac);
	if (d->home_ext == e->id)
		return inv_fail(c, "I2: virtualized onto its own home device", d->mac);
	base = world_ext(c->w, d->home_ext);
	if (d->org != e->org || base == NULL || !base->allow_virtualization)
		return inv_fail(c, "I3: base not allowing virtualization or other org", d->mac);
	return 0;
}

/*
 * I4: carried(D) = E only through D->guest == E (then E->virtual_on == D)
 * or D->home_ext == E (then E->home_dev == D and E->virtual_on == 0).  Both
 * E->virtual_on and E->home_dev name one device, and the two cases exclude
 * each other, so checking the links proves that no two devices carry E.
 * Parking accounts are unique by index and never an extension's sip_user.
 */
static int
inv_dev(struct hd_dev *d, void *arg)
{
	struct inv_ctx *c = arg;
	struct virt_carried k = virt_carried(c->w, d);

	if (d->guest != 0) {
		const struct hd_ext *g = world_ext(c->w, d->guest);

		if (g == NULL || g->virtual_on != d->id)
			return inv_fail(c, "I1: guest link broken", d->mac);
	}
	if (k.kind == VIRT_CARRY_EXT) {
		if (k.guest ? k.ext->virtual_on != d->id
		            : (k.ext->home_dev != d->id || k.ext->virtual_on != 0))
			return inv_fail(c, "I4: carried extension's links disagree", d->mac);
	}
	if (d->parking_user != NULL &&
	    (world_dev_by_parking_user(c->w, d->parking_user) != d ||
	     world_ext_by_sip_user(c->w, d->parking_user) != NULL))
		return inv_fail(c, "I4: parking account shared", d->mac);
	return 0;
}

int
virt_check_invariants(const struct world *w, char *err, size_t errlen)
{
	struct inv_ctx c = { w, err, errlen, 0 };

	if (world_each_ext(w, inv_ext, &c) == 0)
		world_each_dev(w, inv_dev, &c);
	return c.rc;
}
