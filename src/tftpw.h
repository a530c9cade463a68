/*
 * tftpw.h -- the TFTP writer: one thread that mirrors published files
 * into the TFTP root, off the service lock.
 *
 * The publisher swaps a device's files in memory (under the service lock)
 * and queues the device here; the writer thread asks the publisher for the
 * device's files as they are when it gets to them (tftpw_ops.files), writes
 * each under a private temporary and exchanges it with the file in place
 * (fs_tmp_swap).  When nothing is due, the writer empties the replaced
 * file into a spare, written into by a later job instead of a new file
 * (at most 64 kept; the others and those someone still reads are
 * removed, and a drain removes the replaced files, a stop the spares
 * too).  Jobs
 * carry no content, so the order in which they run does not matter: whatever the
 * writer writes is the newest version, and a name whose owner is gone is
 * removed only if no device owns it when the writer gets to it.
 *
 * Two queues: urgent (a few devices: a move, an admin change) runs before
 * bulk (start-up, a template change), so a move waits for no re-render.
 * Each queue counts jobs queued and done; a ticket is the count after a
 * job was queued, and tftpw_wait(q, ticket) returns once that job ran.
 *
 * Durability: the TFTP root is derived state (the store is the record), so
 * files are not synced one by one.  tftpw_stop syncs the file system once;
 * the publisher records that in the store (a clean stop), and without
 * that record (a crash or a power loss) it compares every file's content
 * at the next start and rewrites any torn one before hotdeskd reports
 * ready (order tftpd-hpa after hotdeskd: docs/OPERATIONS.md).
 *
 * Threads: tftpw_queue and tftpw_wait from any thread; the callbacks run
 * on the writer thread and may take the publisher's read lock.
 */
#ifndef HD_TFTPW_H
#define HD_TFTPW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "world.h"

#define TFTPW_MAX_FILES 4
#define TFTPW_NAME_MAX 128

/* One file of a device, as the publisher holds it now. */
struct tftpw_file {
	char name[TFTPW_NAME_MAX];
	const char *data;  /* valid until release(ref) */
	size_t len;
	void *ref;         /* the publisher's reference on data */
};

struct tftpw_ops {
	/* Fills files (at most TFTPW_MAX_FILES, references taken) of device
	 * dev and its version; returns the count, -1 when dev is not
	 * published. */
	int (*files)(void *arg, hd_id dev, struct tftpw_file *files,
	             unsigned long long *version);
	void (*release)(void *ref);
	/* Whether some published device owns TFTP file name now. */
	bool (*owned)(void *arg, const char *name);
	void *arg;
	/* Called once every file that files() gave for dev (version) is in
	 * place in the root, whole, before their references are released
	 * (refs: those files' refs, n of them); NULL: not called. */
	void (*written)(void *arg, hd_id dev, unsigned long long version, void *const *refs,
	                size_t n);
};

enum tftpw_queue { TFTPW_URGENT, TFTPW_BULK, TFTPW_NQUEUES };

struct tftpw;

/*
 * Opens the writer for root (created if missing): removes temporaries a
 * crash left and starts the thread.  NULL with err on failure.
 */
struct tftpw *tftpw_open(const char *root, const struct tftpw_ops *ops, char *err,
                         size_t errlen);
/* Runs what is queued, stops the thread and syncs the file system: true
 * when every write of this run and the sync succeeded (the files are
 * whole and durable). */
bool tftpw_stop(struct tftpw *w);
/* Stops (if still running) and frees.  NULL-safe. */
void tftpw_close(struct tftpw *w);

const char *tftpw_root(const struct tftpw *w);
/* Whether a write or removal failed in this run (any thread): the root
 * may then lack a file that a change left as it was. */
bool tftpw_failed(const struct tftpw *w);
/* The emptied files kept for later writes now (at most 64): a file the
 * writer is emptying counts once it is ready to take a write. */
size_t tftpw_spares(struct tftpw *w);

/*
 * Queues device dev (its files are written as they are when the writer
 * gets to it).  stamp: metrics_move_stamp() of a *30 move whose last
 * publication this is (0 none): the writer reports the move published
 * when the device is written.  Returns the ticket (0 when out of memory:
 * the device is then written synchronously before returning).
 */
uint64_t tftpw_queue_dev(struct tftpw *w, enum tftpw_queue q, hd_id dev, uint64_t stamp);
/* Queues a mark: when the writer gets to it, everything queued before on
 * q has been written, and a *30 move's stamp (non-zero) is reported
 * published (metrics_move_published_at).  0 stamp: nothing queued. */
uint64_t tftpw_queue_mark(struct tftpw *w, enum tftpw_queue q, uint64_t stamp);
/* Queues the removal of file name unless a device owns it then. */
uint64_t tftpw_queue_remove(struct tftpw *w, enum tftpw_queue q, const char *name);
/* Waits until the job of ticket on queue q ran. */
void tftpw_wait(struct tftpw *w, enum tftpw_queue q, uint64_t ticket);
/*
 * The calling thread will run (tftpw_wait) every urgent job it queues
 * from now until tftpw_thread_done: those jobs wake no writer thread, and
 * the writer hears of the files they replaced (which it removes when
 * idle) only at tftpw_thread_done, after the thread's latency-bound work,
 * and of any urgent job still queued then.
 */
void tftpw_thread_waits(struct tftpw *w);
void tftpw_thread_done(struct tftpw *w);
/*
 * The urgent jobs queued so far are due now on the writer thread, woken
 * for them: a thread with more to do before it waits (a *30 move has
 * its transaction to commit) has them written meanwhile, on another
 * CPU.  Its tftpw_wait then finds them written, waits for the chunk the
 * writer runs, or runs what the writer has not taken yet.
 */
void tftpw_start(struct tftpw *w);
/* Waits until every job queued so far ran, then removes the files they
 * replaced (start-up: none is left when the daemon says it is ready). */
void tftpw_drain(struct tftpw *w);
/* Waits until at most max jobs of queue q wait (what is queued stays
 * in memory until it ran). */
void tftpw_wait_backlog(struct tftpw *w, enum tftpw_queue q, uint64_t max);

/* Writes name now with data, synchronously (shared files); 0 or -1 with
 * err. */
int tftpw_write_now(struct tftpw *w, const char *name, const char *data, size_t len,
                    char *err, size_t errlen);

#endif
