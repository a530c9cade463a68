/*
 * test_idmap.c -- the integer-keyed hash map: room made ahead of a bulk
 * load (idmap_reserve) is used without growing, and keeps what is there;
 * a walk in steps sees what stayed once, and starts again over a rebuilt
 * table.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"

static void *
val(int64_t k)
{
	return (void *)(uintptr_t)(k * 8 + 8);
}

Test(idmap, a_reserved_map_takes_that_many_keys_without_growing)
{
	struct idmap m = { 0 };
	struct idmap_slot *table;
	size_t cap;

	cr_assert_eq(idmap_reserve(&m, 100000), 0);
	table = m.s;
	cap = m.cap;
	cr_assert_gt(cap, 2 * 100000);
	for (int64_t k = 1; k <= 100000; k++)
		cr_assert_eq(idmap_put(&m, k * 7919, val(k)), 0);
	cr_assert_eq(m.s, table, "the table was reallocated: it grew");
	cr_assert_eq(m.cap, cap);
	cr_assert_eq(idmap_count(&m), 100000);
	for (int64_t k = 1; k <= 100000; k++)
		cr_assert_eq(idmap_get(&m, k * 7919), val(k));
	idmap_free(&m);
}

Test(idmap, reserving_keeps_what_is_there_and_never_shrinks)
{
	struct idmap m = { 0 };
	size_t cap;

	for (int64_t k = 1; k <= 300; k++)
		cr_assert_eq(idmap_put(&m, k, val(k)), 0);
	idmap_del(&m, 7);
	cr_assert_eq(idmap_reserve(&m, 5000), 0);
	cr_assert_geq(m.cap, 10001);
	cr_assert_eq(idmap_count(&m), 299);
	cr_assert_null(idmap_get(&m, 7));
	for (int64_t k = 1; k <= 300; k++)
		if (k != 7)
			cr_assert_eq(idmap_get(&m, k), val(k), "key %lld lost", (long long)k);
	cap = m.cap;
	cr_assert_eq(idmap_reserve(&m, 10), 0);
	cr_assert_eq(m.cap, cap);
	idmap_free(&m);
}

Test(idmap, keys_spaced_by_the_table_size_are_all_found)
{
	struct idmap m = { 0 };
	int64_t step = (int64_t)1 << 20; /* far beyond the table: one probe run */

	for (int64_t i = 0; i < 3000; i++)
		cr_assert_eq(idmap_put(&m, i * step + 1, val(i)), 0);
	idmap_del(&m, 1500 * step + 1);
	cr_assert_eq(idmap_count(&m), 2999);
	for (int64_t i = 0; i < 3000; i++)
		if (i == 1500)
			cr_assert_null(idmap_get(&m, i * step + 1));
		else
			cr_assert_eq(idmap_get(&m, i * step + 1), val(i));
	/* MACs of two vendors with the same serials, and negative keys */
	for (int64_t i = 0; i < 5000; i++) {
		cr_assert_eq(idmap_put(&m, 0x0004f2000000LL + i, val(i)), 0);
		cr_assert_eq(idmap_put(&m, 0x001565000000LL + i, val(i + 1)), 0);
		cr_assert_eq(idmap_put(&m, -1 - i, val(i + 2)), 0);
	}
	for (int64_t i = 0; i < 5000; i++) {
		cr_assert_eq(idmap_get(&m, 0x0004f2000000LL + i), val(i));
		cr_assert_eq(idmap_get(&m, 0x001565000000LL + i), val(i + 1));
		cr_assert_eq(idmap_get(&m, -1 - i), val(i + 2));
	}
	idmap_free(&m);
}

struct seen {
	unsigned char *hit; /* by key */
	size_t n;
};

static int
see(void *v, void *arg)
{
	struct seen *s = arg;
	size_t k = ((uintptr_t)v - 8) / 8;

	s->hit[k]++;
	s->n++;
	return 0;
}

Test(idmap, a_walk_in_steps_sees_every_key_that_stayed_once)
{
	struct idmap m = { 0 };
	struct idmap_walk c = { 0 };
	struct seen s = { calloc(4000, 1), 0 };
	int steps = 0;

	for (int64_t k = 0; k < 2000; k++)
		cr_assert_eq(idmap_put(&m, k, val(k)), 0);
	cr_assert_eq(idmap_reserve(&m, 3000), 0); /* room: puts below never rebuild */
	while (!c.done) {
		cr_assert_eq(idmap_walk_step(&m, &c, 100, see, &s), 0);
		cr_assert_not(c.restarted);
		steps++;
		/* between two steps: one key goes, one comes */
		idmap_del(&m, steps);
		cr_assert_eq(idmap_put(&m, 2000 + steps, val(2000 + steps)), 0);
	}
	cr_assert_eq(steps, (int)(m.cap / 100 + (m.cap % 100 != 0)));
	for (int64_t k = 0; k < 2000; k++)
		cr_assert_leq(s.hit[k], 1, "key %lld seen twice", (long long)k);
	for (int64_t k = steps + 1; k < 2000; k++)
		cr_assert_eq(s.hit[k], 1, "key %lld, there all along, not seen", (long long)k);
	free(s.hit);
	idmap_free(&m);
}

Test(idmap, a_walk_over_a_rebuilt_table_starts_again)
{
	struct idmap m = { 0 };
	struct idmap_walk c = { 0 };
	struct seen s = { calloc(4000, 1), 0 };
	size_t cap;

	for (int64_t k = 0; k < 1000; k++)
		cr_assert_eq(idmap_put(&m, k, val(k)), 0);
	cap = m.cap;
	cr_assert_eq(idmap_walk_step(&m, &c, 64, see, &s), 0);
	cr_assert_not(c.done);
	/* the table grows: every key may have moved */
	for (int64_t k = 1000; k < 3000; k++)
		cr_assert_eq(idmap_put(&m, k, val(k)), 0);
	cr_assert_gt(m.cap, cap);
	cr_assert_eq(idmap_walk_step(&m, &c, 64, see, &s), 0);
	cr_assert(c.restarted);
	cr_assert_eq(c.pos, 0);
	memset(s.hit, 0, 4000);
	s.n = 0;
	while (!c.done) {
		cr_assert_eq(idmap_walk_step(&m, &c, 64, see, &s), 0);
		cr_assert_not(c.restarted);
	}
	cr_assert_eq(s.n, 3000);
	for (int64_t k = 0; k < 3000; k++)
		cr_assert_eq(s.hit[k], 1);
	free(s.hit);
	idmap_free(&m);
}
