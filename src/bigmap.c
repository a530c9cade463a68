/*
 * bigmap.c -- large zeroed mappings (see bigmap.h).
 */
#include "bigmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE ((size_t)4096)
#define HUGE ((size_t)2 << 20)

size_t
bigmap_len(size_t n)
{
	size_t unit = n >= HUGE ? HUGE : PAGE;

	return (n + unit - 1) & ~(unit - 1);
}

void *
bigmap_alloc(size_t n)
{
	size_t len = bigmap_len(n);
	char *m;
	uintptr_t a;
	size_t head;

	if (n == 0 || len < n)
		return NULL;
	if (len < HUGE) {
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		         -1, 0);
		return m == MAP_FAILED ? NULL : m;
	}
	if (len + HUGE < len)
		return NULL;
	m = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)m + HUGE - 1) & ~(uintptr_t)(HUGE - 1);
	head = (size_t)(a - (uintptr_t)m);
	if (head > 0)
		munmap(m, head);
	munmap((char *)a + len, HUGE - head);
	(void)madvise((void *)a, len, MADV_HUGEPAGE);
	(void)madvise((void *)a, len, MADV_POPULATE_WRITE);
	return (void *)a;
}

void
bigmap_free(void *p, size_t n)
{
	if (p != NULL)
		munmap(p, bigmap_len(n));
}

void *
bigmap_table(size_t n)
{
	return n < HUGE ? calloc(1, n) : bigmap_alloc(n);
}

void
bigmap_table_free(void *p, size_t n)
{
	if (n < HUGE)
		free(p);
	else
		bigmap_free(p, n);
}
