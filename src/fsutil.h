/*
 * fsutil.h -- small file-system helpers with the guarantees the TFTP root
 * needs: a reader sees the old file or the new one, never a mix.
 */
#ifndef HD_FSUTIL_H
#define HD_FSUTIL_H

#include <stddef.h>

/*
 * Writes data to dir/name atomically: a temporary file in the same
 * directory, fchmod 0644, write, fsync, rename over the name, then fsync of
 * the directory.  name must be a plain file name.  Returns 0, or -1 with
 * err filled (the old file, if any, is untouched).
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

/* Creates dir (mode 0755) if missing.  0 or -1. */
int fs_mkdir(const char *dir, char *err, size_t errlen);

#endif
