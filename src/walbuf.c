/*
 * walbuf.c -- SQLite's log of a commit written with one write(2) (see
 * walbuf.h).
 *
 * What SQLite does with the -wal file (sqlite3WalFrames, 3.40): for each
 * frame, a 24-byte header then the page, appended; the commit frame's
 * header carries the database's size in pages after the commit (bytes 4
 * to 7, zero in every other frame), and its page is the transaction's last
 * append but padding.  Then, before it updates the wal-index and its
 * header (which is what makes the commit visible), SQLite may write again
 * the checksums of frames it wrote twice in the transaction (its pages
 * written again in place), and with synchronous=FULL pad the log with
 * copies of the commit frame up to a sector.  So appends are held from the
 * first and written at once with the commit frame's page; writes that are
 * not appends (checksums, pages written again) go to the file at once,
 * and so do appends after a commit frame until the next transaction's
 * first frame.  If the commit frame's write fails, the page's write fails
 * and with it the commit (SQLite rolls back).  A log started again writes
 * its 32-byte header at offset 0 first, which the frames then follow: held
 * too.  A log found at open is not appended to until it starts again.
 *
 * The store's connection is used by one thread at a time (store.h), and so
 * is each file here: no lock.
 */
#include "walbuf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/* Held at most: 30 frames of 4 KiB pages (a move's commit is 13 to 16).
 * A larger transaction (a re-render's step, a first start) writes a run
 * of this size at a time.  The unix VFS writes less than 128 KiB a call:
 * it cuts a write's length to its low 17 bits (seekAndWriteFd), so that a
 * larger one would come out short (SQLITE_FULL). */
#define WALBUF_MAX (124 * 1024)
#define WAL_FRAME_HDR 24

struct wb_file {
	sqlite3_file base;   /* pMethods: wb_io */
	sqlite3_file *real;  /* the unix VFS's file, after this struct */
	bool wal;            /* a -wal file: its appends are held */
	/* a commit frame was appended: what follows is written at once, until
	 * the next transaction's first frame or the log's start */
	bool committing;
	unsigned char *buf;  /* WALBUF_MAX bytes once a first append is held */
	size_t len;          /* bytes held, for offset off */
	sqlite3_int64 off;
	sqlite3_int64 log_end; /* where the log's appends go (the file's size
	                        * at open; 0 once its header is written again) */
};

static sqlite3_vfs *parent;
static atomic_uint_fast64_t n_writes, n_flushes;

#define REAL(f) (((struct wb_file *)(f))->real)
#define RM(f) (REAL(f)->pMethods)

/* Writes what is held, in one write (only a -wal file holds any). */
static int
flush(struct wb_file *f)
{
	int rc;

	if (f->len == 0)
		return SQLITE_OK;
	rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
	atomic_fetch_add_explicit(&n_flushes, 1, memory_order_relaxed);
	f->len = 0;
	return rc;
}

static int
wb_close(sqlite3_file *file)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc = flush(f), rc2 = RM(f)->xClose(f->real);

	free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : rc2;
}

/* Whether [off, end) touches the bytes held. */
static bool
held_overlaps(const struct wb_file *f, sqlite3_int64 off, sqlite3_int64 end)
{
	return f->len > 0 && off < f->off + (sqlite3_int64)f->len && end > f->off;
}

/* A read of what is held is served from it, one of the file alone from
 * the file; one of both writes what is held first (never seen: SQLite
 * reads whole frames or pages). */
static int
wb_read(sqlite3_file *file, void *out, int amt, sqlite3_int64 off)
{
	struct wb_file *f = (struct wb_file *)file;
	sqlite3_int64 end = off + amt, held_end = f->off + (sqlite3_int64)f->len;
	int rc;

	if (held_overlaps(f, off, end)) {
		if (off >= f->off && end <= held_end) {
			memcpy(out, f->buf + (off - f->off), (size_t)amt);
			return SQLITE_OK;
		}
		if ((rc = flush(f)) != SQLITE_OK)
			return rc;
	}
	return RM(f)->xRead(f->real, out, amt, off);
}

/* Whether the header data/amt is a commit frame's: the database's size
 * after the commit, big-endian at bytes 4 to 7, is not zero. */
static bool
commit_header(const unsigned char *h, int amt)
{
	return amt == WAL_FRAME_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;
}

/* A write that is not an append (a frame of the transaction written again
 * once its run was written; the checksums SQLite writes again after a
 * commit frame when it did so): to the file now, after what is held if it
 * touches it. */
static int
write_through(struct wb_file *f, const void *data, int amt, sqlite3_int64 off)
{
	sqlite3_int64 end = off + amt;
	int rc;

	if (held_overlaps(f, off, end) && (rc = flush(f)) != SQLITE_OK)
		return rc;
	atomic_fetch_add_explicit(&n_flushes, 1, memory_order_relaxed);
	if (end > f->log_end)
		f->log_end = end;
	return RM(f)->xWrite(f->real, data, amt, off);
}

static int
wb_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
	struct wb_file *f = (struct wb_file *)file;
	sqlite3_int64 end = off + amt, held_end = f->off + (sqlite3_int64)f->len;
	bool append;
	int rc;

	if (!f->wal)
		return RM(f)->xWrite(f->real, data, amt, off);
	atomic_fetch_add_explicit(&n_writes, 1, memory_order_relaxed);
	if (f->len > 0 && off >= f->off && end <= held_end) {
		/* a frame held, written again (a page of the transaction) */
		memcpy(f->buf + (off - f->off), data, (size_t)amt);
		return SQLITE_OK;
	}
	if (off == 0) { /* the log starts again: its header */
		f->log_end = 0;
		f->committing = false;
	}
	append = f->len > 0 ? off == held_end : off >= f->log_end;
	if (append && amt == WAL_FRAME_HDR && !commit_header(data, amt))
		f->committing = false; /* the next transaction's first frame */
	if (!append || (size_t)amt > WALBUF_MAX ||
	    (f->buf == NULL && (f->buf = malloc(WALBUF_MAX)) == NULL))
		return write_through(f, data, amt, off);
	if (f->len + (size_t)amt > WALBUF_MAX && (rc = flush(f)) != SQLITE_OK)
		return rc;
	if (f->len == 0)
		f->off = off;
	memcpy(f->buf + f->len, data, (size_t)amt);
	f->len += (size_t)amt;
	if (end > f->log_end)
		f->log_end = end;
	/* the commit frame's page (and any frame after it: the padding of a
	 * synchronous=FULL commit) goes to the file at once */
	if (f->committing)
		return flush(f);
	f->committing = commit_header(data, amt);
	return SQLITE_OK;
}

static int
wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc = flush(f);

	if (rc != SQLITE_OK)
		return rc;
	if (f->log_end > size)
		f->log_end = size;
	return RM(f)->xTruncate(f->real, size);
}

static int
wb_sync(sqlite3_file *file, int flags)
{
	int rc = flush((struct wb_file *)file);

	return rc != SQLITE_OK ? rc : RM(file)->xSync(REAL(file), flags);
}

static int
wb_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	int rc = flush((struct wb_file *)file);

	return rc != SQLITE_OK ? rc : RM(file)->xFileSize(REAL(file), size);
}

static int
wb_lock(sqlite3_file *file, int lock)
{
	return RM(file)->xLock(REAL(file), lock);
}

static int
wb_unlock(sqlite3_file *file, int lock)
{
	return RM(file)->xUnlock(REAL(file), lock);
}

static int
wb_check_reserved(sqlite3_file *file, int *out)
{
	return RM(file)->xCheckReservedLock(REAL(file), out);
}

static int
wb_file_control(sqlite3_file *file, int op, void *arg)
{
	int rc = flush((struct wb_file *)file);

	return rc != SQLITE_OK ? rc : RM(file)->xFileControl(REAL(file), op, arg);
}

static int
wb_sector_size(sqlite3_file *file)
{
	return RM(file)->xSectorSize(REAL(file));
}

static int
wb_device_characteristics(sqlite3_file *file)
{
	return RM(file)->xDeviceCharacteristics(REAL(file));
}

static int
wb_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **out)
{
	return RM(file)->xShmMap(REAL(file), region, size, extend, out);
}

static int
wb_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	return RM(file)->xShmLock(REAL(file), offset, n, flags);
}

static void
wb_shm_barrier(sqlite3_file *file)
{
	RM(file)->xShmBarrier(REAL(file));
}

static int
wb_shm_unmap(sqlite3_file *file, int delete_flag)
{
	return RM(file)->xShmUnmap(REAL(file), delete_flag);
}

static int
wb_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
	int rc = flush((struct wb_file *)file);

	return rc != SQLITE_OK ? rc : RM(file)->xFetch(REAL(file), off, amt, out);
}

static int
wb_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	return RM(file)->xUnfetch(REAL(file), off, p);
}

static const sqlite3_io_methods wb_io = {
	.iVersion = 3,
	.xClose = wb_close,
	.xRead = wb_read,
	.xWrite = wb_write,
	.xTruncate = wb_truncate,
	.xSync = wb_sync,
	.xFileSize = wb_file_size,
	.xLock = wb_lock,
	.xUnlock = wb_unlock,
	.xCheckReservedLock = wb_check_reserved,
	.xFileControl = wb_file_control,
	.xSectorSize = wb_sector_size,
	.xDeviceCharacteristics = wb_device_characteristics,
	.xShmMap = wb_shm_map,
	.xShmLock = wb_shm_lock,
	.xShmBarrier = wb_shm_barrier,
	.xShmUnmap = wb_shm_unmap,
	.xFetch = wb_fetch,
	.xUnfetch = wb_unfetch,
};

/* The unix VFS's file, aligned after ours. */
#define WB_HEAD ((sizeof(struct wb_file) + 15) & ~(size_t)15)

static int
wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)((unsigned char *)file + WB_HEAD);
	f->real->pMethods = NULL;
	rc = parent->xOpen(parent, name, f->real, flags, out_flags);
	if (f->real->pMethods == NULL)
		return rc; /* nothing to close: base.pMethods stays NULL */
	/* every method of the unix VFS's files is there (iVersion 3) */
	if (f->real->pMethods->iVersion < 3) {
		f->real->pMethods->xClose(f->real);
		return SQLITE_CANTOPEN;
	}
	f->wal = (flags & SQLITE_OPEN_WAL) != 0;
	f->base.pMethods = &wb_io;
	/* an existing log's frames are not appended to: written through until
	 * it starts again */
	if (f->wal && rc == SQLITE_OK && f->real->pMethods->xFileSize(f->real, &f->log_end) != SQLITE_OK)
		f->log_end = INT64_MAX;
	return rc;
}

static int
wb_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return parent->xDelete(parent, name, sync_dir);
}

static int
wb_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return parent->xAccess(parent, name, flags, out);
}

static int
wb_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return parent->xFullPathname(parent, name, n, out);
}

static void *
wb_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return parent->xDlOpen(parent, name);
}

static void
wb_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	parent->xDlError(parent, n, out);
}

typedef void (*wb_sym_fn)(void);

static wb_sym_fn
wb_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym)
{
	(void)vfs;
	return parent->xDlSym(parent, h, sym);
}

static void
wb_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	parent->xDlClose(parent, h);
}

static int
wb_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return parent->xRandomness(parent, n, out);
}

static int
wb_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return parent->xSleep(parent, us);
}

static int
wb_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return parent->xCurrentTime(parent, out);
}

static int
wb_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return parent->xGetLastError(parent, n, out);
}

static int
wb_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return parent->xCurrentTimeInt64(parent, out);
}

static sqlite3_vfs wb_vfs = {
	.iVersion = 2,
	.zName = WALBUF_VFS,
	.xOpen = wb_open,
	.xDelete = wb_delete,
	.xAccess = wb_access,
	.xFullPathname = wb_full_pathname,
	.xDlOpen = wb_dl_open,
	.xDlError = wb_dl_error,
	.xDlSym = wb_dl_sym,
	.xDlClose = wb_dl_close,
	.xRandomness = wb_randomness,
	.xSleep = wb_sleep,
	.xCurrentTime = wb_current_time,
	.xGetLastError = wb_last_error,
	.xCurrentTimeInt64 = wb_current_time64,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered = -1;

static void
register_once(void)
{
	if (sqlite3_initialize() != SQLITE_OK || (parent = sqlite3_vfs_find("unix")) == NULL ||
	    parent->iVersion < 2)
		return;
	wb_vfs.szOsFile = (int)WB_HEAD + parent->szOsFile;
	wb_vfs.mxPathname = parent->mxPathname;
	if (sqlite3_vfs_register(&wb_vfs, 0) == SQLITE_OK)
		registered = 0;
}

int
walbuf_register(void)
{
	(void)pthread_once(&once, register_once);
	return registered;
}

void
walbuf_stats(struct walbuf_stats *out)
{
	out->writes = atomic_load_explicit(&n_writes, memory_order_relaxed);
	out->flushes = atomic_load_explicit(&n_flushes, memory_order_relaxed);
}
