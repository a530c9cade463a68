/*
 * fsutil.h -- small file-system helpers with the guarantees the TFTP root
 * needs: a reader sees the old file or the new one, never a mix.
 */
#ifndef HD_FSUTIL_H
#define HD_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Where temporaries live: a subdirectory (mode 0700) of the served
 * directory, so that a rename moves them into place on the same file
 * system and the serving process (another user) can never open them. */
#define FS_TMPDIR ".hotdeskd-tmp"

/*
 * Creates a temporary for dir/name: mode 0600 in dir/FS_TMPDIR (created
 * 0700 if missing; refused if it is not a directory owned by us).  Writes
 * its path into tmp and returns its descriptor, or -1 with err filled.
 * The caller writes it, makes it durable and ends with fs_tmp_commit, or
 * unlinks it.
 */
int fs_tmp_create(const char *dir, const char *name, char *tmp, size_t tmplen, char *err,
                  size_t errlen);

/* Makes temporary tmp readable (0644) and renames it over dir/name.
 * Returns 0, or -1 with err filled (tmp is then left to the caller). */
int fs_tmp_commit(const char *tmp, const char *dir, const char *name, char *err,
                  size_t errlen);

/*
 * Like fs_tmp_commit, but exchanges tmp with the file in place
 * (renameat2 RENAME_EXCHANGE) instead of renaming over it: on ext4 a
 * rename over an existing file starts writing the new file's data back
 * before it returns (auto_da_alloc), 0.1-1.5 ms on a disk, where an
 * exchange takes tens of microseconds.  Returns 1 when exchanged: the
 * old file is now at tmp (still private) and the caller removes it when
 * it has time; 0 when there was nothing to exchange with (or the file
 * system cannot) and tmp was renamed; -1 with err filled (tmp left to
 * the caller).  A directory in the way is an error, as for a rename.
 */
int fs_tmp_swap(const char *tmp, const char *dir, const char *name, char *err,
                size_t errlen);

/*
 * The temporaries directory of a served directory, held open by the one
 * process that publishes there (the TFTP writer): a temporary is created,
 * exchanged into place and removed by names relative to the two
 * descriptors, without a path walk or a check of the directory per file.
 * Its temporaries are created with their final mode 0644 at once (no
 * chmod): nobody else can reach them, as the directory is 0700 and ours,
 * which fs_tmpdir_check verifies (and restores) before each batch of
 * files.  When the umask would take bits from 0644, each file is fchmod'ed
 * right after its creation, still inside the private directory.
 */
struct fs_tmpdir {
	int dfd;                 /* the served directory */
	int tfd;                 /* its FS_TMPDIR */
	unsigned long long seq;  /* the next temporary's number (atomic) */
	int ok;                  /* the last fs_tmpdir_check passed (atomic) */
	int fchmod;              /* the umask would give a mode other than 0644 */
	bool rename;             /* tmpfs: fs_tmpdir_swap renames over the file */
	bool no_lease;           /* leases refused: fs_tmpdir_reopen gives up */
};

/* statfs f_type of tmpfs and ramfs (linux/magic.h) */
#define FS_TMPFS_MAGIC 0x01021994
#define FS_RAMFS_MAGIC 0x858458f6

/* Opens (creating it 0700 if missing) dir/FS_TMPDIR and checks it.
 * 0, or -1 with err (t then holds no descriptor). */
int fs_tmpdir_open(struct fs_tmpdir *t, const char *dir, char *err, size_t errlen);
/* Closes what fs_tmpdir_open opened (safe on a closed t, or one whose
 * dfd and tfd are -1). */
void fs_tmpdir_close(struct fs_tmpdir *t);
/*
 * Verifies that the temporaries directory is still a directory of ours,
 * mode 0700 (restored if not), and reopens it (or the served directory)
 * when it was removed meanwhile.  Until a check passes again, creating a
 * temporary is refused.  0, or -1 with err.
 */
int fs_tmpdir_check(struct fs_tmpdir *t, const char *dir, char *err, size_t errlen);
/* Creates a new temporary for name, mode 0644, in the temporaries
 * directory; its name (relative to it) goes into tmp.  The descriptor, or
 * -1 with err. */
int fs_tmpdir_create(struct fs_tmpdir *t, const char *name, char *tmp, size_t tmplen,
                     char *err, size_t errlen);
/* fs_tmp_swap for a temporary of t: 1 exchanged (the replaced file is now
 * at tmp), 0 renamed (nothing was in place, or t->rename: on tmpfs a
 * rename over the file writes nothing back and replaces it in one call),
 * -1 with err (tmp left). */
int fs_tmpdir_swap(struct fs_tmpdir *t, const char *tmp, const char *name, char *err,
                   size_t errlen);
/* Removes temporary tmp of t; a missing one is not an error.  0 or -1
 * (errno set). */
int fs_tmpdir_unlink(struct fs_tmpdir *t, const char *tmp);
/*
 * Opens temporary tmp of t (a file exchanged out of place) to be written
 * over from its start, when nobody else has it open (the caller then
 * cuts it to what it wrote: ftruncate; emptying it first would free its
 * blocks, which on a disk mounted with discard waits for the device, and
 * allocate new ones): a write lease
 * (F_SETLEASE) is granted only while the file has no other open
 * descriptor, and nobody can open it anew inside the private directory,
 * so whoever was reading the file it was (tftpd, a moment ago) never sees
 * it change.  The descriptor, or -1: in use, gone, not our file, not a
 * directory of ours now, or leases off on this system (then t->no_lease,
 * and every later call gives up at once).
 */
int fs_tmpdir_reopen(struct fs_tmpdir *t, const char *tmp);

/*
 * Writes data to dir/name atomically: fs_tmp_create, write, fsync,
 * fs_tmp_commit, then fsync of the directory.  name must be a plain file
 * name.  Returns 0, or -1 with err filled (the old file, if any, is
 * untouched).
 */
int fs_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                    char *err, size_t errlen);

/*
 * Reads dir/name whole into a malloc'd buffer (NUL-terminated, *len set)
 * if it is a regular file of at most max bytes.  Returns NULL when it does
 * not exist, is larger, or cannot be read.
 */
char *fs_read_file(const char *dir, const char *name, size_t max, size_t *len);
/* fs_read_file of the file at path, a symbolic link followed; NULL with
 * err filled: why ("not a regular file", "larger than max bytes", the
 * system's reason). */
char *fs_read_path(const char *path, size_t max, size_t *len, char *err, size_t errlen);
/* fs_read_file of name in the directory open on dirfd (openat: one
 * lookup, no path built; never follows a symbolic link). */
char *fs_read_file_at(int dirfd, const char *name, size_t max, size_t *len);
/* fs_read_file_at into memory of the caller's: once the file's size len
 * is known, room(arg, len) returns where to put it (len + 1 bytes; NULL:
 * not read).  Returns that buffer, read whole and NUL-terminated (*len
 * set), or NULL; a buffer room gave is the caller's either way (it may
 * hold part of the file then).  The file's access time is left as it
 * is when the process owns it (O_NOATIME). */
char *fs_read_at_into(int dirfd, const char *name, size_t max,
                      char *(*room)(void *arg, size_t len), void *arg, size_t *len);

/* Removes dir/name; a missing file is not an error.  0 or -1. */
int fs_unlink(const char *dir, const char *name, char *err, size_t errlen);

/*
 * Removes the temporaries a crash left in dir: every regular file in
 * dir/FS_TMPDIR, and every ".<name>.XXXXXX" regular file of the older
 * layout in dir itself.  Sets *removed (may be NULL) to how many were
 * removed.  Returns 0, or -1 with err filled when one could not be removed
 * or dir not read.  Only while nothing else publishes into dir (start-up).
 */
int fs_sweep_temporaries(const char *dir, size_t *removed, char *err, size_t errlen);
/* Its two halves: the files of dir/FS_TMPDIR (a small directory), and the
 * older layout's temporaries in dir itself, which reads every entry of
 * dir.  No name the current layout publishes starts with '.', so the
 * second may run while files are published into dir. */
int fs_sweep_private(const char *dir, size_t *removed, char *err, size_t errlen);
int fs_sweep_legacy(const char *dir, size_t *removed, char *err, size_t errlen);

/* Whether a file can be created and written in dir now (a temporary
 * ".healthz.XXXXXX", mode 0600, removed at once).  0, or -1 with err. */
int fs_probe_writable(const char *dir, char *err, size_t errlen);

/* Creates dir (mode 0755) if missing.  0 or -1. */
int fs_mkdir(const char *dir, char *err, size_t errlen);

#endif
