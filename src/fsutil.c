/*
 * fsutil.c -- atomic publication of files into a directory served by
 * another process (tftpd-hpa reads the TFTP root as user nobody, so files
 * are 0644 and directories 0755).
 *
 * Temporaries never show: they are created in FS_TMPDIR, a subdirectory
 * of the served directory with mode 0700 that nobody else may enter, mode
 * 0600 and made 0644 only there just before the rename (fs_tmp_create), or
 * 0644 at once by the TFTP writer, which holds the directory open and
 * checks it before each batch (struct fs_tmpdir).  A crash leaves at
 * most files nobody else can open, and fs_sweep_temporaries removes them
 * (and those of the older layout, ".<name>.XXXXXX" in the directory
 * itself) at the next start.
 */
#include "fsutil.h"

#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "errbuf.h"

static int
path_join(char *buf, size_t len, const char *dir, const char *name, char *err, size_t errlen)
{
	if (strchr(name, '/') != NULL || name[0] == '\0' || name[0] == '.') {
		hd_seterr(err, errlen, "not a plain file name");
		return -1;
	}
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len) {
		hd_seterr(err, errlen, "path too long");
		return -1;
	}
	return 0;
}

/* dir/FS_TMPDIR, created mode 0700 when missing; refuses anything but a
 * real directory owned by us (never follows a symbolic link there). */
static int
tmpdir_open(const char *dir, char *tdir, size_t tdirlen, char *err, size_t errlen)
{
	struct stat st;

	if ((size_t)snprintf(tdir, tdirlen, "%s/%s", dir, FS_TMPDIR) >= tdirlen) {
		hd_seterr(err, errlen, "path too long");
		return -1;
	}
	if (mkdir(tdir, 0700) == -1 && errno != EEXIST) {
		hd_seterr(err, errlen, "%s: %s", tdir, strerror(errno));
		return -1;
	}
	if (lstat(tdir, &st) == -1 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		hd_seterr(err, errlen, "%s: not a directory of ours", tdir);
		return -1;
	}
	if ((st.st_mode & 07777) != 0700 && chmod(tdir, 0700) == -1) {
		hd_seterr(err, errlen, "%s: %s", tdir, strerror(errno));
		return -1;
	}
	return 0;
}

int
fs_tmp_create(const char *dir, const char *name, char *tmp, size_t tmplen, char *err,
              size_t errlen)
{
	char tdir[PATH_MAX];
	int fd;

	if (strchr(name, '/') != NULL || name[0] == '\0' || name[0] == '.') {
		hd_seterr(err, errlen, "not a plain file name");
		return -1;
	}
	if (tmpdir_open(dir, tdir, sizeof(tdir), err, errlen) != 0)
		return -1;
	if ((size_t)snprintf(tmp, tmplen, "%s/%s.XXXXXX", tdir, name) >= tmplen) {
		hd_seterr(err, errlen, "path too long");
		return -1;
	}
	/* mkstemp creates the file mode 0600 whatever the umask */
	if ((fd = mkstemp(tmp)) == -1) {
		hd_seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	return fd;
}

int
fs_tmp_commit(const char *tmp, const char *dir, const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (path_join(path, sizeof(path), dir, name, err, errlen) != 0)
		return -1;
	/* readable by the server only now, still inside the 0700 directory */
	if (chmod(tmp, 0644) == -1 || rename(tmp, path) == -1) {
		hd_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Exchanges tfd/tmp with dfd/name (renames it when there is nothing to
 * exchange with): 1, 0 or -1 with err naming shown (fs_tmp_swap). */
static int
exchange_at(int tfd, const char *tmp, int dfd, const char *name, const char *shown,
            char *err, size_t errlen)
{
	struct stat st;

	/* the exchange needs both names: a new name is a plain rename, as is
	 * a file system without RENAME_EXCHANGE */
	if (renameat2(tfd, tmp, dfd, name, RENAME_EXCHANGE) == -1) {
		if (errno != ENOENT && errno != EINVAL && errno != ENOSYS)
			goto fail;
		if (renameat(tfd, tmp, dfd, name) == -1)
			goto fail;
		return 0;
	}
	/* what was there goes where tmp was; a directory is put back, as a
	 * rename over it would have failed */
	if (fstatat(tfd, tmp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		(void)renameat2(tfd, tmp, dfd, name, RENAME_EXCHANGE);
		errno = EISDIR;
		goto fail;
	}
	return 1;
fail:
	hd_seterr(err, errlen, "%s: %s", shown, strerror(errno));
	return -1;
}

int
fs_tmp_swap(const char *tmp, const char *dir, const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (path_join(path, sizeof(path), dir, name, err, errlen) != 0)
		return -1;
	if (chmod(tmp, 0644) == -1) {
		hd_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return exchange_at(AT_FDCWD, tmp, AT_FDCWD, path, path, err, errlen);
}

/* Whether the process's umask takes no bit of 0644 (Linux reports it in
 * /proc/self/status; unknown counts as no).  Read, never set: the umask
 * is process-wide. */
static bool
umask_keeps_0644(void)
{
	char line[128];
	unsigned int mask = 0777;
	bool found = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Umask: %o", &mask) == 1) {
			found = true;
			break;
		}
	fclose(f);
	return found && (mask & 0644) == 0;
}

void
fs_tmpdir_close(struct fs_tmpdir *t)
{
	if (t->tfd >= 0)
		close(t->tfd);
	if (t->dfd >= 0)
		close(t->dfd);
	t->tfd = t->dfd = -1;
	__atomic_store_n(&t->ok, 0, __ATOMIC_RELEASE);
}

/* Opens dir and its temporaries directory (created 0700 if missing) into
 * *dfd and *tfd. */
static int
tmpdir_fds(const char *dir, int *dfd, int *tfd, char *err, size_t errlen)
{
	*tfd = -1;
	if ((*dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		hd_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if ((mkdirat(*dfd, FS_TMPDIR, 0700) == -1 && errno != EEXIST) ||
	    (*tfd = openat(*dfd, FS_TMPDIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) ==
	        -1) {
		hd_seterr(err, errlen, "%s/%s: %s", dir, FS_TMPDIR,
		          errno == ELOOP || errno == ENOTDIR ? "not a directory of ours"
		                                             : strerror(errno));
		close(*dfd);
		*dfd = -1;
		return -1;
	}
	return 0;
}

/* Whether a rename over a file of directory dfd is as cheap as an
 * exchange: on tmpfs (and ramfs) it writes nothing back, so the exchange,
 * the check of what it swapped and the later removal of the replaced file
 * are three calls where one does. */
static bool
renames_cheaply(int dfd)
{
	struct statfs sf;

	return fstatfs(dfd, &sf) == 0 &&
	       (sf.f_type == FS_TMPFS_MAGIC || sf.f_type == FS_RAMFS_MAGIC);
}

int
fs_tmpdir_open(struct fs_tmpdir *t, const char *dir, char *err, size_t errlen)
{
	t->dfd = t->tfd = -1;
	t->seq = 0;
	t->ok = 0;
	t->fchmod = !umask_keeps_0644();
	t->no_lease = false;
	if (tmpdir_fds(dir, &t->dfd, &t->tfd, err, errlen) != 0)
		return -1;
	t->rename = renames_cheaply(t->dfd);
	if (fs_tmpdir_check(t, dir, err, errlen) != 0) {
		fs_tmpdir_close(t);
		return -1;
	}
	return 0;
}

/* Puts fd where *slot is (the slot's number stays valid for a thread using
 * it meanwhile) and closes fd. */
static void
fd_replace(int *slot, int fd)
{
	(void)dup3(fd, *slot, O_CLOEXEC);
	close(fd);
}

/* fs_tmpdir_check's checks, t->ok aside. */
static int
tmpdir_verify(struct fs_tmpdir *t, const char *dir, char *err, size_t errlen)
{
	struct stat ds, ts;

	if (t->dfd < 0 || t->tfd < 0 || fstat(t->dfd, &ds) == -1 || fstat(t->tfd, &ts) == -1) {
		hd_seterr(err, errlen, "%s/%s: not open", dir, FS_TMPDIR);
		return -1;
	}
	/* removed meanwhile (an operator's rm -r): open them again */
	if (ds.st_nlink == 0 || ts.st_nlink == 0) {
		int dfd, tfd;

		if (tmpdir_fds(dir, &dfd, &tfd, err, errlen) != 0)
			return -1;
		fd_replace(&t->dfd, dfd);
		fd_replace(&t->tfd, tfd);
		__atomic_store_n(&t->rename, renames_cheaply(t->dfd), __ATOMIC_RELAXED);
		if (fstat(t->tfd, &ts) == -1) {
			hd_seterr(err, errlen, "%s/%s: %s", dir, FS_TMPDIR, strerror(errno));
			return -1;
		}
	}
	if (!S_ISDIR(ts.st_mode) || ts.st_uid != geteuid()) {
		hd_seterr(err, errlen, "%s/%s: not a directory of ours", dir, FS_TMPDIR);
		return -1;
	}
	if ((ts.st_mode & 07777) != 0700 && fchmod(t->tfd, 0700) == -1) {
		hd_seterr(err, errlen, "%s/%s: %s", dir, FS_TMPDIR, strerror(errno));
		return -1;
	}
	return 0;
}

int
fs_tmpdir_check(struct fs_tmpdir *t, const char *dir, char *err, size_t errlen)
{
	/* the verdict replaces the last one when known: a temporary another
	 * thread creates meanwhile (a shared file written at once) is not
	 * refused for a check that is passing */
	int rc = tmpdir_verify(t, dir, err, errlen);

	__atomic_store_n(&t->ok, rc == 0, __ATOMIC_RELEASE);
	return rc;
}

int
fs_tmpdir_create(struct fs_tmpdir *t, const char *name, char *tmp, size_t tmplen, char *err,
                 size_t errlen)
{
	int fd = -1;

	if (strchr(name, '/') != NULL || name[0] == '\0' || name[0] == '.') {
		hd_seterr(err, errlen, "not a plain file name");
		return -1;
	}
	/* 0644 at once is safe only inside a directory nobody else enters */
	if (!__atomic_load_n(&t->ok, __ATOMIC_ACQUIRE)) {
		hd_seterr(err, errlen, "%s: not a directory of ours", FS_TMPDIR);
		return -1;
	}
	for (int tries = 0; fd == -1 && tries < 100; tries++) {
		unsigned long long n = __atomic_fetch_add(&t->seq, 1, __ATOMIC_RELAXED);

		if ((size_t)snprintf(tmp, tmplen, "%s.%llx", name, n) >= tmplen) {
			hd_seterr(err, errlen, "%s: name too long", name);
			return -1;
		}
		fd = openat(t->tfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd == -1 && errno != EEXIST)
			break;
	}
	if (fd == -1) {
		hd_seterr(err, errlen, "%s/%s: %s", FS_TMPDIR, tmp, strerror(errno));
		return -1;
	}
	if (t->fchmod && fchmod(fd, 0644) == -1) {
		hd_seterr(err, errlen, "%s/%s: %s", FS_TMPDIR, tmp, strerror(errno));
		close(fd);
		(void)unlinkat(t->tfd, tmp, 0);
		return -1;
	}
	return fd;
}

int
fs_tmpdir_swap(struct fs_tmpdir *t, const char *tmp, const char *name, char *err,
               size_t errlen)
{
	if (strchr(name, '/') != NULL || name[0] == '\0' || name[0] == '.') {
		hd_seterr(err, errlen, "not a plain file name");
		return -1;
	}
	if (__atomic_load_n(&t->rename, __ATOMIC_RELAXED)) {
		if (renameat(t->tfd, tmp, t->dfd, name) == -1) {
			hd_seterr(err, errlen, "%s: %s", name, strerror(errno));
			return -1;
		}
		return 0;
	}
	return exchange_at(t->tfd, tmp, t->dfd, name, name, err, errlen);
}

int
fs_tmpdir_unlink(struct fs_tmpdir *t, const char *tmp)
{
	if (unlinkat(t->tfd, tmp, 0) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

int
fs_tmpdir_reopen(struct fs_tmpdir *t, const char *tmp)
{
	int fd;

	if (__atomic_load_n(&t->no_lease, __ATOMIC_RELAXED) ||
	    !__atomic_load_n(&t->ok, __ATOMIC_ACQUIRE) ||
	    (fd = openat(t->tfd, tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	if (fcntl(fd, F_SETLEASE, F_WRLCK) == -1) {
		/* EAGAIN: in use; EACCES: not ours (written before the daemon
		 * gave up root); EINVAL: leases are off on this system */
		if (errno == EINVAL)
			__atomic_store_n(&t->no_lease, true, __ATOMIC_RELAXED);
		close(fd);
		return -1;
	}
	if (fcntl(fd, F_SETLEASE, F_UNLCK) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
fs_write_atomic(const char *dir, const char *name, const void *data, size_t len, char *err,
                size_t errlen)
{
	char tmp[PATH_MAX];
	const char *p = data;
	int fd, dfd;

	if ((fd = fs_tmp_create(dir, name, tmp, sizeof(tmp), err, errlen)) == -1)
		return -1;
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
	if (fs_tmp_commit(tmp, dir, name, err, errlen) != 0) {
		unlink(tmp);
		return -1;
	}
	/* make the rename itself durable */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	hd_seterr(err, errlen, "%s/%s: %s", dir, name, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

/* Whether name is a temporary of the older layout: ".<name>.XXXXXX" with
 * six mkstemp characters. */
static bool
legacy_tmp_name(const char *name)
{
	size_t n = strlen(name);

	if (n < 10 || name[0] != '.' || name[n - 7] != '.')
		return false;
	for (size_t i = n - 6; i < n; i++)
		if (!isalnum((unsigned char)name[i]))
			return false;
	return true;
}

/* Removes the regular files of d (at dir) that keep(name) selects. */
static int
sweep_dir(const char *dir, bool (*pick)(const char *), size_t *removed, char *err,
          size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		hd_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    (pick != NULL && !pick(e->d_name)))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == -1) {
			hd_seterr(err, errlen, "%s/%s: %s", dir, e->d_name, strerror(errno));
			rc = -1;
			continue;
		}
		(*removed)++;
	}
	closedir(d);
	return rc;
}

int
fs_sweep_private(const char *dir, size_t *removed, char *err, size_t errlen)
{
	char tdir[PATH_MAX];
	size_t n = 0;
	int rc;

	if ((size_t)snprintf(tdir, sizeof(tdir), "%s/%s", dir, FS_TMPDIR) >= sizeof(tdir)) {
		hd_seterr(err, errlen, "path too long");
		return -1;
	}
	rc = sweep_dir(tdir, NULL, &n, err, errlen);
	if (removed != NULL)
		*removed = n;
	return rc;
}

int
fs_sweep_legacy(const char *dir, size_t *removed, char *err, size_t errlen)
{
	size_t n = 0;
	int rc = sweep_dir(dir, legacy_tmp_name, &n, err, errlen);

	if (removed != NULL)
		*removed = n;
	return rc;
}

int
fs_sweep_temporaries(const char *dir, size_t *removed, char *err, size_t errlen)
{
	size_t n = 0, m = 0;
	int rc = fs_sweep_private(dir, &n, err, errlen);

	if (fs_sweep_legacy(dir, &m, err, errlen) != 0)
		rc = -1;
	if (removed != NULL)
		*removed = n + m;
	return rc;
}

/* Reads the regular file open on fd whole (at most max bytes) into the
 * buffer room(arg, size) gives once its size is known (size + 1 bytes,
 * NUL-terminated); closes fd.  The buffer, or NULL with err filled (may
 * be NULL; a buffer room gave is the caller's either way).  Opened
 * O_NONBLOCK: a FIFO put in its place does not block the reader. */
static char *
read_fd_into(int fd, size_t max, char *(*room)(void *arg, size_t len), void *arg, size_t *len,
             char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0, size;

	if (fd == -1 || fstat(fd, &st) == -1) {
		hd_seterr(err, errlen, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		hd_seterr(err, errlen, "not a regular file");
		goto out;
	}
	if ((size_t)st.st_size > max) {
		hd_seterr(err, errlen, "larger than %zu bytes", max);
		goto out;
	}
	size = (size_t)st.st_size;
	if ((buf = room(arg, size)) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto out;
	}
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);

		if (n <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			hd_seterr(err, errlen, "%s", n == 0 ? "changed while being read"
			                                    : strerror(errno));
			buf = NULL; /* the caller's, part read */
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
out:
	if (fd != -1)
		close(fd);
	return buf;
}

static char *
malloc_room(void *arg, size_t len)
{
	return *(char **)arg = malloc(len + 1);
}

/* read_fd_into a malloc'd buffer (freed when the read fails). */
static char *
read_fd(int fd, size_t max, size_t *len, char *err, size_t errlen)
{
	char *buf = NULL, *got = read_fd_into(fd, max, malloc_room, &buf, len, err, errlen);

	if (got == NULL)
		free(buf);
	return got;
}

char *
fs_read_file(const char *dir, const char *name, size_t max, size_t *len)
{
	char path[PATH_MAX], err[64];

	if (path_join(path, sizeof(path), dir, name, err, sizeof(err)) != 0)
		return NULL;
	return read_fd(open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), max, len, NULL, 0);
}

char *
fs_read_path(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	return read_fd(open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), max, len, err, errlen);
}

char *
fs_read_file_at(int dirfd, const char *name, size_t max, size_t *len)
{
	char path[PATH_MAX], err[64];

	/* a plain name in that directory, as fs_read_file takes it */
	if (dirfd == -1 || path_join(path, sizeof(path), ".", name, err, sizeof(err)) != 0)
		return NULL;
	return read_fd(openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), max, len,
	               NULL, 0);
}

char *
fs_read_at_into(int dirfd, const char *name, size_t max, char *(*room)(void *arg, size_t len),
                void *arg, size_t *len)
{
	int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, fd;

	/* a plain name, as path_join takes it (no path built: openat) */
	if (dirfd == -1 || name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL)
		return NULL;
	/* O_NOATIME: the first read of a file written since its last read
	 * would dirty its inode (relatime) -- a journal update per phone at
	 * a boot storm after a re-render.  Only the file's owner may ask. */
	if ((fd = openat(dirfd, name, flags | O_NOATIME)) == -1 && errno == EPERM)
		fd = openat(dirfd, name, flags);
	return read_fd_into(fd, max, room, arg, len, NULL, 0);
}

int
fs_unlink(const char *dir, const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (path_join(path, sizeof(path), dir, name, err, errlen) != 0)
		return -1;
	if (unlink(path) == -1 && errno != ENOENT) {
		hd_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
fs_mkdir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		hd_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		hd_seterr(err, errlen, "%s: not a directory", dir);
		return -1;
	}
	return 0;
}

int
fs_probe_writable(const char *dir, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	int fd, rc = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.healthz.XXXXXX", dir) >= sizeof(tmp)) {
		hd_seterr(err, errlen, "path too long");
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) { /* mode 0600 */
		hd_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	errno = 0;
	if (write(fd, "ok\n", 3) != 3) {
		hd_seterr(err, errlen, "%s: %s", dir, strerror(errno ? errno : ENOSPC));
		rc = -1;
	}
	if (close(fd) != 0 && rc == 0) { /* the descriptor is released either way */
		hd_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		rc = -1;
	}
	if (unlink(tmp) == -1 && rc == 0) {
		hd_seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		rc = -1;
	}
	return rc;
}
