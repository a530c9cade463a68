/*
 * test_lockorder.c -- the lock-order checker (lockorder.h).  Built with
 * -DHD_LOCK_ORDER (make asan): nesting in rank order passes, taking a lock
 * of a lower or equal rank while holding one aborts, a condition wait
 * gives its mutex up and takes it back, unregistered locks are not
 * checked, an array of locks shares one rank and its members do not nest.
 * The TFTP writer's two locks and the digest buckets are ranked: taken
 * where the order allows they pass, taken out of it they abort.  Built
 * without it (make test): the same calls are the library's, in any order.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "digest.h"
#include "sip.h"
#include "testutil.h"
#include "tftpw.h"
#include "lockorder.h"

static pthread_mutex_t outer = PTHREAD_MUTEX_INITIALIZER; /* LOCK_SERVICE */
static pthread_rwlock_t middle = PTHREAD_RWLOCK_INITIALIZER; /* LOCK_PUB */
static pthread_mutex_t inner = PTHREAD_MUTEX_INITIALIZER; /* LOCK_RESYNC */
static pthread_mutex_t twin = PTHREAD_MUTEX_INITIALIZER;  /* LOCK_RESYNC too */
static pthread_mutex_t plain = PTHREAD_MUTEX_INITIALIZER; /* not registered */
static pthread_mutex_t leaf = PTHREAD_MUTEX_INITIALIZER;  /* LOCK_SLAB */
static pthread_mutex_t last = PTHREAD_MUTEX_INITIALIZER;  /* LOCK_SECRET */
static pthread_mutex_t arr[4] = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
	                          PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER };

static void
rank_all(void)
{
	lockorder_register(&outer, LOCK_SERVICE, "test outer");
	lockorder_register(&middle, LOCK_PUB, "test middle");
	lockorder_register(&inner, LOCK_RESYNC, "test inner");
	lockorder_register(&twin, LOCK_RESYNC, "test twin");
	lockorder_register(&leaf, LOCK_SLAB, "test leaf");
	lockorder_register(&last, LOCK_SECRET, "test last");
	lockorder_register_array(&arr[0], 4, sizeof(arr[0]), LOCK_RESYNC, "test array");
}

/* ---- the TFTP writer: its jobs read a device's files through ops ---------- */

static pthread_mutex_t *files_takes; /* what ops.files locks, NULL: nothing */
static bool files_rw;                /* ... read-locking `middle` instead */
static int files_calls;

static int
t_files(void *arg, hd_id dev, struct tftpw_file *files, unsigned long long *version)
{
	static const char data[] = "x";

	(void)arg;
	if (files_rw) {
		cr_assert_eq(pthread_rwlock_rdlock(&middle), 0);
		cr_assert_eq(pthread_rwlock_unlock(&middle), 0);
	} else if (files_takes != NULL) {
		cr_assert_eq(pthread_mutex_lock(files_takes), 0);
		cr_assert_eq(pthread_mutex_unlock(files_takes), 0);
	}
	__atomic_add_fetch(&files_calls, 1, __ATOMIC_SEQ_CST);
	snprintf(files[0].name, sizeof(files[0].name), "dev%lld.cfg", (long long)dev);
	files[0].data = data;
	files[0].len = 1;
	files[0].ref = NULL;
	*version = 1;
	return 1;
}

static void
t_release(void *ref)
{
	(void)ref;
}

static bool
t_owned(void *arg, const char *name)
{
	(void)arg;
	(void)name;
	return false;
}

static char *writer_root;

static struct tftpw *
writer_open(void)
{
	struct tftpw_ops ops = { t_files, t_release, t_owned, NULL, NULL };
	char err[256];
	struct tftpw *w;

	writer_root = tu_tmpdir();
	cr_assert_not_null(writer_root);
	w = tftpw_open(writer_root, &ops, err, sizeof(err));
	cr_assert_not_null(w, "%s", err);
	return w;
}

static void
writer_close_root(void)
{
	tu_rmtree(writer_root);
	writer_root = NULL;
}

static void
writer_close(struct tftpw *w)
{
	tftpw_close(w);
	writer_close_root();
}

/* Queues one device under the service lock, as the change hook does, and
 * waits for it (the job runs here or in the writer thread). */
static void
writer_round(struct tftpw *w)
{
	uint64_t t;

	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	t = tftpw_queue_dev(w, TFTPW_URGENT, 7, 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
	cr_assert_neq(t, 0);
	tftpw_wait(w, TFTPW_URGENT, t);
}

Test(lockorder, the_tftp_writer_runs_in_order)
{
	struct tftpw *w = writer_open();

	/* its jobs read the files under the publisher's read lock */
	files_rw = true;
	writer_round(w);
	files_rw = false;
	files_takes = &leaf; /* and free blobs under the slab's */
	writer_round(w);
	cr_assert_eq(__atomic_load_n(&files_calls, __ATOMIC_SEQ_CST), 2);
	writer_close(w);
}

/* ---- digest buckets ----------------------------------------------------------- */

/* Checks a right answer for a fresh nonce (its count is recorded in a
 * bucket of t). */
static enum digest_result
digest_round(struct digest_seen *t)
{
	static const unsigned char key[DIGEST_KEY_LEN] = "0123456789abcdef0123456789abcdef";
	const char *uri = "/provision/0004f2aabbcc-line.cfg";
	char nonce[DIGEST_NONCE_LEN], resp[65], hdr[512];
	struct digest_auth a;

	digest_nonce(key, uri, 1000, nonce);
	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, "phone", "hotdeskd", "pw", "GET", uri,
	                                 nonce, "auth", "00000001", "c0ffee", resp, sizeof(resp)),
	             0);
	snprintf(hdr, sizeof(hdr), "Digest username=\"phone\", realm=\"hotdeskd\", "
	         "nonce=\"%s\", uri=\"%s\", response=\"%s\", qop=auth, nc=00000001, "
	         "cnonce=\"c0ffee\"", nonce, uri, resp);
	cr_assert_eq(digest_parse(hdr, &a), 0);
	return digest_check(&a, key, t, "hotdeskd", "phone", "pw", "GET", uri, 1000, 300);
}

Test(lockorder, digest_buckets_are_taken_under_the_http_locks)
{
	struct digest_seen *t = digest_seen_new(1024);

	cr_assert_not_null(t);
	cr_assert_eq(pthread_mutex_lock(&leaf), 0);
	cr_assert_eq(digest_round(t), DIGEST_OK);
	cr_assert_eq(pthread_mutex_unlock(&leaf), 0);
	digest_seen_free(t);
}

TestSuite(lockorder, .init = rank_all);

Test(lockorder, nesting_in_rank_order_passes)
{
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(pthread_mutex_lock(&outer), 0);
		cr_assert_eq(pthread_rwlock_rdlock(&middle), 0);
		cr_assert_eq(pthread_mutex_lock(&inner), 0);
		cr_assert_eq(pthread_mutex_lock(&plain), 0);
		cr_assert_eq(pthread_mutex_unlock(&plain), 0);
		cr_assert_eq(pthread_mutex_unlock(&inner), 0);
		cr_assert_eq(pthread_rwlock_unlock(&middle), 0);
		cr_assert_eq(pthread_mutex_unlock(&outer), 0);
	}
	/* released out of order, then taken again from the outside */
	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	cr_assert_eq(pthread_rwlock_wrlock(&middle), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
	cr_assert_eq(pthread_rwlock_unlock(&middle), 0);
	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
}

Test(lockorder, a_condition_wait_gives_its_mutex_up)
{
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	struct timespec t;

	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	cr_assert_eq(pthread_mutex_lock(&inner), 0);
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_nsec += 1000000; /* 1 ms */
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	cr_assert_neq(pthread_cond_timedwait(&c, &inner, &t), 0, "nobody signals");
	cr_assert_eq(pthread_mutex_unlock(&inner), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
	/* the thread holds nothing now: outer is free to take */
	cr_assert_eq(pthread_mutex_trylock(&outer), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
}

#ifdef HD_LOCK_ORDER

Test(lockorder, a_lower_rank_under_a_higher_one_aborts, .signal = SIGABRT)
{
	pthread_mutex_lock(&inner);
	pthread_mutex_lock(&outer); /* resync, then service: never */
}

Test(lockorder, a_rwlock_under_a_higher_rank_aborts, .signal = SIGABRT)
{
	pthread_mutex_lock(&inner);
	pthread_rwlock_rdlock(&middle);
}

Test(lockorder, two_locks_of_one_rank_do_not_nest, .signal = SIGABRT)
{
	pthread_mutex_lock(&inner);
	pthread_mutex_lock(&twin);
}

Test(lockorder, an_array_shares_one_rank)
{
	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	cr_assert_eq(pthread_mutex_lock(&arr[2]), 0);
	cr_assert_eq(pthread_mutex_lock(&leaf), 0);
	cr_assert_eq(pthread_mutex_unlock(&leaf), 0);
	cr_assert_eq(pthread_mutex_unlock(&arr[2]), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
}

Test(lockorder, two_members_of_an_array_do_not_nest, .signal = SIGABRT)
{
	pthread_mutex_lock(&arr[1]);
	pthread_mutex_lock(&arr[3]);
}

Test(lockorder, an_array_member_under_a_higher_rank_aborts, .signal = SIGABRT)
{
	pthread_mutex_lock(&leaf);
	pthread_mutex_lock(&arr[0]);
}

Test(lockorder, the_tftp_writer_queues_under_a_leaf_abort, .signal = SIGABRT)
{
	struct tftpw *w = writer_open();

	writer_close_root(); /* the abort comes before any write */
	pthread_mutex_lock(&leaf); /* LOCK_SLAB is after LOCK_TFTPW */
	(void)tftpw_queue_dev(w, TFTPW_URGENT, 7, 0);
}

Test(lockorder, the_service_lock_under_a_tftp_job_aborts, .signal = SIGABRT)
{
	struct tftpw *w = writer_open();

	writer_close_root(); /* the abort comes before any write */
	files_takes = &outer; /* a job runs with run_mu held: the service lock
	                       * comes before it */
	tftpw_wait(w, TFTPW_URGENT, tftpw_queue_dev(w, TFTPW_URGENT, 7, 0));
}

Test(lockorder, a_digest_bucket_under_a_later_rank_aborts, .signal = SIGABRT)
{
	struct digest_seen *t = digest_seen_new(1024);

	cr_assert_not_null(t);
	pthread_mutex_lock(&last); /* LOCK_SECRET is after LOCK_DIGEST */
	(void)digest_round(t);
}

Test(lockorder, a_forgotten_lock_is_not_checked)
{
	pthread_mutex_t m;

	pthread_mutex_init(&m, NULL);
	lockorder_register(&m, LOCK_SERVICE, "test forgotten");
	cr_assert_eq(pthread_mutex_destroy(&m), 0); /* forgets it */
	pthread_mutex_init(&m, NULL);
	cr_assert_eq(pthread_mutex_lock(&inner), 0);
	cr_assert_eq(pthread_mutex_lock(&m), 0);
	cr_assert_eq(pthread_mutex_unlock(&m), 0);
	cr_assert_eq(pthread_mutex_unlock(&inner), 0);
	pthread_mutex_destroy(&m);
}

#else

Test(lockorder, release_builds_check_nothing)
{
	/* the wrong order works (and costs nothing) without HD_LOCK_ORDER */
	cr_assert_eq(pthread_mutex_lock(&inner), 0);
	cr_assert_eq(pthread_mutex_lock(&outer), 0);
	cr_assert_eq(pthread_mutex_unlock(&outer), 0);
	cr_assert_eq(pthread_mutex_unlock(&inner), 0);
}

#endif
