/*
 * api_tmpl.h -- template administration and device previews of the admin
 * API (SPEC 6), routed from api_admin.c.
 *
 *   GET  /api/v1/templates
 *   GET  /api/v1/templates/{profile}/{name}[?version=N]
 *   PUT  /api/v1/templates/{profile}/{name}
 *   GET  /api/v1/templates/{profile}/{name}/history
 *   POST /api/v1/templates/{profile}/{name}/rollback
 *   POST /api/v1/templates/{profile}/{name}/dry-run
 *   GET  /api/v1/devices/{mac}/preview[?reveal=1]
 *
 * docs/API.md is the manual.
 */
#ifndef HD_API_TMPL_H
#define HD_API_TMPL_H

#include "api.h"
#include "service.h"

/*
 * Answers one request whose path is under /api/v1/templates or is
 * /api/v1/devices/{mac}/<something>.  who: the caller, already
 * authenticated (admin or organization role).  Fills res in every case
 * (404 for a path it does not know).
 */
void api_tmpl_handle(struct api_ctx *c, const struct http_request *req,
                     struct http_response *res, const struct svc_principal *who);

/*
 * Start-up, in its transaction (lock held): the devices a template save
 * changed whose re-render a crash cut short get their resync rows (held;
 * start-up makes every pending row due).  0, or -1 (a store error).
 */
int api_tmpl_recover(const struct world *w, struct store *st);

#endif
