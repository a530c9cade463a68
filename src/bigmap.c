/*
 * bigmap.c -- large zeroed mappings (see bigmap.h).
 */
#include "bigmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE ((size_t)4096)
#define HUGE ((size_t)2 << 20)

void *
bigmap_aligned(size_t len, size_t align)
{
	char *m;
	uintptr_t a;
	size_t head;

	if (len + align < len)
		return NULL;
	/* align more than needed, then the slack on either side unmapped */
	m = mmap(NULL, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1);
	head = (size_t)(a - (uintptr_t)m);
	if (head > 0)
		munmap(m, head);
	munmap((char *)a + len, align - head);
	return (void *)a;
}

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
	void *m;

	if (n == 0 || len < n)
		return NULL;
	if (len < HUGE) {
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		         -1, 0);
		return m == MAP_FAILED ? NULL : m;
	}
	if ((m = bigmap_aligned(len, HUGE)) == NULL)
		return NULL;
	(void)madvise(m, len, MADV_HUGEPAGE);
	(void)madvise(m, len, MADV_POPULATE_WRITE);
	return m;
}

void
bigmap_free(void *p, size_t n)
{
	if (p != NULL)
		munmap(p, bigmap_len(n));
}

void *
bigmap_table(size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	return n * size < HUGE ? calloc(n, size) : bigmap_alloc(n * size);
}

void
bigmap_table_free(void *p, size_t n, size_t size)
{
	if (n * size < HUGE)
		free(p);
	else
		bigmap_free(p, n * size);
}
