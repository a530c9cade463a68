/*
 * fsutil.c -- atomic publication of files into a directory served by
 * another process (tftpd-hpa reads the TFTP root as user nobody, so files
 * are 0644 and directories 0755).
 */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
path_join(char *buf, size_t len, const char *dir, const char *name, char *err, size_t errlen)
{
	if (strchr(name, '/') != NULL || name[0] == '\0' || name[0] == '.') {
		snprintf(err, errlen, "not a plain file name");
		return -1;
	}
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	return 0;
}

int
fs_write_atomic(const char *dir, const char *name, const void *data, size_t len, char *err,
                size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	const char *p = data;
	int fd = -1, dfd;

	if (path_join(path, sizeof(path), dir, name, err, errlen) != 0)
		return -1;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >= sizeof(tmp)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0644) == -1)
		goto fail;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	/* make the rename itself durable */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

char *
fs_read_file(const char *dir, const char *name, size_t max, size_t *len)
{
	char path[PATH_MAX], err[64];
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd;

	if (path_join(path, sizeof(path), dir, name, err, sizeof(err)) != 0)
		return NULL;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max)
		goto out;
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		goto out;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			free(buf);
			buf = NULL;
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
out:
	close(fd);
	return buf;
}

int
fs_unlink(const char *dir, const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (path_join(path, sizeof(path), dir, name, err, errlen) != 0)
		return -1;
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
fs_mkdir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
		return -1;
	}
	return 0;
}
