/*
 * test_bigmap.c -- large zeroed mappings: lengths, alignment to huge
 * pages, zeroed and writable to the end, asked to be in huge pages (the
 * VMA's "hg" flag, which MADV_HUGEPAGE sets), hash tables that are
 * calloc'ed when small and mapped when large, and aligned mappings.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "bigmap.h"

#define MIB ((size_t)1 << 20)

static bool
all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* The VmFlags line of the mapping that holds p, from /proc/self/smaps. */
static bool
vm_flags(const void *p, char *out, size_t outlen)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	bool in = false, found = false;

	cr_assert_not_null(f);
	while (!found && fgets(line, sizeof line, f) != NULL) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, outlen, "%s", line + 8);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* Whether this kernel has transparent huge pages, and they are not off. */
static bool
thp_on(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	char mode[128] = "";

	if (f == NULL)
		return false;
	if (fgets(mode, sizeof mode, f) == NULL)
		mode[0] = '\0';
	fclose(f);
	return strstr(mode, "[never]") == NULL && mode[0] != '\0';
}

Test(bigmap, lengths_round_to_pages_below_2_mib_and_to_huge_pages_above)
{
	cr_assert_eq(bigmap_len(1), 4096);
	cr_assert_eq(bigmap_len(4096), 4096);
	cr_assert_eq(bigmap_len(4097), 8192);
	cr_assert_eq(bigmap_len(2 * MIB - 1), 2 * MIB);
	cr_assert_eq(bigmap_len(2 * MIB), 2 * MIB);
	cr_assert_eq(bigmap_len(3 * MIB), 4 * MIB);
	cr_assert_null(bigmap_alloc(0));
	cr_assert_null(bigmap_alloc(SIZE_MAX - 4096), "a length that wraps is refused");
}

Test(bigmap, a_small_mapping_is_zeroed_and_writable_to_its_end)
{
	size_t n = 256 * 1024 + 100;
	unsigned char *p = bigmap_alloc(n);

	cr_assert_not_null(p);
	cr_assert_eq((uintptr_t)p % 4096, 0);
	cr_assert(all_zero(p, bigmap_len(n)));
	memset(p, 0xa5, bigmap_len(n));
	cr_assert_eq(p[bigmap_len(n) - 1], 0xa5);
	bigmap_free(p, n);
	bigmap_free(NULL, n);
}

Test(bigmap, a_large_mapping_is_aligned_zeroed_and_asked_for_in_huge_pages)
{
	size_t n = 3 * MIB + 12345;
	unsigned char *p = bigmap_alloc(n);
	char flags[512];

	cr_assert_not_null(p);
	cr_assert_eq((uintptr_t)p % (2 * MIB), 0, "aligned to a huge page");
	cr_assert(all_zero(p, bigmap_len(n)));
	memset(p, 0x5a, bigmap_len(n));
	cr_assert_eq(p[bigmap_len(n) - 1], 0x5a);
	cr_assert(vm_flags(p, flags, sizeof flags));
	if (thp_on())
		cr_assert_not_null(strstr(flags, " hg"), "MADV_HUGEPAGE not set: %s", flags);
	bigmap_free(p, n);
}

Test(bigmap, tables_are_calloced_when_small_and_mapped_when_large)
{
	unsigned char *small = bigmap_table(250, 4), *large = bigmap_table(MIB / 8, 16);
	char flags[512];

	cr_assert_not_null(small);
	cr_assert_not_null(large);
	cr_assert(all_zero(small, 1000));
	cr_assert(all_zero(large, 2 * MIB));
	small[999] = 1;
	large[2 * MIB - 1] = 1;
	cr_assert_eq((uintptr_t)large % (2 * MIB), 0);
	cr_assert(vm_flags(large, flags, sizeof flags));
	if (thp_on())
		cr_assert_not_null(strstr(flags, " hg"));
	cr_assert_null(bigmap_table(SIZE_MAX / 8 + 1, 16), "a size that wraps is refused");
	bigmap_table_free(small, 250, 4);
	bigmap_table_free(large, MIB / 8, 16);
	bigmap_table_free(NULL, MIB / 8, 16);
	bigmap_table_free(NULL, 250, 4);
}

Test(bigmap, an_aligned_mapping_starts_at_its_alignment_and_is_zeroed)
{
	size_t len = 256 * 1024;
	unsigned char *p = bigmap_aligned(len, len), *q = bigmap_aligned(len, len);

	cr_assert_not_null(p);
	cr_assert_not_null(q);
	cr_assert_eq((uintptr_t)p % len, 0);
	cr_assert_eq((uintptr_t)q % len, 0);
	cr_assert(all_zero(p, len));
	memset(p, 1, len);
	memset(q, 2, len);
	cr_assert_eq(p[len - 1], 1, "two mappings do not overlap");
	cr_assert_null(bigmap_aligned(SIZE_MAX - 100, len));
	munmap(p, len);
	munmap(q, len);
}
