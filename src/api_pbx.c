/*
 * api_pbx.c -- the PBX interface (SPEC 3, a contract):
 *   POST /pbx/v1/star30, POST /pbx/v1/registrations,
 *   GET  /pbx/v1/extensions/{sip_user}.
 *
 * Every request: source network check (403), bearer token of the PBX role
 * (401), body form-encoded or JSON (415 otherwise), fields validated (400)
 * before anything is asked of the service, so bad input changes nothing.
 */
#include "api.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authlog.h"
#include "event.h"
#include "form.h"
#include "metrics.h"
#include "service.h"
#include "store.h"

#define PREFIX "/pbx/v1/"

static void
fail(const struct http_request *req, struct http_response *res, int status, const char *reason)
{
	struct api_answer a = { 0 };

	api_answer_add(&a, "result", "error");
	api_answer_add(&a, "reason", reason);
	api_answer_send(req, res, status, &a);
}

void
api_pbx_too_large(void *arg, const struct http_request *req, struct http_response *res)
{
	fail(req, res, 413, "body too large");
}

/* The body parsed by Content-Type, or NULL with err filled (malformed,
 * or *bad_type when the type is neither form nor JSON). */
static struct form *
body_form(const struct http_request *req, bool *bad_type, char *err, size_t errlen)
{
	const char *ct = http_header(req, "Content-Type");
	struct form *f = NULL;

	*bad_type = false;
	if (ct == NULL || http_media_type_is(ct, "application/x-www-form-urlencoded"))
		return form_parse(req->body, req->body_len, err, errlen);
	if (!http_media_type_is(ct, "application/json")) {
		*bad_type = true;
		return NULL;
	}
	if (form_from_json(req->body, req->body_len, &f, err, errlen) != 0)
		return NULL;
	return f;
}

/* Parses the body by Content-Type into *f.  Returns 0 or fills res. */
static int
parse_body(const struct http_request *req, struct http_response *res, struct form **f)
{
	char err[128] = "", reason[160];
	bool bad_type;

	*f = body_form(req, &bad_type, err, sizeof(err));
	if (bad_type) {
		fail(req, res, 415, "unsupported content type");
		return -1;
	}
	if (*f == NULL) {
		snprintf(reason, sizeof(reason), "malformed body: %s", err);
		fail(req, res, 400, reason);
		return -1;
	}
	return 0;
}

/* Rejects fields this endpoint does not know: a typo must not pass as
 * "absent". */
static int
only_fields(const struct form *f, const char *const *known, const char **bad)
{
	for (size_t i = 0; i < form_count(f); i++) {
		size_t k;

		for (k = 0; known[k] && strcmp(known[k], form_key(f, i)) != 0; k++)
			;
		if (known[k] == NULL) {
			*bad = form_key(f, i);
			return -1;
		}
	}
	return 0;
}

/* "ip:port" or "[ipv6]:port" with a numeric address. */
static bool
valid_source(const char *s)
{
	char host[64];
	const char *colon, *h = s;
	size_t hl;
	unsigned char buf[16];
	char *end;
	long port;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return false;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return false;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (inet_pton(s[0] == '[' ? AF_INET6 : AF_INET, host, buf) != 1)
		return false;
	port = strtol(colon + 1, &end, 10);
	return colon[1] != '\0' && *end == '\0' && port >= 1 && port <= 65535;
}

static const char *
opt(const struct form *f, const char *key)
{
	const char *v = form_get(f, key);

	return (v != NULL && v[0] != '\0') ? v : NULL;
}

/*
 * The dialed string: "102" (digits), or "102*1020" (digits, then the code:
 * what a proxy that cannot collect digits receives).  On success *digits
 * points to the extension digits (in buf when split) and *code to the
 * code when the string carried one.  False when malformed, or when the
 * string carries a code and a code field was given too.
 */
static bool
dial_string(const char *in, char *buf, size_t len, const char **digits, const char **code)
{
	const char *star = strchr(in, '*');
	size_t n;

	if (star == NULL)
		return api_digits(in, 16);
	n = (size_t)(star - in);
	if (*code != NULL || n == 0 || n > 16 || strlen(in) >= len)
		return false;
	memcpy(buf, in, strlen(in) + 1);
	buf[n] = '\0';
	if (!api_digits(buf, 16) || !api_digits(buf + n + 1, 32))
		return false;
	*digits = buf;
	*code = buf + n + 1;
	return true;
}

/* Whether the PBX asked for the SIP answer form: Accept: message/sipfrag,
 * or the field answer=sipfrag (for clients that cannot set headers). */
static bool
wants_sipfrag(const struct http_request *req, const struct form *f)
{
	const char *acc = http_header(req, "Accept"), *ans = form_get(f, "answer");

	return (acc != NULL && strstr(acc, "message/sipfrag") != NULL) ||
	       (ans != NULL && strcmp(ans, "sipfrag") == 0);
}

/* One status line, RFC 3420: "SIP/2.0 484 Wrong code, 2 tries left". */
static void
sipfrag_send(struct http_response *res, int code, const char *phrase)
{
	http_printf(res, 200, "message/sipfrag", "SIP/2.0 %03d %s\r\n", code, phrase);
}

static void
star30(struct api_ctx *c, const struct http_request *req, struct http_response *res)
{
	static const char *const known[] = { "caller", "org", "digits", "code", "call_id", "answer",
	                                     NULL };
	struct svc_star30_req r = { 0 };
	struct svc_star30_res out;
	struct api_answer a = { 0 };
	struct form *f = NULL;
	const char *badf;
	char reason[96], dial[64], sip_reason[64];
	bool moved = false, dial_ok = true;
	int rc, sip_code;

	metrics_move_begin(); /* request received (SPEC 8 move timing) */
	metrics_inc(METRICS_STAR30_REQUESTS, 1);
	if (parse_body(req, res, &f) != 0) {
		metrics_move_end(false);
		return;
	}
	if (only_fields(f, known, &badf) != 0) {
		snprintf(reason, sizeof(reason), "unknown field %.40s", badf);
		fail(req, res, 400, reason);
		goto out;
	}
	r.caller = opt(f, "caller");
	r.org = opt(f, "org");
	r.digits = opt(f, "digits");
	r.code = opt(f, "code");
	r.call_id = opt(f, "call_id");
	if (opt(f, "answer") != NULL && strcmp(opt(f, "answer"), "sipfrag") != 0 &&
	    strcmp(opt(f, "answer"), "form") != 0) {
		fail(req, res, 400, "invalid answer");
		goto out;
	}
	if (r.digits != NULL)
		dial_ok = dial_string(r.digits, dial, sizeof(dial), &r.digits, &r.code);
	if (!api_printable(r.caller, 128, false)) {
		fail(req, res, 400, r.caller ? "invalid caller" : "missing caller");
	} else if (r.org != NULL && (!api_printable(r.org, 63, false) || !api_digits(r.caller, 16))) {
		fail(req, res, 400, "invalid caller: with org, the extension number");
	} else if (!dial_ok) {
		fail(req, res, 400, r.code != NULL && r.digits != NULL && strchr(r.digits, '*') ?
		     "code given twice" : "invalid digits");
	} else if (r.code != NULL && !api_digits(r.code, 32)) {
		fail(req, res, 400, "invalid code");
	} else if (r.call_id != NULL && !api_printable(r.call_id, 128, true)) {
		fail(req, res, 400, "invalid call_id");
	} else if ((rc = svc_star30(c->svc, &r, &out)) != SVC_OK) {
		/* a move whose files would not render is refused, nothing moved */
		if (rc == SVC_CONFLICT)
			fail(req, res, 409, "render_failed");
		else
			fail(req, res, 500, "internal");
	} else {
		sip_code = virt_sip_status(out.result, out.reason, out.tries_left, sip_reason,
		                           sizeof(sip_reason));
		if (wants_sipfrag(req, f)) {
			sipfrag_send(res, sip_code, sip_reason);
			moved = out.result == VIRT_ACCEPTED || out.result == VIRT_RETURNED;
			goto out;
		}
		api_answer_add(&a, "result", virt_result_name(out.result));
		if (out.result == VIRT_DENIED)
			api_answer_add(&a, "reason", virt_reason_name(out.reason));
		if (out.result == VIRT_RETRY || out.result == VIRT_NEED_CODE)
			api_answer_addi(&a, "tries_left", out.tries_left);
		if (out.extension[0])
			api_answer_add(&a, "extension", out.extension);
		if (out.device[0])
			api_answer_add(&a, "device", out.device);
		api_answer_addi(&a, "sip_code", sip_code);
		api_answer_add(&a, "sip_reason", sip_reason);
		api_answer_send(req, res, 200, &a);
		moved = out.result == VIRT_ACCEPTED || out.result == VIRT_RETURNED;
	}
out:
	metrics_move_end(moved);
	form_free(f);
}

/* The length of the contact starting at p: up to a comma outside quotes
 * and angle brackets, or the end. */
static size_t
contact_len(const char *p)
{
	bool quoted = false, angle = false;
	size_t i;

	for (i = 0; p[i] != '\0'; i++) {
		if (quoted) {
			if (p[i] == '\\' && p[i + 1] != '\0')
				i++;
			else if (p[i] == '"')
				quoted = false;
		} else if (p[i] == '"') {
			quoted = true;
		} else if (p[i] == '<') {
			angle = true;
		} else if (p[i] == '>') {
			angle = false;
		} else if (p[i] == ',' && !angle) {
			break;
		}
	}
	return i;
}

/* One contact of n bytes at p: its URI into uri, its expires param into
 * *expires (-1 when none).  0, or -1 when malformed. */
static int
contact_one(const char *p, size_t n, char *uri, size_t len, long *expires)
{
	const char *u, *ue, *params, *end = p + n, *e;
	char num[16];
	size_t k;

	*expires = -1;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if ((u = memchr(p, '<', (size_t)(end - p))) != NULL) {
		if ((ue = memchr(u, '>', (size_t)(end - u))) == NULL)
			return -1;
		u++;
		params = ue + 1;
	} else {
		u = p;
		for (ue = u; ue < end && *ue != ';' && *ue != ' '; ue++)
			;
		params = ue;
	}
	if ((size_t)(ue - u) >= len || ue == u)
		return -1;
	memcpy(uri, u, (size_t)(ue - u));
	uri[ue - u] = '\0';
	if ((strncasecmp(uri, "sip:", 4) != 0 && strncasecmp(uri, "sips:", 5) != 0) ||
	    strpbrk(uri, " \t\"<>,") != NULL)
		return -1;
	for (e = params; e < end; e++) {
		if (*e == ';' && (size_t)(end - e) > 9 && strncasecmp(e + 1, "expires=", 8) == 0) {
			e += 9;
			for (k = 0; e + k < end && k < sizeof(num) - 1 && e[k] >= '0' && e[k] <= '9'; k++)
				num[k] = e[k];
			num[k] = '\0';
			if (k == 0 || k > 9)
				return -1;
			*expires = strtol(num, NULL, 10);
		}
	}
	return 0;
}

/*
 * The contact to keep from what a registrar reports (RFC 3261 Contact
 * forms): an addr-spec ("sip:u@h:p"), a name-addr ("\"Alice\"
 * <sip:u@h:p>;expires=60"), several of them separated by commas (the
 * first one whose expires is not 0 is kept), or "*".  The URI goes to uri
 * and its own expires param to *expires (-1 when none).  Returns 1 for a
 * URI, 0 for "*", -1 when malformed.
 */
static int
contact_pick(const char *in, char *uri, size_t len, long *expires)
{
	const char *p = in;
	char cand[512];
	long cexp;
	bool have = false;

	while (*p == ' ' || *p == '\t')
		p++;
	if (p[0] == '*') {
		for (p++; *p == ' ' || *p == '\t'; p++)
			;
		return *p == '\0' ? 0 : -1;
	}
	while (*p != '\0') {
		size_t n = contact_len(p);

		if (contact_one(p, n, cand, sizeof(cand), &cexp) != 0 || strlen(cand) >= len)
			return -1;
		if (!have || (*expires == 0 && cexp != 0)) {
			memcpy(uri, cand, strlen(cand) + 1);
			*expires = cexp;
			have = true;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return have ? 1 : -1;
}

/*
 * The contact that reaches the phone: the registered URI, or with a NAT
 * `received` address ("ip:port" or "sip:ip:port", what a registrar saw
 * the REGISTER come from and stores to reach the phone) the URI's user at
 * that address.  0, or -1 when received is malformed.
 */
static int
contact_reachable(char *uri, size_t len, const char *received)
{
	char user[256];
	const char *u, *at;

	if (received == NULL)
		return 0;
	if (strncasecmp(received, "sip:", 4) == 0)
		received += 4;
	if (!valid_source(received))
		return -1;
	u = uri + (strncasecmp(uri, "sips:", 5) == 0 ? 5 : 4);
	at = strchr(u, '@');
	if (at == NULL || (size_t)(at - u) >= sizeof(user))
		user[0] = '\0';
	else {
		memcpy(user, u, (size_t)(at - u));
		user[at - u] = '\0';
	}
	if ((size_t)snprintf(uri, len, "sip:%s%s%s", user, user[0] ? "@" : "", received) >= len)
		return -1;
	return 0;
}

static void
registration(struct api_ctx *c, const struct http_request *req, struct http_response *res)
{
	/* q, path, instance, reg_id, aor, domain, cseq: what registrars
	 * report besides; accepted and not used */
	static const char *const known[] = { "sip_user", "contact", "source", "user_agent",
	                                     "call_id", "expires", "received", "q", "path",
	                                     "instance", "reg_id", "aor", "domain", "cseq",
	                                     NULL };
	struct svc_registration r = { 0 };
	struct api_answer a = { 0 };
	struct form *f = NULL;
	const char *badf, *exp, *received;
	char err[128], reason[160], uri[512];
	char *end;
	long cexp = -1;
	int kind = -1;

	if (parse_body(req, res, &f) != 0)
		return;
	r.sip_user = opt(f, "sip_user");
	r.contact = opt(f, "contact");
	r.source = opt(f, "source");
	r.user_agent = opt(f, "user_agent");
	r.call_id = opt(f, "call_id");
	received = opt(f, "received");
	exp = opt(f, "expires");
	r.expires = 3600;
	if (api_printable(r.contact, 1000, true))
		kind = contact_pick(r.contact, uri, sizeof(uri), &cexp);
	if (only_fields(f, known, &badf) != 0) {
		snprintf(reason, sizeof(reason), "unknown field %.40s", badf);
		fail(req, res, 400, reason);
	} else if (!api_printable(r.sip_user, 128, false)) {
		fail(req, res, 400, r.sip_user ? "invalid sip_user" : "missing sip_user");
	} else if (kind < 0) {
		fail(req, res, 400, r.contact ? "invalid contact" : "missing contact");
	} else if (r.source != NULL && (!api_printable(r.source, 60, false) || !valid_source(r.source))) {
		fail(req, res, 400, "invalid source");
	} else if (r.user_agent != NULL && !api_printable(r.user_agent, 250, true)) {
		fail(req, res, 400, "invalid user_agent");
	} else if (r.call_id != NULL && !api_printable(r.call_id, 250, true)) {
		fail(req, res, 400, "invalid call_id");
	} else if (exp != NULL && (!api_digits(exp, 9) || (r.expires = strtol(exp, &end, 10), *end))) {
		fail(req, res, 400, "invalid expires");
	} else if (kind == 0 && (exp == NULL || r.expires != 0)) {
		fail(req, res, 400, "contact * needs expires=0");
	} else if (kind == 1 && (received != NULL && (!api_printable(received, 64, false) ||
	                         contact_reachable(uri, sizeof(uri), received) != 0))) {
		fail(req, res, 400, "invalid received");
	} else {
		if (kind == 1 && cexp >= 0)
			r.expires = cexp; /* the contact's own expires wins (RFC 3261 10.2.1.1) */
		r.contact = kind == 1 ? uri : "*";
		if (svc_registration(c->svc, &r, err, sizeof(err)) != SVC_OK) {
			fail(req, res, 500, "internal");
		} else {
			api_answer_add(&a, "result", "ok");
			api_answer_send(req, res, 200, &a);
		}
	}
	form_free(f);
}

static void
ext_status(struct api_ctx *c, const struct http_request *req, struct http_response *res)
{
	char sip_user[160], mac[HD_MAC_LEN + 1];
	enum virt_status st;
	struct api_answer a = { 0 };

	if (http_path_segment(req->path, PREFIX, 1, sip_user, sizeof(sip_user)) < 0 ||
	    !api_printable(sip_user, 128, false)) {
		fail(req, res, 400, "invalid sip_user");
		return;
	}
	if (svc_ext_status(c->svc, sip_user, &st, mac) != SVC_OK) {
		fail(req, res, 404, "unknown_extension");
		return;
	}
	api_answer_add(&a, "status", virt_status_name(st));
	api_answer_add(&a, "device", mac);
	api_answer_send(req, res, 200, &a);
}

/* GET /pbx/v1/moves?after=N: the first move after event N (see docs/API.md). */
struct moves_scan {
	const struct world *w;
	struct store *st;
	struct api_answer *a;
	long long after, last; /* cursor in, last event id scanned */
	bool found;
};

static int
moves_each(const struct store_event *ev, void *arg)
{
	struct moves_scan *m = arg;
	const struct hd_ext *e;
	const struct hd_dev *d;
	struct store_devcontact dc;

	m->last = ev->id;
	if (strcmp(ev->type, EVENT_VIRTUALIZED) != 0 && strcmp(ev->type, EVENT_RETURNED) != 0)
		return 0;
	if (ev->extension == NULL || (e = world_ext_by_number(m->w, ev->org, ev->extension)) == NULL)
		return 0;
	d = ev->device != NULL ? world_dev_by_mac(m->w, ev->device) : NULL;
	api_answer_add(m->a, "result", "move");
	api_answer_addi(m->a, "id", (long)ev->id);
	api_answer_add(m->a, "sip_user", e->sip_user);
	api_answer_add(m->a, "device", d != NULL ? d->mac : "");
	if (d != NULL && store_devcontact_get(m->st, d->id, &dc) == 1)
		api_answer_add(m->a, "contact", dc.contact);
	else
		api_answer_add(m->a, "contact", "");
	m->found = true;
	return 1;
}

static int
moves_read(const struct world *w, struct store *st, void *arg)
{
	struct moves_scan *m = arg;
	struct store_event_filter f = { .since_id = m->after, .limit = 1000 };

	m->w = w;
	m->st = st;
	m->last = m->after;
	return store_events_list(st, &f, moves_each, m) < 0 ? -1 : 0;
}

static void
moves(struct api_ctx *c, const struct http_request *req, struct http_response *res)
{
	struct api_answer a = { 0 };
	struct moves_scan m = { .a = &a };
	const char *after = http_query_arg(req, "after");
	char *end;

	if (after != NULL && after[0] != '\0') {
		if (!api_digits(after, 18)) {
			fail(req, res, 400, "invalid after");
			return;
		}
		m.after = strtoll(after, &end, 10);
	}
	if (svc_locked(c->svc, moves_read, &m) != 0) {
		fail(req, res, 500, "internal");
		return;
	}
	if (!m.found) {
		api_answer_add(&a, "result", "none");
		api_answer_addi(&a, "id", (long)m.last);
	}
	api_answer_send(req, res, 200, &a);
}

bool
api_pbx_may_hash(void *arg, const struct http_request *req)
{
	char first[32], err[128];
	const char *code, *digits;
	struct form *f;
	bool bad_type, may;

	(void)arg;
	if (strcmp(req->method, "POST") != 0 || http_path_nsegments(req->path, PREFIX) != 1 ||
	    http_path_segment(req->path, PREFIX, 0, first, sizeof(first)) < 0 ||
	    strcmp(first, "star30") != 0)
		return false;
	if ((f = body_form(req, &bad_type, err, sizeof(err))) == NULL)
		return false;
	code = form_get(f, "code");
	digits = form_get(f, "digits");
	may = (code != NULL && *code != '\0') || (digits != NULL && strchr(digits, '*') != NULL);
	form_free(f);
	return may;
}

void
api_pbx_handle(void *arg, const struct http_request *req, struct http_response *res)
{
	struct api_ctx *c = arg;
	struct svc_principal p;
	int nseg = http_path_nsegments(req->path, PREFIX);
	char first[32];

	if (c->pbx_net_ok != NULL && !c->pbx_net_ok(c->net_arg, req->peer)) {
		authlog_refused(req->peer, AUTHLOG_PBX_NETWORK, "not-allowed");
		fail(req, res, 403, "source address not allowed");
		return;
	}
	p = svc_auth(c->svc, http_bearer(req));
	if (p.role != SVC_ROLE_PBX) {
		authlog_refused(req->peer, AUTHLOG_PBX_TOKEN, http_bearer(req) ? "invalid" : "missing");
		fail(req, res, 401, "missing or invalid token");
		return;
	}
	if (http_path_segment(req->path, PREFIX, 0, first, sizeof(first)) < 0) {
		fail(req, res, 404, "not found");
		return;
	}
	if (nseg == 1 && strcmp(first, "star30") == 0) {
		if (strcmp(req->method, "POST") != 0)
			fail(req, res, 405, "method not allowed");
		else
			star30(c, req, res);
	} else if (nseg == 1 && strcmp(first, "registrations") == 0) {
		if (strcmp(req->method, "POST") != 0)
			fail(req, res, 405, "method not allowed");
		else
			registration(c, req, res);
	} else if (nseg == 1 && strcmp(first, "moves") == 0) {
		if (strcmp(req->method, "GET") != 0)
			fail(req, res, 405, "method not allowed");
		else
			moves(c, req, res);
	} else if (nseg == 2 && strcmp(first, "extensions") == 0) {
		if (strcmp(req->method, "GET") != 0)
			fail(req, res, 405, "method not allowed");
		else
			ext_status(c, req, res);
	} else {
		fail(req, res, 404, "not found");
	}
}
