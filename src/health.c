/*
 * health.c -- the /healthz handler (what it checks: health.h).
 *
 * Owns its copy of the TFTP root path (a reload never leaves it dangling)
 * and nothing else; the checks are asked of the store (through the
 * service lock), the file system and the resync engine.
 */
#include "health.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "api.h"
#include "fsutil.h"
#include "log.h"
#include "resync_engine.h"
#include "service.h"
#include "store.h"

#define HEALTH_RESYNC_MAX_AGE_MS 30000 /* the engine wakes at least every 5 s */

struct health {
	struct svc *svc;
	struct resync *resync;
	char *tftp_root;
};

struct health *
health_new(struct svc *svc, struct resync *resync, const char *tftp_root)
{
	struct health *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->svc = svc;
	h->resync = resync;
	if (tftp_root != NULL && (h->tftp_root = strdup(tftp_root)) == NULL) {
		free(h);
		return NULL;
	}
	return h;
}

void
health_free(struct health *h)
{
	if (h == NULL)
		return;
	free(h->tftp_root);
	free(h);
}

static int
store_probe(const struct world *w, struct store *st, void *arg)
{
	char now[32];

	(void)w;
	(void)arg;
	(void)snprintf(now, sizeof(now), "%lld", (long long)time(NULL)); /* fits */
	if (store_meta_put(st, "healthz.probe", now) != 0) {
		log_warn("healthz: the store cannot write: %s", store_errmsg(st));
		return -1;
	}
	return 0;
}

void
health_http_handle(void *arg, const struct http_request *req, struct http_response *res)
{
	struct health *h = arg;
	const char *store = "ok", *tftp = "off", *resync = "ok";
	char err[512];
	json_t *o;
	bool ok;

	if (strcmp(req->path, "/healthz") != 0) {
		(void)http_printf(res, 404, NULL, "not found\n");
		return;
	}
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		(void)http_printf(res, 405, NULL, "method not allowed\n");
		return;
	}
	if (svc_locked(h->svc, store_probe, NULL) != 0)
		store = "fail";
	if (h->tftp_root != NULL) {
		tftp = "ok";
		if (fs_probe_writable(h->tftp_root, err, sizeof(err)) != 0) {
			log_warn("healthz: the TFTP root is not writable: %s", err);
			tftp = "fail";
		}
	}
	if (!resync_alive(h->resync, HEALTH_RESYNC_MAX_AGE_MS)) {
		log_warn("healthz: the resync thread has not run for %d s",
		         HEALTH_RESYNC_MAX_AGE_MS / 1000);
		resync = "fail";
	}
	ok = strcmp(store, "fail") != 0 && strcmp(tftp, "fail") != 0 && strcmp(resync, "fail") != 0;
	o = json_pack("{s:s, s:{s:s, s:s, s:s}}", "status", ok ? "ok" : "fail", "checks", "store",
	              store, "tftp_root", tftp, "resync", resync);
	api_send_json(res, ok ? 200 : 503, o); /* NULL (out of memory) gives a 500 */
}
