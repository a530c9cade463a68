/*
 * fsutil.h -- small file-system helpers with the guarantees the TFTP root
 * needs: a reader sees the old file or the new one, never a mix.
 */
#ifndef HD_FSUTIL_H
#define HD_FSUTIL_H

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

/* Whether a file can be created and written in dir now (a temporary
 * ".healthz.XXXXXX", mode 0600, removed at once).  0, or -1 with err. */
int fs_probe_writable(const char *dir, char *err, size_t errlen);

/* Creates dir (mode 0755) if missing.  0 or -1. */
int fs_mkdir(const char *dir, char *err, size_t errlen);

#endif
