/*
 * api_csv.h -- CSV import and export of an organization's people and
 * phones (the format of import.h), routed from api_admin.c.
 *
 *   POST /api/v1/orgs/{org}/import[?dry_run=1]   body: text/csv
 *   GET  /api/v1/orgs/{org}/export[?reveal=1]
 *
 * docs/API.md is the manual.
 */
#ifndef HD_API_CSV_H
#define HD_API_CSV_H

#include "api.h"
#include "service.h"

/* Most rows one import takes. */
#define API_CSV_MAX_ROWS 100000

/*
 * Answers one import or export request for organization `org` (the path
 * segment, not yet checked).  who: the caller, already authenticated.
 * Fills res in every case.
 */
void api_csv_handle(struct api_ctx *c, const struct http_request *req,
                    struct http_response *res, const struct svc_principal *who,
                    const char *org, const char *what);

#endif
