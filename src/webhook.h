/*
 * webhook.h -- the move webhook: each SIP user whose location changed is
 * posted to the PBX ([pbx] move_webhook, docs/API.md "Move webhook").
 *
 * The service writes the events into the store's outbox (pbx_outbox) in
 * the transaction of the change; this module's thread delivers them one
 * at a time, oldest first, and deletes each once the PBX answered 2xx.  A
 * failed attempt is retried after a growing wait (webhook_backoff) and
 * blocks the rows behind it, so the PBX sees moves in commit order; a row
 * still undelivered [pbx] move_webhook_keep seconds after its change is
 * dropped (logged, counted).  Delivery is at least once: a PBX that
 * answered 2xx too late for the attempt's timeout gets the row again.
 *
 * A move never waits for the webhook: the service only writes the row,
 * and webhook_kick() (from the change hook) wakes the thread.
 */
#ifndef HD_WEBHOOK_H
#define HD_WEBHOOK_H

#include <stddef.h>

#include "store.h"

struct svc;

struct webhook_opts {
	const char *url;      /* http:// or https:// (copied) */
	const char *secret;   /* sent as "Authorization: Bearer" (copied, wiped at free) */
	const char *ca;       /* optional PEM bundle for https (copied) */
	int timeout_s;        /* per attempt, connection included */
	int retry_max_s;      /* longest wait between two attempts */
	int keep_s;           /* age after which an undelivered row is dropped */
	struct svc *svc;      /* borrowed: outlives the webhook */
};

struct webhook;

/* Starts the delivery thread.  NULL with err filled on failure. */
struct webhook *webhook_start(const struct webhook_opts *o, char *err, size_t errlen);
/* Wakes the thread: rows were committed.  Any thread, any lock held;
 * cannot fail; NULL-safe. */
void webhook_kick(struct webhook *wh);
/* Stops the thread (an attempt in flight is aborted; its row stays) and
 * frees everything.  NULL-safe. */
void webhook_stop(struct webhook *wh);

/* ---- pure parts (tests/test_webhook.c) ---------------------------------- */

/*
 * Seconds to wait after `failures` failed attempts in a row (>= 1): 1, 2,
 * 4, ... capped at retry_max_s.  Can't fail.
 */
long webhook_backoff(int failures, int retry_max_s);

/*
 * The request body of one row, application/x-www-form-urlencoded:
 * event=move&id=..&move=..&at=..&sip_user=..&device=..&contact=..&cause=..
 * Returns a malloc'd NUL-terminated string (caller frees) with its length
 * in *len, or NULL when out of memory.
 */
char *webhook_body(const struct store_pbxout *r, size_t *len);

#endif
