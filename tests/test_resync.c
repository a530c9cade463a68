/*
 * test_resync.c -- the pure part of the resync engine (src/resync.h) with
 * an injected clock: the row state machine (pending -> notified -> synced
 * or stale), backoff, results, confirmation by fetch and by registration,
 * which device a registration belongs to, URI parsing and target choice;
 * plus the device_contact store functions it relies on.  The engine's
 * thread and socket are exercised end to end (tests/e2e/test_resync.py).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resync.h"
#include "store.h"
#include "testutil.h"
#include "virt.h"
#include "world.h"

static struct store_resync
pending_row(hd_id dev, unsigned long long version, long long now)
{
	struct store_resync r;

	memset(&r, 0, sizeof(r));
	r.dev = dev;
	snprintf(r.state, sizeof(r.state), "pending");
	r.version = version;
	r.next_at = now;
	r.created_at = now;
	return r;
}

/* ---- backoff and the state machine -------------------------------------- */

Test(resync, backoff_doubles_and_is_capped)
{
	struct resync_policy p = { 60, 3 };

	cr_assert_eq(resync_backoff_s(&p, 1), 60);
	cr_assert_eq(resync_backoff_s(&p, 2), 120);
	cr_assert_eq(resync_backoff_s(&p, 3), 240);
	cr_assert_eq(resync_backoff_s(&p, 40), 86400);
	p.timeout_s = 1;
	cr_assert_eq(resync_backoff_s(&p, 4), 8);
	p.timeout_s = 0; /* nonsense policy: still at least a second */
	cr_assert_eq(resync_backoff_s(&p, 1), 1);
}

Test(resync, timeline_pending_notified_stale)
{
	struct resync_policy p = { 60, 3 };
	long long t = 1000000;
	struct store_resync r = pending_row(7, 4, t);

	/* not due yet */
	r.next_at = t + 5;
	cr_assert_eq(resync_step(&r, &p, t), RESYNC_WAIT);
	cr_assert_str_eq(r.state, "pending");
	cr_assert_eq(r.attempts, 0);
	/* NOTIFY 1 */
	cr_assert_eq(resync_step(&r, &p, t + 5), RESYNC_SEND);
	cr_assert_str_eq(r.state, "notified");
	cr_assert_eq(r.attempts, 1);
	cr_assert_eq(r.next_at, t + 5 + 60);
	cr_assert_eq(resync_step(&r, &p, t + 64), RESYNC_WAIT);
	/* NOTIFY 2 after 60 s, then 120 s */
	cr_assert_eq(resync_step(&r, &p, t + 65), RESYNC_SEND);
	cr_assert_eq(r.attempts, 2);
	cr_assert_eq(r.next_at, t + 65 + 120);
	cr_assert_eq(resync_step(&r, &p, t + 184), RESYNC_WAIT);
	cr_assert_eq(resync_step(&r, &p, t + 185), RESYNC_SEND);
	cr_assert_eq(r.attempts, 3);
	cr_assert_eq(r.next_at, t + 185 + 240);
	/* no confirmation 240 s after the third: stale, and never sent again */
	cr_assert_eq(resync_step(&r, &p, t + 424), RESYNC_WAIT);
	cr_assert_eq(resync_step(&r, &p, t + 425), RESYNC_GIVE_UP);
	cr_assert_str_eq(r.state, "stale");
	cr_assert_eq(r.attempts, 3);
	cr_assert_eq(r.next_at, 0);
	for (long long x = t + 425; x < t + 100000; x += 977)
		cr_assert_eq(resync_step(&r, &p, x), RESYNC_WAIT);
	cr_assert_eq(r.attempts, 3);
}

Test(resync, retries_one_means_one_notify)
{
	struct resync_policy p = { 1, 1 };
	struct store_resync r = pending_row(1, 2, 50);

	cr_assert_eq(resync_step(&r, &p, 50), RESYNC_SEND);
	cr_assert_eq(resync_step(&r, &p, 51), RESYNC_GIVE_UP);
}

Test(resync, synced_and_stale_rows_wait)
{
	struct resync_policy p = { 1, 3 };
	struct store_resync r = pending_row(1, 2, 0);

	snprintf(r.state, sizeof(r.state), "synced");
	cr_assert_eq(resync_step(&r, &p, 1000), RESYNC_WAIT);
	snprintf(r.state, sizeof(r.state), "stale");
	cr_assert_eq(resync_step(&r, &p, 1000), RESYNC_WAIT);
	cr_assert_eq(r.attempts, 0);
}

Test(resync, results)
{
	struct store_resync r = pending_row(1, 2, 0);
	char longer[300];

	cr_assert(resync_record_result(&r, 200, "OK", 77));
	cr_assert_str_eq(r.last_result, "200 OK");
	cr_assert_eq(r.last_at, 77);
	cr_assert_str_eq(r.state, "pending", "a result does not change the state");
	cr_assert_not(resync_record_result(&r, 0, "timeout", 78));
	cr_assert_str_eq(r.last_result, "timeout");
	cr_assert_not(resync_record_result(&r, 403, "Forbidden", 79));
	cr_assert_str_eq(r.last_result, "403 Forbidden");
	cr_assert_not(resync_record_result(&r, -1, "no target", 80));
	cr_assert_str_eq(r.last_result, "error: no target");
	cr_assert(resync_record_result(&r, 202, NULL, 81));
	cr_assert_str_eq(r.last_result, "202 ?");
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	cr_assert_not(resync_record_result(&r, 500, longer, 82));
	cr_assert_eq(strlen(r.last_result), sizeof(r.last_result) - 1);
	cr_assert(strncmp(r.last_result, "500 xxx", 7) == 0);
}

Test(resync, confirm_by_fetch)
{
	struct store_resync r = pending_row(1, 0, 0);

	cr_assert_not(resync_confirm_fetch(&r, 99), "version not known yet: nothing proven");
	r.version = 5;
	cr_assert_not(resync_confirm_fetch(&r, 4));
	cr_assert_str_eq(r.state, "pending");
	cr_assert(resync_confirm_fetch(&r, 5));
	cr_assert_str_eq(r.state, "synced");
	cr_assert_not(resync_confirm_fetch(&r, 6), "already synced");
	/* a stale device that finally fetches is synced */
	snprintf(r.state, sizeof(r.state), "stale");
	cr_assert(resync_confirm_fetch(&r, 7));
	cr_assert_str_eq(r.state, "synced");
	cr_assert_eq(r.next_at, 0);
}

Test(resync, confirm_by_registration_needs_device_evidence)
{
	struct store_resync r = pending_row(1, 3, 0);

	snprintf(r.state, sizeof(r.state), "notified");
	cr_assert_not(resync_confirm_registration(&r, "u1", "u1", RESYNC_BY_IDENTITY),
	              "identity alone: the phone being left registers it too");
	cr_assert_not(resync_confirm_registration(&r, "old", "u1", RESYNC_BY_ADDRESS));
	cr_assert_not(resync_confirm_registration(&r, "u1", NULL, RESYNC_BY_ADDRESS));
	cr_assert_str_eq(r.state, "notified");
	cr_assert(resync_confirm_registration(&r, "u1", "u1", RESYNC_BY_ADDRESS));
	cr_assert_str_eq(r.state, "synced");
	r = pending_row(1, 3, 0);
	cr_assert(resync_confirm_registration(&r, "u1", "u1", RESYNC_BY_UA));
	r = pending_row(1, 0, 0);
	cr_assert_not(resync_confirm_registration(&r, "u1", "u1", RESYNC_BY_UA),
	              "version not known yet");
}

/* ---- URIs and targets --------------------------------------------------- */

struct uri_case {
	const char *in;
	int rc;
	const char *user, *host;
	int port;
};

Test(resync, parse_uri)
{
	static const struct uri_case cases[] = {
		{ "sip:1001@192.0.2.7:5062", 0, "1001", "192.0.2.7", 5062 },
		{ "sip:1001@192.0.2.7", 0, "1001", "192.0.2.7", 0 },
		{ "<sip:alice@10.0.0.1:5080;transport=udp>;expires=60", 0, "alice", "10.0.0.1", 5080 },
		/* a password in the userinfo is dropped, never carried on */
		{ "sip:bob:s3cret@10.0.0.2:5062", 0, "bob", "10.0.0.2", 5062 },
		{ "SIP:bob@10.0.0.2;ob", 0, "bob", "10.0.0.2", 0 },
		{ "sip:[2001:db8::1]:5070", 0, "", "2001:db8::1", 5070 },
		{ "sip:u@[2001:db8::1]", 0, "u", "2001:db8::1", 0 },
		{ "sip:phone.example.net:5060", 0, "", "phone.example.net", 5060 },
		{ "192.0.2.9:5099", 0, "", "192.0.2.9", 5099 },
		{ "2001:db8::2", 0, "", "2001:db8::2", 0 },
		{ "  sip:u@1.2.3.4:1?x=y", 0, "u", "1.2.3.4", 1 },
		{ "sips:u@1.2.3.4", -1, "", "", 0 },
		{ "sip:u@1.2.3.4:0", -1, "", "", 0 },
		{ "sip:u@1.2.3.4:65536", -1, "", "", 0 },
		{ "sip:u@1.2.3.4:50x", -1, "", "", 0 },
		{ "sip:u@1.2.3.4:", -1, "", "", 0 },
		{ "sip:u@", -1, "", "", 0 },
		{ "sip:", -1, "", "", 0 },
		{ "", -1, "", "", 0 },
		{ "<sip:u@1.2.3.4", -1, "", "", 0 },
		{ "sip:[2001:db8::1:5060", -1, "", "", 0 },
		{ "sip:u@1.2.3.4 x", -1, "", "", 0 },
		{ "sip:u\r\n@1.2.3.4", -1, "", "", 0 },
	};
	char user[64], host[64];
	int port;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct uri_case *c = &cases[i];
		int rc = resync_parse_uri(c->in, user, sizeof(user), host, sizeof(host), &port);

		cr_assert_eq(rc, c->rc, "'%s': rc %d, expected %d", c->in, rc, c->rc);
		if (rc != 0)
			continue;
		cr_assert_str_eq(user, c->user, "'%s'", c->in);
		cr_assert_str_eq(host, c->host, "'%s'", c->in);
		cr_assert_eq(port, c->port, "'%s': port %d", c->in, port);
	}
	cr_assert_eq(resync_parse_uri(NULL, user, sizeof(user), host, sizeof(host), &port), -1);
	/* a host that does not fit */
	cr_assert_eq(resync_parse_uri("sip:u@123.123.123.123", user, sizeof(user), host, 8, &port),
	             -1);
}

Test(resync, target_prefers_the_registration_now)
{
	struct resync_target_in in = {
		.reg_contact = "sip:acme-103@192.0.2.10:5062",
		.reg_expires_at = 2000,
		.fetch_source = "192.0.2.99",
		.static_contact = "sip:static@192.0.2.50",
		.now = 1000,
	};
	struct resync_target t;

	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_eq(t.source, RESYNC_TGT_REGISTRATION);
	cr_assert_str_eq(t.user, "acme-103");
	cr_assert_str_eq(t.host, "192.0.2.10");
	cr_assert_eq(t.port, 5062);
	cr_assert_str_eq(resync_source_name(t.source), "registration");

	/* expired registration: the last fetch's address, SIP port 5060 */
	in.now = 2000;
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_eq(t.source, RESYNC_TGT_FETCH);
	cr_assert_str_eq(t.host, "192.0.2.99");
	cr_assert_eq(t.port, 5060);
	cr_assert_str_eq(t.user, "");

	/* a registration that names a host is not used (numeric only) */
	in.now = 1000;
	in.reg_contact = "sip:u@pbx.example.net:5060";
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_eq(t.source, RESYNC_TGT_FETCH);
	/* nor garbage */
	in.reg_contact = "<<garbage";
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_eq(t.source, RESYNC_TGT_FETCH);

	/* an IPv4-mapped fetch source */
	in.fetch_source = "::ffff:198.51.100.4";
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_str_eq(t.host, "198.51.100.4");
	in.fetch_source = "2001:db8::7";
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_str_eq(t.host, "2001:db8::7");

	/* no registration, no fetch: the static contact (a name may be
	 * resolved by the engine) */
	in.reg_contact = NULL;
	in.fetch_source = "";
	in.static_contact = "sip:desk@phone.example.net";
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_eq(t.source, RESYNC_TGT_STATIC);
	cr_assert_str_eq(t.host, "phone.example.net");
	cr_assert_eq(t.port, 5060);

	in.static_contact = NULL;
	cr_assert_eq(resync_pick_target(&in, &t), -1);
	cr_assert_eq(t.source, RESYNC_TGT_NONE);
	in.fetch_source = "not-an-ip";
	cr_assert_eq(resync_pick_target(&in, &t), -1);
}

/* ---- which device registered ------------------------------------------- */

static struct world *w;
static hd_id next_id = 1;

static void
world_setup(void)
{
	w = world_new();
	cr_assert_not_null(w);
	next_id = 1;
}

static void
world_teardown(void)
{
	world_free(w);
}

static hd_id
mk_org(void)
{
	struct hd_org *o = calloc(1, sizeof(*o));
	char err[128];

	o->id = next_id++;
	o->name = strdup("acme");
	cr_assert_eq(world_put_org(w, o, err, sizeof(err)), 0, "%s", err);
	return o->id;
}

static hd_id
mk_ext(hd_id org, const char *number)
{
	struct hd_ext *e = calloc(1, sizeof(*e));
	char buf[64], err[128];

	e->id = next_id++;
	e->org = org;
	e->number = strdup(number);
	snprintf(buf, sizeof(buf), "acme-%s", number);
	e->sip_user = strdup(buf);
	e->sip_password = strdup("pw");
	e->allow_virtualization = true;
	e->secret_hash = strdup("$argon2id$fake");
	cr_assert_eq(world_put_ext(w, e, err, sizeof(err)), 0, "%s", err);
	return e->id;
}

static hd_id
mk_dev(hd_id org, hd_id home, const char *mac)
{
	struct hd_dev *d = calloc(1, sizeof(*d));
	char err[128], buf[64];

	d->id = next_id++;
	d->org = org;
	snprintf(d->mac, sizeof(d->mac), "%s", mac);
	d->profile = strdup("yealink");
	d->home_ext = home;
	snprintf(buf, sizeof(buf), "park-%s", mac);
	d->parking_user = strdup(buf);
	d->parking_password = strdup("ppw");
	cr_assert_eq(world_put_dev(w, d, err, sizeof(err)), 0, "%s", err);
	return d->id;
}

TestSuite(resync_reg, .init = world_setup, .fini = world_teardown);

Test(resync_reg, after_a_move_the_leaving_phone_is_found_by_its_address)
{
	hd_id org = mk_org();
	hd_id x = mk_ext(org, "102"), h = mk_ext(org, "101");
	hd_id a = mk_dev(org, x, "0004f2000102"); /* X's home phone */
	hd_id b = mk_dev(org, h, "0004f2000101"); /* the base */
	struct resync_reg_in in = { 0 };
	enum resync_how how;
	const struct hd_dev *d;

	/* before the move: X registers from A's address, resolved by identity */
	in.sip_user = "acme-102";
	d = resync_reg_device(w, &in, &how);
	cr_assert_not_null(d);
	cr_assert_eq(d->id, a);
	cr_assert_eq(how, RESYNC_BY_IDENTITY);

	/* X moves onto B */
	world_set_virtual_on(w, x, b);
	cr_assert_str_eq(resync_expected_user(w, world_dev(w, a)), "park-0004f2000102");
	cr_assert_str_eq(resync_expected_user(w, world_dev(w, b)), "acme-102");

	/* A, not reloaded yet, refreshes X from its address: still A */
	in.addr_dev = a;
	in.addr_prev_user = "acme-102";
	d = resync_reg_device(w, &in, &how);
	cr_assert_eq(d->id, a);
	cr_assert_eq(how, RESYNC_BY_ADDRESS);

	/* A reloaded: it registers its parking account from there */
	in.sip_user = "park-0004f2000102";
	d = resync_reg_device(w, &in, &how);
	cr_assert_eq(d->id, a);
	cr_assert_eq(how, RESYNC_BY_ADDRESS);

	/* B reloaded: X from B's address (where it registered 101 before) */
	in.sip_user = "acme-102";
	in.addr_dev = b;
	in.addr_prev_user = "acme-101";
	d = resync_reg_device(w, &in, &how);
	cr_assert_eq(d->id, b);
	cr_assert_eq(how, RESYNC_BY_ADDRESS);

	/* another identity at B's address is some other phone: by identity */
	in.sip_user = "park-0004f2000102";
	d = resync_reg_device(w, &in, &how);
	cr_assert_eq(d->id, a);
	cr_assert_eq(how, RESYNC_BY_IDENTITY);

	/* X from an unknown address: the device carrying X now */
	in.sip_user = "acme-102";
	in.addr_dev = 0;
	in.addr_prev_user = NULL;
	d = resync_reg_device(w, &in, &how);
	cr_assert_eq(d->id, b);
	cr_assert_eq(how, RESYNC_BY_IDENTITY);

	/* a User-Agent MAC beats everything */
	in.ua_mac = "0004f2000102";
	in.addr_dev = b;
	d = resync_reg_device(w, &in, &how);
	cr_assert_eq(d->id, a);
	cr_assert_eq(how, RESYNC_BY_UA);
	/* ...when it names a known device */
	in.ua_mac = "0004f2ffffff";
	in.addr_dev = 0;
	d = resync_reg_device(w, &in, &how);
	cr_assert_eq(d->id, b);

	/* nobody carries this identity */
	in.ua_mac = NULL;
	in.sip_user = "acme-999";
	cr_assert_null(resync_reg_device(w, &in, &how));
	cr_assert_eq(how, RESYNC_BY_NONE);
	in.sip_user = "";
	cr_assert_null(resync_reg_device(w, &in, &how));
	cr_assert_str_eq(resync_how_name(RESYNC_BY_ADDRESS), "address");
}

/* ---- device_contact in the store ---------------------------------------- */

Test(resync_store, device_contact_rows)
{
	char err[256], sqld[4096];
	struct store *st = store_open(":memory:", tu_src("sql", sqld, sizeof(sqld)), err,
	                              sizeof(err));
	struct hd_org o = { 0 };
	struct hd_dev d1 = { 0 }, d2 = { 0 };
	struct store_devcontact c = { 0 }, out;

	cr_assert_not_null(st, "%s", err);
	o.name = "acme";
	cr_assert_eq(store_org_put(st, &o), 0, "%s", store_errmsg(st));
	d1.org = d2.org = o.id;
	d1.profile = d2.profile = "yealink";
	snprintf(d1.mac, sizeof(d1.mac), "0004f2000001");
	snprintf(d2.mac, sizeof(d2.mac), "0004f2000002");
	cr_assert_eq(store_dev_put(st, &d1), 0, "%s", store_errmsg(st));
	cr_assert_eq(store_dev_put(st, &d2), 0, "%s", store_errmsg(st));

	cr_assert_eq(store_devcontact_get(st, d1.id, &out), 0);
	c.dev = d1.id;
	snprintf(c.sip_user, sizeof(c.sip_user), "acme-101");
	snprintf(c.contact, sizeof(c.contact), "sip:acme-101@192.0.2.1:5062");
	snprintf(c.addr, sizeof(c.addr), "192.0.2.1:5062");
	snprintf(c.call_id, sizeof(c.call_id), "abc@pbx");
	snprintf(c.how, sizeof(c.how), "identity");
	c.expires_at = 500;
	c.at = 100;
	cr_assert_eq(store_devcontact_put(st, &c), 0, "%s", store_errmsg(st));
	cr_assert_eq(store_devcontact_get(st, d1.id, &out), 1);
	cr_assert_str_eq(out.contact, c.contact);
	cr_assert_str_eq(out.call_id, "abc@pbx");
	cr_assert_str_eq(out.source, "");
	cr_assert_eq(out.expires_at, 500);
	cr_assert_eq(store_devcontact_by_addr(st, "192.0.2.1:5062", &out), 1);
	cr_assert_eq(out.dev, d1.id);

	/* the same address now belongs to d2: d1's row goes */
	c.dev = d2.id;
	snprintf(c.how, sizeof(c.how), "address");
	c.at = 200;
	cr_assert_eq(store_devcontact_put(st, &c), 0, "%s", store_errmsg(st));
	cr_assert_eq(store_devcontact_get(st, d1.id, &out), 0);
	cr_assert_eq(store_devcontact_by_addr(st, "192.0.2.1:5062", &out), 1);
	cr_assert_eq(out.dev, d2.id);

	/* unregistration of another identity leaves it; of this one removes it */
	cr_assert_eq(store_devcontact_forget(st, "acme-999", "192.0.2.1:5062"), 0);
	cr_assert_eq(store_devcontact_get(st, d2.id, &out), 1);
	cr_assert_eq(store_devcontact_forget(st, "acme-101", "192.0.2.1:5062"), 0);
	cr_assert_eq(store_devcontact_get(st, d2.id, &out), 0);

	/* bad rows are refused; a deleted device takes its row along */
	c.addr[0] = '\0';
	cr_assert_eq(store_devcontact_put(st, &c), STORE_ERR);
	snprintf(c.addr, sizeof(c.addr), "192.0.2.3:5060");
	snprintf(c.how, sizeof(c.how), "guess");
	cr_assert_neq(store_devcontact_put(st, &c), 0);
	snprintf(c.how, sizeof(c.how), "ua");
	cr_assert_eq(store_devcontact_put(st, &c), 0, "%s", store_errmsg(st));
	cr_assert_eq(store_dev_delete(st, d2.id), 0, "%s", store_errmsg(st));
	cr_assert_eq(store_devcontact_by_addr(st, "192.0.2.3:5060", &out), 0);
	store_close(st);
}

Test(resync_target, notify_targets_are_unicast_phones)
{
	static const struct { const char *host; int port; bool ok; } cases[] = {
		{ "192.0.2.10", 5060, true },     { "127.0.0.1", 5062, true },
		{ "2001:db8::5", 5060, true },    { "192.0.2.10", 5061, true },
		{ "192.0.2.10", 1024, true },     { "192.0.2.10", 1023, false },
		{ "192.0.2.10", 22, false },      { "192.0.2.10", 80, false },
		{ "0.0.0.0", 5060, false },       { "0.1.2.3", 5060, false },
		{ "224.0.0.1", 5060, false },     { "239.255.255.250", 5060, false },
		{ "255.255.255.255", 5060, false }, { "240.0.0.1", 5060, false },
		{ "::", 5060, false },            { "ff02::1", 5060, false },
		{ "::ffff:224.0.0.251", 5060, false }, { "::ffff:192.0.2.1", 5060, true },
		{ "phone.example", 5060, false }, { "", 5060, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = resync_target_refused(cases[i].host, cases[i].port, NULL);

		cr_assert_eq(why == NULL, cases[i].ok, "%s:%d -> %s", cases[i].host, cases[i].port,
		             why ? why : "allowed");
	}
}

Test(resync_target, phone_networks_limit_targets)
{
	struct cfg_netlist nets;
	char msg[128];
	struct resync_target t;
	struct resync_target_in in = { .reg_contact = "sip:1001@10.1.2.255:5060",
	                               .reg_expires_at = 2000, .fetch_source = "10.1.2.7",
	                               .now = 1000 };

	cr_assert_eq(cfg_netlist_parse("10.1.2.0/24, 2001:db8::/32", &nets, msg, sizeof(msg)), 0);
	cr_assert_null(resync_target_refused("10.1.2.7", 5060, &nets));
	cr_assert_null(resync_target_refused("2001:db8::7", 5060, &nets));
	cr_assert_str_eq(resync_target_refused("10.1.3.7", 5060, &nets),
	                 "outside [sip] notify_networks");
	cr_assert_str_eq(resync_target_refused("10.1.2.255", 5060, &nets),
	                 "the broadcast address of a phone network");
	cr_assert_null(resync_target_refused("10.1.3.255", 5060, NULL), "no list: any unicast");
	/* a refused registration contact is passed over: the fetch source */
	in.nets = &nets;
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_eq(t.source, RESYNC_TGT_FETCH);
	cr_assert_str_eq(t.host, "10.1.2.7");
	/* multicast contacts likewise, with or without a list */
	in.nets = NULL;
	in.reg_contact = "sip:1001@239.1.1.1:5060";
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_eq(t.source, RESYNC_TGT_FETCH);
	in.reg_contact = "sip:1001@192.0.2.9:80";
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_eq(t.source, RESYNC_TGT_FETCH);
	/* nothing acceptable at all: no target */
	in.fetch_source = "224.0.0.9";
	cr_assert_eq(resync_pick_target(&in, &t), -1);
	in.reg_contact = "sip:1001@192.0.2.9:5060";
	cr_assert_eq(resync_pick_target(&in, &t), 0);
	cr_assert_eq(t.source, RESYNC_TGT_REGISTRATION);
	cfg_netlist_free(&nets);
}
