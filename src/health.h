/*
 * health.h -- GET /healthz: whether this hotdeskd can do its work now, for
 * load balancers, container runtimes and monitoring.
 *
 * Three checks, each run at every request (none is cached):
 *   store      a row of the store's meta table is written (the database
 *              file, its directory and the disk take a write);
 *   tftp_root  a file is created, written and removed in the TFTP root
 *              ("off" when no TFTP root is configured);
 *   resync     the resync thread went round its loop in the last 30 s.
 * The answer is JSON, 200 when every check passes, 503 otherwise:
 *   {"status": "ok"|"fail", "checks": {"store": "ok"|"fail", ...}}
 * It names no path and no error: the reason of a failure is logged (warn).
 * Open to anyone (no token): it reveals nothing but the verdicts.
 */
#ifndef HD_HEALTH_H
#define HD_HEALTH_H

struct svc;
struct resync;
struct http_request;
struct http_response;

struct health;

/* tftp_root is copied (NULL: no TFTP root); svc and resync are borrowed
 * and must outlive the health object's last request.  NULL when out of
 * memory. */
struct health *health_new(struct svc *svc, struct resync *resync, const char *tftp_root);
void health_free(struct health *h); /* NULL-safe */

/* HTTP handler for GET/HEAD /healthz; arg: the struct health. */
void health_http_handle(void *arg, const struct http_request *req, struct http_response *res);

#endif
