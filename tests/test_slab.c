/*
 * test_slab.c -- the size-class allocator of published files: freed slots
 * are reused by the next block of their class, classes do not mix, large
 * blocks go to malloc, and concurrent use loses nothing.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "slab.h"
#include "testutil.h"

Test(slab, freed_slots_are_reused_within_their_class)
{
	void *a = slab_alloc(300), *b = slab_alloc(300), *c;

	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_neq(a, b);
	memset(a, 0xab, 300);
	slab_free(a, 300);
	c = slab_alloc(290); /* same 64-byte class (257..320) */
	cr_assert_eq(c, a, "a re-render reuses the slot of the file it replaces");
	slab_free(b, 300);
	cr_assert_neq(slab_alloc(100), b, "another class does not take it");
	slab_free(c, 290);
}

Test(slab, large_blocks_and_null)
{
	char *big = slab_alloc(SLAB_MAX + 1);

	cr_assert_not_null(big);
	memset(big, 1, SLAB_MAX + 1);
	slab_free(big, SLAB_MAX + 1);
	slab_free(NULL, 10);
}

Test(slab, a_class_freed_gives_its_memory_back)
{
	enum { N = 4000 };
	static void *a[N], *b[N];
	size_t before = slab_footprint(), full, after;

	for (int i = 0; i < N; i++)
		cr_assert_not_null(a[i] = slab_alloc(700));
	full = slab_footprint();
	cr_assert_geq(full, before + (size_t)N * 704);
	/* a re-render whose files grew into the next class: each new file
	 * is made before the old one is freed */
	for (int i = 0; i < N; i++) {
		cr_assert_not_null(b[i] = slab_alloc(790));
		slab_free(a[i], 700);
	}
	after = slab_footprint();
	cr_assert_leq(after, before + (size_t)N * 832 + 3 * 256 * 1024,
	              "the old class's memory was kept: %zu bytes with it, %zu after", full, after);
	for (int i = 0; i < N; i++)
		slab_free(b[i], 790);
	cr_assert_leq(slab_footprint(), before + 2 * 256 * 1024, "%zu bytes left of %zu",
	              slab_footprint(), before);
}

static void *
churn(void *arg)
{
	void *v[64];

	for (int round = 0; round < 2000; round++) {
		for (int i = 0; i < 64; i++) {
			size_t n = 64 + (size_t)((i * 37 + round) % 900);

			cr_assert_not_null(v[i] = slab_alloc(n));
			memset(v[i], i, n); /* overlapping slots would corrupt others */
		}
		for (int i = 0; i < 64; i++) {
			size_t n = 64 + (size_t)((i * 37 + round) % 900);

			cr_assert_eq(((unsigned char *)v[i])[n - 1], (unsigned char)i);
			slab_free(v[i], n);
		}
	}
	return arg;
}

Test(slab, concurrent_use_keeps_blocks_apart)
{
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, churn, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
}
