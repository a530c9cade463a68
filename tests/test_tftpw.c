/*
 * test_tftpw.c -- the TFTP writer thread: a queued device's files are in
 * the root (0644, no temporary left) once its ticket ran; jobs carry no
 * content, so a device queued twice ends with its newest files whatever
 * ran when; a removal spares a name some device owns by then; urgent jobs
 * run before queued bulk ones; a stop writes what is queued; a thread
 * waiting for a job runs its idle work meanwhile; replaced files are
 * emptied into spares (at most 64) that later files are written into; a
 * thread that runs its own urgent jobs tells the writer what it left;
 * bulk jobs held back for a *30 move under way run all the same, and an
 * urgent job with them, when the move never ends.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "demand.h"
#include "fsutil.h"
#include "idle.h"
#include "testutil.h"
#include "tftpw.h"

/* A fake publisher: device i (1..NDEV) owns file "dev<i>.cfg" while
 * owned[i], with content text[i]. */
#define NDEV 64

static struct fake {
	pthread_mutex_t mu;
	char text[NDEV + 1][64];
	bool owned[NDEV + 1];
	hd_id order[4 * NDEV];    /* devices in the order the writer read them */
	size_t norder;
	int nfiles;               /* files per device: dev<i>.cfg, dev<i>.<k>.cfg (0: 1) */
	bool hold;                /* the writer waits in files() while set */
	bool held;                /* it is waiting */
	pthread_cond_t cv;
	int refs;                 /* references not released */
} fk = { PTHREAD_MUTEX_INITIALIZER, { { 0 } }, { 0 }, { 0 }, 0, 0, false, false,
         PTHREAD_COND_INITIALIZER, 0 };

/* When the writer reads device urgent_on, it queues device urgent_dev as
 * urgent on urgent_w (0: never). */
static struct tftpw *urgent_w;
static hd_id urgent_on, urgent_dev;

static int
fk_files(void *arg, hd_id dev, struct tftpw_file *f, unsigned long long *version)
{
	int n = -1;

	(void)arg;
	pthread_mutex_lock(&fk.mu);
	if (fk.norder < sizeof(fk.order) / sizeof(fk.order[0])) /* the tests that read it: fewer */
		fk.order[fk.norder++] = dev;
	if (urgent_on != 0 && dev == urgent_on)
		(void)tftpw_queue_dev(urgent_w, TFTPW_URGENT, urgent_dev, 0);
	while (fk.hold) {
		fk.held = true;
		pthread_cond_broadcast(&fk.cv);
		pthread_cond_wait(&fk.cv, &fk.mu);
	}
	if (dev >= 1 && dev <= NDEV && fk.owned[dev]) {
		n = fk.nfiles > 0 ? fk.nfiles : 1;
		for (int k = 0; k < n; k++) {
			if (k == 0)
				snprintf(f[k].name, sizeof(f[k].name), "dev%d.cfg", (int)dev);
			else
				snprintf(f[k].name, sizeof(f[k].name), "dev%d.%d.cfg", (int)dev, k);
			f[k].data = strdup(fk.text[dev]);
			f[k].len = strlen(fk.text[dev]);
			f[k].ref = (void *)f[k].data;
			fk.refs++;
		}
		*version = 1;
	}
	pthread_mutex_unlock(&fk.mu);
	return n;
}

static void
fk_release(void *ref)
{
	pthread_mutex_lock(&fk.mu);
	fk.refs--;
	pthread_mutex_unlock(&fk.mu);
	free(ref);
}

static bool
fk_owned(void *arg, const char *name)
{
	int i;
	bool o;

	(void)arg;
	if (sscanf(name, "dev%d.cfg", &i) != 1 || i < 1 || i > NDEV)
		return false;
	pthread_mutex_lock(&fk.mu);
	o = fk.owned[i];
	pthread_mutex_unlock(&fk.mu);
	return o;
}

static const struct tftpw_ops ops = { fk_files, fk_release, fk_owned, NULL, NULL };

static void
fk_set(int i, const char *text)
{
	pthread_mutex_lock(&fk.mu);
	fk.owned[i] = text != NULL;
	snprintf(fk.text[i], sizeof(fk.text[i]), "%s", text ? text : "");
	pthread_mutex_unlock(&fk.mu);
}

static void
setup(void)
{
	pthread_mutex_lock(&fk.mu);
	memset(fk.text, 0, sizeof(fk.text));
	memset(fk.owned, 0, sizeof(fk.owned));
	fk.norder = 0;
	fk.nfiles = 0;
	fk.hold = fk.held = false;
	fk.refs = 0;
	pthread_mutex_unlock(&fk.mu);
}

/* The content of dir/name ("" missing), and its mode. */
static char *
slurp(const char *dir, const char *name, mode_t *mode)
{
	char path[PATH_MAX];
	struct stat sb;
	size_t len;
	char *s;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &sb) != 0)
		return strdup("");
	*mode = sb.st_mode & 0777;
	s = fs_read_file(dir, name, 1 << 20, &len);
	return s ? s : strdup("");
}

/* The files in dir's temporaries directory: how many, how many hold
 * data (*full, may be NULL), and the inodes of the empty ones (spares,
 * up to max into ino). */
static size_t
temporaries2(const char *dir, size_t *full, ino_t *ino, size_t max)
{
	char path[PATH_MAX];
	struct dirent *e;
	size_t n = 0, nfull = 0, nino = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", dir, FS_TMPDIR);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		n++;
		if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || st.st_size > 0)
			nfull++;
		else if (nino < max)
			ino[nino++] = st.st_ino;
	}
	closedir(d);
	if (full != NULL)
		*full = nfull;
	return n;
}

static size_t
temporaries(const char *dir)
{
	return temporaries2(dir, NULL, NULL, 0);
}

TestSuite(tftpw, .init = setup);

Test(tftpw, a_queued_device_is_in_the_root_once_its_ticket_ran)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w;
	uint64_t t;
	mode_t mode = 0;
	char *s;

	fk_set(1, "one\n");
	w = tftpw_open(dir, &ops, err, sizeof(err));
	cr_assert_not_null(w, "%s", err);
	t = tftpw_queue_dev(w, TFTPW_URGENT, 1, 0);
	cr_assert_eq(t, 1);
	tftpw_wait(w, TFTPW_URGENT, t);
	s = slurp(dir, "dev1.cfg", &mode);
	cr_assert_str_eq(s, "one\n");
	cr_assert_eq(mode, 0644);
	cr_assert_eq(temporaries(dir), 0);
	free(s);
	cr_assert(tftpw_stop(w), "a stop after good writes is clean");
	tftpw_close(w);
	cr_assert_eq(fk.refs, 0, "every reference released");
	tu_rmtree(dir);
}

Test(tftpw, a_device_queued_twice_ends_with_its_newest_files)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	mode_t mode;
	char *s;

	cr_assert_not_null(w, "%s", err);
	/* the writer is held inside the first job; the content changes
	 * twice meanwhile, and the job queued last reads the newest */
	pthread_mutex_lock(&fk.mu);
	fk.hold = true;
	pthread_mutex_unlock(&fk.mu);
	fk_set(2, "old\n");
	(void)tftpw_queue_dev(w, TFTPW_BULK, 2, 0);
	pthread_mutex_lock(&fk.mu);
	while (!fk.held)
		pthread_cond_wait(&fk.cv, &fk.mu);
	pthread_mutex_unlock(&fk.mu);
	fk_set(2, "middle\n");
	(void)tftpw_queue_dev(w, TFTPW_BULK, 2, 0);
	fk_set(2, "new\n");
	pthread_mutex_lock(&fk.mu);
	fk.hold = false;
	pthread_cond_broadcast(&fk.cv);
	pthread_mutex_unlock(&fk.mu);
	tftpw_drain(w);
	s = slurp(dir, "dev2.cfg", &mode);
	cr_assert_str_eq(s, "new\n");
	free(s);
	tftpw_close(w);
	tu_rmtree(dir);
}

Test(tftpw, a_removal_spares_a_name_owned_when_it_runs)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	mode_t mode;
	char *s;

	cr_assert_not_null(w, "%s", err);
	fk_set(3, "three\n");
	fk_set(4, "four\n");
	(void)tftpw_queue_dev(w, TFTPW_URGENT, 3, 0);
	(void)tftpw_queue_dev(w, TFTPW_URGENT, 4, 0);
	tftpw_drain(w);
	fk_set(3, NULL);                 /* 3 is gone, 4 still owns its name */
	(void)tftpw_queue_remove(w, TFTPW_URGENT, "dev3.cfg");
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_remove(w, TFTPW_URGENT, "dev4.cfg"));
	s = slurp(dir, "dev3.cfg", &mode);
	cr_assert_str_eq(s, "", "the file of a device gone is removed");
	free(s);
	s = slurp(dir, "dev4.cfg", &mode);
	cr_assert_str_eq(s, "four\n", "an owned name is kept");
	free(s);
	/* a device gone before its job ran: nothing written */
	(void)tftpw_queue_dev(w, TFTPW_URGENT, 5, 0);
	tftpw_drain(w);
	s = slurp(dir, "dev5.cfg", &mode);
	cr_assert_str_eq(s, "");
	free(s);
	tftpw_close(w);
	tu_rmtree(dir);
}

Test(tftpw, urgent_jobs_run_before_queued_bulk_ones)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	uint64_t t;
	size_t at = 0, first_bulk_after = 0;

	cr_assert_not_null(w, "%s", err);
	for (int i = 1; i <= 40; i++)
		fk_set(i, "x\n");
	pthread_mutex_lock(&fk.mu);
	fk.hold = true;
	pthread_mutex_unlock(&fk.mu);
	(void)tftpw_queue_dev(w, TFTPW_BULK, 1, 0); /* runs, and is held */
	pthread_mutex_lock(&fk.mu);
	while (!fk.held)
		pthread_cond_wait(&fk.cv, &fk.mu);
	pthread_mutex_unlock(&fk.mu);
	for (int i = 2; i <= 39; i++)
		(void)tftpw_queue_dev(w, TFTPW_BULK, i, 0);
	t = tftpw_queue_dev(w, TFTPW_URGENT, 40, 0);
	pthread_mutex_lock(&fk.mu);
	fk.hold = false;
	pthread_cond_broadcast(&fk.cv);
	pthread_mutex_unlock(&fk.mu);
	tftpw_wait(w, TFTPW_URGENT, t);
	tftpw_drain(w);
	pthread_mutex_lock(&fk.mu);
	cr_assert_eq(fk.norder, 40);
	for (size_t i = 0; i < fk.norder; i++) {
		if (fk.order[i] == 40)
			at = i;
		if (fk.order[i] == 2)
			first_bulk_after = i;
	}
	pthread_mutex_unlock(&fk.mu);
	cr_assert_eq(at, 1, "the urgent job runs right after the one running (at %zu)", at);
	cr_assert_gt(first_bulk_after, at);
	tftpw_close(w);
	tu_rmtree(dir);
}

/* Bulk jobs wait while a move is under way (demand.h), for a bounded
 * time: a move that never ends (here, this thread's) holds them back no
 * longer than that, whether the writer runs them or a waiter. */
Test(tftpw, bulk_jobs_held_for_a_move_run_when_it_never_ends)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	uint64_t t = 0;

	cr_assert_not_null(w, "%s", err);
	for (int i = 1; i <= 21; i++)
		fk_set(i, "held\n");
	demand_move_begin();
	for (int i = 1; i <= 20; i++)
		t = tftpw_queue_dev(w, TFTPW_BULK, i, 0);
	tftpw_wait(w, TFTPW_BULK, t);
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 21, 0));
	cr_assert(demand_move_now(), "the move is still under way");
	for (int i = 1; i <= 21; i++) {
		char name[32];
		mode_t mode = 0;
		char *c;

		snprintf(name, sizeof(name), "dev%d.cfg", i);
		c = slurp(dir, name, &mode);
		cr_assert_str_eq(c, "held\n", "%s", name);
		free(c);
	}
	demand_move_end();
	cr_assert(tftpw_stop(w));
	tftpw_close(w);
	tu_rmtree(dir);
}

/* A move during a template save queues an urgent job while a bulk chunk
 * runs: it waits for that chunk only, which is a few dozen devices, not
 * the hundreds queued. */
Test(tftpw, an_urgent_job_waits_for_a_short_bulk_chunk_only)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	uint64_t t;
	size_t at = 0;

	cr_assert_not_null(w, "%s", err);
	pthread_mutex_lock(&fk.mu);
	fk.hold = true;
	pthread_mutex_unlock(&fk.mu);
	(void)tftpw_queue_dev(w, TFTPW_URGENT, 250, 0); /* the writer runs it, held */
	pthread_mutex_lock(&fk.mu);
	while (!fk.held)
		pthread_cond_wait(&fk.cv, &fk.mu);
	pthread_mutex_unlock(&fk.mu);
	for (int i = 1; i <= 200; i++) /* taken at once once it is let go */
		(void)tftpw_queue_dev(w, TFTPW_BULK, i, 0);
	pthread_mutex_lock(&fk.mu);
	urgent_w = w;
	urgent_on = 1;   /* queued once the first bulk chunk runs */
	urgent_dev = 201;
	fk.hold = false;
	pthread_cond_broadcast(&fk.cv);
	pthread_mutex_unlock(&fk.mu);
	tftpw_drain(w);
	t = tftpw_queue_mark(w, TFTPW_URGENT, 1);
	tftpw_wait(w, TFTPW_URGENT, t);
	tftpw_drain(w);
	pthread_mutex_lock(&fk.mu);
	urgent_on = 0;
	cr_assert_eq(fk.norder, 202);
	for (size_t i = 0; i < fk.norder; i++)
		if (fk.order[i] == 201)
			at = i;
	pthread_mutex_unlock(&fk.mu);
	cr_assert_eq(fk.order[1], 1);
	cr_assert(at > 1 && at <= 1 + 64,
	          "the urgent job ran after %zu of the 200 bulk jobs (at most 64 expected)", at - 1);
	tftpw_close(w);
	tu_rmtree(dir);
}

/* Whether device i's file is in dir with its text. */
static bool
written(const char *dir, int i)
{
	mode_t mode = 0;
	char name[16], *s;
	bool ok;

	snprintf(name, sizeof(name), "dev%d.cfg", i);
	s = slurp(dir, name, &mode);
	pthread_mutex_lock(&fk.mu);
	ok = strcmp(s, fk.text[i]) == 0;
	pthread_mutex_unlock(&fk.mu);
	free(s);
	return ok;
}

/* Polls (up to a minute, not a speed limit) until devices from..to are
 * written; whether they were. */
static bool
all_written(const char *dir, int from, int to)
{
	for (int tries = 0; tries < 6000; tries++) {
		int i = from;

		while (i <= to && written(dir, i))
			i++;
		if (i > to)
			return true;
		usleep(10000);
	}
	return false;
}

struct idle_waiter {
	struct tftpw *w;
	uint64_t ticket;
	int idles, nested;
};

/* Idle work that itself waits for the writer: it never runs from within
 * itself. */
static void
count_idle(void *arg)
{
	struct idle_waiter *x = arg;

	x->idles++;
	if (x->idles == 1) {
		x->nested = -1;
		tftpw_wait(x->w, TFTPW_URGENT, tftpw_queue_mark(x->w, TFTPW_URGENT, 0));
		x->nested = x->idles - 1; /* idle runs from within this wait */
	}
}

static void *
wait_with_idle(void *arg)
{
	struct idle_waiter *x = arg;

	idle_set(count_idle, x);
	tftpw_wait(x->w, TFTPW_BULK, x->ticket);
	idle_set(NULL, NULL);
	return NULL;
}

/* A thread with idle work (the resync engine) runs it while it waits for
 * a bulk job behind a long one. */
Test(tftpw, a_waiting_thread_runs_its_idle_work_meanwhile)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	struct idle_waiter x = { w, 0, 0, 0 };
	pthread_t th;

	cr_assert_not_null(w, "%s", err);
	fk_set(1, "one");
	pthread_mutex_lock(&fk.mu);
	fk.hold = true;
	pthread_mutex_unlock(&fk.mu);
	x.ticket = tftpw_queue_dev(w, TFTPW_BULK, 1, 0);
	pthread_mutex_lock(&fk.mu);
	while (!fk.held) /* the writer has the job, and holds it */
		pthread_cond_wait(&fk.cv, &fk.mu);
	pthread_mutex_unlock(&fk.mu);
	cr_assert_eq(pthread_create(&th, NULL, wait_with_idle, &x), 0);
	usleep(100000);
	pthread_mutex_lock(&fk.mu);
	fk.hold = false;
	pthread_cond_broadcast(&fk.cv);
	pthread_mutex_unlock(&fk.mu);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert(written(dir, 1));
	/* every IDLE_MS of the 100 ms: a few at least, on a busy machine */
	cr_assert_geq(x.idles, 3, "idle work ran %d times in 100 ms of waiting", x.idles);
	cr_assert_eq(x.nested, 0, "idle work ran from within itself");
	tftpw_close(w);
	tu_rmtree(dir);
}

/* Only the first urgent job of a queue tells the writer (the later ones
 * would wake it under the service lock for nothing): the writer still
 * runs every urgent job nobody waits for, those queued while it waits
 * for the first one's grace and those queued while it writes. */
Test(tftpw, urgent_jobs_nobody_waits_for_are_all_written_by_the_writer)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w;

	for (int i = 1; i <= 40; i++)
		fk_set(i, "urgent\n");
	w = tftpw_open(dir, &ops, err, sizeof(err));
	cr_assert_not_null(w, "%s", err);
	/* more than one chunk, queued in a row: the writer is told once */
	for (int i = 1; i <= 20; i++)
		(void)tftpw_queue_dev(w, TFTPW_URGENT, i, 0);
	cr_assert(all_written(dir, 1, 20), "the writer ran the urgent jobs nobody waited for");
	/* queued while the writer runs one (held in the fake publisher) */
	pthread_mutex_lock(&fk.mu);
	fk.hold = true;
	fk.held = false;
	pthread_mutex_unlock(&fk.mu);
	(void)tftpw_queue_dev(w, TFTPW_URGENT, 21, 0);
	pthread_mutex_lock(&fk.mu);
	while (!fk.held)
		pthread_cond_wait(&fk.cv, &fk.mu);
	pthread_mutex_unlock(&fk.mu);
	for (int i = 22; i <= 40; i++)
		(void)tftpw_queue_dev(w, TFTPW_URGENT, i, 0);
	pthread_mutex_lock(&fk.mu);
	fk.hold = false;
	pthread_cond_broadcast(&fk.cv);
	pthread_mutex_unlock(&fk.mu);
	cr_assert(all_written(dir, 21, 40), "the jobs queued while the writer wrote ran too");
	cr_assert(tftpw_stop(w));
	tftpw_close(w);
	tu_rmtree(dir);
}

Test(tftpw, a_stop_writes_what_is_queued)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	mode_t mode;

	cr_assert_not_null(w, "%s", err);
	for (int i = 1; i <= NDEV; i++) {
		char t[32];

		snprintf(t, sizeof(t), "device %d\n", i);
		fk_set(i, t);
		(void)tftpw_queue_dev(w, TFTPW_BULK, i, 0);
	}
	cr_assert_eq(tftpw_queue_mark(w, TFTPW_BULK, 0), 0, "a mark without a stamp is nothing");
	cr_assert(tftpw_stop(w));
	for (int i = 1; i <= NDEV; i++) {
		char name[32], t[32], *s;

		snprintf(name, sizeof(name), "dev%d.cfg", i);
		snprintf(t, sizeof(t), "device %d\n", i);
		s = slurp(dir, name, &mode);
		cr_assert_str_eq(s, t);
		free(s);
	}
	cr_assert_eq(temporaries(dir), 0);
	tftpw_close(w);
	tu_rmtree(dir);
}

Test(tftpw, replaced_files_are_exchanged_and_removed_by_the_stop)
{
	char *dir = tu_tmpdir(), err[256], path[PATH_MAX];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	struct stat before, after;
	char old[16];
	mode_t mode;
	char *s;
	int fd;

	cr_assert_not_null(w, "%s", err);
	fk_set(6, "first\n");
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 6, 0));
	snprintf(path, sizeof(path), "%s/dev6.cfg", dir);
	fd = open(path, O_RDONLY); /* a reader of the first version */
	cr_assert_neq(fd, -1);
	/* each rewrite puts a new file (a new inode) in place, whole */
	for (int i = 0; i < 50; i++) {
		char t[32];

		snprintf(t, sizeof(t), "version %d\n", i);
		fk_set(6, t);
		tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 6, 0));
		s = slurp(dir, "dev6.cfg", &mode);
		cr_assert_str_eq(s, t);
		cr_assert_eq(mode, 0644);
		free(s);
	}
	/* the reader still sees the whole first version: never rewritten in place */
	cr_assert_eq(fstat(fd, &before), 0);
	cr_assert_eq(stat(path, &after), 0);
	cr_assert_neq(before.st_ino, after.st_ino);
	cr_assert_eq(pread(fd, old, sizeof(old), 0), 6);
	cr_assert_eq(memcmp(old, "first\n", 6), 0);
	close(fd);
	/* the replaced copies (they hold old passwords) are gone at the latest
	 * when the writer stops, before the root is synced */
	cr_assert(tftpw_stop(w));
	cr_assert_eq(temporaries(dir), 0, "replaced files left in %s", FS_TMPDIR);
	tftpw_close(w);
	tu_rmtree(dir);
}

/* A file written again goes into the inode of a file replaced before
 * (no new inode per write on a disk, whose allocator is slow to find one
 * after many removals); one a reader still has open never is (above).
 * Writes a few hundred microseconds apart: the replaced files are emptied
 * (or removed) only once the writer has been idle 5 ms, so most find one
 * waiting. */
Test(tftpw, files_are_written_into_the_inodes_of_replaced_ones)
{
	char *dir = tu_tmpdir(), err[256], path[PATH_MAX];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	ino_t seen[51];
	size_t nseen = 0, again = 0;

	cr_assert_not_null(w, "%s", err);
	snprintf(path, sizeof(path), "%s/dev12.cfg", dir);
	for (int i = 0; i <= 50; i++) {
		char t[32], *s;
		struct stat st;
		mode_t mode;

		/* longer and shorter in turn: what is left of a longer one goes */
		snprintf(t, sizeof(t), i % 2 ? "v%d\n" : "version %d, a longer one\n", i);
		fk_set(12, t);
		tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 12, 0));
		s = slurp(dir, "dev12.cfg", &mode);
		cr_assert_str_eq(s, t, "a file written into a replaced one is whole");
		cr_assert_eq(mode, 0644);
		free(s);
		cr_assert_eq(stat(path, &st), 0);
		for (size_t j = 0; j < nseen; j++)
			if (seen[j] == st.st_ino) {
				again++;
				break;
			}
		seen[nseen++] = st.st_ino;
	}
	cr_assert_gt(again, 0, "51 writes, 51 new inodes: no replaced file written into");
	cr_assert(tftpw_stop(w));
	cr_assert_eq(temporaries(dir), 0, "replaced files left in %s", FS_TMPDIR);
	tftpw_close(w);
	tu_rmtree(dir);
}

/* What the writer reported written (ops.written), and what the root and
 * the references were at that moment. */
static struct {
	hd_id dev;
	unsigned long long version;
	size_t n, calls;
	char seen[64];  /* dev<i>.cfg in the root when it was called */
	bool ref_held;  /* its reference not released yet */
	const char *root;
} wr;

static void
fk_written(void *arg, hd_id dev, unsigned long long version, void *const *refs, size_t n)
{
	mode_t mode;
	char name[32], *s;

	(void)arg;
	snprintf(name, sizeof(name), "dev%d.cfg", (int)dev);
	s = slurp(wr.root, name, &mode);
	pthread_mutex_lock(&fk.mu);
	wr.dev = dev;
	wr.version = version;
	wr.n = n;
	wr.calls++;
	snprintf(wr.seen, sizeof(wr.seen), "%s", s);
	/* the data is still the publisher's: same bytes, not released */
	wr.ref_held = n == 1 && fk.refs > 0 && strcmp((const char *)refs[0], s) == 0;
	pthread_mutex_unlock(&fk.mu);
	free(s);
}

Test(tftpw, written_is_told_once_the_files_are_in_place_before_their_release)
{
	static const struct tftpw_ops wops = { fk_files, fk_release, fk_owned, NULL, fk_written };
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &wops, err, sizeof(err));

	cr_assert_not_null(w, "%s", err);
	memset(&wr, 0, sizeof(wr));
	wr.root = dir;
	fk_set(7, "seven\n");
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 7, 0));
	pthread_mutex_lock(&fk.mu);
	cr_assert_eq(wr.calls, 1);
	cr_assert_eq(wr.dev, 7);
	cr_assert_eq(wr.version, 1);
	cr_assert_eq(wr.n, 1);
	cr_assert_str_eq(wr.seen, "seven\n", "the file is whole in the root when told");
	cr_assert(wr.ref_held, "told before the reference is released");
	cr_assert_eq(fk.refs, 0, "released after");
	pthread_mutex_unlock(&fk.mu);
	/* a device gone when its job runs wrote nothing: not told */
	(void)tftpw_queue_dev(w, TFTPW_URGENT, 8, 0);
	tftpw_drain(w);
	cr_assert_eq(wr.calls, 1);
	tftpw_close(w);
	tu_rmtree(dir);
}

struct backlog_waiter {
	struct tftpw *w;
	bool done;
};

static void *
backlog_wait_thread(void *arg)
{
	struct backlog_waiter *b = arg;

	tftpw_wait_backlog(b->w, TFTPW_BULK, 10);
	pthread_mutex_lock(&fk.mu);
	b->done = true;
	pthread_mutex_unlock(&fk.mu);
	return NULL;
}

Test(tftpw, a_backlog_wait_returns_once_at_most_that_many_jobs_wait)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	struct backlog_waiter b = { w, false };
	pthread_t th;
	size_t n;
	bool done;

	cr_assert_not_null(w, "%s", err);
	for (int i = 1; i <= 40; i++)
		fk_set(i, "x\n");
	/* no backlog: returns at once */
	tftpw_wait_backlog(w, TFTPW_BULK, 10);
	pthread_mutex_lock(&fk.mu);
	fk.hold = true;
	pthread_mutex_unlock(&fk.mu);
	for (int i = 1; i <= 40; i++)
		(void)tftpw_queue_dev(w, TFTPW_BULK, i, 0);
	pthread_mutex_lock(&fk.mu);
	while (!fk.held)
		pthread_cond_wait(&fk.cv, &fk.mu);
	pthread_mutex_unlock(&fk.mu);
	cr_assert_eq(pthread_create(&th, NULL, backlog_wait_thread, &b), 0);
	usleep(100000);
	pthread_mutex_lock(&fk.mu);
	done = b.done;
	pthread_mutex_unlock(&fk.mu);
	cr_assert_not(done, "returned while 40 jobs waited");
	pthread_mutex_lock(&fk.mu);
	fk.hold = false;
	pthread_cond_broadcast(&fk.cv);
	pthread_mutex_unlock(&fk.mu);
	cr_assert_eq(pthread_join(th, NULL), 0);
	/* the jobs run in chunks: when it returned, at least 30 had run */
	pthread_mutex_lock(&fk.mu);
	n = fk.norder;
	pthread_mutex_unlock(&fk.mu);
	cr_assert_geq(n, 30, "returned after %zu jobs", n);
	tftpw_close(w);
	tu_rmtree(dir);
}

/* Watches the root while the writer rewrites a file: any regular file in
 * it with a mode other than 0644, or a name other than the device's, is
 * counted. */
static struct {
	const char *root;
	bool stop;
	size_t looks, bad;
	char what[300];
} watch;

static void *
watch_thread(void *arg)
{
	(void)arg;
	for (;;) {
		DIR *d;
		struct dirent *e;

		pthread_mutex_lock(&fk.mu);
		if (watch.stop) {
			pthread_mutex_unlock(&fk.mu);
			return NULL;
		}
		pthread_mutex_unlock(&fk.mu);
		if ((d = opendir(watch.root)) == NULL)
			continue;
		while ((e = readdir(d)) != NULL) {
			struct stat st;

			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
			    strcmp(e->d_name, FS_TMPDIR) == 0)
				continue;
			if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != 0644 ||
			    strcmp(e->d_name, "dev9.cfg") != 0) {
				pthread_mutex_lock(&fk.mu);
				watch.bad++;
				snprintf(watch.what, sizeof(watch.what), "%s %o", e->d_name,
				         (unsigned)st.st_mode);
				pthread_mutex_unlock(&fk.mu);
			}
		}
		closedir(d);
		pthread_mutex_lock(&fk.mu);
		watch.looks++;
		pthread_mutex_unlock(&fk.mu);
	}
}

Test(tftpw, only_whole_0644_files_show_in_the_root_whatever_the_umask)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w;
	pthread_t th;
	mode_t mode;
	char *s;

	cr_assert_not_null(dir);
	umask(077); /* an administrator's strict umask: files must still be 0644 */
	w = tftpw_open(dir, &ops, err, sizeof(err));
	cr_assert_not_null(w, "%s", err);
	memset(&watch, 0, sizeof(watch));
	watch.root = dir;
	cr_assert_eq(pthread_create(&th, NULL, watch_thread, NULL), 0);
	/* the watcher looking before the first write: 200 writes may take
	 * less than one of its looks */
	for (bool looked = false; !looked; usleep(100)) {
		pthread_mutex_lock(&fk.mu);
		looked = watch.looks > 0;
		pthread_mutex_unlock(&fk.mu);
	}
	for (int i = 0; i < 200; i++) { /* fk.order holds 256 */
		char t[32];

		snprintf(t, sizeof(t), "version %d\n", i);
		fk_set(9, t);
		tftpw_wait(w, i % 2 ? TFTPW_URGENT : TFTPW_BULK,
		           tftpw_queue_dev(w, i % 2 ? TFTPW_URGENT : TFTPW_BULK, 9, 0));
		s = slurp(dir, "dev9.cfg", &mode);
		cr_assert_str_eq(s, t);
		cr_assert_eq(mode, 0644, "mode %03o", (unsigned)mode);
		free(s);
	}
	pthread_mutex_lock(&fk.mu);
	watch.stop = true;
	pthread_mutex_unlock(&fk.mu);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_gt(watch.looks, 0);
	cr_assert_eq(watch.bad, 0, "seen in the root: %s", watch.what);
	cr_assert(tftpw_stop(w));
	tftpw_close(w);
	umask(022);
	tu_rmtree(dir);
}

/* Writes device dev's file n times over (n - 1 replaced files), each
 * waited for. */
static void
rewrite(struct tftpw *w, enum tftpw_queue q, int dev, int n)
{
	for (int i = 0; i < n; i++) {
		char t[32];

		snprintf(t, sizeof(t), "v%d\n", i);
		fk_set(dev, t);
		tftpw_wait(w, q, tftpw_queue_dev(w, q, dev, 0));
	}
}

/* Without a stop, the writer empties the replaced files when nothing is
 * due: they keep nothing of what they held, and at most 64 are kept as
 * spares, the others removed; a stop removes the spares (the polls only
 * bound the test, they measure nothing). */
Test(tftpw, replaced_files_are_emptied_into_spares_once_the_writer_is_idle)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	size_t left = 1, n = 0;
	uint64_t t = 0;

	cr_assert_not_null(w, "%s", err);
	rewrite(w, TFTPW_URGENT, 10, 40);
	for (int i = 0; i < 1000 && (n = temporaries2(dir, &left, NULL, 0), left > 0); i++)
		usleep(10000);
	cr_assert_eq(left, 0, "%zu replaced files still hold data in %s", left, FS_TMPDIR);
	cr_assert_gt(n, 0, "no spare kept");
	/* 16 devices of 4 files, then all again at once: one urgent chunk
	 * replaces 64 files (a bulk chunk, 8 devices, fewer; and fewer when
	 * the writer ran the first jobs alone: then again) */
	fk.nfiles = TFTPW_MAX_FILES;
	for (int dev = 21; dev <= 36; dev++)
		rewrite(w, TFTPW_URGENT, dev, 1);
	for (int round = 0; round < 10 && n < 64; round++) {
		for (int dev = 21; dev <= 36; dev++)
			t = tftpw_queue_dev(w, TFTPW_URGENT, dev, 0);
		tftpw_wait(w, TFTPW_URGENT, t);
		for (int i = 0; i < 1000 && (n = temporaries2(dir, &left, NULL, 0), left > 0); i++)
			usleep(10000);
		cr_assert_eq(left, 0, "%zu replaced files still hold data in %s", left,
		             FS_TMPDIR);
		cr_assert_leq(n, 64, "%zu spares kept, over 64", n);
	}
	cr_assert_eq(n, 64, "%zu spares kept, not 64", n);
	/* a stop leaves the root as a start does */
	cr_assert(tftpw_stop(w));
	cr_assert_eq(temporaries(dir), 0, "spares left after the stop");
	tftpw_close(w);
	tu_rmtree(dir);
}

/* A thread that says it runs its urgent jobs wakes no writer thread for
 * them; once it is done, the writer hears of what it left: an urgent job
 * it did not wait for is written, and the file its own job replaced is
 * emptied (the polls only bound the test). */
Test(tftpw, a_thread_that_runs_its_jobs_tells_the_writer_what_it_left_when_done)
{
	char *dir = tu_tmpdir(), err[256], *s = NULL;
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	size_t n = 0, full = 1;
	mode_t mode;

	cr_assert_not_null(w, "%s", err);
	fk_set(30, "first\n");
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 30, 0));
	usleep(50000); /* the writer is idle, waiting for nothing */
	tftpw_thread_waits(w);
	fk_set(30, "second\n");
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 30, 0));
	tftpw_thread_done(w);
	for (int i = 0; i < 1000 && (n = temporaries2(dir, &full, NULL, 0), full > 0); i++)
		usleep(10000);
	cr_assert(full == 0 && n == 1, "%zu temporaries, %zu holding data", n, full);

	usleep(50000);
	tftpw_thread_waits(w);
	fk_set(31, "not waited for\n");
	(void)tftpw_queue_dev(w, TFTPW_URGENT, 31, 0);
	tftpw_thread_done(w);
	for (int i = 0; i < 1000; i++) {
		free(s);
		s = slurp(dir, "dev31.cfg", &mode);
		if (s[0] != '\0')
			break;
		usleep(10000);
	}
	cr_assert_str_eq(s, "not waited for\n");
	free(s);
	tftpw_close(w);
	tu_rmtree(dir);
}

/* The urgent jobs of a thread that said it runs them itself wake no
 * writer; started (tftpw_start, a *30 move's, before its commit), the
 * writer writes them while that thread is elsewhere, and its wait then
 * finds them written. */
Test(tftpw, started_jobs_are_written_by_the_writer_while_their_thread_goes_on)
{
	char *dir = tu_tmpdir(), err[256], *s = NULL;
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	uint64_t t;
	mode_t mode;

	cr_assert_not_null(w, "%s", err);
	fk_set(39, "first\n");
	fk_set(40, "started\n");
	fk_set(41, "started too\n");
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 39, 0));
	usleep(50000); /* the writer is idle, waiting for nothing */
	tftpw_thread_waits(w);
	(void)tftpw_queue_dev(w, TFTPW_URGENT, 40, 0);
	t = tftpw_queue_dev(w, TFTPW_URGENT, 41, 0);
	usleep(50000);
	s = slurp(dir, "dev40.cfg", &mode);
	cr_assert_str_eq(s, "", "the writer was not told of the jobs");
	tftpw_start(w);
	for (int i = 0; i < 1000; i++) {
		free(s);
		s = slurp(dir, "dev41.cfg", &mode);
		if (s[0] != '\0')
			break;
		usleep(10000);
	}
	cr_assert_str_eq(s, "started too\n", "the writer wrote them, nobody waiting");
	free(s);
	s = slurp(dir, "dev40.cfg", &mode);
	cr_assert_str_eq(s, "started\n");
	free(s);
	tftpw_wait(w, TFTPW_URGENT, t); /* returns: they ran */
	tftpw_thread_done(w);
	cr_assert(tftpw_stop(w));
	tftpw_close(w);
	tu_rmtree(dir);
}

/* A file written once the writer keeps spares goes into a spare's inode,
 * whole and 0644, and that spare is gone from the temporaries. */
Test(tftpw, a_file_is_written_into_a_spare)
{
	char *dir = tu_tmpdir(), err[256], path[PATH_MAX], *s;
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	ino_t spares[64];
	size_t n = 0, left = 1, after;
	struct stat st;
	mode_t mode;
	bool reused = false;

	cr_assert_not_null(w, "%s", err);
	rewrite(w, TFTPW_URGENT, 20, 5);
	/* the file is emptied first, then kept: wait for both */
	for (int i = 0; i < 1000 && (n = temporaries2(dir, &left, spares, 64),
	                             left > 0 || tftpw_spares(w) == 0); i++)
		usleep(10000);
	/* each write went into the file the one before replaced: one left */
	cr_assert(left == 0 && n == 1, "%zu temporaries, %zu holding data", n, left);
	cr_assert_eq(tftpw_spares(w), 1);
	fk_set(21, "a new device\n");
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 21, 0));
	s = slurp(dir, "dev21.cfg", &mode);
	cr_assert_str_eq(s, "a new device\n");
	cr_assert_eq(mode, 0644);
	free(s);
	snprintf(path, sizeof(path), "%s/dev21.cfg", dir);
	cr_assert_eq(stat(path, &st), 0);
	for (size_t i = 0; i < n; i++)
		reused = reused || spares[i] == st.st_ino;
	cr_assert(reused, "a new inode, though %zu spares waited", n);
	after = temporaries(dir);
	cr_assert_eq(after, n - 1, "%zu temporaries after, %zu before", after, n);
	tftpw_close(w);
	tu_rmtree(dir);
}

/* Start-up's wait: when it returns, the files are in place and the
 * copies they replaced are gone (the daemon says it is ready then). */
Test(tftpw, a_drain_returns_with_the_replaced_files_removed)
{
	char *dir = tu_tmpdir(), err[256];
	struct tftpw *w = tftpw_open(dir, &ops, err, sizeof(err));
	char *s;
	mode_t mode;
	size_t full = 1;

	cr_assert_not_null(w, "%s", err);
	rewrite(w, TFTPW_BULK, 11, 40);
	fk_set(11, "last\n");
	(void)tftpw_queue_dev(w, TFTPW_BULK, 11, 0);
	tftpw_drain(w);
	s = slurp(dir, "dev11.cfg", &mode);
	cr_assert_str_eq(s, "last\n");
	free(s);
	/* (spares the writer made while idle between the rewrites may be
	 * there: empty) */
	(void)temporaries2(dir, &full, NULL, 0);
	cr_assert_eq(full, 0, "replaced files left in %s", FS_TMPDIR);
	tftpw_close(w);
	tu_rmtree(dir);
}

/* The older layout's temporaries (0644, in the root) are removed by the
 * writer as it starts, while jobs run; published files stay. */
Test(tftpw, the_older_layouts_temporaries_go_while_files_are_written)
{
	char *dir = tu_tmpdir(), err[256], path[PATH_MAX], *s;
	static const char *const legacy[] = { ".dev3.cfg.aB3xYz", ".SEP00082F000003.cnf.xml.Q9w8E7" };
	struct tftpw *w;
	struct stat st;
	mode_t mode = 0;
	FILE *f;

	cr_assert_not_null(dir);
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, legacy[i]);
		cr_assert_not_null(f = fopen(path, "w"));
		fputs("password=s3cret\n", f);
		fclose(f);
	}
	fk_set(1, "one\n");
	w = tftpw_open(dir, &ops, err, sizeof(err));
	cr_assert_not_null(w, "%s", err);
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 1, 0));
	cr_assert(tftpw_stop(w));
	tftpw_close(w); /* the writer thread has ended: its sweep too */
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, legacy[i]);
		cr_assert_neq(lstat(path, &st), 0, "%s is left", legacy[i]);
	}
	s = slurp(dir, "dev1.cfg", &mode);
	cr_assert_str_eq(s, "one\n");
	free(s);
	tu_rmtree(dir);
}

Test(tftpw, a_crash_leaves_only_private_temporaries_swept_at_the_next_open)
{
	char *dir = tu_tmpdir(), err[256], tdir[PATH_MAX];
	struct tftpw *w;
	struct stat st;
	pid_t pid;
	int status;

	cr_assert_not_null(dir);
	cr_assert_eq(chmod(dir, 0755), 0);
	/* a child writes and dies (no stop) with replaced files and
	 * temporaries waiting, some holding "passwords" */
	if ((pid = fork()) == 0) {
		w = tftpw_open(dir, &ops, err, sizeof(err));
		if (w == NULL)
			_exit(2);
		for (int i = 0; i < 20; i++) {
			char t[32];

			snprintf(t, sizeof(t), "password=%d\n", i);
			fk_set(11, t);
			tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 11, 0));
		}
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status), "the child died by its signal (%d)", status);
	snprintf(tdir, sizeof(tdir), "%s/%s", dir, FS_TMPDIR);
	cr_assert_eq(lstat(tdir, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0700, "what a crash leaves is private");
	cr_assert_eq(st.st_uid, geteuid());
	w = tftpw_open(dir, &ops, err, sizeof(err));
	cr_assert_not_null(w, "%s", err);
	cr_assert_eq(temporaries(dir), 0, "the next open sweeps them");
	tftpw_close(w);
	tu_rmtree(dir);
}
