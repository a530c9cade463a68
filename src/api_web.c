/*
 * api_web.c -- the console and self-service web adapters (api_web.h).
 *
 * Static files are read from the configured directory at each request
 * (a handful of small files; an edit shows without a restart), by plain
 * file names only, with a strict Content-Security-Policy: the pages run
 * their own scripts and nothing else (no inline script, no other origin),
 * so a hostile name that reached a page as markup could still not run.
 * The pages themselves only ever insert text (textContent).
 *
 * Sign-in answers set a new session cookie each time (no fixation); the
 * CSRF token goes in the JSON answer, which only this origin's script can
 * read.  The self-service API answers only about the signed-in extension:
 * no request names another one.
 */
#include "api_web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "errbuf.h"
#include "event.h"
#include "secret.h"
#include "session.h"
#include "store.h"
#include "virt.h"

#define COOKIE_CONSOLE "hd_console"
#define COOKIE_ME "hd_me"
#define STATIC_MAX (1 << 20)

static const char *const page_headers[] = {
	"Content-Security-Policy",
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
	"X-Content-Type-Options", "nosniff",
	"Referrer-Policy", "no-referrer",
	"X-Frame-Options", "DENY",
	"Cache-Control", "no-store",
	NULL,
};

static long long
now_s(void)
{
	return (long long)time(NULL);
}

/* ---- static files ------------------------------------------------------- */

static const char *
ctype_of(const char *name)
{
	static const struct { const char *ext, *type; } t[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
	};
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(dot, t[i].ext) == 0)
			return t[i].type;
	return NULL;
}

static bool
plain_name(const char *s)
{
	if (*s == '\0' || *s == '.')
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '.' && *s != '-' && *s != '_')
			return false;
	return true;
}

/* Serves dir/area/<rest of path after prefix> ("" = index.html). */
static void
serve_static(const struct api_web *w, const struct http_request *req, struct http_response *res,
             const char *prefix, const char *area)
{
	const char *name = req->path + strlen(prefix), *ct;
	char path[1024];
	struct stat sb;
	char *buf = NULL;
	ssize_t got;
	int fd = -1;

	res->extra_headers = page_headers;
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		http_printf(res, 405, NULL, "method not allowed\n");
		return;
	}
	if (*name == '\0')
		name = "index.html";
	if (!plain_name(name) || (ct = ctype_of(name)) == NULL) {
		http_printf(res, 404, NULL, "not found\n");
		return;
	}
	if (snprintf(path, sizeof(path), "%s/%s/%s", w->dir, area, name) >= (int)sizeof(path) ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 || fstat(fd, &sb) != 0 ||
	    !S_ISREG(sb.st_mode) || sb.st_size > STATIC_MAX) {
		if (fd >= 0)
			close(fd);
		http_printf(res, 404, NULL, "not found\n");
		return;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL ||
	    (got = read(fd, buf, (size_t)sb.st_size)) != sb.st_size) {
		free(buf);
		close(fd);
		http_printf(res, 500, NULL, "cannot read\n");
		return;
	}
	close(fd);
	http_set_body(res, 200, ct, buf, (size_t)got);
}

/* ---- helpers ------------------------------------------------------------ */

static void
send_json(struct http_response *res, int status, json_t *o)
{
	api_send_json(res, status, o);
	res->extra_headers = page_headers;
}

static void
send_error(struct http_response *res, int status, const char *field, const char *msg)
{
	api_json_error(res, status, field, msg);
	res->extra_headers = page_headers;
}

static json_t *
body_json(const struct http_request *req, struct http_response *res)
{
	json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);

	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		send_error(res, 400, NULL, "body: a JSON object");
		return NULL;
	}
	return o;
}

/* A string member of o, or NULL when absent, not a string, longer than
 * max or holding a NUL. */
static const char *
member(json_t *o, const char *key, size_t max)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

/* Wipes the string values of o (passwords, tokens) before it is freed. */
static void
json_wipe_free(json_t *o)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v)
		if (json_is_string(v))
			sodium_memzero((char *)json_string_value(v), json_string_length(v));
	json_decref(o);
}

static bool
set_cookie(struct http_response *res, const char *name, const char *value, const char *path,
           int max_age)
{
	int n = snprintf(res->set_cookie, sizeof(res->set_cookie),
	                 "%s=%s; Path=%s; HttpOnly; SameSite=Strict; Max-Age=%d", name,
	                 value, path, max_age);

	if (n < 0 || n >= (int)sizeof(res->set_cookie)) {
		res->set_cookie[0] = '\0';
		return false;
	}
	return true;
}

/* Whether an Origin header, if any, names the host the request was sent
 * to (a page of another site cannot forge both). */
static bool
same_origin(const struct http_request *req)
{
	const char *origin = http_header(req, "Origin"), *host = http_header(req, "Host"), *p;

	if (origin == NULL)
		return true;
	if (host == NULL)
		return false;
	if (strncmp(origin, "http://", 7) == 0)
		p = origin + 7;
	else if (strncmp(origin, "https://", 8) == 0)
		p = origin + 8;
	else
		return false;
	return strcmp(p, host) == 0;
}

/* A change (not GET/HEAD) made with a session: CSRF token and origin. */
static bool
change_allowed(const struct http_request *req, const struct session *s)
{
	if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)
		return true;
	return same_origin(req) && session_csrf_ok(s, http_header(req, "X-CSRF-Token"));
}

/* The client's network for the brute-force counters: the IPv4 address,
 * or the /64 of an IPv6 one (one host holds a whole /64). */
static void
source_key(const struct http_request *req, char *out, size_t len)
{
	const struct sockaddr *sa = req->peer;
	char txt[INET6_ADDRSTRLEN] = "?";

	if (sa != NULL && sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, txt, sizeof(txt));
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		struct in6_addr a = ((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(&a)) {
			inet_ntop(AF_INET, &a.s6_addr[12], txt, sizeof(txt));
		} else {
			memset(&a.s6_addr[8], 0, 8);
			inet_ntop(AF_INET6, &a, txt, sizeof(txt));
		}
	}
	if (snprintf(out, len, "%s", txt) >= (int)len)
		out[0] = '\0';
}

/* The session named by the request's cookie; 1 found, 0 none. */
static int
cookie_session(struct api_web *w, const struct http_request *req, const char *cookie,
               enum session_kind kind, struct session *s, char id[SESSION_ID_LEN + 1])
{
	if (http_cookie(req, cookie, id, SESSION_ID_LEN + 1) == NULL)
		return 0;
	return session_get(w->sessions, id, now_s(), s) == 1 && s->kind == kind;
}

/* ---- console ------------------------------------------------------------ */

static json_t *
console_who(struct api_web *w, const struct svc_principal *p, const struct session *s)
{
	json_t *o = json_pack("{s:s, s:s}", "role", p->role == SVC_ROLE_ADMIN ? "admin" : "org",
	                      "csrf", s->csrf);

	(void)w;
	if (p->role == SVC_ROLE_ORG)
		json_object_set_new(o, "org_id", json_integer(p->org));
	return o;
}

struct org_name {
	hd_id id;
	char name[64];
};

static int
rd_org_name(const struct world *wd, struct store *st, void *arg)
{
	struct org_name *o = arg;
	const struct hd_org *org = world_org(wd, o->id);

	(void)st;
	if (org != NULL && snprintf(o->name, sizeof(o->name), "%s", org->name) >= (int)sizeof(o->name))
		o->name[0] = '\0';
	return 0;
}

static void
console_answer(struct api_web *w, struct http_response *res, int status,
               const struct svc_principal *p, const struct session *s)
{
	json_t *o = console_who(w, p, s);

	if (p->role == SVC_ROLE_ORG) {
		struct org_name on = { p->org, "" };

		svc_locked(w->api->svc, rd_org_name, &on);
		json_object_set_new(o, "org", json_string(on.name));
	}
	send_json(res, status, o);
}

static void
console_login(struct api_web *w, const struct http_request *req, struct http_response *res)
{
	struct session tmpl = { .kind = SESSION_CONSOLE }, s;
	struct svc_principal p;
	char id[SESSION_ID_LEN + 1], old[SESSION_ID_LEN + 1];
	const char *tok;
	json_t *in;

	if (!same_origin(req)) {
		send_error(res, 403, NULL, "cross-origin sign-in refused");
		return;
	}
	if ((in = body_json(req, res)) == NULL)
		return;
	tok = member(in, "token", 256);
	p = svc_auth(w->api->svc, tok);
	if (p.role != SVC_ROLE_ADMIN && p.role != SVC_ROLE_ORG) {
		json_wipe_free(in);
		svc_event(w->api->svc, "web.console_login_failed", 0, NULL, NULL, NULL);
		send_error(res, 401, "token", "wrong token");
		return;
	}
	secret_token_hash(tok, tmpl.token_hash);
	json_wipe_free(in);
	/* a cookie sent along is never reused: a new id every sign-in */
	if (http_cookie(req, COOKIE_CONSOLE, old, sizeof(old)) != NULL)
		session_end(w->sessions, old);
	session_new(w->sessions, &tmpl, now_s(), id, &s);
	sodium_memzero(tmpl.token_hash, sizeof(tmpl.token_hash));
	if (!set_cookie(res, COOKIE_CONSOLE, id, "/", 86400)) {
		session_end(w->sessions, id);
		send_error(res, 500, NULL, "cookie");
		return;
	}
	sodium_memzero(id, sizeof(id));
	console_answer(w, res, 200, &p, &s);
}

/*
 * What both areas share: static files, the sign-in, the session of the
 * cookie.  Returns the name after "<area>/api/" with *s and id filled, or
 * NULL when the request has been answered.
 */
static const char *
area_front(struct api_web *w, const struct http_request *req, struct http_response *res,
           const char *area, const char *cookie, enum session_kind kind,
           void (*login)(struct api_web *, const struct http_request *, struct http_response *),
           struct session *s, char id[SESSION_ID_LEN + 1])
{
	char prefix[16];
	const char *what;

	if (snprintf(prefix, sizeof(prefix), "/%s/", area) >= (int)sizeof(prefix))
		return NULL;
	what = req->path + strlen(prefix);
	if (strncmp(what, "api/", 4) != 0) {
		serve_static(w, req, res, prefix, area);
		return NULL;
	}
	what += 4;
	if (strcmp(what, "login") == 0) {
		if (strcmp(req->method, "POST") != 0)
			send_error(res, 405, NULL, "method not allowed");
		else
			login(w, req, res);
		return NULL;
	}
	if (!cookie_session(w, req, cookie, kind, s, id)) {
		send_error(res, 401, NULL, "not signed in");
		return NULL;
	}
	return what;
}

void
api_web_console_handle(void *arg, const struct http_request *req, struct http_response *res)
{
	struct api_web *w = arg;
	struct session s;
	struct svc_principal p;
	char id[SESSION_ID_LEN + 1];
	const char *what = area_front(w, req, res, "console", COOKIE_CONSOLE, SESSION_CONSOLE,
	                              console_login, &s, id);

	if (what == NULL)
		return;
	p = svc_auth_hash(w->api->svc, s.token_hash);
	if (p.role != SVC_ROLE_ADMIN && p.role != SVC_ROLE_ORG) {
		session_end(w->sessions, id);
		send_error(res, 401, NULL, "not signed in");
		return;
	}
	if (strcmp(what, "session") == 0 && strcmp(req->method, "GET") == 0) {
		console_answer(w, res, 200, &p, &s);
	} else if (strcmp(what, "logout") == 0 && strcmp(req->method, "POST") == 0) {
		if (!change_allowed(req, &s)) {
			send_error(res, 403, NULL, "missing CSRF token");
			return;
		}
		session_end(w->sessions, id);
		set_cookie(res, COOKIE_CONSOLE, "", "/", 0);
		send_json(res, 200, json_pack("{s:b}", "signed_out", 1));
	} else {
		send_error(res, 404, NULL, "not found");
	}
	sodium_memzero(id, sizeof(id));
}

struct svc_principal
api_web_admin_auth(struct api_web *w, const struct http_request *req, bool *forbidden)
{
	struct svc_principal none = { SVC_ROLE_NONE, 0, 0 }, p;
	struct session s;
	char id[SESSION_ID_LEN + 1];

	*forbidden = false;
	if (w == NULL || !cookie_session(w, req, COOKIE_CONSOLE, SESSION_CONSOLE, &s, id))
		return none;
	p = svc_auth_hash(w->api->svc, s.token_hash);
	if (p.role != SVC_ROLE_ADMIN && p.role != SVC_ROLE_ORG) {
		session_end(w->sessions, id);
		return none;
	}
	if (!change_allowed(req, &s)) {
		*forbidden = true;
		return none;
	}
	return p;
}

/* ---- self-service ------------------------------------------------------- */

struct me_read {
	hd_id org, ext;
	json_t *out;
};

static int
me_moves(const struct store_event *ev, void *arg)
{
	json_t *arr = arg;
	json_t *det = ev->detail ? json_loads(ev->detail, 0, NULL) : NULL;
	json_t *from = det ? json_object_get(det, "from") : NULL;
	json_t *cause = det ? json_object_get(det, "cause") : NULL;

	if (strcmp(ev->type, EVENT_VIRTUALIZED) == 0 || strcmp(ev->type, EVENT_RETURNED) == 0)
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s?, s:O?, s:O?}",
		                      "at", (json_int_t)ev->at, "type", ev->type,
		                      "device", ev->device, "from", from, "cause", cause));
	json_decref(det);
	return json_array_size(arr) >= 20;
}

static json_t *
dev_brief(const struct hd_dev *d)
{
	return d ? json_pack("{s:s, s:s, s:s?}", "mac", d->mac, "profile", d->profile, "model",
	                     d->model)
	         : json_null();
}

static int
rd_me(const struct world *wd, struct store *st, void *arg)
{
	struct me_read *m = arg;
	const struct hd_ext *e = world_ext(wd, m->ext);
	const struct hd_org *o = world_org(wd, m->org);
	struct store_event_filter f = { 0 };
	json_t *moves;
	long long since = 0;

	if (e == NULL || o == NULL || e->org != m->org)
		return 0;
	moves = json_array();
	f.org = m->org;
	f.extension = e->number;
	f.newest_first = true;
	f.limit = 200;
	(void)store_events_list(st, &f, me_moves, moves);
	if (e->virtual_on != 0) {
		for (size_t i = 0; i < json_array_size(moves); i++) {
			json_t *mv = json_array_get(moves, i);

			if (strcmp(json_string_value(json_object_get(mv, "type")), EVENT_VIRTUALIZED) == 0) {
				since = json_integer_value(json_object_get(mv, "at"));
				break;
			}
		}
	}
	m->out = json_pack("{s:s, s:s?, s:s, s:s?, s:s?, s:s, s:b, s:o, s:o, s:o}",
	                   "org", o->name, "org_name", o->display_name, "extension", e->number,
	                   "display_name", e->display_name, "label", e->label,
	                   "status", virt_status_name(virt_ext_status(wd, e)),
	                   "has_secret_code", e->has_secret,
	                   "home_device", dev_brief(world_dev(wd, e->home_dev)),
	                   "virtual_on", e->virtual_on
	                       ? json_pack("{s:o, s:I}", "device",
	                                   dev_brief(world_dev(wd, e->virtual_on)),
	                                   "since", (json_int_t)since)
	                       : json_null(),
	                   "moves", moves);
	return 0;
}

static void
me_state(struct api_web *w, struct http_response *res, const struct session *s, int status)
{
	struct me_read m = { s->org, s->ext, NULL };

	svc_locked(w->api->svc, rd_me, &m);
	if (m.out == NULL) {
		send_error(res, 401, NULL, "not signed in");
		return;
	}
	json_object_set_new(m.out, "csrf", json_string(s->csrf));
	send_json(res, status, m.out);
}

static void
me_login(struct api_web *w, const struct http_request *req, struct http_response *res)
{
	struct session tmpl = { .kind = SESSION_ME }, s;
	char id[SESSION_ID_LEN + 1], old[SESSION_ID_LEN + 1], src[64];
	const char *org, *number, *pw;
	long long until = 0;
	json_t *in;
	int rc;

	if (!same_origin(req)) {
		send_error(res, 403, NULL, "cross-origin sign-in refused");
		return;
	}
	if ((in = body_json(req, res)) == NULL)
		return;
	org = member(in, "org", 63);
	number = member(in, "extension", 16);
	pw = member(in, "password", SVC_WEBPW_MAX);
	if (org == NULL || number == NULL || pw == NULL || !api_digits(number, 16)) {
		json_wipe_free(in);
		send_error(res, 400, NULL, "org, extension and password are required");
		return;
	}
	source_key(req, src, sizeof(src));
	rc = svc_web_login(w->api->svc, org, number, pw, src, &tmpl.org, &tmpl.ext, &until);
	json_wipe_free(in);
	if (rc == SVC_CONFLICT) {
		send_error(res, 429, NULL, "too many wrong passwords: try again later");
		return;
	}
	if (rc != SVC_OK) {
		send_error(res, rc == SVC_FORBIDDEN ? 401 : 500, NULL,
		           rc == SVC_FORBIDDEN ? "wrong organization, extension or password"
		                               : "internal error");
		return;
	}
	if (http_cookie(req, COOKIE_ME, old, sizeof(old)) != NULL)
		session_end(w->sessions, old);
	session_new(w->sessions, &tmpl, now_s(), id, &s);
	if (!set_cookie(res, COOKIE_ME, id, "/me/", 86400)) {
		session_end(w->sessions, id);
		send_error(res, 500, NULL, "cookie");
		return;
	}
	sodium_memzero(id, sizeof(id));
	me_state(w, res, &s, 200);
}

static void
me_change(struct api_web *w, const struct http_request *req, struct http_response *res,
          const struct session *s, const char *id, const char *what)
{
	struct svc_result r = { 0 };
	char src[64];
	json_t *in = NULL;
	int rc;

	if (strcmp(what, "return") == 0) {
		struct svc_star30_res out;
		struct me_read m = { s->org, s->ext, NULL };
		char number[32] = "";

		svc_locked(w->api->svc, rd_me, &m);
		if (m.out != NULL &&
		    snprintf(number, sizeof(number), "%s",
		             json_string_value(json_object_get(m.out, "extension"))) >=
		        (int)sizeof(number))
			number[0] = '\0';
		json_decref(m.out);
		rc = svc_ext_return(w->api->svc, s->org, number, &out, &r);
	} else if ((in = body_json(req, res)) == NULL) {
		return;
	} else if (strcmp(what, "code") == 0) {
		const char *code = member(in, "code", 64);

		rc = code != NULL && api_digits(code, 64)
		     ? svc_ext_code_set(w->api->svc, s->ext, code, &r)
		     : (hd_seterr(r.err, sizeof(r.err), "code: digits only"), r.field = "code",
		        SVC_BAD);
		if (r.field != NULL && strcmp(r.field, "secret_code") == 0)
			r.field = "code";
	} else {
		const char *cur = member(in, "current", SVC_WEBPW_MAX);
		const char *pw = member(in, "password", SVC_WEBPW_MAX + 1);

		source_key(req, src, sizeof(src));
		rc = svc_webpw_change(w->api->svc, s->ext, cur ? cur : "", pw ? pw : "", src, &r);
		if (rc == SVC_OK)
			session_end_ext(w->sessions, s->ext, id); /* other browsers sign in again */
	}
	json_wipe_free(in);
	if (rc != SVC_OK) {
		send_error(res, rc == SVC_BAD ? 400 : rc == SVC_FORBIDDEN ? 403
		              : rc == SVC_CONFLICT ? 409 : rc == SVC_NOTFOUND ? 404 : 500,
		           r.field, r.err);
		return;
	}
	me_state(w, res, s, 200);
}

void
api_web_me_handle(void *arg, const struct http_request *req, struct http_response *res)
{
	struct api_web *w = arg;
	struct session s;
	char id[SESSION_ID_LEN + 1];
	const char *what = area_front(w, req, res, "me", COOKIE_ME, SESSION_ME, me_login, &s, id);

	if (what == NULL)
		return;
	if (strcmp(what, "state") == 0 && strcmp(req->method, "GET") == 0) {
		me_state(w, res, &s, 200);
	} else if (strcmp(req->method, "POST") != 0 ||
	           (strcmp(what, "return") && strcmp(what, "code") && strcmp(what, "password") &&
	            strcmp(what, "logout"))) {
		send_error(res, 404, NULL, "not found");
	} else if (!change_allowed(req, &s)) {
		send_error(res, 403, NULL, "missing CSRF token");
	} else if (strcmp(what, "logout") == 0) {
		session_end(w->sessions, id);
		set_cookie(res, COOKIE_ME, "", "/me/", 0);
		send_json(res, 200, json_pack("{s:b}", "signed_out", 1));
	} else {
		me_change(w, req, res, &s, id, what);
	}
	sodium_memzero(id, sizeof(id));
}

/* ---- admin: web passwords ----------------------------------------------- */

void
api_web_admin_password(struct api_ctx *c, const struct http_request *req,
                       struct http_response *res, hd_id org, const char *number)
{
	struct svc_result r = { 0 };
	const char *pw = NULL;
	json_t *in = NULL;
	int rc;

	if (strcmp(req->method, "PUT") == 0) {
		in = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(in) || (pw = member(in, "password", SVC_WEBPW_MAX + 1)) == NULL ||
		    json_object_size(in) != 1) {
			json_decref(in);
			api_json_error(res, 400, "password", "body: {\"password\": \"...\"}");
			return;
		}
	} else if (strcmp(req->method, "DELETE") != 0) {
		api_json_error(res, 405, NULL, "method not allowed");
		return;
	}
	rc = svc_webpw_set(c->svc, org, number, pw, &r);
	if (in != NULL)
		json_wipe_free(in);
	if (rc != SVC_OK)
		api_json_error(res, rc == SVC_BAD ? 400 : rc == SVC_NOTFOUND ? 404 : 500, r.field,
		               r.err);
	else
		api_send_json(res, 200, json_pack("{s:s, s:b}", "extension", number, "web_password",
		                                  pw != NULL));
}
