/*
 * walbuf.h -- SQLite's log of a commit written with one write(2).
 *
 * In WAL mode SQLite appends each page a transaction changed to the -wal
 * file as a frame, with two writes per frame (its 24-byte header, then
 * the page): a *30 move's commit of 13 to 16 pages made 26 to 32
 * pwrite(2)s under the service lock, and a re-render's step of hundreds
 * of devices made hundreds.  On a virtual machine a system call is dear:
 * 26 pwrites of a 13-page commit took 55-74 us where one write of the same
 * bytes took 8-13 us (2 cores of an AMD EPYC, ext4).
 *
 * WALBUF_VFS is SQLite's "unix" VFS with the -wal file's appends held in
 * memory and written at once when the transaction's commit frame is
 * complete, before SQLite publishes the commit to readers (its wal-index
 * header): no reader, of this process or another, sees a frame that is
 * not in the file.  The write of a commit that fails fails the commit.
 * A read of held frames (a transaction larger than SQLite's cache reads
 * back pages it wrote) is served from memory; anything else done with the
 * file (a sync, its size, a truncation, a write elsewhere in it, its
 * close) writes what is held first, so that the file is as if written
 * through.  A process that dies
 * with frames held had not committed them, as with frames half written,
 * which SQLite's recovery drops by their checksums.  Every other file
 * goes straight through.
 */
#ifndef HD_WALBUF_H
#define HD_WALBUF_H

#include <stdint.h>

#define WALBUF_VFS "hotdeskd-walbuf"

/* Registers WALBUF_VFS (once; not as the default).  0, or -1 when SQLite
 * has no "unix" VFS or no memory: open with the default VFS then. */
int walbuf_register(void);

/* Since the process started: writes SQLite made to -wal files through
 * WALBUF_VFS, and the writes that reached them. */
struct walbuf_stats {
	uint64_t writes;  /* asked by SQLite */
	uint64_t flushes; /* made */
};
void walbuf_stats(struct walbuf_stats *out);

#endif
