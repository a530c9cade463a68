/*
 * testutil.h -- small helpers shared by the Criterion tests.
 */
#ifndef HD_TESTUTIL_H
#define HD_TESTUTIL_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Creates a fresh temporary directory; returns a static-lifetime copy. */
static inline char *
tu_tmpdir(void)
{
	char tmpl[] = "/tmp/hotdeskd-test-XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

/* Absolute path of a file in the source tree (tests run from the root). */
static inline const char *
tu_src(const char *rel, char *buf, size_t len)
{
	char cwd[PATH_MAX];

	if (getcwd(cwd, sizeof(cwd)) == NULL || (size_t)snprintf(buf, len, "%s/%s", cwd, rel) >= len)
		return rel;
	return buf;
}

#endif
