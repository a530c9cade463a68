/*
 * api_web.h -- the web console (/console/) and the self-service page
 * (/me/): their static files, their sign-in into session cookies, and
 * the small JSON API of /me/.  The console's pages call the admin API
 * (/api/v1/) with the session cookie instead of a bearer token; that
 * path is api_web_admin_auth, called by api_admin.c.
 *
 * Cookies: "hd_console" (Path=/) and "hd_me" (Path=/me/), HttpOnly,
 * SameSite=Strict, the session id only (session.h).  Every request that
 * changes something with a cookie must carry the session's CSRF token in
 * the header X-CSRF-Token, and an Origin header, when sent, must name
 * this server; otherwise 403.
 *
 * docs/WEB.md is the manual.
 */
#ifndef HD_API_WEB_H
#define HD_API_WEB_H

#include "api.h"
#include "service.h"

struct session_table;

struct api_web {
	struct api_ctx *api;
	struct session_table *sessions;
	const char *dir;   /* static files: dir/console/..., dir/me/... */
};

void api_web_console_handle(void *arg, const struct http_request *req,
                            struct http_response *res);
void api_web_me_handle(void *arg, const struct http_request *req, struct http_response *res);

/*
 * The principal of an admin API request made with a console session
 * cookie (no bearer token): SVC_ROLE_NONE when there is none, it expired,
 * its token was revoked, or a change lacks its CSRF token or comes from
 * another origin (*forbidden is then set).
 */
struct svc_principal api_web_admin_auth(struct api_web *w, const struct http_request *req,
                                        bool *forbidden);

/* PUT|DELETE /api/v1/orgs/{org}/extensions/{number}/web-password, for
 * api_admin.c: who is already authenticated and may see org. */
void api_web_admin_password(struct api_ctx *c, const struct http_request *req,
                            struct http_response *res, hd_id org, const char *number);

#endif
