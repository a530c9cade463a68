/*
 * test_virt.c -- the virtualization engine against every seed scenario,
 * every admin change, and a randomized property test.  Invariants I1-I4
 * are checked after every operation.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "virt.h"
#include "world.h"

static struct world *w;
static hd_id next_id = 1;

static void
setup(void)
{
	w = world_new();
	cr_assert_not_null(w);
}

static void
teardown(void)
{
	world_free(w);
}

TestSuite(virt, .init = setup, .fini = teardown);

static void
check(void)
{
	char err[256];

	cr_assert_eq(virt_check_invariants(w, err, sizeof(err)), 0, "invariant broken: %s", err);
}

static hd_id
mk_org(const char *name)
{
	struct hd_org *o = calloc(1, sizeof(*o));
	char err[128];

	o->id = next_id++;
	o->name = strdup(name);
	cr_assert_eq(world_put_org(w, o, err, sizeof(err)), 0, "%s", err);
	return o->id;
}

/* An extension "<org>-<number>"; allow: may be a base; code: has a secret. */
static hd_id
mk_ext(hd_id org, const char *number, bool allow, bool code)
{
	struct hd_ext *e = calloc(1, sizeof(*e));
	char buf[64], err[128];

	e->id = next_id++;
	e->org = org;
	e->number = strdup(number);
	snprintf(buf, sizeof(buf), "%lld-%s", (long long)org, number);
	e->sip_user = strdup(buf);
	e->sip_password = strdup("pw");
	e->allow_virtualization = allow;
	e->secret_hash = code ? strdup("$argon2id$fake") : NULL;
	cr_assert_eq(world_put_ext(w, e, err, sizeof(err)), 0, "%s", err);
	return e->id;
}

static hd_id
mk_dev(hd_id org, hd_id home, bool parking)
{
	struct hd_dev *d = calloc(1, sizeof(*d));
	char err[128], buf[64];

	d->id = next_id++;
	d->org = org;
	snprintf(d->mac, sizeof(d->mac), "0004f2%06llx", (unsigned long long)d->id);
	d->profile = strdup("polycom");
	d->home_ext = home;
	if (parking) {
		snprintf(buf, sizeof(buf), "park-%s", d->mac);
		d->parking_user = strdup(buf);
		d->parking_password = strdup("ppw");
	}
	cr_assert_eq(world_put_dev(w, d, err, sizeof(err)), 0, "%s", err);
	return d->id;
}

static const char *
sip(hd_id ext)
{
	return world_ext(w, ext)->sip_user;
}

static const char *
park(hd_id dev)
{
	return world_dev(w, dev)->parking_user;
}

static struct hd_idset changed;

/* Runs one *30, applies the plan when there is one, checks invariants. */
static struct virt_decision
star30(const char *caller, const char *digits, bool code_ok)
{
	struct virt_decision d;

	virt_star30(w, caller, digits, code_ok ? VIRT_CODE_VERIFIED : VIRT_CODE_NONE, &d);
	hd_idset_clear(&changed);
	if (d.result == VIRT_ACCEPTED || d.result == VIRT_RETURNED)
		cr_assert_eq(virt_apply(w, &d.plan, &changed), 0);
	check();
	return d;
}

static hd_id
on(hd_id ext)
{
	return world_ext(w, ext)->virtual_on;
}

/* the extension a device carries, 0 when parked */
static hd_id
carries(hd_id dev)
{
	struct virt_carried c = virt_carried(w, world_dev(w, dev));

	return c.kind == VIRT_CARRY_EXT ? c.ext->id : 0;
}

static enum virt_status
status(hd_id ext)
{
	return virt_ext_status(w, world_ext(w, ext));
}

static void
assert_changed(size_t n, const hd_id *devs)
{
	cr_assert_eq(changed.n, n, "changed %zu devices, expected %zu", changed.n, n);
	for (size_t i = 0; i < n; i++)
		cr_assert(hd_idset_has(&changed, devs[i]), "device %lld not in changed set",
		          (long long)devs[i]);
}

/* The demo office: A's phone allows virtualization; B, C have codes. */
static hd_id org, A, B, C, D, S, pa, pb, pc, pd;

static void
office(void)
{
	org = mk_org("acme");
	A = mk_ext(org, "101", true, true);
	B = mk_ext(org, "102", true, true);
	C = mk_ext(org, "103", true, true);
	D = mk_ext(org, "104", false, true);
	S = mk_ext(org, "105", false, true); /* softphone: no device */
	pa = mk_dev(org, A, true);
	pb = mk_dev(org, B, true);
	pc = mk_dev(org, C, true);
	pd = mk_dev(org, D, false);
	check();
}

Test(virt, virtualize_with_the_right_code)
{
	struct virt_decision d;

	office();
	d = star30(sip(A), "102", false);
	cr_assert_eq(d.result, VIRT_NEED_CODE);
	cr_assert_eq(on(B), 0, "asking for a code changes nothing");
	d = star30(sip(A), "102", true);
	cr_assert_eq(d.result, VIRT_ACCEPTED);
	cr_assert_eq(d.ext->id, B);
	cr_assert_eq(d.dev->id, pa);
	cr_assert_eq(on(B), pa);
	cr_assert_eq(carries(pa), B);
	cr_assert_eq(carries(pb), 0, "B's home phone is parked");
	cr_assert_eq(status(B), VIRT_ST_VIRTUALIZED);
	cr_assert_eq(status(A), VIRT_ST_INACTIVE);
	assert_changed(2, (hd_id[]){ pa, pb });
	/* the parked phone dials with its parking account */
	cr_assert_eq(virt_calling_device(w, park(pb))->id, pb);
	cr_assert_null(virt_calling_device(w, sip(A)), "inactive A is carried nowhere");
}

Test(virt, wrong_code_changes_nothing)
{
	/* the engine never sees a wrong code: the caller counts tries (guard)
	 * and never asks for a plan; asking without a verified code is safe */
	office();
	for (int i = 0; i < 3; i++)
		cr_assert_eq(star30(sip(A), "102", false).result, VIRT_NEED_CODE);
	cr_assert_eq(on(B), 0);
	cr_assert_eq(carries(pa), A);
}

Test(virt, base_not_allowing_virtualization)
{
	struct virt_decision d;

	office();
	d = star30(sip(D), "102", true);
	cr_assert_eq(d.result, VIRT_DENIED);
	cr_assert_eq(d.reason, VIRT_R_BASE_NOT_ALLOWED);
	cr_assert_eq(on(B), 0);
}

Test(virt, extension_without_a_code)
{
	struct virt_decision d;
	hd_id nocode;

	office();
	nocode = mk_ext(org, "106", false, false);
	d = star30(sip(A), "106", true);
	cr_assert_eq(d.result, VIRT_DENIED);
	cr_assert_eq(d.reason, VIRT_R_NO_SECRET);
	cr_assert_eq(on(nocode), 0);
}

Test(virt, unknown_extension)
{
	struct virt_decision d;

	office();
	d = star30(sip(A), "999", false);
	cr_assert_eq(d.result, VIRT_DENIED);
	cr_assert_eq(d.reason, VIRT_R_UNKNOWN_EXTENSION);
}

Test(virt, another_organizations_number)
{
	struct virt_decision d;
	hd_id other, x;

	office();
	other = mk_org("globex");
	x = mk_ext(other, "777", true, true);
	mk_dev(other, x, false);
	d = star30(sip(A), "777", true);
	cr_assert_eq(d.result, VIRT_DENIED);
	cr_assert_eq(d.reason, VIRT_R_UNKNOWN_EXTENSION, "nothing reveals other tenants");
	cr_assert_eq(on(x), 0);
}

Test(virt, unknown_caller)
{
	office();
	cr_assert_eq(star30("nobody", "102", true).reason, VIRT_R_UNKNOWN_CALLER);
	cr_assert_eq(star30("nobody", NULL, false).reason, VIRT_R_UNKNOWN_CALLER);
}

Test(virt, two_extensions_on_one_phone)
{
	struct virt_decision d;

	office();
	star30(sip(A), "102", true);
	d = star30(sip(B), "103", true); /* C's owner at A's phone, which carries B */
	cr_assert_eq(d.result, VIRT_ACCEPTED);
	cr_assert_eq(on(C), pa);
	cr_assert_eq(on(B), 0, "the first returns home");
	cr_assert_eq(carries(pb), B);
	cr_assert_eq(carries(pc), 0);
	assert_changed(3, (hd_id[]){ pa, pb, pc });
}

Test(virt, move_to_a_third_phone)
{
	struct virt_decision d;

	office();
	star30(sip(A), "103", true); /* C on A's phone */
	d = star30(sip(B), "103", true); /* C moves to B's phone */
	cr_assert_eq(d.result, VIRT_ACCEPTED);
	cr_assert_eq(on(C), pb);
	cr_assert_eq(carries(pa), A, "A's phone is freed");
	cr_assert_eq(carries(pb), C);
	cr_assert_eq(carries(pc), 0, "C's home stays parked");
	assert_changed(2, (hd_id[]){ pa, pb });
}

Test(virt, bare_star30_from_the_host_phone)
{
	struct virt_decision d;

	office();
	star30(sip(A), "102", true);
	d = star30(sip(B), NULL, false);
	cr_assert_eq(d.result, VIRT_RETURNED);
	cr_assert_eq(d.ext->id, B);
	cr_assert_eq(d.dev->id, pb);
	cr_assert_eq(on(B), 0);
	cr_assert_eq(carries(pa), A);
	cr_assert_eq(carries(pb), B);
	assert_changed(2, (hd_id[]){ pa, pb });
}

Test(virt, bare_star30_from_the_parked_home_phone)
{
	struct virt_decision d;

	office();
	star30(sip(A), "102", true);
	d = star30(park(pb), "", false);
	cr_assert_eq(d.result, VIRT_RETURNED);
	cr_assert_eq(d.ext->id, B);
	cr_assert_eq(carries(pb), B);
	cr_assert_eq(carries(pa), A);
}

Test(virt, bare_star30_with_nothing_to_return)
{
	office();
	cr_assert_eq(star30(sip(A), NULL, false).result, VIRT_NOTHING);
	cr_assert_eq(changed.n, 0);
}

Test(virt, star30_own_number_from_home_returns_without_code)
{
	struct virt_decision d;

	office();
	star30(sip(A), "102", true);
	d = star30(park(pb), "102", false);
	cr_assert_eq(d.result, VIRT_RETURNED, "no code needed to come home");
	cr_assert_eq(carries(pb), B);
	cr_assert_eq(star30(sip(B), "102", false).result, VIRT_NOTHING);
}

Test(virt, return_while_home_phone_hosts_someone_else)
{
	struct virt_decision d;

	office();
	star30(sip(A), "102", true); /* B on A's phone */
	star30(park(pb), "103", true); /* C on B's (parked) phone */
	cr_assert_eq(carries(pb), C);
	d = star30(sip(B), NULL, false); /* B returns from A's phone */
	cr_assert_eq(d.result, VIRT_RETURNED);
	cr_assert_eq(on(B), 0);
	cr_assert_eq(on(C), pb, "the other virtualization is not affected");
	cr_assert_eq(status(B), VIRT_ST_INACTIVE);
	cr_assert_eq(carries(pa), A);
	assert_changed(1, (hd_id[]){ pa });
	star30(sip(C), NULL, false); /* C leaves B's phone */
	cr_assert_eq(carries(pb), B, "freed later, B is home again");
	cr_assert_eq(status(B), VIRT_ST_HOME);
}

Test(virt, chain_returned_by_two_bare_star30s)
{
	office();
	star30(sip(C), "102", true); /* B on C's phone */
	star30(park(pb), "101", true); /* A on B's phone */
	cr_assert_eq(on(A), pb);
	cr_assert_eq(on(B), pc);
	cr_assert_eq(status(B), VIRT_ST_VIRTUALIZED, "virtualized and base at the same time");
	cr_assert_eq(star30(sip(A), NULL, false).ext->id, A, "first *30 from B's phone returns A");
	cr_assert_eq(on(A), 0);
	cr_assert_eq(carries(pb), 0, "B's phone is parked again");
	cr_assert_eq(star30(park(pb), NULL, false).ext->id, B, "second returns B");
	cr_assert_eq(on(B), 0);
	cr_assert_eq(carries(pb), B);
	cr_assert_eq(carries(pc), C);
	cr_assert_eq(carries(pa), A);
}

Test(virt, softphone_user_is_virtualized_and_returned)
{
	struct virt_decision d;

	office();
	d = star30(sip(A), "105", true);
	cr_assert_eq(d.result, VIRT_ACCEPTED);
	cr_assert_eq(carries(pa), S);
	d = star30(sip(S), NULL, false);
	cr_assert_eq(d.result, VIRT_RETURNED);
	cr_assert_null(d.dev, "no home device");
	cr_assert_eq(status(S), VIRT_ST_UNPLACED);
}

Test(virt, admin_return)
{
	struct virt_decision d;

	office();
	star30(sip(A), "102", true);
	virt_return(w, world_ext(w, B), &d);
	cr_assert_eq(d.result, VIRT_RETURNED);
	cr_assert_eq(virt_apply(w, &d.plan, &changed), 0);
	check();
	cr_assert_eq(carries(pb), B);
	virt_return(w, world_ext(w, B), &d);
	cr_assert_eq(d.result, VIRT_NOTHING);
	cr_assert_eq(d.plan.n, 0);
}

/* Applies an admin edit through a copy, then repairs, like the service. */
static void
repair(void)
{
	struct virt_plan p = { 0 };

	cr_assert_eq(virt_repair(w, &p), 0);
	hd_idset_clear(&changed);
	cr_assert_eq(virt_apply(w, &p, &changed), 0);
	check();
}

/* An admin edit: device `from` loses its home extension, which becomes
 * ext's home device `to`; then the repair, as the service does. */
static void
rehome(hd_id from, hd_id to, hd_id ext)
{
	struct hd_dev *d;
	char err[128];

	d = hd_dev_dup(world_dev(w, from));
	d->home_ext = 0;
	cr_assert_eq(world_put_dev(w, d, err, sizeof(err)), 0, "%s", err);
	d = hd_dev_dup(world_dev(w, to));
	d->home_ext = ext;
	cr_assert_eq(world_put_dev(w, d, err, sizeof(err)), 0, "%s", err);
	repair();
}

static void
edit_ext(hd_id id, bool allow, bool code)
{
	struct hd_ext *e = hd_ext_dup(world_ext(w, id));
	char err[128];

	e->allow_virtualization = allow;
	free(e->secret_hash);
	e->secret_hash = code ? strdup("$argon2id$x") : NULL;
	e->has_secret = code;
	cr_assert_eq(world_put_ext(w, e, err, sizeof(err)), 0, "%s", err);
}

Test(virt, admin_allow_virtualization_turned_off)
{
	office();
	star30(sip(A), "102", true);
	edit_ext(A, false, true);
	repair();
	cr_assert_eq(on(B), 0, "the guest returns");
	cr_assert_eq(carries(pa), A);
	cr_assert_eq(carries(pb), B);
	assert_changed(2, (hd_id[]){ pa, pb });
}

Test(virt, admin_secret_cleared)
{
	office();
	star30(sip(A), "102", true);
	edit_ext(B, true, false);
	repair();
	cr_assert_eq(on(B), 0, "without a code an extension cannot stay virtualized");
	cr_assert_eq(carries(pb), B);
}

Test(virt, admin_virtualized_extension_deleted)
{
	struct virt_plan p = { 0 };

	office();
	star30(sip(A), "102", true);
	cr_assert_eq(virt_plan_delete_ext(w, world_ext(w, B), &p), 0);
	cr_assert_eq(virt_apply(w, &p, &changed), 0);
	world_del_ext(w, B);
	check();
	cr_assert_eq(carries(pa), A);
	cr_assert_eq(carries(pb), 0, "B's phone has no home extension any more");
}

Test(virt, admin_base_home_extension_deleted)
{
	struct virt_plan p = { 0 };

	office();
	star30(sip(A), "102", true);
	cr_assert_eq(virt_plan_delete_ext(w, world_ext(w, A), &p), 0);
	hd_idset_clear(&changed);
	cr_assert_eq(virt_apply(w, &p, &changed), 0);
	world_del_ext(w, A);
	check();
	cr_assert_eq(on(B), 0, "the guest loses its base");
	cr_assert_eq(carries(pb), B);
	cr_assert_eq(carries(pa), 0);
}

Test(virt, admin_host_device_deleted)
{
	struct virt_plan p = { 0 };

	office();
	star30(sip(A), "102", true);
	cr_assert_eq(virt_plan_delete_dev(w, world_dev(w, pa), &p), 0);
	cr_assert_eq(virt_apply(w, &p, &changed), 0);
	world_del_dev(w, pa);
	check();
	cr_assert_eq(on(B), 0);
	cr_assert_eq(carries(pb), B);
	cr_assert_eq(status(A), VIRT_ST_UNPLACED);
}

Test(virt, admin_parked_home_device_deleted)
{
	struct virt_plan p = { 0 };

	office();
	star30(sip(A), "102", true);
	cr_assert_eq(virt_plan_delete_dev(w, world_dev(w, pb), &p), 0);
	cr_assert_eq(p.n, 0, "B stays where it is");
	world_del_dev(w, pb);
	check();
	cr_assert_eq(on(B), pa);
	cr_assert_eq(star30(sip(B), NULL, false).result, VIRT_RETURNED);
	cr_assert_eq(status(B), VIRT_ST_UNPLACED);
}

Test(virt, admin_home_extension_changed)
{
	office();
	star30(sip(A), "102", true); /* B on A's phone */
	/* A's phone becomes D's home (D does not allow virtualization) */
	rehome(pd, pa, D);
	cr_assert_eq(on(B), 0, "the new base does not allow virtualization");
	cr_assert_eq(carries(pa), D);
	cr_assert_eq(status(A), VIRT_ST_UNPLACED);
}

Test(virt, admin_home_extension_changed_to_the_guest)
{
	office();
	star30(sip(A), "102", true); /* B on A's phone */
	rehome(pb, pa, B);
	cr_assert_eq(on(B), 0, "I2: B is home there now");
	cr_assert_eq(carries(pa), B);
}

/* After a right code: the caller moved to another phone meanwhile (here,
 * onto the home of the extension it asked for, where virt_star30 alone
 * would decide a return): nothing is planned, the caller is unknown. */
Test(virt, checked_code_from_a_caller_that_moved_plans_nothing)
{
	struct virt_decision d;

	office();
	star30(sip(A), "102", true);               /* B on A's phone */
	cr_assert_eq(star30(sip(B), "103", false).result, VIRT_NEED_CODE);
	star30(sip(C), "102", true);               /* meanwhile B moves to C's phone */
	virt_star30(w, sip(B), "103", VIRT_CODE_VERIFIED, &d);
	cr_assert_eq(d.result, VIRT_RETURNED, "the premise: a return from C's home");
	virt_star30_checked(w, sip(B), "103", pa, C, &d);
	cr_assert_eq(d.result, VIRT_DENIED);
	cr_assert_eq(d.reason, VIRT_R_UNKNOWN_CALLER);
	cr_assert_eq(d.plan.n, 0);
	cr_assert_null(d.dev);
	cr_assert_eq(d.ext->id, C);
	cr_assert_eq(d.caller->id, pa, "not the phone that asked");
}

/* After a right code: the calling phone became the home of the extension
 * asked for: its return to base, as *30<X> from X's home. */
Test(virt, checked_code_from_a_phone_made_its_home_returns_it)
{
	struct virt_decision d;

	office();
	star30(sip(A), "103", true);               /* C on A's phone */
	star30(park(pc), "102", true);             /* B on C's phone: B's phone parked */
	cr_assert_eq(star30(park(pb), "103", false).result, VIRT_NEED_CODE);
	rehome(pc, pb, C); /* meanwhile B's phone becomes C's home */
	cr_assert_eq(on(C), pa, "the premise: C still on A's phone");
	virt_star30_checked(w, park(pb), "103", pb, C, &d);
	cr_assert_eq(d.result, VIRT_RETURNED);
	cr_assert_eq(d.dev->id, pb);
	cr_assert_eq(d.plan.n, 1);
	cr_assert_eq(d.plan.moves[0].ext, C);
	cr_assert_eq(d.plan.moves[0].to, 0);
}

/* After a right code: the digits now name another extension (renumbered
 * meanwhile): the code proves nothing about it. */
Test(virt, checked_code_for_an_extension_renumbered_asks_again)
{
	struct virt_decision d;

	office();
	virt_star30_checked(w, sip(A), "102", pa, C, &d);
	cr_assert_eq(d.result, VIRT_NEED_CODE);
	cr_assert_eq(d.plan.n, 0);
	virt_star30_checked(w, sip(A), "102", pa, B, &d);
	cr_assert_eq(d.result, VIRT_ACCEPTED, "the same call, the same extension");
	cr_assert_eq(d.dev->id, pa);
}

Test(virt, home_extension_is_home_on_one_device_only)
{
	struct hd_dev *d;
	char err[128];

	office();
	d = hd_dev_dup(world_dev(w, pd));
	d->home_ext = A;
	cr_assert_eq(world_put_dev(w, d, err, sizeof(err)), -1);
	cr_assert(strstr(err, "already home") != NULL, "%s", err);
	cr_assert_eq(carries(pd), D, "nothing changed");
}

Test(virt, mac_normalize)
{
	char m[13];

	cr_assert_eq(hd_mac_normalize("00:04:F2:AB:cd:01", m), 0);
	cr_assert_str_eq(m, "0004f2abcd01");
	cr_assert_eq(hd_mac_normalize("0004-F2AB-CD01", m), 0);
	cr_assert_str_eq(m, "0004f2abcd01");
	cr_assert_eq(hd_mac_normalize("0004f2abcd0", m), -1);
	cr_assert_eq(hd_mac_normalize("0004f2abcd011", m), -1);
	cr_assert_eq(hd_mac_normalize("0004f2abcdzz", m), -1);
	cr_assert_eq(hd_mac_normalize(":0004f2abcd01", m), -1);
	cr_assert_eq(hd_mac_normalize("0004f2abcd01:", m), -1);
}

/*
 * Property: thousands of random operations on a small organization keep
 * I1-I4, and each accepted *30 leaves the extension on the calling device.
 */
Test(virt, random_operations_keep_the_invariants)
{
	enum { NE = 8, ND = 6, OPS = 20000 };
	hd_id ext[NE], dev[ND];
	unsigned seed = 12345;

	org = mk_org("prop");
	for (int i = 0; i < NE; i++) {
		char num[8];

		snprintf(num, sizeof(num), "%d", 200 + i);
		ext[i] = mk_ext(org, num, i % 3 != 0, i % 4 != 3);
	}
	for (int i = 0; i < ND; i++)
		dev[i] = mk_dev(org, ext[i], i % 2 == 0);
	for (int op = 0; op < OPS; op++) {
		int kind = rand_r(&seed) % 10;
		hd_id x = ext[rand_r(&seed) % NE];
		hd_id dv = dev[rand_r(&seed) % ND];
		struct virt_carried c = virt_carried(w, world_dev(w, dv));
		const char *caller = c.kind == VIRT_CARRY_EXT ? c.ext->sip_user : park(dv);

		if (caller == NULL)
			caller = "nobody";
		if (kind < 6) {
			char digits[8];
			struct virt_decision d;

			snprintf(digits, sizeof(digits), "%s", world_ext(w, x)->number);
			d = star30(caller, digits, true);
			if (d.result == VIRT_ACCEPTED)
				cr_assert_eq(on(x), dv, "op %d: accepted but not on the device", op);
		} else if (kind < 8) {
			star30(caller, NULL, false);
		} else if (kind < 9) {
			struct virt_decision d;

			virt_return(w, world_ext(w, x), &d);
			cr_assert_eq(virt_apply(w, &d.plan, &changed), 0);
			check();
			cr_assert_eq(on(x), 0);
		} else {
			/* admin: flip allow_virtualization or the code, then repair */
			struct hd_ext *e = world_ext(w, x);

			edit_ext(x, !e->allow_virtualization, rand_r(&seed) % 4 != 0);
			repair();
		}
	}
}

/* ---- the SIP identities a change moved (the move webhook) ---------------- */

static struct virt_moved moved;

static struct virt_decision
star30_moved(const char *caller, const char *digits)
{
	struct virt_decision d;

	virt_star30(w, caller, digits, VIRT_CODE_VERIFIED, &d);
	hd_idset_clear(&changed);
	cr_assert(d.result == VIRT_ACCEPTED || d.result == VIRT_RETURNED);
	cr_assert_eq(virt_apply_moved(w, &d.plan, &changed, &moved), 0);
	check();
	return d;
}

static bool
moved_has(const char *sip_user)
{
	for (size_t i = 0; i < moved.n; i++)
		if (strcmp(moved.sip_user[i], sip_user) == 0)
			return true;
	return false;
}

static void
assert_moved(size_t n, const char *const *users)
{
	cr_assert_eq(moved.n, n, "moved %zu SIP users, expected %zu", moved.n, n);
	for (size_t i = 0; i < n; i++)
		cr_assert(moved_has(users[i]), "%s not among the moved users", users[i]);
}

Test(virt, moved_users_of_a_virtualization_and_its_return)
{
	office();
	star30_moved(sip(A), "102");
	/* B reaches A's phone, A loses it, B's phone now registers parking */
	assert_moved(3, (const char *[]){ sip(B), sip(A), park(pb) });
	star30_moved(sip(B), NULL);
	assert_moved(3, (const char *[]){ sip(B), sip(A), park(pb) });
	cr_assert_eq(carries(pa), A);
	cr_assert_eq(carries(pb), B);
}

Test(virt, moved_users_of_a_move_to_a_third_phone)
{
	office();
	star30_moved(sip(A), "103");
	star30_moved(sip(B), "103"); /* C moves from A's phone to B's */
	/* C changes phone, A has its phone again, B loses it; C's home stays
	 * parked, so its parking account did not move */
	assert_moved(3, (const char *[]){ sip(C), sip(A), sip(B) });
	cr_assert(!moved_has(park(pc)));
}

Test(virt, moved_users_without_a_parking_account)
{
	office();
	star30_moved(sip(A), "104"); /* D's phone has no parking account */
	assert_moved(2, (const char *[]){ sip(D), sip(A) });
	cr_assert_eq(carries(pd), 0, "D's phone is parked, with nothing to register");
}

Test(virt, apply_without_moved_list_is_plain_apply)
{
	struct virt_decision d;

	office();
	moved.n = 99;
	virt_star30(w, sip(A), "102", VIRT_CODE_VERIFIED, &d);
	cr_assert_eq(virt_apply_moved(w, &d.plan, &changed, NULL), 0);
	cr_assert_eq(moved.n, 99, "a NULL list is not touched");
	cr_assert_eq(carries(pa), B);
}
