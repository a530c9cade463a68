/*
 * resync_engine.h -- the resync engine: one thread that carries out the
 * rules of resync.h (NOTIFY, confirm, retry, give up) with a struct
 * notify, the service's hooks that feed it, and the views of the store
 * the admin API and monitoring read (SPEC 5).
 *
 * Threads and locks (docs/ARCHITECTURE.md, "Threads and locks"): the
 * hooks run under the service lock; resync_on_fetch takes only the
 * engine's own mutex; the engine thread takes the service lock through
 * svc_transact for short batches of store work (a scan, a round of
 * results: each one transaction), never while sending.
 */
#ifndef HD_RESYNC_ENGINE_H
#define HD_RESYNC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "resync.h"

struct hd_config;
struct pub;
struct store;
struct svc;

/* The device's "sync" object for the admin API, built under the service
 * lock (the caller's svc_locked): {"state", "version", "fetched_version",
 * "attempts", "last_result", "last_at", "target"}; state "none" when no
 * resync was ever queued and the phone has not fetched its current
 * version.  pub may be NULL.  Reads the wall clock (expired contacts).
 * Returns a new reference, or NULL when out of memory or the store fails. */
json_t *resync_sync_json(const struct world *w, struct store *st, struct pub *pub,
                         const struct hd_dev *d);

/* ---- the engine ------------------------------------------------------- */

struct resync;

/*
 * Creates the engine: its NOTIFY socket bound to [sip] bind (outbound
 * proxy, timers and per-profile events from cfg, which is not kept), makes
 * every pending or notified row due now (a restart sends what a crash
 * left), installs the registration hook on svc and starts the thread.
 * Call after the publisher reconciled.  Returns NULL with err on failure.
 * Free with resync_free before svc and pub.
 */
struct resync *resync_new(const struct hd_config *cfg, struct svc *svc, struct pub *pub,
                          char *err, size_t errlen);
/* Stops the thread (NOTIFYs in flight are abandoned: their rows stay
 * notified and are sent again after a restart) and frees.  NULL-safe. */
void resync_free(struct resync *r);

/* Applies the reloadable keys (sync_timeout, sync_retries, [notify]). */
void resync_reconfigure(struct resync *r, const struct hd_config *cfg);

/*
 * From the service's change hook, after the publisher rendered devs (lock
 * held, in the hook's transaction; st NULL: nothing recorded): fills the version each new pending row must
 * confirm, settles rows whose content did not change and that the phone
 * already has (not when why is "resync": an administrator asked).
 * changed: the devices whose content changed; flags: the change's
 * SVC_CHANGE_* (SVC_CHANGE_BULK: its NOTIFYs are paced, docs/RESYNC.md;
 * SVC_CHANGE_OUTBOX: it writes each device's outbox row, once, with the
 * version).  0, or -1 when SVC_CHANGE_OUTBOX and a row could not be
 * written (the change then rolls back).
 */
int resync_note(struct resync *r, const struct world *w, struct store *st, const hd_id *devs,
                 size_t n, const struct hd_idset *changed, const char *why, unsigned flags);
/* Wakes the thread to act on what was noted: once the service lock is
 * released (woken under it, the thread would wait for the lock, or take
 * the CPU from the thread that holds it).  On a thread that said it sends
 * (resync_send_ahead), after a locked part that staged first NOTIFYs:
 * left to its resync_send_ready. */
void resync_wake(struct resync *r);
/* The calling thread will call resync_send_ready once its request's
 * changes are committed and their files in place (no lock held). */
void resync_send_ahead(struct resync *r);
/* Sends the first NOTIFYs of the small changes committed so far (a *30
 * move's), once each phone's files are in the TFTP root, from the calling
 * thread: the thread that committed a change calls it after pub_settle,
 * so that those NOTIFYs wait neither for the engine thread nor for a
 * store write it may be in.  The engine sends those nobody sent a few
 * milliseconds after their commit.  No lock held.  NULL-safe. */
void resync_send_ready(struct resync *r);

/* api_ctx.on_fetch (arg: the struct resync): a device fetched its
 * configuration `version`.  Cheap (an in-memory check); the thread then
 * records the fetch (its source from pub_fetch_info) in device_fetch when
 * the version is new, and confirms the resync.  Any thread. */
void resync_on_fetch(void *arg, long long dev, unsigned long long version, const char *source,
                     const char *user_agent);


/* Devices by resync state, for monitoring: counts[RESYNC_COUNT_NONE..STALE]
 * (none = a device without a row: never queued), read without holding
 * the service lock while the rows are counted (svc_resync_counts: at
 * 1,000,000 devices the count takes a few hundred milliseconds).  Not
 * under the service lock.  0, or -1 when the store fails. */
enum { RESYNC_COUNT_NONE, RESYNC_COUNT_PENDING, RESYNC_COUNT_NOTIFIED, RESYNC_COUNT_SYNCED,
       RESYNC_COUNT_STALE, RESYNC_COUNT_N };
int resync_state_counts(struct svc *s, size_t counts[RESYNC_COUNT_N]);

/* Whether the engine thread went round its loop in the last max_age_ms
 * (it wakes at least every 5 s): /healthz.  Any thread. */
bool resync_alive(struct resync *r, long long max_age_ms);

#endif /* HD_RESYNC_ENGINE_H */
