/*
 * test_fsutil.c -- the TFTP root's file helpers: temporaries are private
 * (0600 inside a 0700 directory) until put in place, published files
 * are 0644, and the start-up sweep removes exactly what a crash left;
 * the owner's reads leave a file's access time.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "fsutil.h"
#include "testutil.h"

static void
put(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	int fd;

	cr_assert_lt((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name), sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert_neq(fd, -1, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static bool
exists(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0;
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

Test(fsutil, temporaries_are_private_until_committed)
{
	char *dir = tu_tmpdir(), tmp[PATH_MAX], tdir[PATH_MAX], path[PATH_MAX], err[256];
	int fd;

	cr_assert_not_null(dir);
	fd = fs_tmp_create(dir, "0004f2000001-line.cfg", tmp, sizeof(tmp), err, sizeof(err));
	cr_assert_neq(fd, -1, "%s", err);
	snprintf(tdir, sizeof(tdir), "%s/%s", dir, FS_TMPDIR);
	cr_assert_eq(strncmp(tmp, tdir, strlen(tdir)), 0, "temporary %s outside %s", tmp, tdir);
	cr_assert_eq(mode_of(tdir), 0700);
	cr_assert_eq(mode_of(tmp), 0600);
	cr_assert_eq(write(fd, "pw=secret\n", 10), 10);
	close(fd);
	/* nothing under the final name, nothing readable in the root */
	cr_assert(!exists(dir, "0004f2000001-line.cfg"));
	cr_assert_eq(fs_tmp_commit(tmp, dir, "0004f2000001-line.cfg", err, sizeof(err)), 0, "%s", err);
	snprintf(path, sizeof(path), "%s/0004f2000001-line.cfg", dir);
	cr_assert_eq(mode_of(path), 0644);
	cr_assert(access(tmp, F_OK) != 0, "the temporary is still there");
	tu_rmtree(dir);
}

Test(fsutil, a_swap_exchanges_with_the_file_in_place_and_keeps_the_old_one_private)
{
	char *dir = tu_tmpdir(), tmp[PATH_MAX], path[PATH_MAX], err[256], *back;
	size_t len;
	int fd;

	cr_assert_not_null(dir);
	/* a new name: renamed, nothing to remove */
	fd = fs_tmp_create(dir, "a.cfg", tmp, sizeof(tmp), err, sizeof(err));
	cr_assert_neq(fd, -1, "%s", err);
	cr_assert_eq(write(fd, "one", 3), 3);
	close(fd);
	cr_assert_eq(fs_tmp_swap(tmp, dir, "a.cfg", err, sizeof(err)), 0, "%s", err);
	cr_assert(access(tmp, F_OK) != 0, "the temporary is still there");
	/* an existing name: exchanged, the old content now at tmp, private */
	fd = fs_tmp_create(dir, "a.cfg", tmp, sizeof(tmp), err, sizeof(err));
	cr_assert_neq(fd, -1, "%s", err);
	cr_assert_eq(write(fd, "two", 3), 3);
	close(fd);
	cr_assert_eq(fs_tmp_swap(tmp, dir, "a.cfg", err, sizeof(err)), 1, "%s", err);
	back = fs_read_file(dir, "a.cfg", 100, &len);
	cr_assert_not_null(back);
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(back, "two", 3), 0);
	free(back);
	snprintf(path, sizeof(path), "%s/a.cfg", dir);
	cr_assert_eq(mode_of(path), 0644);
	fd = open(tmp, O_RDONLY);
	cr_assert_neq(fd, -1, "the old file is not at %s", tmp);
	{
		char b[8] = "";

		cr_assert_eq(read(fd, b, sizeof(b)), 3);
		cr_assert_eq(memcmp(b, "one", 3), 0);
	}
	close(fd);
	cr_assert_eq(unlink(tmp), 0);
	/* a directory in the way: refused, both left as they were */
	snprintf(path, sizeof(path), "%s/d.cfg", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	fd = fs_tmp_create(dir, "d.cfg", tmp, sizeof(tmp), err, sizeof(err));
	cr_assert_neq(fd, -1, "%s", err);
	close(fd);
	cr_assert_eq(fs_tmp_swap(tmp, dir, "d.cfg", err, sizeof(err)), -1);
	cr_assert(strstr(err, "directory") != NULL, "error: %s", err);
	{
		struct stat st;

		cr_assert_eq(lstat(path, &st), 0);
		cr_assert(S_ISDIR(st.st_mode), "the directory was moved away");
		cr_assert_eq(lstat(tmp, &st), 0, "the temporary is left to the caller");
		cr_assert(S_ISREG(st.st_mode));
	}
	unlink(tmp);
	tu_rmtree(dir);
}

Test(fsutil, write_atomic_publishes_0644_and_leaves_no_temporary)
{
	char *dir = tu_tmpdir(), err[256], path[PATH_MAX];
	size_t n = 99, len;
	char *back;

	cr_assert_not_null(dir);
	cr_assert_eq(fs_write_atomic(dir, "a.cfg", "hello", 5, err, sizeof(err)), 0, "%s", err);
	snprintf(path, sizeof(path), "%s/a.cfg", dir);
	cr_assert_eq(mode_of(path), 0644);
	back = fs_read_file(dir, "a.cfg", 100, &len);
	cr_assert_not_null(back);
	cr_assert_eq(len, 5);
	cr_assert_eq(memcmp(back, "hello", 5), 0);
	free(back);
	cr_assert_eq(fs_sweep_temporaries(dir, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 0, "fs_write_atomic left %zu temporaries", n);
	/* names that could escape or hide are refused */
	cr_assert_eq(fs_write_atomic(dir, ".hidden", "x", 1, err, sizeof(err)), -1);
	cr_assert_eq(fs_write_atomic(dir, "../x", "x", 1, err, sizeof(err)), -1);
	tu_rmtree(dir);
}

/* fs_read_file_at reads a plain name of the directory open on dirfd,
 * as fs_read_file: never through a symbolic link, never a FIFO (without
 * blocking) or a directory, never a name that could leave the directory,
 * nor a file over the size asked. */
Test(fsutil, read_at_reads_regular_files_of_the_directory_only)
{
	char *dir = tu_tmpdir(), err[256], path[PATH_MAX], target[PATH_MAX];
	size_t len = 0;
	char *back;
	int dfd;

	cr_assert_not_null(dir);
	cr_assert_eq(fs_write_atomic(dir, "a.cfg", "hello", 5, err, sizeof(err)), 0, "%s", err);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_neq(dfd, -1);
	back = fs_read_file_at(dfd, "a.cfg", 100, &len);
	cr_assert_not_null(back);
	cr_assert(len == 5 && memcmp(back, "hello", 5) == 0);
	free(back);
	cr_assert_null(fs_read_file_at(dfd, "a.cfg", 4, &len), "a file over max was read");
	snprintf(path, sizeof(path), "%s/link.cfg", dir);
	snprintf(target, sizeof(target), "%s/a.cfg", dir);
	cr_assert_eq(symlink(target, path), 0);
	cr_assert_null(fs_read_file_at(dfd, "link.cfg", 100, &len), "read through a link");
	snprintf(path, sizeof(path), "%s/fifo.cfg", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_null(fs_read_file_at(dfd, "fifo.cfg", 100, &len), "a FIFO was read");
	snprintf(path, sizeof(path), "%s/sub", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_null(fs_read_file_at(dfd, "sub", 100, &len), "a directory was read");
	cr_assert_null(fs_read_file_at(dfd, "../a.cfg", 100, &len));
	cr_assert_null(fs_read_file_at(dfd, "sub/../a.cfg", 100, &len));
	cr_assert_null(fs_read_file_at(dfd, "missing.cfg", 100, &len));
	cr_assert_null(fs_read_file_at(-1, "a.cfg", 100, &len));
	close(dfd);
	tu_rmtree(dir);
}

/* fs_read_path follows a symbolic link (an operator's template may be
 * one) and says why it read nothing; a FIFO does not block it. */
Test(fsutil, read_path_follows_links_and_says_why_not)
{
	char *dir = tu_tmpdir(), err[256], path[PATH_MAX], target[PATH_MAX];
	size_t len = 0;
	char *back;

	cr_assert_not_null(dir);
	cr_assert_eq(fs_write_atomic(dir, "a.cfg", "hello", 5, err, sizeof(err)), 0, "%s", err);
	snprintf(target, sizeof(target), "%s/a.cfg", dir);
	snprintf(path, sizeof(path), "%s/link.cfg", dir);
	cr_assert_eq(symlink(target, path), 0);
	back = fs_read_path(path, 5, &len, err, sizeof(err));
	cr_assert_not_null(back, "%s", err);
	cr_assert(len == 5 && memcmp(back, "hello", 6) == 0);
	free(back);
	cr_assert_null(fs_read_path(path, 4, &len, err, sizeof(err)));
	cr_assert_str_eq(err, "larger than 4 bytes");
	snprintf(path, sizeof(path), "%s/fifo.cfg", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_null(fs_read_path(path, 100, &len, err, sizeof(err)));
	cr_assert_str_eq(err, "not a regular file");
	cr_assert_null(fs_read_path(dir, 100, &len, err, sizeof(err)));
	cr_assert_str_eq(err, "not a regular file");
	snprintf(path, sizeof(path), "%s/missing.cfg", dir);
	cr_assert_null(fs_read_path(path, 100, &len, err, sizeof(err)));
	cr_assert_str_eq(err, strerror(ENOENT));
	tu_rmtree(dir);
}

/* fs_read_at_into's room: a buffer of the test's, the sizes asked noted */
struct room {
	char buf[64];
	size_t asked[4];
	int n;
};

static char *
test_room(void *arg, size_t len)
{
	struct room *r = arg;

	if (r->n < 4)
		r->asked[r->n] = len;
	r->n++;
	return len < sizeof(r->buf) ? r->buf : NULL;
}

/* fs_read_at_into refuses what fs_read_file_at refuses, asking for no
 * room then, and reads a file into the room given for its size. */
Test(fsutil, read_at_into_reads_into_the_callers_room_what_read_at_would)
{
	char *dir = tu_tmpdir(), err[256], path[PATH_MAX], target[PATH_MAX];
	static const char *const refused[] = { "link.cfg", "fifo.cfg", "sub", "../a.cfg",
		                               "sub/../a.cfg", "missing.cfg", ".a.cfg", "" };
	struct room r = { .n = 0 };
	size_t len = 0;
	int dfd;

	cr_assert_not_null(dir);
	cr_assert_eq(fs_write_atomic(dir, "a.cfg", "hello", 5, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fs_write_atomic(dir, ".a.cfg", "hello", 5, err, sizeof(err)), -1);
	snprintf(path, sizeof(path), "%s/link.cfg", dir);
	snprintf(target, sizeof(target), "%s/a.cfg", dir);
	cr_assert_eq(symlink(target, path), 0);
	snprintf(path, sizeof(path), "%s/fifo.cfg", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/sub", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_neq(dfd, -1);

	memset(r.buf, 'x', sizeof(r.buf));
	cr_assert_eq(fs_read_at_into(dfd, "a.cfg", 100, test_room, &r, &len), r.buf);
	cr_assert(len == 5 && memcmp(r.buf, "hello", 6) == 0, "not read whole and ended");
	cr_assert(r.n == 1 && r.asked[0] == 5, "%d rooms asked", r.n);
	r.n = 0;
	cr_assert_null(fs_read_at_into(dfd, "a.cfg", 4, test_room, &r, &len), "over max read");
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		cr_assert_null(fs_read_at_into(dfd, refused[i], 100, test_room, &r, &len), "%s read",
		               refused[i]);
	cr_assert_null(fs_read_at_into(-1, "a.cfg", 100, test_room, &r, &len));
	cr_assert_eq(r.n, 0, "room asked for a file not read");
	close(dfd);
	tu_rmtree(dir);
}

/* The access time of dir/name (ns). */
static long long
atime_of(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(stat(path, &st), 0);
	return (long long)st.st_atim.tv_sec * 1000000000LL + st.st_atim.tv_nsec;
}

/* A file whose access time is older than its change (relatime updates
 * it at the next read): dir/name, atime an hour back. */
static void
stale_atime(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct timespec t[2];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= 3600;
	t[1].tv_nsec = UTIME_OMIT;
	cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0);
}

/* The owner's read leaves the access time (no inode to write back at a
 * boot storm after a re-render); another user's read still works. */
Test(fsutil, read_at_into_leaves_the_access_time_and_reads_files_of_others)
{
	char *dir = tu_tmpdir(), err[256];
	struct room r = { .n = 0 };
	long long before;
	size_t len = 0;
	pid_t pid;
	int dfd, st;

	cr_assert_eq(chmod(dir, 0755), 0);
	cr_assert_eq(fs_write_atomic(dir, "a.cfg", "hello", 5, err, sizeof(err)), 0, "%s", err);
	stale_atime(dir, "a.cfg");
	before = atime_of(dir, "a.cfg");
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_neq(dfd, -1);
	cr_assert_eq(fs_read_at_into(dfd, "a.cfg", 100, test_room, &r, &len), r.buf);
	cr_assert_eq(atime_of(dir, "a.cfg"), before, "the read updated the access time");
	/* the check itself: a plain read does update it here */
	{
		char path[PATH_MAX], c;
		int fd;

		snprintf(path, sizeof(path), "%s/a.cfg", dir);
		fd = open(path, O_RDONLY);
		cr_assert_eq(read(fd, &c, 1), 1);
		close(fd);
	}
	cr_assert_neq(atime_of(dir, "a.cfg"), before, "relatime is off: the test shows nothing");
	/* a reader that does not own the file (O_NOATIME refused) */
	if (geteuid() == 0) {
		stale_atime(dir, "a.cfg");
		pid = fork();
		cr_assert_neq(pid, -1);
		if (pid == 0) {
			struct room rc = { .n = 0 };
			size_t l = 0;

			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(2);
			_exit(fs_read_at_into(dfd, "a.cfg", 100, test_room, &rc, &l) == rc.buf && l == 5 &&
			      memcmp(rc.buf, "hello", 5) == 0 ? 0 : 1);
		}
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "another user could not read it");
	}
	close(dfd);
	tu_rmtree(dir);
}

Test(fsutil, sweep_removes_what_a_crash_left_and_nothing_else)
{
	char *dir = tu_tmpdir(), tdir[PATH_MAX], err[256], tmp[PATH_MAX];
	size_t n = 0;
	int fd;

	cr_assert_not_null(dir);
	/* a crash of this layout: a private temporary */
	fd = fs_tmp_create(dir, "001565000002.cfg", tmp, sizeof(tmp), err, sizeof(err));
	cr_assert_neq(fd, -1, "%s", err);
	close(fd);
	/* a crash of the older layout: 0644 temporaries in the root itself */
	put(dir, ".001565000002.cfg.aB3xYz", "account.1.password = s3cret\n", 0644);
	put(dir, ".SEP00082F000003.cnf.xml.Q9w8E7", "<x/>", 0644);
	/* everything else stays: published files, look-alikes, dot files */
	put(dir, "001565000002.cfg", "published", 0644);
	put(dir, "firmware.ld.aB3xYz", "not a temporary (no leading dot)", 0644);
	put(dir, ".profile", "a dot file", 0644);
	put(dir, ".x.cfg.ab-123", "a '-' is not a mkstemp character", 0644);
	put(dir, ".x.cfg.abc12", "five characters", 0644);
	snprintf(tdir, sizeof(tdir), "%s/.keep.cfg.AAAAAA", dir);
	cr_assert_eq(mkdir(tdir, 0755), 0); /* a directory is never removed */

	cr_assert_eq(fs_sweep_temporaries(dir, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 3, "removed %zu", n);
	cr_assert(access(tmp, F_OK) != 0);
	cr_assert(!exists(dir, ".001565000002.cfg.aB3xYz"));
	cr_assert(!exists(dir, ".SEP00082F000003.cnf.xml.Q9w8E7"));
	cr_assert(exists(dir, "001565000002.cfg"));
	cr_assert(exists(dir, "firmware.ld.aB3xYz"));
	cr_assert(exists(dir, ".profile"));
	cr_assert(exists(dir, ".x.cfg.ab-123"));
	cr_assert(exists(dir, ".x.cfg.abc12"));
	cr_assert(exists(dir, ".keep.cfg.AAAAAA"));
	/* a second sweep finds nothing; a missing directory is no error */
	cr_assert_eq(fs_sweep_temporaries(dir, &n, err, sizeof(err)), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(fs_sweep_temporaries("/nonexistent-hotdeskd-dir", &n, err, sizeof(err)), 0);
	tu_rmtree(dir);
}

Test(fsutil, private_directory_must_be_ours)
{
	char *dir = tu_tmpdir(), tdir[PATH_MAX], tmp[PATH_MAX], err[256];
	char *elsewhere = tu_tmpdir();

	cr_assert_not_null(dir);
	cr_assert_not_null(elsewhere);
	/* a symbolic link planted there is not followed */
	snprintf(tdir, sizeof(tdir), "%s/%s", dir, FS_TMPDIR);
	cr_assert_eq(symlink(elsewhere, tdir), 0);
	cr_assert_eq(fs_tmp_create(dir, "a.cfg", tmp, sizeof(tmp), err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "not a directory of ours"), "%s", err);
	cr_assert_eq(fs_write_atomic(dir, "a.cfg", "x", 1, err, sizeof(err)), -1);
	cr_assert(!exists(dir, "a.cfg"));
	/* a directory with a lax mode is tightened before use */
	cr_assert_eq(unlink(tdir), 0);
	cr_assert_eq(mkdir(tdir, 0755), 0);
	cr_assert_eq(chmod(tdir, 0755), 0);
	cr_assert_eq(fs_write_atomic(dir, "a.cfg", "x", 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mode_of(tdir), 0700);
	tu_rmtree(dir);
	tu_rmtree(elsewhere);
}

/* How many entries dir has, "." and ".." aside. */
static size_t
entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Whether user nobody (65534) can open path for reading: a child process
 * drops to that user and tries.  -1 when the test cannot tell (not root). */
static int
nobody_can_read(const char *path)
{
	pid_t pid;
	int st;

	if (geteuid() != 0)
		return -1;
	if ((pid = fork()) == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		_exit(open(path, O_RDONLY) == -1 ? 1 : 0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 2, "could not become nobody");
	return WEXITSTATUS(st) == 0;
}

Test(fsutil, a_held_temporaries_directory_makes_files_0644_whatever_the_umask)
{
	char *dir = tu_tmpdir(), tmp[256], rel[300], path[PATH_MAX + 512], err[256];
	static const mode_t masks[] = { 022, 077, 0277 };

	cr_assert_not_null(dir);
	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		struct fs_tmpdir t;
		int fd;

		umask(masks[i]); /* read when opened */
		cr_assert_eq(fs_tmpdir_open(&t, dir, err, sizeof(err)), 0, "%s", err);
		fd = fs_tmpdir_create(&t, "a.cfg", tmp, sizeof(tmp), err, sizeof(err));
		cr_assert_neq(fd, -1, "%s", err);
		cr_assert_eq(write(fd, "new\n", 4), 4);
		close(fd);
		snprintf(path, sizeof(path), "%s/%s/%s", dir, FS_TMPDIR, tmp);
		cr_assert_eq(mode_of(path), 0644, "umask %03o: %03o", (unsigned)masks[i],
		             (unsigned)mode_of(path));
		cr_assert_eq(fs_tmpdir_swap(&t, tmp, "a.cfg", err, sizeof(err)),
		             i == 0 || t.rename ? 0 : 1, "%s", err);
		snprintf(path, sizeof(path), "%s/a.cfg", dir);
		cr_assert_eq(mode_of(path), 0644);
		if (i > 0 && !t.rename) { /* the replaced file is at tmp, still private */
			snprintf(rel, sizeof(rel), "%s/%s", FS_TMPDIR, tmp);
			cr_assert(exists(dir, rel));
			cr_assert_eq(fs_tmpdir_unlink(&t, tmp), 0);
		}
		cr_assert_eq(fs_tmpdir_unlink(&t, tmp), 0, "a missing temporary is no error");
		fs_tmpdir_close(&t);
		fs_tmpdir_close(&t); /* twice is harmless */
	}
	umask(022);
	tu_rmtree(dir);
}

/* Replaces dir/a.cfg twice through a held temporaries directory and
 * checks what the swap did against the file system dir is on. */
static void
swap_twice(char *dir)
{
	char tmp[256], tdir[PATH_MAX], err[256], *back;
	struct fs_tmpdir t;
	struct statfs sf;
	size_t len;
	bool tmpfs;

	cr_assert_not_null(dir);
	cr_assert_eq(statfs(dir, &sf), 0);
	tmpfs = sf.f_type == FS_TMPFS_MAGIC;
	cr_assert_eq(fs_tmpdir_open(&t, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(t.rename, tmpfs, "%s: rename %d on f_type %lx", dir, t.rename,
	             (unsigned long)sf.f_type);
	snprintf(tdir, sizeof(tdir), "%s/%s", dir, FS_TMPDIR);
	for (int i = 0; i < 2; i++) {
		int fd = fs_tmpdir_create(&t, "a.cfg", tmp, sizeof(tmp), err, sizeof(err));

		cr_assert_neq(fd, -1, "%s", err);
		cr_assert_eq(write(fd, i ? "two\n" : "one\n", 4), 4);
		close(fd);
		/* the second replaces a file: exchanged on a disk (the old one
		 * waits at tmp for its removal), renamed over on tmpfs */
		cr_assert_eq(fs_tmpdir_swap(&t, tmp, "a.cfg", err, sizeof(err)),
		             i == 1 && !tmpfs ? 1 : 0, "%s", err);
		cr_assert_eq(entries(tdir), i == 1 && !tmpfs ? 1u : 0u);
		cr_assert_eq(fs_tmpdir_unlink(&t, tmp), 0);
	}
	back = fs_read_file(dir, "a.cfg", 100, &len);
	cr_assert_not_null(back);
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(back, "two\n", 4), 0);
	free(back);
	fs_tmpdir_close(&t);
	tu_rmtree(dir);
}

Test(fsutil, a_swap_renames_over_the_file_on_tmpfs_and_exchanges_it_elsewhere)
{
	char shm[] = "/dev/shm/hotdeskd-test-XXXXXX";
	struct statfs sf;

	swap_twice(tu_tmpdir());
	/* /dev/shm is tmpfs on Linux */
	cr_assert_eq(statfs("/dev/shm", &sf), 0);
	cr_assert_eq(sf.f_type, FS_TMPFS_MAGIC, "/dev/shm is not tmpfs: f_type %lx",
	             (unsigned long)sf.f_type);
	cr_assert_not_null(mkdtemp(shm));
	swap_twice(strdup(shm));
}

struct checker {
	struct fs_tmpdir *t;
	const char *dir;
	atomic_bool done;
	int failed;
};

static void *
check_often(void *arg)
{
	struct checker *c = arg;
	char err[256];

	for (int i = 0; i < 5000; i++)
		c->failed += fs_tmpdir_check(c->t, c->dir, err, sizeof(err)) != 0;
	atomic_store(&c->done, true);
	return NULL;
}

/* The writer checks the directory before each batch while another thread
 * writes a shared file through it: a check that passes never makes a
 * concurrent create fail. */
Test(fsutil, a_check_in_progress_does_not_refuse_a_concurrent_temporary)
{
	char *dir = tu_tmpdir(), tmp[256], err[256];
	struct fs_tmpdir t;
	struct checker c = { &t, NULL, false, 0 };
	pthread_t th;
	int creates = 0, refused = 0;

	cr_assert_not_null(dir);
	c.dir = dir;
	cr_assert_eq(fs_tmpdir_open(&t, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pthread_create(&th, NULL, check_often, &c), 0);
	while (!atomic_load(&c.done) || creates < 100) {
		int fd = fs_tmpdir_create(&t, "s.cfg", tmp, sizeof(tmp), err, sizeof(err));

		creates++;
		if (fd == -1) {
			refused++;
			continue;
		}
		close(fd);
		cr_assert_eq(fs_tmpdir_unlink(&t, tmp), 0);
	}
	pthread_join(th, NULL);
	cr_assert_eq(c.failed, 0);
	cr_assert_eq(refused, 0, "%d of %d creates refused during checks", refused, creates);
	fs_tmpdir_close(&t);
	tu_rmtree(dir);
}

Test(fsutil, a_held_temporaries_directory_stays_private_and_is_rechecked)
{
	char *dir = tu_tmpdir(), tmp[256], tdir[PATH_MAX], path[PATH_MAX + 512], err[256];
	struct fs_tmpdir t;
	int fd, r;

	cr_assert_not_null(dir);
	cr_assert_eq(chmod(dir, 0755), 0); /* served, as a TFTP root is */
	snprintf(tdir, sizeof(tdir), "%s/%s", dir, FS_TMPDIR);
	cr_assert_eq(fs_tmpdir_open(&t, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mode_of(tdir), 0700);
	/* a crash right after writing: the temporary (0644, with a password)
	 * cannot be read by another user, and the next start removes it */
	fd = fs_tmpdir_create(&t, "b.cfg", tmp, sizeof(tmp), err, sizeof(err));
	cr_assert_neq(fd, -1, "%s", err);
	cr_assert_eq(write(fd, "password=s3cret\n", 16), 16);
	close(fd);
	snprintf(path, sizeof(path), "%s/%s", tdir, tmp);
	r = nobody_can_read(path);
	cr_assert_neq(r, 1, "another user reads a temporary");
	/* a lax mode given meanwhile: create refuses until a check restored it */
	cr_assert_eq(chmod(tdir, 0755), 0);
	if (geteuid() == 0) {
		cr_assert_eq(nobody_can_read(path), 1, "the test itself: readable once 0755");
	}
	cr_assert_eq(fs_tmpdir_check(&t, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mode_of(tdir), 0700);
	cr_assert_neq(nobody_can_read(path), 1);
	/* not ours any more: refused, no temporary made */
	if (geteuid() == 0) {
		char tmp2[256];

		cr_assert_eq(chown(tdir, 65534, 65534), 0);
		cr_assert_eq(fs_tmpdir_check(&t, dir, err, sizeof(err)), -1);
		cr_assert_not_null(strstr(err, "not a directory of ours"), "%s", err);
		cr_assert_eq(fs_tmpdir_create(&t, "c.cfg", tmp2, sizeof(tmp2), err, sizeof(err)), -1);
		cr_assert_eq(entries(tdir), 1, "only the crash's temporary");
		cr_assert_eq(chown(tdir, 0, 0), 0);
	}
	/* removed by hand: the check makes and opens it again */
	{
		size_t n = 0;

		cr_assert_eq(fs_sweep_temporaries(dir, &n, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(n, 1, "the crash's temporary is swept");
	}
	cr_assert_eq(rmdir(tdir), 0);
	cr_assert_eq(fs_tmpdir_check(&t, dir, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mode_of(tdir), 0700);
	fd = fs_tmpdir_create(&t, "d.cfg", tmp, sizeof(tmp), err, sizeof(err));
	cr_assert_neq(fd, -1, "%s", err);
	close(fd);
	cr_assert_eq(fs_tmpdir_swap(&t, tmp, "d.cfg", err, sizeof(err)), 0, "%s", err);
	cr_assert(exists(dir, "d.cfg"), "put in the directory served, not a removed one");
	/* a directory in the way is an error and stays */
	snprintf(path, sizeof(path), "%s/e.cfg", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	fd = fs_tmpdir_create(&t, "e.cfg", tmp, sizeof(tmp), err, sizeof(err));
	cr_assert_neq(fd, -1, "%s", err);
	close(fd);
	cr_assert_eq(fs_tmpdir_swap(&t, tmp, "e.cfg", err, sizeof(err)), -1);
	{
		struct stat st;

		cr_assert_eq(lstat(path, &st), 0);
		cr_assert(S_ISDIR(st.st_mode), "the directory is put back");
	}
	cr_assert_eq(fs_tmpdir_unlink(&t, tmp), 0);
	fs_tmpdir_close(&t);
	tu_rmtree(dir);
}

/* A temporary nobody else has open is reopened, the same inode, to be
 * written over; one that a reader still has open (tftpd serving the file
 * it was) is not touched, and the reader keeps reading it whole. */
Test(fsutil, a_temporary_is_reopened_only_when_nobody_else_has_it_open)
{
	char *dir = tu_tmpdir(), err[256], tmp[256], path[PATH_MAX], got[16];
	struct fs_tmpdir t;
	struct stat before, after;
	int fd, reader;

	cr_assert_not_null(dir);
	cr_assert_eq(fs_tmpdir_open(&t, dir, err, sizeof(err)), 0, "%s", err);
	fd = fs_tmpdir_create(&t, "a.cfg", tmp, sizeof(tmp), err, sizeof(err));
	cr_assert_neq(fd, -1, "%s", err);
	cr_assert_eq(write(fd, "old secret\n", 11), 11);
	cr_assert_eq(fstat(fd, &before), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, FS_TMPDIR, tmp);

	reader = open(path, O_RDONLY);
	cr_assert_neq(reader, -1);
	cr_assert_eq(fs_tmpdir_reopen(&t, tmp), -1, "reopened while a reader has it open");
	cr_assert_not(t.no_lease, "in use is not 'leases off'");
	cr_assert_eq(pread(reader, got, sizeof(got), 0), 11);
	cr_assert_eq(memcmp(got, "old secret\n", 11), 0);
	close(reader);

	fd = fs_tmpdir_reopen(&t, tmp);
	cr_assert_neq(fd, -1, "not reopened with nobody reading it: %s", strerror(errno));
	cr_assert_eq(fstat(fd, &after), 0);
	cr_assert_eq(after.st_ino, before.st_ino);
	cr_assert_eq(write(fd, "new\n", 4), 4, "written from its start");
	cr_assert_eq(ftruncate(fd, 4), 0);
	close(fd);
	fd = open(path, O_RDONLY);
	cr_assert_neq(fd, -1);
	cr_assert_eq(read(fd, got, sizeof(got)), 4);
	cr_assert_eq(memcmp(got, "new\n", 4), 0);
	close(fd);
	cr_assert_eq(fs_tmpdir_reopen(&t, "no-such-temporary"), -1);
	fs_tmpdir_close(&t);
	tu_rmtree(dir);
}
