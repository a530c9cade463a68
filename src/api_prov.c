/*
 * api_prov.c -- the phone interface over HTTP (SPEC 4, a contract).
 *
 *   GET/HEAD {prefix}<file>   every file of every vendor profile
 *   PUT      {prefix}<mac>-app.log, <mac>-boot.log   Polycom log uploads
 *
 * Nothing here renders: files come from the publisher, already rendered.
 * Order of checks for a per-device file: source blocked by the miss
 * throttle (403) -> known file (404; a miss only when the name carries an
 * unknown MAC) -> the organization's source networks (403) -> the factory
 * certificate, when the organization asks for one (403; see mtls.h) ->
 * digest credentials (401 challenge; wrong ones are a miss) ->
 * If-None-Match (304) -> the file.  Every refusal by an organization's
 * rule is a miss and a prov.denied event.  Shared files carry no
 * credentials and are served to anyone not blocked.
 *
 * Polycom override files (<mac>-phone.cfg, <mac>-web.cfg) that phones PUT
 * after local edits are refused (403) and never stored; the profile serves
 * them empty, so a stale override cannot keep an old line on a phone after
 * a move.
 *
 * What is a miss: a name that carries an unknown MAC, or wrong
 * credentials.  A known phone's usual 404s (Polycom <mac>.cfg, directory,
 * license and firmware files; Cisco CTLSEP<MAC>.tlv, ITLSEP<MAC>.tlv;
 * Yealink <mac>.boot) and names that carry no MAC at all are not: several
 * phones booting behind one NAT address must not block each other.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "authlog.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "mtls.h"
#include "publish.h"
#include "service.h"
#include "throttle.h"

#define REALM "hotdeskd"

static void
text(struct http_response *res, int status, const char *msg)
{
	http_printf(res, status, "text/plain; charset=utf-8", "%s\n", msg);
}

/* A miss: count it, and record an event when it starts a block.  An
 * unknown MAC also counts towards the global limit (throttle.h); an event
 * when that trips. */
static void
miss_of(struct api_ctx *c, const struct http_request *req, const char *why, bool unknown)
{
	char addr[64];
	long long now = (long long)time(NULL);
	unsigned flags = 0;
	size_t blocked = 0;

	metrics_inc(METRICS_THROTTLE_MISSES, 1);
	if (unknown)
		flags = throttle_miss_unknown(c->throttle, req->peer, now, &blocked);
	else if (throttle_miss(c->throttle, req->peer, now))
		flags = THROTTLE_BLOCK;
	if (flags & THROTTLE_TRIPPED) {
		log_warn("provisioning: unknown-MAC misses from all sources reached the global "
		         "limit; every source that misses is blocked for a while");
		svc_event(c->svc, "prov.tripped", 0, NULL, NULL,
		          json_pack("{s:I}", "blocked_sources", (json_int_t)blocked));
	}
	if (flags & THROTTLE_BLOCK) {
		metrics_inc(METRICS_THROTTLE_BLOCKS, 1);
		throttle_addr(req->peer, addr, sizeof(addr));
		log_warn("provisioning: blocking %s after repeated misses (%s)", addr, why);
		svc_event(c->svc, "prov.throttled", 0, NULL, NULL,
		          json_pack("{s:s, s:s}", "source", addr, "last", why));
	}
}

static void
miss(struct api_ctx *c, const struct http_request *req, const char *why)
{
	miss_of(c, req, why, false);
}

struct access_check {
	const struct http_request *req;
	struct http_response *res;
	struct mtls *mtls;
	const char *mac;     /* the MAC of the requested file */
	int verdict;         /* 0 ok, else HTTP status already filled */
	const char *refused; /* a refusal to count and record: "network", "credentials",
	                        or an mtls_verdict_name() */
	char cert_mac[13];   /* the MAC the client certificate names, "" if none */
};

/*
 * A download refused by an organization's rules (source network, wrong
 * credentials): an event for the audit trail, and a miss for the throttle,
 * which also bounds how many such events one source can cause.
 */
static void
refused(struct api_ctx *c, const struct http_request *req, const struct pub_ref *ref,
        const struct access_check *a)
{
	char addr[64];
	const char *why = a->refused;

	if (strcmp(why, "network") == 0)
		authlog_refused(req->peer, AUTHLOG_PROV_NETWORK, "not-allowed");
	else if (strcmp(why, "credentials") == 0)
		authlog_refused(req->peer, AUTHLOG_DIGEST, "wrong-credentials");
	else /* mutual TLS: the client certificate (mtls_verdict_name) */
		authlog_refused(req->peer, AUTHLOG_CLIENT_CERT,
		                strstr(why, "another mac") ? "wrong-mac"
		                : strstr(why, "revoked")   ? "revoked"
		                                           : "refused");
	throttle_addr(req->peer, addr, sizeof(addr));
	/* the MAC a certificate names (hex) tells a neighbour's phone from a
	 * stolen certificate */
	svc_event(c->svc, "prov.denied", ref->org, NULL, ref->mac,
	          json_pack("{s:s, s:s, s:s*}", "source", addr, "reason", why, "certificate_mac",
	                    a->cert_mac[0] != '\0' ? a->cert_mac : NULL));
	miss(c, req, why);
}

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * Whether a 404 for name is a miss: the name carries a MAC (12 hex digits
 * in a run of hex digits; "spa<mac>" makes runs of 13 or more, so every
 * 12-digit window is tried) and none of its windows is a known device.
 * Windows starting with nine zeros are the vendors' generic names
 * (000000000000-directory.xml, y000000000000.boot), not MACs.
 */
static bool
names_unknown_mac(struct api_ctx *c, const char *name)
{
	bool mac_seen = false;

	for (const char *s = name; *s != '\0';) {
		const char *e = s;
		size_t n;

		while (is_hex(*e))
			e++;
		n = (size_t)(e - s);
		for (size_t k = 0; n >= HD_MAC_LEN && k + HD_MAC_LEN <= n; k++) {
			char mac[HD_MAC_LEN + 1];
			struct pub_ref ref;

			memcpy(mac, s + k, HD_MAC_LEN);
			mac[HD_MAC_LEN] = '\0';
			if (strncmp(mac, "000000000", 9) == 0 || hd_mac_normalize(mac, mac) != 0)
				continue;
			mac_seen = true;
			if (pub_get_device(c->pub, mac, &ref) == 1) {
				pub_release(ref.blob);
				return false;
			}
		}
		s = *e != '\0' ? e + 1 : e;
	}
	return mac_seen;
}

static void
blob_done(void *ref)
{
	pub_release(ref);
}


#define MTLS_CHAIN 8

/*
 * The factory certificate check of an organization with client_cert set:
 * 0 when it passes (or is not asked for), else the 403 filled in.  With
 * "optional", a phone that shows no certificate goes on to the other
 * rules; one that shows a certificate must show a good one.
 */
static int
check_cert(struct access_check *a, const struct pub_access_view *v)
{
	struct mtls_der chain[MTLS_CHAIN];
	enum mtls_verdict mv;
	char got[13];
	size_t n;

	if (v->client_cert == HD_CERT_NONE)
		return 0;
	for (n = 0; n < MTLS_CHAIN; n++)
		if (http_client_cert(a->req, n, &chain[n].data, &chain[n].len) != 0)
			break;
	if (n == 0) {
		if (v->client_cert == HD_CERT_OPTIONAL)
			return 0;
		text(a->res, 403, a->req->tls ? "a client certificate is required"
		                              : "HTTPS with a client certificate is required");
		a->refused = "no certificate";
		return a->verdict = 403;
	}
	mv = mtls_check(a->mtls, v->profile ? v->profile : "", chain, n, (long long)time(NULL),
	                a->mac, got);
	memcpy(a->cert_mac, got, sizeof(a->cert_mac));
	if (mv == MTLS_OK)
		return 0;
	text(a->res, 403, mtls_verdict_name(mv));
	a->refused = mtls_verdict_name(mv);
	return a->verdict = 403;
}

static int
check_access(const struct pub_access_view *v, void *arg)
{
	struct access_check *a = arg;
	char *user;
	int ok;

	if (v->nets != NULL && !cfg_netlist_allows(v->nets, a->req->peer)) {
		text(a->res, 403, "source address not allowed");
		a->refused = "network";
		return a->verdict = 403;
	}
	if (check_cert(a, v) != 0)
		return a->verdict;
	if (v->auth == HD_PROV_NONE)
		return a->verdict = 0;
	if (v->password == NULL || v->user == NULL) {
		text(a->res, 403, "no download credentials set for this device");
		return a->verdict = 403;
	}
	if ((user = http_digest_username(a->req)) == NULL) {
		http_digest_challenge(a->req, a->res, REALM, false);
		return a->verdict = 401;
	}
	/* user names match ignoring case (phones write MACs either way); the
	 * digest is checked with the name as the phone sent it */
	ok = strcasecmp(user, v->user) == 0 ? http_digest_check(a->req, REALM, user, v->password)
	                                    : 0;
	free(user);
	if (ok == 1)
		return a->verdict = 0;
	if (ok == 0)
		a->refused = "credentials";
	http_digest_challenge(a->req, a->res, REALM, ok == -1);
	return a->verdict = 401;
}

/* Whether the MAC of name is a known device ("<mac>-app.log" etc.). */
static bool
log_upload(struct api_ctx *c, const struct http_request *req, struct http_response *res,
           const char *name)
{
	char mac[HD_MAC_LEN + 1], err[256];
	const char *dash = strchr(name, '-');
	struct pub_ref ref;
	char line[64];
	struct access_check a = { req, res, c->mtls, NULL, 0, NULL, "" };

	if (dash == NULL || dash - name != HD_MAC_LEN ||
	    (strcmp(dash, "-app.log") != 0 && strcmp(dash, "-boot.log") != 0))
		return false;
	memcpy(mac, name, HD_MAC_LEN);
	mac[HD_MAC_LEN] = '\0';
	if (hd_mac_normalize(mac, mac) != 0)
		return false;
	/* the device must exist: ask for its per-device file */
	snprintf(line, sizeof(line), "%s", mac);
	if (pub_get_device(c->pub, mac, &ref) != 1) {
		miss(c, req, "unknown mac");
		text(res, 404, "not found");
		return true;
	}
	a.mac = ref.mac;
	(void)pub_with_access(c->pub, &ref, check_access, &a);
	pub_release(ref.blob);
	if (a.verdict != 0) {
		if (a.refused != NULL)
			refused(c, req, &ref, &a);
		return true;
	}
	if (c->phone_logs == NULL) {
		text(res, 204, "");
		return true;
	}
	snprintf(line, sizeof(line), "%s%s", mac, dash);
	if (fs_write_atomic(c->phone_logs, line, req->body, req->body_len, err, sizeof(err)) != 0) {
		log_error("phone log: %s", err);
		text(res, 500, "cannot store the log");
		return true;
	}
	text(res, 201, "stored");
	return true;
}

static void
serve(struct api_ctx *c, const struct http_request *req, struct http_response *res)
{
	struct access_check a = { req, res, c->mtls, NULL, 0, NULL, "" };
	struct pub_ref ref;
	char name[160];
	const char *inm;
	int rc;

	if (throttle_blocked(c->throttle, req->peer, (long long)time(NULL))) {
		authlog_refused(req->peer, AUTHLOG_THROTTLED, "blocked");
		text(res, 403, "too many failed requests; try later");
		return;
	}
	if (http_path_nsegments(req->path, c->prefix) != 1 ||
	    http_path_segment(req->path, c->prefix, 0, name, sizeof(name)) < 0) {
		text(res, 404, "not found");
		return;
	}
	if (strcmp(req->method, "PUT") == 0) {
		if (!log_upload(c, req, res, name))
			text(res, 403, "uploads of this file are not accepted");
		return;
	}
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		text(res, 405, "method not allowed");
		return;
	}
	rc = pub_get(c->pub, name, &ref);
	if (rc != 1) {
		if (rc == 0 && names_unknown_mac(c, name))
			miss_of(c, req, "unknown mac", true);
		text(res, 404, "not found");
		return;
	}
	if (ref.per_device) {
		a.mac = ref.mac;
		(void)pub_with_access(c->pub, &ref, check_access, &a);
		if (a.verdict != 0) {
			if (a.refused != NULL)
				refused(c, req, &ref, &a);
			pub_release(ref.blob);
			return;
		}
		/* only news goes on (a repeat confirms nothing new; a resync
		 * waiting for a version makes the next fetch news) */
		if (strcmp(req->method, "GET") == 0 &&
		    pub_fetched(c->pub, ref.dev, req->peer, http_header(req, "User-Agent"),
		                ref.blob->version, (long long)time(NULL)) &&
		    c->on_fetch != NULL) {
			char src[64];

			throttle_addr(req->peer, src, sizeof(src));
			c->on_fetch(c->fetch_arg, ref.dev, ref.blob->version, src,
			            http_header(req, "User-Agent"));
		}
	}
	snprintf(res->etag, sizeof(res->etag), "%s", ref.blob->etag);
	inm = http_header(req, "If-None-Match");
	if (inm != NULL && (strstr(inm, ref.blob->etag) != NULL || strcmp(inm, "*") == 0)) {
		res->status = 304;
		pub_release(ref.blob);
		return;
	}
	res->status = 200;
	res->content_type = strstr(name, ".xml") || ref.blob->data[0] == '<'
	                        ? "application/xml" : "text/plain; charset=utf-8";
	res->static_body = ref.blob->data;
	res->body_len = ref.blob->len;
	res->static_ref = ref.blob;
	res->static_free = blob_done;
}

/* The access log line of one answer (when [log] access is on): the path
 * and User-Agent come from the client and are shown escaped. */
static void
access_line(const struct http_request *req, const struct http_response *res)
{
	const char *agent = http_header(req, "User-Agent");
	char addr[64], method[24], path[200], ua[200];

	authlog_addr(req->peer, addr, sizeof(addr));
	log_access("access: src=%s method=%s path=%s status=%d bytes=%zu ua=\"%s\"", addr,
	           log_sanitize(req->method, method, sizeof(method)),
	           log_sanitize(req->path, path, sizeof(path)), res->status,
	           res->body != NULL || res->static_body != NULL ? res->body_len : (size_t)0,
	           agent != NULL ? log_sanitize(agent, ua, sizeof(ua)) : "-");
}

void
api_prov_handle(void *arg, const struct http_request *req, struct http_response *res)
{
	serve(arg, req, res);
	metrics_download(res->status);
	if (log_access_enabled())
		access_line(req, res);
}
