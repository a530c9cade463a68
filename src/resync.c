/*
 * resync.c -- the pure rules of the resync engine (resync.h: the state
 * diagram and the invariants).
 *
 * The row state machine, backoff, which device a registration belongs to,
 * URI parsing, target choice and the refusal of targets: functions from
 * values to values, with `now` passed in.  No store handle, no clock, no
 * threads, no I/O, no logging (store.h is included for the plain row
 * struct store_resync only).  tests/test_resync.c drives them directly;
 * the engine (resync_engine.c) carries their decisions out.
 */
#include "resync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "virt.h"

#define BACKOFF_MAX_S 86400

/* ---- the pure part ------------------------------------------------------ */

long long
resync_backoff_s(const struct resync_policy *p, int attempts)
{
	long long t = p->timeout_s > 0 ? p->timeout_s : 1;

	for (int i = 1; i < attempts && t < BACKOFF_MAX_S; i++)
		t *= 2;
	return t < BACKOFF_MAX_S ? t : BACKOFF_MAX_S;
}

bool
resync_state_is(const struct store_resync *row, const char *s)
{
	return strcmp(row->state, s) == 0;
}

void
resync_set_state(struct store_resync *row, const char *s)
{
	/* the four state names fit state[16] */
	(void)snprintf(row->state, sizeof(row->state), "%s", s);
}

enum resync_action
resync_step(struct store_resync *row, const struct resync_policy *p, long long now)
{
	if (!resync_state_is(row, "pending") && !resync_state_is(row, "notified"))
		return RESYNC_WAIT;
	if (row->next_at > now)
		return RESYNC_WAIT;
	if (row->attempts >= (p->retries > 0 ? p->retries : 1)) {
		resync_set_state(row, "stale");
		row->next_at = 0;
		return RESYNC_GIVE_UP;
	}
	row->attempts++;
	resync_set_state(row, "notified");
	row->next_at = now + resync_backoff_s(p, row->attempts);
	return RESYNC_SEND;
}

bool
resync_record_result(struct store_resync *row, int status, const char *reason, long long now)
{
	const char *why = reason != NULL && reason[0] != '\0' ? reason : "?";
	int n;

	if (status > 0)
		n = snprintf(row->last_result, sizeof(row->last_result), "%d %s", status, why);
	else if (status == 0)
		n = snprintf(row->last_result, sizeof(row->last_result), "timeout");
	else
		n = snprintf(row->last_result, sizeof(row->last_result), "error: %s", why);
	if (n < 0 || (size_t)n >= sizeof(row->last_result)) /* a cut reason is still shown */
		row->last_result[sizeof(row->last_result) - 1] = '\0';
	row->last_at = now;
	return status >= 200 && status < 300;
}

static bool
confirmable(const struct store_resync *row)
{
	return row->version != 0 && !resync_state_is(row, "synced");
}

bool
resync_confirm_fetch(struct store_resync *row, unsigned long long fetched)
{
	if (!confirmable(row) || fetched < row->version)
		return false;
	resync_set_state(row, "synced");
	row->next_at = 0;
	return true;
}

const char *
resync_how_name(enum resync_how h)
{
	switch (h) {
	case RESYNC_BY_UA: return "ua";
	case RESYNC_BY_ADDRESS: return "address";
	case RESYNC_BY_IDENTITY: return "identity";
	default: return "";
	}
}

bool
resync_confirm_registration(struct store_resync *row, const char *reg_user,
                            const char *expected_user, enum resync_how how)
{
	/* identity alone proves nothing: the phone an extension leaves
	 * keeps registering it until it reloads */
	if (how != RESYNC_BY_UA && how != RESYNC_BY_ADDRESS)
		return false;
	if (!confirmable(row) || reg_user == NULL || expected_user == NULL ||
	    strcmp(reg_user, expected_user) != 0)
		return false;
	resync_set_state(row, "synced");
	row->next_at = 0;
	return true;
}

const char *
resync_expected_user(const struct world *w, const struct hd_dev *d)
{
	struct virt_carried k = virt_carried(w, d);

	if (k.kind == VIRT_CARRY_EXT && k.ext != NULL)
		return k.ext->sip_user;
	return d->parking_user;
}

const struct hd_dev *
resync_reg_device(const struct world *w, const struct resync_reg_in *in, enum resync_how *how)
{
	const struct hd_dev *d;

	*how = RESYNC_BY_NONE;
	if (in->sip_user == NULL || in->sip_user[0] == '\0')
		return NULL;
	if (in->ua_mac != NULL && in->ua_mac[0] != '\0' &&
	    (d = world_dev_by_mac(w, in->ua_mac)) != NULL) {
		*how = RESYNC_BY_UA;
		return d;
	}
	if (in->addr_dev != 0 && (d = world_dev(w, in->addr_dev)) != NULL) {
		const char *exp = resync_expected_user(w, d);

		/* the same phone: it re-registers what it had there, or what it
		 * must carry now; anything else is another phone on that address */
		if ((in->addr_prev_user != NULL && strcmp(in->addr_prev_user, in->sip_user) == 0) ||
		    (exp != NULL && strcmp(exp, in->sip_user) == 0)) {
			*how = RESYNC_BY_ADDRESS;
			return d;
		}
	}
	if ((d = virt_calling_device(w, in->sip_user)) != NULL)
		*how = RESYNC_BY_IDENTITY;
	return d;
}

static int
copy_part(char *dst, size_t len, const char *src, size_t n)
{
	if (n >= len)
		return -1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

int
resync_parse_uri(const char *uri, char *user, size_t userlen, char *host, size_t hostlen,
                 int *port)
{
	const char *p = uri, *end, *at, *h, *he;
	long v;

	*port = 0;
	if (userlen > 0)
		user[0] = '\0';
	if (hostlen > 0)
		host[0] = '\0';
	if (p == NULL)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '<') {
		p++;
		if ((end = strchr(p, '>')) == NULL)
			return -1;
	} else {
		end = p + strlen(p);
	}
	if (strncasecmp(p, "sips:", 5) == 0)
		return -1;
	if (strncasecmp(p, "sip:", 4) == 0)
		p += 4;
	/* the host part ends at the first ';', '?' or '>' after the user */
	at = NULL;
	for (const char *q = p; q < end && *q != ';' && *q != '?'; q++)
		if (*q == '@')
			at = q;
	if (at != NULL) {
		/* userinfo is user[:password] (RFC 3261 19.1.1): keep only the
		 * user, so a password never reaches a Request-URI, a log or an
		 * API answer */
		const char *colon = memchr(p, ':', (size_t)(at - p));

		if (copy_part(user, userlen, p, (size_t)((colon ? colon : at) - p)) != 0)
			return -1;
		h = at + 1;
	} else {
		h = p;
	}
	for (he = h; he < end && *he != ';' && *he != '?' && *he != '>'; he++)
		;
	if (he == h)
		return -1;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(he - h));

		if (rb == NULL || copy_part(host, hostlen, h + 1, (size_t)(rb - h - 1)) != 0)
			return -1;
		h = rb + 1;
	} else {
		const char *colon = memchr(h, ':', (size_t)(he - h));
		const char *last = colon;

		/* a bare IPv6 address has several colons and no port */
		if (colon != NULL && memchr(colon + 1, ':', (size_t)(he - colon - 1)) != NULL)
			last = NULL;
		if (copy_part(host, hostlen, h, (size_t)((last ? last : he) - h)) != 0)
			return -1;
		h = last ? last : he;
	}
	if (host[0] == '\0')
		return -1;
	for (const char *q = host; *q != '\0'; q++)
		if ((unsigned char)*q <= 0x20 || *q == '@' || *q == '<' || *q == '>' || *q == '"')
			return -1;
	for (const char *q = user; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			return -1;
	if (h < he && *h == ':') {
		char num[8];
		char *e;

		if (copy_part(num, sizeof(num), h + 1, (size_t)(he - h - 1)) != 0 || num[0] == '\0')
			return -1;
		errno = 0;
		v = strtol(num, &e, 10);
		if (*e != '\0' || errno != 0 || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
	} else if (h != he) {
		return -1;
	}
	return 0;
}

const char *
resync_source_name(enum resync_source s)
{
	switch (s) {
	case RESYNC_TGT_REGISTRATION: return "registration";
	case RESYNC_TGT_FETCH: return "fetch";
	case RESYNC_TGT_STATIC: return "static";
	default: return "none";
	}
}

/* An IPv4-mapped IPv6 source ("::ffff:a.b.c.d") is written as IPv4. */
static const char *
unmapped(const char *ip)
{
	return strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, ':') == NULL &&
	               strchr(ip + 7, '.') != NULL
	           ? ip + 7
	           : ip;
}

bool
resync_numeric_host(const char *h)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

const char *
resync_target_refused(const char *host, int port, const struct cfg_netlist *nets)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
	uint8_t *a = sa.sin6_addr.s6_addr;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	bool v4;

	if (inet_pton(AF_INET, host, a + 12) == 1) {
		memcpy(a, mapped, sizeof(mapped));
	} else if (inet_pton(AF_INET6, host, a) != 1) {
		return "not a numeric address";
	}
	v4 = memcmp(a, mapped, sizeof(mapped)) == 0;
	if (v4 && a[12] == 0)
		return "a \"this network\" address (0.0.0.0/8)";
	if (v4 && a[12] >= 224)
		return a[12] < 240 ? "a multicast address" : "a broadcast or reserved address";
	if (!v4 && a[0] == 0xff)
		return "a multicast address";
	if (!v4 && memcmp(a, (const uint8_t[16]){ 0 }, 16) == 0)
		return "the unspecified address";
	if (port < 1024)
		return "a privileged port";
	if (nets == NULL || nets->n == 0)
		return NULL;
	if (!cfg_netlist_allows(nets, (const struct sockaddr *)&sa))
		return "outside [sip] notify_networks";
	for (size_t i = 0; v4 && i < nets->n; i++) {
		const struct cfg_net *n = &nets->v[i];
		uint32_t x, m;

		if (memcmp(n->addr, mapped, sizeof(mapped)) != 0 || n->prefix < 96 ||
		    n->prefix > 96 + 30)
			continue;
		m = n->prefix == 96 ? 0 : ~(uint32_t)0 << (32 - (n->prefix - 96));
		x = (uint32_t)a[12] << 24 | (uint32_t)a[13] << 16 | (uint32_t)a[14] << 8 | a[15];
		if ((x & ~m) == ~m &&
		    (x & m) == ((uint32_t)n->addr[12] << 24 | (uint32_t)n->addr[13] << 16 |
		                (uint32_t)n->addr[14] << 8 | n->addr[15]))
			return "the broadcast address of a phone network";
	}
	return NULL;
}

int
resync_pick_target(const struct resync_target_in *in, struct resync_target *out)
{
	memset(out, 0, sizeof(*out));
	/* a contact that may not be a target is passed over, as if absent */
	if (in->reg_contact != NULL && in->reg_contact[0] != '\0' && in->reg_expires_at > in->now &&
	    resync_parse_uri(in->reg_contact, out->user, sizeof(out->user), out->host,
	                     sizeof(out->host), &out->port) == 0 &&
	    resync_target_refused(out->host, out->port ? out->port : 5060, in->nets) == NULL) {
		out->source = RESYNC_TGT_REGISTRATION;
		goto found;
	}
	if (in->fetch_source != NULL && in->fetch_source[0] != '\0') {
		const char *ip = unmapped(in->fetch_source);

		if (resync_target_refused(ip, 5060, in->nets) == NULL &&
		    copy_part(out->host, sizeof(out->host), ip, strlen(ip)) == 0) {
			out->user[0] = '\0';
			out->port = 5060; /* SPEC 5: the SIP port, not the HTTP one */
			out->source = RESYNC_TGT_FETCH;
			goto found;
		}
	}
	/* a static contact naming a host is checked once resolved (send) */
	if (in->static_contact != NULL && in->static_contact[0] != '\0' &&
	    resync_parse_uri(in->static_contact, out->user, sizeof(out->user), out->host,
	                     sizeof(out->host), &out->port) == 0 &&
	    (!resync_numeric_host(out->host) ||
	     resync_target_refused(out->host, out->port ? out->port : 5060, in->nets) == NULL)) {
		out->source = RESYNC_TGT_STATIC;
		goto found;
	}
	memset(out, 0, sizeof(*out));
	return -1;
found:
	if (out->port == 0)
		out->port = 5060;
	return 0;
}

void
resync_target_uri(const struct resync_target *t, char *buf, size_t len)
{
	bool v6 = strchr(t->host, ':') != NULL;
	int n = snprintf(buf, len, "sip:%s%s%s%s%s:%d", t->user, t->user[0] ? "@" : "",
	                 v6 ? "[" : "", t->host, v6 ? "]" : "", t->port);

	if (n < 0 || (size_t)n >= len)
		(void)snprintf(buf, len, "(too long)");
}

