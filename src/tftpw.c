/*
 * tftpw.c -- the TFTP writer thread (tftpw.h).
 *
 * Owns: the two job queues, their counters, the writer thread, the files
 * it writes and removes in the TFTP root, and the final sync.  Does
 * not own: what a device's files hold (the publisher answers through
 * tftpw_ops), the manifest of written names (the publisher records it in
 * the store under the service lock).
 *
 * Locks: mu guards the queues and counters, and is never held while
 * writing, so queueing never waits for the disk.  run_mu is held by the
 * one thread running jobs: the writer thread, or a thread waiting for its
 * ticket that found the writer idle (tftpw_wait runs the jobs itself,
 * sparing a thread wake-up).  Order: run_mu before mu.  Jobs of one queue
 * run in the order queued (done counts them), urgent before bulk.
 * Ranks (lockorder.h): run_mu is LOCK_TFTPW_RUN, under the service lock
 * (start-up's drain, a job run in place when out of memory) and above the
 * publisher's lock its jobs read the files under; mu is LOCK_TFTPW, a
 * leaf (taken under the service lock and the publisher's write lock by
 * whoever queues; its holder takes no other lock).
 */
#include "tftpw.h"

#include "demand.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "errbuf.h"
#include "fsutil.h"
#include "idle.h"
#include "log.h"
#include "metrics.h"
#include "lockorder.h"

/* Names of temporaries, each NUL-terminated, one after the other: a
 * stack. */
struct names {
	char *v;
	size_t n, len, cap;
};

struct job {
	hd_id dev;            /* 0: a removal of name, or a mark (name "") */
	uint64_t stamp;       /* a *30 move's stamp, 0 none */
	uint64_t at;          /* when queued (monotonic ns) */
	char name[TFTPW_NAME_MAX];
};

struct queue {
	struct job *v;
	size_t head, n, cap;  /* ring */
	uint64_t queued, done;
};

struct tftpw {
	pthread_mutex_t run_mu; /* held by the thread running jobs (run_some) */
	pthread_mutex_t mu;
	pthread_cond_t work;  /* a job was queued, or stop */
	pthread_cond_t ran;   /* a job ran */
	struct queue q[TFTPW_NQUEUES];
	/* replaced files, exchanged into temporaries, and spares: such
	 * files emptied once nobody read them, to be written again (their
	 * names in td, under mu) */
	struct names trash, spare;
	uint64_t last_run;    /* when a chunk of jobs last ended (under mu) */
	uint64_t held_since;  /* bulk jobs held back for a move since (bulk_held) */
	uint64_t go;          /* urgent tickets up to this one are due now (tftpw_start) */
	struct fs_tmpdir td;  /* the root and its temporaries directory */
	bool stop;
	pthread_t thread;
	bool started;
	atomic_bool failed;   /* a write or removal failed (set under run_mu) */
	struct job *chunk;    /* jobs being run (under run_mu) */
	struct pending *pending; /* their temporaries (under run_mu) */
	struct tftpw_ops ops;
	char *root;
};

/* The writer of which the calling thread runs its own urgent jobs
 * (tftpw_thread_waits), and whether it owes that writer word of replaced
 * files (told at tftpw_thread_done). */
static _Thread_local struct {
	const struct tftpw *w;
	bool owed;
} tl_waits;

/* ---- files -------------------------------------------------------------- */

/* A file written under its temporary name, waiting to be put in place. */
struct pending {
	char tmp[TFTPW_NAME_MAX + 24];
	char name[TFTPW_NAME_MAX];
	/* the device whose files these are: its first pending holds count,
	 * the number of its files written under temporaries; whole: every
	 * file it had was, and committed: this one is in place */
	hd_id dev;
	unsigned long long version;
	void *ref;            /* the publisher's reference on the data */
	size_t count;
	bool whole, committed;
	bool trash;           /* tmp now holds the file this one replaced */
};

/* Takes the newest name of s (not empty) into buf (mu held). */
static void
names_pop(struct names *s, char *buf, size_t len)
{
	size_t end = s->len - 1, start = end; /* v[end] is its NUL */

	while (start > 0 && s->v[start - 1] != '\0')
		start--;
	snprintf(buf, len, "%s", s->v + start);
	s->len = start;
	s->n--;
}

/* Adds name to s (mu held); 0, or -1 out of memory. */
static int
names_push(struct names *s, const char *name)
{
	size_t len = strlen(name) + 1;

	if (s->len + len > s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4096;
		char *v;

		while (nc < s->len + len)
			nc *= 2;
		if ((v = realloc(s->v, nc)) == NULL)
			return -1;
		s->v = v;
		s->cap = nc;
	}
	memcpy(s->v + s->len, name, len);
	s->len += len;
	s->n++;
	return 0;
}

/* Removes the temporaries named in s and empties it (no other thread
 * left). */
static void
names_unlink(struct tftpw *w, struct names *s)
{
	for (size_t at = 0; at < s->len; at += strlen(s->v + at) + 1)
		(void)fs_tmpdir_unlink(&w->td, s->v + at);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/*
 * A file to write a new one over: a replaced file (write_tmp cuts it to
 * the new length), else a spare (empty: *spare set).  A file written
 * again needs no new inode, nor, when replaced, new blocks.  On ext4 a
 * new inode costs more than the write once many were removed recently
 * (the allocator looks past them: a fifth of the daemon's CPU in a
 * re-render following another; an eighth of a *30 move's), and each is
 * one more journal update, then another to remove it.  A replaced file
 * that someone still reads is removed instead (fs_tmpdir_reopen).  Its
 * descriptor with its name in tmp, or -1: none.  Takes mu.
 */
static int
recycle(struct tftpw *w, char *tmp, size_t len, bool *spare)
{
	int fd;

	if (__atomic_load_n(&w->td.no_lease, __ATOMIC_RELAXED))
		return -1;
	pthread_mutex_lock(&w->mu);
	*spare = w->trash.n == 0;
	if (*spare && w->spare.n == 0) {
		pthread_mutex_unlock(&w->mu);
		return -1;
	}
	names_pop(*spare ? &w->spare : &w->trash, tmp, len);
	pthread_mutex_unlock(&w->mu);
	if ((fd = fs_tmpdir_reopen(&w->td, tmp)) == -1)
		(void)fs_tmpdir_unlink(&w->td, tmp);
	return fd;
}

/* Writes data into a private temporary for name (in FS_TMPDIR, 0700,
 * until committed): a replaced file recycled, or a new one; 0 or -1 with
 * err. */
static int
write_tmp(struct tftpw *w, const char *name, const char *data, size_t len,
          struct pending *pd, char *err, size_t errlen)
{
	int fd;
	bool again, spare = false;
	off_t size = (off_t)len;

	pd->trash = false;
	fd = recycle(w, pd->tmp, sizeof(pd->tmp), &spare);
	again = fd != -1;
	if (!again && (fd = fs_tmpdir_create(&w->td, name, pd->tmp, sizeof(pd->tmp), err,
	                                     errlen)) == -1)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO; /* a short write */
			goto fail;
		}
		data += n;
		len -= (size_t)n;
	}
	/* a replaced file written over: what is left of the old one goes */
	if (again && !spare && ftruncate(fd, size) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	snprintf(pd->name, sizeof(pd->name), "%s", name);
	return 0;
fail:
	hd_seterr(err, errlen, "%s: %s", name, strerror(errno));
	if (fd != -1)
		close(fd);
	(void)fs_tmpdir_unlink(&w->td, pd->tmp);
	return -1;
}

/* Leaves the replaced files of pd[0..k) (those exchanged) for the writer
 * thread to remove, all at once: removing takes a disk longer than the
 * exchange, and none starts while these jobs run (writer: TRASH_IDLE_NS). */
static void
trash_push(struct tftpw *w, struct pending *pd, size_t k)
{
	bool pushed = false;

	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < k; i++) {
		if (!pd[i].trash || names_push(&w->trash, pd[i].tmp) != 0)
			continue; /* out of memory: removed below */
		pd[i].trash = false;
		pushed = true;
	}
	/* the writer keeps time from the first replaced file (trash_due); a
	 * thread that waits for its jobs tells it once it is done */
	if (pushed && tl_waits.w == w)
		tl_waits.owed = true;
	else if (pushed)
		pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < k; i++)
		if (pd[i].trash) {
			(void)fs_tmpdir_unlink(&w->td, pd[i].tmp);
			pd[i].trash = false;
		}
}

/* Puts a written temporary in place (readable from now on): exchanged
 * with the file it replaces, which stays at pd->tmp (pd->trash) until
 * trash_push (fs_tmpdir_swap). */
static int
commit_tmp(struct tftpw *w, struct pending *pd, char *err, size_t errlen)
{
	int rc = fs_tmpdir_swap(&w->td, pd->tmp, pd->name, err, errlen);

	if (rc == -1) {
		(void)fs_tmpdir_unlink(&w->td, pd->tmp);
		return -1;
	}
	pd->trash = rc == 1;
	return 0;
}

static int
write_file(struct tftpw *w, const char *name, const char *data, size_t len, char *err,
           size_t errlen)
{
	struct pending pd;

	if (write_tmp(w, name, data, len, &pd, err, errlen) != 0)
		return -1;
	if (commit_tmp(w, &pd, err, errlen) != 0)
		return -1;
	trash_push(w, &pd, 1);
	return 0;
}

#define TRASH_BATCH 16
/* Spares kept at most: a move changes a few files, a re-render recycles
 * its own replaced files. */
#define SPARE_MAX 64

/* Empties replaced file tmp into a spare if nobody reads it (a lease):
 * truncated, it holds nothing of the configuration it was, and its inode
 * is written again later instead of a new one.  true when it is one. */
static bool
to_spare(struct tftpw *w, const char *tmp)
{
	int fd = fs_tmpdir_reopen(&w->td, tmp);
	bool ok;

	if (fd == -1)
		return false;
	ok = ftruncate(fd, 0) == 0;
	if (close(fd) != 0)
		ok = false;
	return ok;
}

/* Empties or removes up to TRASH_BATCH replaced files, the last ones
 * pushed: with spares, the first into spares up to SPARE_MAX (mu held on
 * entry and on return, released meanwhile). */
static void
empty_trash(struct tftpw *w, bool spares)
{
	char v[TRASH_BATCH][TFTPW_NAME_MAX + 24];
	bool spare[TRASH_BATCH];
	size_t n = 0, room = spares && w->spare.n < SPARE_MAX ? SPARE_MAX - w->spare.n : 0;

	while (n < TRASH_BATCH && w->trash.n > 0)
		names_pop(&w->trash, v[n++], sizeof(v[0]));
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < n; i++) {
		spare[i] = i < room && to_spare(w, v[i]);
		if (!spare[i] && fs_tmpdir_unlink(&w->td, v[i]) != 0)
			log_warn("tftp: cannot remove a replaced file: %s", strerror(errno));
	}
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < n; i++)
		if (spare[i] && names_push(&w->spare, v[i]) != 0)
			(void)fs_tmpdir_unlink(&w->td, v[i]);
}

static void
fail(struct tftpw *w, const char *err)
{
	log_error("tftp: %s", err);
	atomic_store(&w->failed, true);
}

/* Writes the temporaries of device dev's files into pd (at most
 * TFTPW_MAX_FILES); their count. */
static size_t
run_dev(struct tftpw *w, hd_id dev, struct pending *pd)
{
	struct tftpw_file f[TFTPW_MAX_FILES];
	unsigned long long version = 0;
	int n = w->ops.files(w->ops.arg, dev, f, &version);
	size_t k = 0;
	bool whole = true;

	for (int i = 0; i < n; i++) {
		char err[256];

		if (write_tmp(w, f[i].name, f[i].data, f[i].len, &pd[k], err, sizeof(err)) != 0) {
			fail(w, err);
			whole = false;
			w->ops.release(f[i].ref);
		} else {
			pd[k++].ref = f[i].ref; /* released once in place (run_written) */
		}
	}
	for (size_t i = 0; i < k; i++) {
		pd[i].dev = dev;
		pd[i].version = version;
		pd[i].count = k;
		pd[i].whole = whole;
	}
	return k;
}

/* Tells the publisher which devices' files are now in place, whole
 * (ops.written), and drops the references on pd[0..k). */
static void
run_written(struct tftpw *w, struct pending *pd, size_t k)
{
	for (size_t i = 0; i < k; i += pd[i].count) {
		void *refs[TFTPW_MAX_FILES];
		bool whole = pd[i].whole;

		for (size_t j = 0; j < pd[i].count; j++) {
			refs[j] = pd[i + j].ref;
			whole = whole && pd[i + j].committed;
		}
		if (whole && w->ops.written != NULL)
			w->ops.written(w->ops.arg, pd[i].dev, pd[i].version, refs, pd[i].count);
		for (size_t j = 0; j < pd[i].count; j++)
			w->ops.release(refs[j]);
	}
}

static void
run_remove(struct tftpw *w, const char *name)
{
	char err[256];

	if (w->ops.owned(w->ops.arg, name))
		return; /* another device publishes this name now */
	if (fs_unlink(w->root, name, err, sizeof(err)) != 0)
		fail(w, err);
}

/* ---- the thread --------------------------------------------------------- */

/* Jobs taken at once.  An urgent job queued while a bulk chunk runs waits
 * for the whole chunk (whoever waits for it cannot run it: run_mu is
 * held), so bulk chunks are short: on ext4, 256 devices took tens of
 * milliseconds, which a move during a template save waited for; 32 took
 * 1-1.5 ms, 8 take a quarter of that. */
#define CHUNK_URGENT 16
#define CHUNK_BULK 8
#define CHUNK_MAX (CHUNK_URGENT > CHUNK_BULK ? CHUNK_URGENT : CHUNK_BULK)
#define URGENT_GRACE_NS 2000000ULL
/* Replaced files are removed once no job ran for this long (or when this
 * many wait): a removal takes the temporaries directory's lock and a
 * journal handle, up to tens of milliseconds on a busy ext4, and the jobs
 * of one *30 move (two devices, then its mark) come a few hundred
 * microseconds apart. */
#define TRASH_IDLE_NS 5000000ULL
#define TRASH_HIGH 65536
/*
 * Bulk jobs (a re-render's thousands of files) wait while a *30 move is
 * under way (demand.h): the writer's CPU is the move's then, for its
 * locked part, its own (urgent) files and its first NOTIFYs.  Moves back
 * to back hold them BULK_HOLD_MAX_NS at most; the writer looks again
 * every BULK_HOLD_POLL_NS meanwhile.  Moves during a 100k re-render on
 * disk, 2 cores (bench/scale.sh): their files were published within 2.5
 * ms at most in two runs with this hold alone, 4.4-5.3 ms with only the
 * save's pause (demand.h), 3.4-13.2 ms with neither (bench/README.md).
 */
#define BULK_HOLD_MAX_NS 20000000ULL
#define BULK_HOLD_POLL_NS 500000ULL

/*
 * Runs jobs v[0..n): first every file is written under its temporary
 * name, then all are put in place, then removals and marks run, in
 * the order queued.  (A crash leaves private temporaries, or whole files.)
 */
static void
run_chunk(struct tftpw *w, const struct job *v, size_t n, struct pending *pd)
{
	char err[256];
	size_t k = 0;

	/* the private directory still private (a temporary is 0644 at once) */
	if (fs_tmpdir_check(&w->td, w->root, err, sizeof(err)) != 0)
		fail(w, err);
	for (size_t i = 0; i < n; i++)
		if (v[i].dev != 0)
			k += run_dev(w, v[i].dev, pd + k);
	for (size_t i = 0; i < k; i++) {
		pd[i].committed = commit_tmp(w, &pd[i], err, sizeof(err)) == 0;
		if (!pd[i].committed)
			fail(w, err);
	}
	run_written(w, pd, k);
	for (size_t i = 0; i < n; i++) {
		if (v[i].dev == 0 && v[i].name[0] != '\0')
			run_remove(w, v[i].name);
		if (v[i].stamp != 0)
			metrics_move_published_at(v[i].stamp);
	}
	trash_push(w, pd, k);
}

static bool
has_jobs(const struct tftpw *w)
{
	for (int k = 0; k < TFTPW_NQUEUES; k++)
		if (w->q[k].n > 0)
			return true;
	return false;
}

/* Whether the writer thread should run jobs now (mu held): bulk ones, an
 * urgent one started (tftpw_start) or that nobody ran within its grace,
 * or anything when stopping.  The first urgent job waiting has ticket
 * queued - n + 1. */
static bool
writer_due(const struct tftpw *w, uint64_t now)
{
	const struct queue *u = &w->q[TFTPW_URGENT];

	return w->q[TFTPW_BULK].n > 0 ||
	       (u->n > 0 && (w->stop || u->queued - u->n < w->go ||
	                     now - u->v[u->head].at >= URGENT_GRACE_NS));
}

/* Whether the bulk jobs wait for a move now (mu held): no urgent job is
 * queued, a move is under way, and they have not waited BULK_HOLD_MAX_NS
 * already. */
static bool
bulk_held(struct tftpw *w, uint64_t now)
{
	if (w->q[TFTPW_BULK].n == 0 || w->q[TFTPW_URGENT].n > 0 || !demand_move_now()) {
		w->held_since = 0;
		return false;
	}
	if (w->held_since == 0)
		w->held_since = now;
	return now - w->held_since < BULK_HOLD_MAX_NS;
}

/*
 * Takes the next jobs (of queue only, or urgent before bulk when only is
 * TFTPW_NQUEUES) and runs them; their count.  run_mu held: jobs run one
 * chunk at a time, in the order queued, whichever thread runs them.
 */
static size_t
run_some(struct tftpw *w, enum tftpw_queue only)
{
	struct queue *q = NULL;
	size_t n = 0, max;

	pthread_mutex_lock(&w->mu);
	for (int k = 0; k < TFTPW_NQUEUES && q == NULL; k++)
		if (w->q[k].n > 0 && (only == TFTPW_NQUEUES || (int)only == k))
			q = &w->q[k];
	if (q == NULL) {
		pthread_mutex_unlock(&w->mu);
		return 0;
	}
	max = q == &w->q[TFTPW_URGENT] ? CHUNK_URGENT : CHUNK_BULK;
	while (n < max && q->n > 0) {
		w->chunk[n++] = q->v[q->head];
		q->head = (q->head + 1) % q->cap;
		q->n--;
	}
	pthread_mutex_unlock(&w->mu);
	run_chunk(w, w->chunk, n, w->pending);
	pthread_mutex_lock(&w->mu);
	q->done += n;
	w->last_run = metrics_now_ns();
	pthread_cond_broadcast(&w->ran);
	pthread_mutex_unlock(&w->mu);
	return n;
}

/* Whether the writer thread should empty replaced files now (mu held):
 * no job waits, and none ran for TRASH_IDLE_NS (or too many wait, or
 * stopping). */
static bool
trash_due(const struct tftpw *w, uint64_t now)
{
	return w->trash.n > 0 && !has_jobs(w) &&
	       (w->stop || w->trash.n >= TRASH_HIGH || now - w->last_run >= TRASH_IDLE_NS);
}

/* Waits on work until deadline (monotonic ns; 0: none) or a signal. */
static void
wait_work(struct tftpw *w, uint64_t now, uint64_t deadline)
{
	struct timespec ts;

	if (deadline == 0) {
		pthread_cond_wait(&w->work, &w->mu);
		return;
	}
	ts = deadline_in(deadline > now ? deadline - now : 0);
	pthread_cond_timedwait(&w->work, &w->mu, &ts);
}

static void *
writer(void *arg)
{
	struct tftpw *w = arg;
	char err[256];
	size_t swept = 0;

	/* the older layout's temporaries (".<name>.XXXXXX", 0644 in the root):
	 * no file published now has such a name, so jobs may run meanwhile
	 * (a thread waiting for its ticket runs them itself) */
	if (fs_sweep_legacy(w->root, &swept, err, sizeof(err)) != 0)
		log_error("tftp: removing stale temporaries: %s", err);
	if (swept > 0)
		log_info("tftp: removed %zu temporaries of an older hotdeskd", swept);

	for (;;) {
		uint64_t now;

		pthread_mutex_lock(&w->mu);
		for (;;) {
			uint64_t deadline = 0;
			const struct queue *u = &w->q[TFTPW_URGENT];
			bool held;

			now = metrics_now_ns();
			held = !w->stop && bulk_held(w, now);
			if ((writer_due(w, now) && !held) || trash_due(w, now) ||
			    (w->stop && !has_jobs(w)))
				break;
			/* look again after an urgent job's grace, while bulk jobs
			 * wait for a move, or once idle */
			if (u->n > 0)
				deadline = u->v[u->head].at + URGENT_GRACE_NS;
			else if (held)
				deadline = now + BULK_HOLD_POLL_NS;
			else if (w->trash.n > 0 && !has_jobs(w))
				deadline = w->last_run + TRASH_IDLE_NS;
			wait_work(w, now, deadline);
		}
		if (writer_due(w, now)) {
			pthread_mutex_unlock(&w->mu);
			pthread_mutex_lock(&w->run_mu);
			(void)run_some(w, TFTPW_NQUEUES);
			pthread_mutex_unlock(&w->run_mu);
			continue;
		}
		/* replaced files go when no job is due: a move waits for none */
		if (w->trash.n > 0) {
			empty_trash(w, !w->stop); /* a stop leaves none */
			pthread_mutex_unlock(&w->mu);
			continue;
		}
		pthread_mutex_unlock(&w->mu); /* stopping, nothing left */
		break;
	}
	return NULL;
}

/* Appends j to queue k (mu held); its ticket, 0 when out of memory. */
static uint64_t
push(struct tftpw *w, enum tftpw_queue k, const struct job *j)
{
	struct queue *q = &w->q[k];

	if (q->n == q->cap) {
		size_t nc = q->cap ? q->cap * 2 : 64;
		struct job *v = malloc(nc * sizeof(*v));

		if (v == NULL)
			return 0;
		for (size_t i = 0; i < q->n; i++)
			v[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = v;
		q->head = 0;
		q->cap = nc;
	}
	q->v[(q->head + q->n) % q->cap] = *j;
	q->v[(q->head + q->n) % q->cap].at = metrics_now_ns();
	q->n++;
	/* an urgent job is run by the thread that queued it when it waits
	 * for it (tftpw_wait), the writer only if it is still there after
	 * URGENT_GRACE_NS (writer_due) or once started (tftpw_start): waking
	 * another thread to write costs more than the job when the queuing
	 * thread would wait for it at once.  The writer is told of the first
	 * urgent job, to keep time from it, unless the queuing thread said
	 * it will run it (tftpw_thread_waits); while one waits, the writer's
	 * deadline is the oldest's, which a later job does not move, so it is
	 * not woken again per job (a *30 move queues three jobs under the
	 * service lock, and a thread woken at the first takes the CPU from
	 * the move's; a move wakes it once, when its last job is queued) */
	if (k != TFTPW_URGENT || (q->n == 1 && tl_waits.w != w))
		pthread_cond_signal(&w->work);
	return ++q->queued;
}

static uint64_t
queue_job(struct tftpw *w, enum tftpw_queue k, const struct job *j)
{
	uint64_t t;

	pthread_mutex_lock(&w->mu);
	t = push(w, k, j);
	pthread_mutex_unlock(&w->mu);
	if (t == 0) { /* out of memory: do it here, in turn */
		struct pending pd[TFTPW_MAX_FILES];

		pthread_mutex_lock(&w->run_mu);
		run_chunk(w, j, 1, pd);
		pthread_mutex_unlock(&w->run_mu);
	}
	return t;
}

uint64_t
tftpw_queue_dev(struct tftpw *w, enum tftpw_queue q, hd_id dev, uint64_t stamp)
{
	struct job j = { .dev = dev, .stamp = stamp };

	return queue_job(w, q, &j);
}

uint64_t
tftpw_queue_mark(struct tftpw *w, enum tftpw_queue q, uint64_t stamp)
{
	struct job j = { .stamp = stamp };

	return stamp != 0 ? queue_job(w, q, &j) : 0;
}

uint64_t
tftpw_queue_remove(struct tftpw *w, enum tftpw_queue q, const char *name)
{
	struct job j = { 0 };

	if (strlen(name) >= sizeof(j.name))
		return 0;
	memcpy(j.name, name, strlen(name) + 1);
	return queue_job(w, q, &j);
}

static bool
ran(struct tftpw *w, enum tftpw_queue q, uint64_t ticket)
{
	bool r;

	pthread_mutex_lock(&w->mu);
	r = w->q[q].done >= ticket;
	pthread_mutex_unlock(&w->mu);
	return r;
}

void
tftpw_wait(struct tftpw *w, enum tftpw_queue q, uint64_t ticket)
{
	if (ran(w, q, ticket))
		return;
	/* when the writer thread is idle, run the jobs here: no thread to
	 * wake, which on a busy machine costs more than the writing (bulk
	 * jobs not while a move is under way: the writer holds them back) */
	while (!ran(w, q, ticket) && !(q == TFTPW_BULK && demand_move_now()) &&
	       pthread_mutex_trylock(&w->run_mu) == 0) {
		/* urgent first, as the writer does: a bulk wait delays no move */
		size_t n = run_some(w, TFTPW_NQUEUES);

		pthread_mutex_unlock(&w->run_mu);
		if (n == 0)
			break;
		idle_run(); /* between two chunks */
	}
	pthread_mutex_lock(&w->mu);
	/* a ticket never given (another writer's) waits for nothing */
	while (w->q[q].done < ticket && ticket <= w->q[q].queued) {
		struct timespec t;

		if (!idle_wanted()) {
			pthread_cond_wait(&w->ran, &w->mu);
			continue;
		}
		/* the thread's idle work runs meanwhile (a re-render's bulk
		 * queue holds thousands of files) */
		t = idle_deadline();
		if (pthread_cond_timedwait(&w->ran, &w->mu, &t) == ETIMEDOUT) {
			pthread_mutex_unlock(&w->mu);
			idle_run();
			pthread_mutex_lock(&w->mu);
		}
	}
	pthread_mutex_unlock(&w->mu);
}

void
tftpw_thread_waits(struct tftpw *w)
{
	tl_waits.w = w;
}

void
tftpw_start(struct tftpw *w)
{
	struct queue *u = &w->q[TFTPW_URGENT];

	pthread_mutex_lock(&w->mu);
	if (u->n > 0 && w->go < u->queued) {
		w->go = u->queued;
		pthread_cond_signal(&w->work);
	}
	pthread_mutex_unlock(&w->mu);
}

void
tftpw_thread_done(struct tftpw *w)
{
	bool owed = tl_waits.w == w && tl_waits.owed;

	tl_waits.w = NULL;
	tl_waits.owed = false;
	pthread_mutex_lock(&w->mu);
	/* and of an urgent job still queued, which nobody may wait for */
	if (owed || w->q[TFTPW_URGENT].n > 0)
		pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
}

void
tftpw_wait_backlog(struct tftpw *w, enum tftpw_queue q, uint64_t max)
{
	uint64_t ticket = 0;

	pthread_mutex_lock(&w->mu);
	if (w->q[q].queued - w->q[q].done > max)
		ticket = w->q[q].queued - max;
	pthread_mutex_unlock(&w->mu);
	if (ticket != 0)
		tftpw_wait(w, q, ticket);
}

void
tftpw_drain(struct tftpw *w)
{
	uint64_t t[TFTPW_NQUEUES];

	pthread_mutex_lock(&w->mu);
	for (int k = 0; k < TFTPW_NQUEUES; k++)
		t[k] = w->q[k].queued;
	pthread_mutex_unlock(&w->mu);
	for (int k = 0; k < TFTPW_NQUEUES; k++)
		tftpw_wait(w, (enum tftpw_queue)k, t[k]);
	/* and the files those jobs replaced (they hold old passwords): by
	 * this thread, now, not once the writer has been idle a while */
	pthread_mutex_lock(&w->mu);
	while (w->trash.n > 0)
		empty_trash(w, false);
	pthread_mutex_unlock(&w->mu);
}

int
tftpw_write_now(struct tftpw *w, const char *name, const char *data, size_t len, char *err,
                size_t errlen)
{
	return write_file(w, name, data, len, err, errlen);
}

const char *
tftpw_root(const struct tftpw *w)
{
	return w->root;
}

bool
tftpw_failed(const struct tftpw *w)
{
	return atomic_load(&((struct tftpw *)w)->failed);
}

size_t
tftpw_spares(struct tftpw *w)
{
	size_t n;

	pthread_mutex_lock(&w->mu);
	n = w->spare.n;
	pthread_mutex_unlock(&w->mu);
	return n;
}

/* ---- open / close ------------------------------------------------------- */

struct tftpw *
tftpw_open(const char *root, const struct tftpw_ops *ops, char *err, size_t errlen)
{
	struct tftpw *w = calloc(1, sizeof(*w));
	size_t swept = 0;
	char serr[256];

	if (w == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	w->td.dfd = w->td.tfd = -1;
	pthread_mutex_init(&w->run_mu, NULL);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->ran, NULL);
	lockorder_register(&w->run_mu, LOCK_TFTPW_RUN, "tftp writer run");
	lockorder_register(&w->mu, LOCK_TFTPW, "tftp writer queues");
	w->ops = *ops;
	if (fs_mkdir(root, err, errlen) != 0)
		goto fail;
	if ((w->root = strdup(root)) == NULL ||
	    (w->chunk = malloc(CHUNK_MAX * sizeof(*w->chunk))) == NULL ||
	    (w->pending = malloc(CHUNK_MAX * TFTPW_MAX_FILES * sizeof(*w->pending))) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	/* temporaries of a crash may hold SIP passwords: gone first (those
	 * of the older layout, in the root itself, by the writer thread as it
	 * starts: finding them reads the whole root) */
	if (fs_sweep_private(root, &swept, serr, sizeof(serr)) != 0)
		log_error("tftp: removing stale temporaries: %s", serr);
	if (swept > 0)
		log_info("tftp: removed %zu temporaries left by an interrupted run", swept);
	if (fs_tmpdir_open(&w->td, root, err, errlen) != 0)
		goto fail;
	if (pthread_create(&w->thread, NULL, writer, w) != 0) {
		hd_seterr(err, errlen, "cannot start the TFTP writer");
		goto fail;
	}
	w->started = true;
	return w;
fail:
	tftpw_close(w);
	return NULL;
}

bool
tftpw_stop(struct tftpw *w)
{
	int fd;
	bool ok;

	if (!w->started)
		return false;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	w->started = false;
	names_unlink(w, &w->spare); /* the root is left as a start leaves it */
	if (atomic_load(&w->failed)) {
		log_warn("tftp: some writes failed: the next start checks every file");
		return false;
	}
	fd = open(w->root, O_RDONLY | O_DIRECTORY);
	ok = fd != -1 && syncfs(fd) == 0;
	if (!ok)
		log_error("tftp: cannot sync %s: %s", w->root, strerror(errno));
	if (fd != -1)
		close(fd);
	return ok;
}

void
tftpw_close(struct tftpw *w)
{
	if (w == NULL)
		return;
	if (w->started)
		(void)tftpw_stop(w);
	for (int k = 0; k < TFTPW_NQUEUES; k++)
		free(w->q[k].v);
	names_unlink(w, &w->trash); /* if never started */
	names_unlink(w, &w->spare);
	fs_tmpdir_close(&w->td);
	free(w->root);
	free(w->chunk);
	free(w->pending);
	pthread_mutex_destroy(&w->run_mu);
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->ran);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
