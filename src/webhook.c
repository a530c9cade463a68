/*
 * webhook.c -- the move webhook's delivery thread (libcurl) and its pure
 * parts (backoff, body).  See webhook.h for the contract.
 *
 * Threads and locks: one thread of its own.  wh->mu guards `kicked` and
 * `stopping` only and is never held while the thread talks to the PBX or
 * to the store; the store is reached through svc_locked() (the service
 * lock), for one short statement at a time.  webhook_kick() may be called
 * with the service lock held (from the change hook): it takes wh->mu
 * alone, so the only order is service lock -> wh->mu, never the reverse
 * (lockorder.h: LOCK_WEBHOOK, a leaf).
 *
 * State of the row at the head of the outbox (the thread's own memory):
 *   failures == 0              deliver now
 *   failures  > 0, now < next  wait (a kick does not cut the wait short)
 *   2xx                        row deleted, failures = 0, next row
 *   other answer or no answer  failures++, next = now + webhook_backoff()
 *   older than keep_s          row deleted as dropped, failures = 0
 * The retry state is not stored: after a restart the head row is tried
 * at once.
 *
 * The secret travels only in the Authorization header of the request; it
 * is never logged and wiped when the webhook stops.
 */
#include "webhook.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "errbuf.h"
#include "form.h"
#include "log.h"
#include "metrics.h"
#include "service.h"
#include "lockorder.h"

struct webhook {
	char *url, *auth, *ca; /* auth: "Authorization: Bearer <secret>" */
	int timeout_s, retry_max_s, keep_s;
	struct svc *svc;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool kicked;             /* under mu: rows may have been added */
	atomic_bool stopping;    /* read by libcurl's progress callback too */
};

/* ---- pure parts ---------------------------------------------------------- */

long
webhook_backoff(int failures, int retry_max_s)
{
	long w = 1;

	for (int i = 1; i < failures && w < retry_max_s; i++)
		w *= 2;
	return w < retry_max_s ? w : retry_max_s;
}

char *
webhook_body(const struct store_pbxout *r, size_t *len)
{
	struct form_out o = FORM_OUT_INIT;
	char id[24], move[24], at[24];

	snprintf(id, sizeof(id), "%lld", r->id);       /* 20 digits at most: fits */
	snprintf(move, sizeof(move), "%lld", r->move);
	snprintf(at, sizeof(at), "%lld", r->at);
	form_out_add(&o, "event", "move");
	form_out_add(&o, "id", id);
	form_out_add(&o, "move", move);
	form_out_add(&o, "at", at);
	form_out_add(&o, "sip_user", r->sip_user);
	form_out_add(&o, "device", r->device);
	form_out_add(&o, "contact", r->contact);
	form_out_add(&o, "cause", r->cause);
	return form_out_finish(&o, len);
}

/* ---- the store, under the service lock ------------------------------------ */

struct head {
	struct store_pbxout row;
	int found;          /* 1, 0 or < 0 */
	long long id;       /* row to delete */
	long long backlog;  /* rows waiting after the operation, or < 0 */
};

static int
head_read(const struct world *w, struct store *st, void *arg)
{
	struct head *h = arg;

	(void)w;
	h->found = store_pbxout_first(st, &h->row);
	h->backlog = store_pbxout_count(st);
	return h->found < 0 ? -1 : 0;
}

static int
head_delete(const struct world *w, struct store *st, void *arg)
{
	struct head *h = arg;

	(void)w;
	if (store_pbxout_delete(st, h->id) != 0)
		return -1;
	h->backlog = store_pbxout_count(st);
	return 0;
}

static void
backlog_set(long long n)
{
	if (n >= 0)
		metrics_gauge_set(METRICS_WEBHOOK_BACKLOG, (double)n);
}

/* ---- one attempt ----------------------------------------------------------- */

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* libcurl's progress callback: a stop aborts the attempt in flight. */
static int
abort_on_stop(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct webhook *wh = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	return atomic_load(&wh->stopping) ? 1 : 0;
}

/* POSTs row r.  Returns the HTTP status, or 0 with why filled when no
 * answer came. */
static long
post(struct webhook *wh, const struct store_pbxout *r, char *why, size_t whylen)
{
	struct curl_slist *hdrs = NULL, *h;
	char ebuf[CURL_ERROR_SIZE] = "";
	size_t len;
	char *body = webhook_body(r, &len);
	CURL *c = curl_easy_init();
	long status = 0;
	CURLcode rc;

	if (body == NULL || c == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	/* appending to a list returns its head, or NULL leaving it whole */
	if ((hdrs = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded")) ==
	        NULL || curl_slist_append(hdrs, wh->auth) == NULL ||
	    curl_slist_append(hdrs, "Expect:") == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, wh->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never the environment's proxy */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)wh->timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)wh->timeout_s);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, wh);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	if (wh->ca != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, wh->ca);
	if ((rc = curl_easy_perform(c)) != CURLE_OK)
		snprintf(why, whylen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
out:
	if (c != NULL)
		curl_easy_cleanup(c);
	for (h = hdrs; h != NULL; h = h->next) /* libcurl's copy of the secret */
		sodium_memzero(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	free(body);
	return status;
}

/* ---- the thread ------------------------------------------------------------ */

/* Waits until kicked, stopped or `until` (CLOCK_MONOTONIC seconds; 0 =
 * until kicked).  A kick ends the wait only when `kick_ends`. */
static void
wait_until(struct webhook *wh, time_t until, bool kick_ends)
{
	struct timespec ts;

	pthread_mutex_lock(&wh->mu);
	for (;;) {
		if (atomic_load(&wh->stopping) || (kick_ends && wh->kicked))
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (until != 0 && ts.tv_sec >= until)
			break;
		ts.tv_sec = until != 0 ? until : ts.tv_sec + 30;
		ts.tv_nsec = 0;
		if (pthread_cond_timedwait(&wh->cv, &wh->mu, &ts) == ETIMEDOUT && until == 0)
			break; /* look at the outbox again now and then */
	}
	if (kick_ends)
		wh->kicked = false;
	pthread_mutex_unlock(&wh->mu);
}

static time_t
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void *
deliver_main(void *arg)
{
	struct webhook *wh = arg;
	struct head h;
	int failures = 0;
	char why[CURL_ERROR_SIZE + 32];
	long status;

	while (!atomic_load(&wh->stopping)) {
		memset(&h, 0, sizeof(h));
		if (svc_locked(wh->svc, head_read, &h) != 0) {
			log_error("move webhook: cannot read the outbox; trying again in %d s",
			          wh->retry_max_s);
			wait_until(wh, mono_s() + wh->retry_max_s, false);
			continue;
		}
		backlog_set(h.backlog);
		if (h.found == 0) {
			wait_until(wh, 0, true);
			continue;
		}
		h.id = h.row.id;
		if ((long long)time(NULL) - h.row.at > wh->keep_s) {
			log_warn("move webhook: gave up on event %lld (move %lld of %s) after %d "
			         "attempts in %d s", h.row.id, h.row.move, h.row.sip_user, failures,
			         wh->keep_s);
			metrics_inc(METRICS_WEBHOOK_DROPPED, 1);
		} else {
			why[0] = '\0';
			status = post(wh, &h.row, why, sizeof(why));
			if (atomic_load(&wh->stopping))
				break; /* the row stays for the next start */
			if (status < 200 || status > 299) {
				failures++;
				metrics_inc(METRICS_WEBHOOK_FAILED, 1);
				if (status != 0)
					snprintf(why, sizeof(why), "HTTP %ld", status);
				log_warn("move webhook: event %lld not delivered (%s); attempt %d, next "
				         "in %ld s", h.row.id, why, failures,
				         webhook_backoff(failures, wh->retry_max_s));
				wait_until(wh, mono_s() + webhook_backoff(failures, wh->retry_max_s),
				           false);
				continue;
			}
			metrics_inc(METRICS_WEBHOOK_DELIVERED, 1);
			log_debug("move webhook: event %lld delivered (HTTP %ld)", h.row.id, status);
		}
		failures = 0;
		if (svc_locked(wh->svc, head_delete, &h) != 0) {
			log_error("move webhook: cannot delete event %lld from the outbox", h.id);
			wait_until(wh, mono_s() + wh->retry_max_s, false);
			continue;
		}
		backlog_set(h.backlog);
	}
	return NULL;
}

/* ---- life cycle -------------------------------------------------------------- */

static void
free_all(struct webhook *wh)
{
	if (wh->auth != NULL)
		sodium_memzero(wh->auth, strlen(wh->auth));
	free(wh->auth);
	free(wh->url);
	free(wh->ca);
	pthread_mutex_destroy(&wh->mu);
	pthread_cond_destroy(&wh->cv);
	free(wh);
}

struct webhook *
webhook_start(const struct webhook_opts *o, char *err, size_t errlen)
{
	struct webhook *wh = calloc(1, sizeof(*wh));
	pthread_condattr_t ca;
	size_t alen;

	if (wh == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&wh->mu, NULL);
	lockorder_register(&wh->mu, LOCK_WEBHOOK, "move webhook");
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wh->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&wh->stopping, false);
	wh->timeout_s = o->timeout_s;
	wh->retry_max_s = o->retry_max_s;
	wh->keep_s = o->keep_s;
	wh->svc = o->svc;
	alen = strlen("Authorization: Bearer ") + strlen(o->secret) + 1;
	wh->url = strdup(o->url);
	wh->ca = o->ca != NULL ? strdup(o->ca) : NULL;
	if ((wh->auth = malloc(alen)) != NULL)
		snprintf(wh->auth, alen, "Authorization: Bearer %s", o->secret); /* sized: fits */
	if (wh->url == NULL || wh->auth == NULL || (o->ca != NULL && wh->ca == NULL)) {
		hd_seterr(err, errlen, "out of memory");
		free_all(wh);
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		hd_seterr(err, errlen, "move webhook: libcurl did not initialize");
		free_all(wh);
		return NULL;
	}
	if (pthread_create(&wh->th, NULL, deliver_main, wh) != 0) {
		hd_seterr(err, errlen, "move webhook: cannot start its thread");
		curl_global_cleanup();
		free_all(wh);
		return NULL;
	}
	return wh;
}

void
webhook_kick(struct webhook *wh)
{
	if (wh == NULL)
		return;
	pthread_mutex_lock(&wh->mu);
	wh->kicked = true;
	pthread_cond_signal(&wh->cv);
	pthread_mutex_unlock(&wh->mu);
}

void
webhook_stop(struct webhook *wh)
{
	if (wh == NULL)
		return;
	pthread_mutex_lock(&wh->mu);
	atomic_store(&wh->stopping, true);
	pthread_cond_signal(&wh->cv);
	pthread_mutex_unlock(&wh->mu);
	pthread_join(wh->th, NULL);
	curl_global_cleanup();
	free_all(wh);
}
