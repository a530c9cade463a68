/*
 * testutil.h -- small helpers shared by the Criterion tests.
 */
#ifndef HD_TESTUTIL_H
#define HD_TESTUTIL_H

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

/* Creates a fresh temporary directory; returns a static-lifetime copy. */
static inline char *
tu_tmpdir(void)
{
	char tmpl[] = "/tmp/hotdeskd-test-XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

static inline int
tu_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes a test's directory tree and frees its name (tu_tmpdir's). */
static inline void
tu_rmtree(char *dir)
{
	(void)nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
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

/* Sends stderr to a fresh temporary file (already unlinked); returns its
 * fd, for tu_captured().  Aborts the test process when it cannot. */
static inline int
tu_capture_stderr(void)
{
	char path[] = "/tmp/hotdeskd-stderr-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0 || unlink(path) != 0 || dup2(fd, STDERR_FILENO) != STDERR_FILENO)
		abort();
	return fd;
}

/* What was written to the fd of tu_capture_stderr() so far (a static
 * buffer, NUL-terminated; "" on error). */
static inline const char *
tu_captured(int fd)
{
	static char buf[16384];
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static inline int
tu_count_event(const struct store_event *ev, void *arg)
{
	(void)ev;
	(*(long *)arg)++;
	return 0;
}

/* The number of event rows f selects (NULL: all), or -1 when the store
 * cannot list them. */
static inline long
tu_events(struct store *st, const struct store_event_filter *f)
{
	long n = 0;

	return store_events_list(st, f, tu_count_event, &n) < 0 ? -1 : n;
}

#endif
