/*
 * test_world.c -- the world's objects as loading makes them: packed
 * copies (one allocation each: the struct, its keys and strings), line
 * keys out of line, and tables sized ahead of a load.  Memory errors in
 * the free paths show under `make asan`.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "world.h"

/* Whether s lies in the allocation of the packed object at obj. */
static bool
inside(const void *obj, size_t size, size_t packed, const void *s)
{
	uintptr_t b = (uintptr_t)obj, a = (uintptr_t)s;

	return a >= b + size && a < b + size + packed;
}

static void
fill_ext(struct hd_ext *e)
{
	memset(e, 0, sizeof(*e));
	e->id = 42;
	e->org = 3;
	e->number = "1042";
	e->sip_user = "alice";
	e->sip_password = "s3cret-pass";
	e->display_name = "Alice A.";
	e->label = "Desk";
	e->voicemail = "*97";
	e->language = "fr_FR";
	e->sip.host = "pbx.example.test";
	e->sip.port = 5080;
	e->sip.transport = "tcp";
	e->allow_virtualization = true;
	e->virtual_on = 9;
	cr_assert_eq(hd_keys_parse(e, "blf\t1043\tBob\nsd\t5551234\t\n"), 0);
}

Test(world, a_packed_extension_is_its_source_in_one_allocation)
{
	struct hd_ext e, *c;
	char *strs[10];

	fill_ext(&e);
	e.secret_hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
	c = world_ext_pack(NULL, &e);
	cr_assert_not_null(c);
	cr_assert_gt(c->packed, 0);
	cr_assert_eq(c->id, 42);
	cr_assert_eq(c->org, 3);
	cr_assert_str_eq(c->number, "1042");
	cr_assert_str_eq(c->sip_user, "alice");
	cr_assert_str_eq(c->sip_password, "s3cret-pass");
	cr_assert_str_eq(c->display_name, "Alice A.");
	cr_assert_str_eq(c->label, "Desk");
	cr_assert_str_eq(c->voicemail, "*97");
	cr_assert_str_eq(c->language, "fr_FR");
	cr_assert_str_eq(c->sip.host, "pbx.example.test");
	cr_assert_eq(c->sip.port, 5080);
	cr_assert_str_eq(c->sip.transport, "tcp");
	cr_assert(c->allow_virtualization);
	cr_assert_eq(c->virtual_on, 9);
	/* the hash is not copied: has_secret tells (world_put_ext keeps no more) */
	cr_assert_null(c->secret_hash);
	cr_assert(c->has_secret);
	cr_assert_eq(c->nkeys, 2);
	cr_assert_eq(c->keys[0].type, HD_KEY_BLF);
	cr_assert_str_eq(c->keys[0].value, "1043");
	cr_assert_str_eq(c->keys[0].label, "Bob");
	cr_assert_eq(c->keys[1].type, HD_KEY_SPEED_DIAL);
	cr_assert_str_eq(c->keys[1].value, "5551234");
	cr_assert_null(c->keys[1].label);
	strs[0] = c->number, strs[1] = c->sip_user, strs[2] = c->sip_password;
	strs[3] = c->display_name, strs[4] = c->label, strs[5] = c->voicemail;
	strs[6] = c->language, strs[7] = c->sip.host, strs[8] = c->sip.transport;
	strs[9] = c->keys[0].value;
	for (size_t i = 0; i < 10; i++)
		cr_assert(inside(c, sizeof(*c), c->packed, strs[i]), "string %zu outside", i);
	cr_assert(inside(c, sizeof(*c), c->packed, c->keys));
	hd_keys_clear(&e);
	hd_ext_free(c);
}

Test(world, a_packed_object_whose_strings_are_replaced_frees_only_those)
{
	struct hd_ext e, *c;
	struct hd_dev d = { 0 }, *dc;

	fill_ext(&e);
	c = world_ext_pack(NULL, &e);
	hd_keys_clear(&e);
	cr_assert_not_null(c);
	c->label = strdup("own allocation"); /* the packed one is left in the tail */
	cr_assert_eq(hd_keys_parse(c, "blf\t200\tCarol\n"), 0);
	cr_assert_eq(c->nkeys, 1);
	cr_assert(!inside(c, sizeof(*c), c->packed, c->keys));
	hd_ext_free(c); /* frees label and keys, not the tail: ASan tells */

	d.id = 5;
	memcpy(d.mac, "0004f2000001", 13);
	d.profile = "polycom";
	d.parking_user = "park-1";
	d.parking_password = "park-pass";
	d.prov_password = "prov-pass";
	dc = world_dev_pack(NULL, &d);
	cr_assert_not_null(dc);
	cr_assert_str_eq(dc->mac, "0004f2000001");
	cr_assert_str_eq(dc->profile, "polycom");
	cr_assert_null(dc->model);
	cr_assert_str_eq(dc->parking_user, "park-1");
	cr_assert_str_eq(dc->parking_password, "park-pass");
	cr_assert_null(dc->static_contact);
	cr_assert_str_eq(dc->prov_password, "prov-pass");
	cr_assert(inside(dc, sizeof(*dc), dc->packed, dc->prov_password));
	free(dc->model);
	dc->model = strdup("VVX_500");
	hd_dev_free(dc);
}

Test(world, a_copy_of_a_packed_extension_owns_each_string)
{
	struct hd_ext e, *c, *k;

	fill_ext(&e);
	c = world_ext_pack(NULL, &e);
	hd_keys_clear(&e);
	k = hd_ext_dup(c);
	cr_assert_not_null(k);
	cr_assert_eq(k->packed, 0);
	cr_assert_str_eq(k->sip_password, "s3cret-pass");
	cr_assert_eq(k->nkeys, 2);
	cr_assert_str_eq(k->keys[1].value, "5551234");
	hd_ext_free(c);
	/* the copy lives on, and frees alone what is its own */
	free(k->label);
	k->label = NULL;
	cr_assert_str_eq(k->keys[0].label, "Bob");
	hd_ext_free(k);
}

Test(world, at_most_ten_line_keys_are_parsed)
{
	struct hd_ext e = { 0 };
	char text[512] = "";

	for (int i = 0; i < 10; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "sd\t%d\tK%d\n", 100 + i, i);
	cr_assert_eq(hd_keys_parse(&e, text), 0);
	cr_assert_eq(e.nkeys, 10);
	cr_assert_str_eq(e.keys[9].value, "109");
	strcat(text, "sd\t110\tK10\n");
	cr_assert_eq(hd_keys_parse(&e, text), -1);
	cr_assert_eq(e.nkeys, 0);
	cr_assert_null(e.keys);
	cr_assert_eq(hd_keys_parse(&e, "blf\t12\tX"), 0); /* no final newline */
	cr_assert_eq(e.nkeys, 1);
	cr_assert_eq(hd_keys_parse(&e, "bad line\n"), -1);
	cr_assert_eq(e.nkeys, 0);
	hd_keys_clear(&e);
}

Test(world, a_world_sized_ahead_finds_every_object_put_in_before_and_after)
{
	struct world *w = world_new();
	struct hd_org o = { .id = 1, .name = "acme" };
	char err[128];

	cr_assert_not_null(w);
	cr_assert_eq(world_put_org(w, hd_org_dup(&o), err, sizeof(err)), 0);
	for (int i = 1; i <= 20; i++) { /* some already in when the tables are sized */
		struct hd_ext e = { .id = i, .org = 1 }, *c;
		char num[16], user[16];

		snprintf(num, sizeof(num), "%d", 1000 + i);
		snprintf(user, sizeof(user), "u%d", i);
		e.number = num, e.sip_user = user, e.sip_password = "p";
		cr_assert_not_null(c = world_ext_pack(NULL, &e));
		cr_assert_eq(world_put_ext(w, c, err, sizeof(err)), 0, "%s", err);
	}
	cr_assert_eq(world_reserve(w, 10, 3000, 3000, 1500), 0);
	for (int i = 21; i <= 3000; i++) {
		struct hd_ext e = { .id = i, .org = 1 }, *c;
		struct hd_dev d = { .id = i, .org = 1, .profile = "yealink", .home_ext = i };
		char num[16], user[16], park[16];

		snprintf(num, sizeof(num), "%d", 1000 + i);
		snprintf(user, sizeof(user), "u%d", i);
		snprintf(park, sizeof(park), "park%d", i);
		snprintf(d.mac, sizeof(d.mac), "001565%06x", (unsigned)i);
		d.parking_user = i % 2 ? park : NULL;
		e.number = num, e.sip_user = user, e.sip_password = "p";
		cr_assert_not_null(c = world_ext_pack(NULL, &e));
		cr_assert_eq(world_put_ext(w, c, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(world_put_dev(w, world_dev_pack(NULL, &d), err, sizeof(err)), 0, "%s", err);
	}
	for (int i = 1; i <= 3000; i++) {
		char num[16], user[16], mac[13], park[16];

		snprintf(num, sizeof(num), "%d", 1000 + i);
		snprintf(user, sizeof(user), "u%d", i);
		snprintf(mac, sizeof(mac), "001565%06x", (unsigned)i);
		snprintf(park, sizeof(park), "park%d", i);
		cr_assert_eq(world_ext_by_number(w, 1, num)->id, i);
		cr_assert_eq(world_ext_by_sip_user(w, user)->id, i);
		if (i > 20) {
			cr_assert_eq(world_dev_by_mac(w, mac)->id, i);
			cr_assert_eq(world_ext(w, i)->home_dev, i);
			if (i % 2)
				cr_assert_eq(world_dev_by_parking_user(w, park)->id, i);
			else
				cr_assert_null(world_dev_by_parking_user(w, park));
		}
	}
	/* a unique key still refused */
	{
		struct hd_ext e = { .id = 5000, .org = 1, .number = "1005", .sip_user = "new",
		                    .sip_password = "p" };

		cr_assert_eq(world_put_ext(w, world_ext_pack(NULL, &e), err, sizeof(err)), -1);
	}
	world_del_ext(w, 7);
	world_del_dev(w, 30);
	cr_assert_null(world_ext_by_sip_user(w, "u7"));
	cr_assert_null(world_dev_by_mac(w, "00156500001e"));
	cr_assert_eq(world_count_exts(w), 2999);
	cr_assert_eq(world_count_devs(w), 2979);
	world_free(w);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* Whether the bytes at p can no longer be used: poisoned under ASan
 * (the build that runs this test for memory errors); elsewhere nothing
 * tells, and true is answered. */
static bool
dead(const void *p)
{
#ifdef TEST_ASAN
	return __asan_address_is_poisoned(p) != 0;
#else
	(void)p;
	return true;
#endif
}

Test(world, rows_loaded_into_the_arena_are_replaced_deleted_and_freed_like_any_other)
{
	struct world *w = world_new();
	struct hd_org o = { .id = 1, .name = "acme" };
	struct hd_ext *old, *big, *k;
	struct hd_dev *oldd;
	char err[128], *huge;
	const int n = 5000; /* past several blocks of the arena */

	cr_assert_not_null(w);
	cr_assert_eq(world_put_org(w, hd_org_dup(&o), err, sizeof(err)), 0);
	cr_assert_eq(world_reserve(w, 1, (size_t)n + 1, (size_t)n, (size_t)n), 0);
	for (int i = 1; i <= n; i++) {
		struct hd_ext e = { .id = i, .org = 1 }, *c;
		struct hd_dev d = { .id = i, .org = 1, .profile = "yealink", .home_ext = i }, *dc;
		char num[16], user[16], park[16];

		snprintf(num, sizeof(num), "%d", 1000 + i);
		snprintf(user, sizeof(user), "u%d", i);
		snprintf(park, sizeof(park), "park%d", i);
		snprintf(d.mac, sizeof(d.mac), "001565%06x", (unsigned)i);
		d.parking_user = park;
		d.parking_password = "park-pass";
		e.number = num, e.sip_user = user, e.sip_password = "secret";
		cr_assert_eq(hd_keys_parse(&e, "blf\t1001\tAda\n"), 0);
		cr_assert_not_null(c = world_ext_pack(w, &e));
		hd_keys_clear(&e);
		cr_assert(c->arena);
		cr_assert(inside(c, sizeof(*c), c->packed, c->keys));
		cr_assert_str_eq(c->keys[0].label, "Ada");
		cr_assert_eq(world_put_ext(w, c, err, sizeof(err)), 0, "%s", err);
		cr_assert_not_null(dc = world_dev_pack(w, &d));
		cr_assert(dc->arena);
		cr_assert_str_eq(dc->parking_password, "park-pass");
		cr_assert_eq(world_put_dev(w, dc, err, sizeof(err)), 0, "%s", err);
	}
	/* an admin change replaces a loaded row: the old one is wiped, not
	 * passed to free() (ASan would abort), and no longer usable */
	old = world_ext(w, 10);
	cr_assert_not_null(k = hd_ext_dup(old));
	free(k->display_name);
	k->display_name = strdup("Renamed");
	cr_assert_eq(world_put_ext(w, k, err, sizeof(err)), 0, "%s", err);
	cr_assert(dead(old));
	cr_assert_str_eq(world_ext_by_sip_user(w, "u10")->display_name, "Renamed");
	cr_assert_str_eq(world_ext(w, 10)->sip_password, "secret");
	cr_assert_eq(world_dev(w, 10)->home_ext, 10);
	cr_assert_eq(world_ext(w, 10)->home_dev, 10);
	/* a loaded row given strings of its own, then deleted */
	oldd = world_dev(w, 11);
	oldd->model = strdup("T46U");
	world_del_dev(w, 11);
	cr_assert(dead(oldd));
	cr_assert_null(world_dev_by_mac(w, "00156500000b"));
	cr_assert_null(world_dev_by_parking_user(w, "park11"));
	cr_assert_eq(world_ext(w, 11)->home_dev, 0);
	world_del_ext(w, 12);
	cr_assert_null(world_ext_by_sip_user(w, "u12"));
	/* a row too large for a block is allocated on its own */
	cr_assert_not_null(huge = malloc(300 << 10));
	memset(huge, 'x', (300 << 10) - 1);
	huge[(300 << 10) - 1] = '\0';
	{
		struct hd_ext e = { .id = n + 1, .org = 1, .number = "99999", .sip_user = "big",
		                    .sip_password = "p", .display_name = huge };

		cr_assert_not_null(big = world_ext_pack(w, &e));
	}
	free(huge);
	cr_assert(!big->arena);
	cr_assert_eq(strlen(big->display_name), (300 << 10) - 1);
	cr_assert_eq(world_put_ext(w, big, err, sizeof(err)), 0, "%s", err);
	/* the rest is still what was loaded */
	for (int i = 13; i <= n; i++) {
		char mac[13], user[16];

		snprintf(mac, sizeof(mac), "001565%06x", (unsigned)i);
		snprintf(user, sizeof(user), "u%d", i);
		cr_assert_eq(world_dev_by_mac(w, mac)->id, i);
		cr_assert_eq(world_ext_by_sip_user(w, user)->home_dev, i);
	}
	cr_assert_eq(world_count_exts(w), (size_t)n);
	cr_assert_eq(world_count_devs(w), (size_t)n - 1);
	world_free(w); /* the blocks unmapped; ASan reports any leak */
}
