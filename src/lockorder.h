/*
 * lockorder.h -- the one total order of hotdeskd's locks, checked in debug
 * builds (docs/ARCHITECTURE.md, "Threads and locks").
 *
 * Every long-lived lock has a rank below.  A thread may take a lock only
 * while every lock it holds has a lower rank (so two threads can never
 * wait for each other in a cycle).  Built with -DHD_LOCK_ORDER (the
 * sanitizer build, `make asan`), the files that include this header after
 * their lock is registered (lockorder_register) get pthread_mutex_lock,
 * pthread_rwlock_rdlock/wrlock, pthread_cond_wait/timedwait, their unlocks
 * and trylocks replaced by checking versions: taking a lock out of order
 * prints both locks' names and aborts.  Locks not registered are not
 * checked.  Without HD_LOCK_ORDER every function here is an empty inline
 * and the pthread calls are the library's: zero cost.
 *
 * Include it after the system headers; it includes <pthread.h> itself.
 */
#ifndef HD_LOCKORDER_H
#define HD_LOCKORDER_H

#include <pthread.h>
#include <stddef.h>

/* Ranks, lowest (taken first, outermost) to highest (innermost). */
enum lockorder_rank {
	LOCK_VC = 10,          /* vc.c: the call queues of the Virtualization Center */
	LOCK_TMPL_SAVE = 15,   /* api_tmpl.c: one template save at a time */
	LOCK_CKPT = 17,        /* service.c: the checkpoint connection */
	LOCK_SERVICE = 20,     /* service.c: the service lock (world, store, hooks) */
	LOCK_TFTPW_RUN = 25,   /* tftpw.c: the thread running TFTP writes (run_mu) */
	LOCK_PUB = 30,         /* publish.c: the published files (rwlock) */
	LOCK_PUB_SHARED = 40,  /* publish.c: the shared-file cache and the templates */
	LOCK_PUB_FETCH = 50,   /* publish.c: the last fetch of each device */
	LOCK_RESYNC = 60,      /* resync_engine.c: the engine's queues and settings */
	LOCK_RESYNC_SEND = 62, /* resync_engine.c: the NOTIFY sender (transactions, results) */
	LOCK_TFTPW = 65,       /* tftpw.c: the TFTP writer's queues (mu) */
	LOCK_SLAB = 70,        /* slab.c: the size classes of published files */
	LOCK_CFG = 80,         /* main.c: the configuration pointer in force */
	LOCK_MTLS = 90,        /* mtls.c: the client CA bundles in force */
	LOCK_HTTP_TLS = 100,   /* http.c: the certificate in force */
	LOCK_HTTP_CONNS = 110, /* http.c: the connection list of a server */
	LOCK_THROTTLE = 120,   /* throttle.c: the miss counters */
	LOCK_SESSION = 130,    /* session.c: the web sessions */
	LOCK_DIGEST = 140,     /* digest.c: a bucket of the nonce table (one rank for all) */
	LOCK_SECRET = 150,     /* secret.c: the dummy hash of unknown users */
	LOCK_SECRET_GATE = 155, /* secret.c: the count of Argon2id computations */
	LOCK_WEBHOOK = 160,    /* webhook.c: the move webhook's flags */
	LOCK_DEMAND = 165,     /* demand.c: jobs waiting for the moves under way */
};

#ifdef HD_LOCK_ORDER

/* lock: a pthread_mutex_t or pthread_rwlock_t, initialized; name: a
 * string literal for messages.  Register after init, forget before destroy
 * (the destroy wrappers forget by themselves). */
void lockorder_register(const void *lock, enum lockorder_rank rank, const char *name);
/* n locks of one rank, stride bytes apart from first on (an array, or a
 * member of an array of structs): one entry, so that thousands cost one.
 * Two of them are never held at once (equal ranks do not nest).  Forgotten
 * with first (lockorder_forget(first), or destroying the first). */
void lockorder_register_array(const void *first, size_t n, size_t stride,
                              enum lockorder_rank rank, const char *name);
void lockorder_forget(const void *lock);

int lockorder_mutex_lock(pthread_mutex_t *m);
int lockorder_mutex_trylock(pthread_mutex_t *m);
int lockorder_mutex_timedlock(pthread_mutex_t *m, const struct timespec *t);
int lockorder_mutex_unlock(pthread_mutex_t *m);
int lockorder_mutex_destroy(pthread_mutex_t *m);
int lockorder_rwlock_rdlock(pthread_rwlock_t *l);
int lockorder_rwlock_wrlock(pthread_rwlock_t *l);
int lockorder_rwlock_unlock(pthread_rwlock_t *l);
int lockorder_rwlock_destroy(pthread_rwlock_t *l);
int lockorder_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int lockorder_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t);

#ifndef LOCKORDER_IMPL
#define pthread_mutex_lock(m) lockorder_mutex_lock(m)
#define pthread_mutex_trylock(m) lockorder_mutex_trylock(m)
#define pthread_mutex_timedlock(m, t) lockorder_mutex_timedlock(m, t)
#define pthread_mutex_unlock(m) lockorder_mutex_unlock(m)
#define pthread_mutex_destroy(m) lockorder_mutex_destroy(m)
#define pthread_rwlock_rdlock(l) lockorder_rwlock_rdlock(l)
#define pthread_rwlock_wrlock(l) lockorder_rwlock_wrlock(l)
#define pthread_rwlock_unlock(l) lockorder_rwlock_unlock(l)
#define pthread_rwlock_destroy(l) lockorder_rwlock_destroy(l)
#define pthread_cond_wait(c, m) lockorder_cond_wait(c, m)
#define pthread_cond_timedwait(c, m, t) lockorder_cond_timedwait(c, m, t)
#endif

#else /* release: nothing checked, nothing spent */

static inline void
lockorder_register(const void *lock, enum lockorder_rank rank, const char *name)
{
	(void)lock;
	(void)rank;
	(void)name;
}

static inline void
lockorder_register_array(const void *first, size_t n, size_t stride, enum lockorder_rank rank,
                         const char *name)
{
	(void)first;
	(void)n;
	(void)stride;
	(void)rank;
	(void)name;
}

static inline void
lockorder_forget(const void *lock)
{
	(void)lock;
}

#endif /* HD_LOCK_ORDER */

#endif /* HD_LOCKORDER_H */
