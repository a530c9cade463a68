/*
 * sip.c -- SIP NOTIFY building, response parsing and digest (see sip.h).
 *
 * Pure code: no I/O, no clock, no globals, no logging.  Randomness comes
 * from the caller.  Three parts:
 *   - an appender (struct sbuf) that writes into the caller's buffer and
 *     remembers truncation, so every write is checked once at the end;
 *   - the response parser, which walks the datagram by (pointer, length),
 *     unfolds each logical header line into a bounded local buffer and
 *     picks the few headers a client transaction needs;
 *   - MD5 written from RFC 1321, SHA-256 from libsodium, and the RFC 2617 /
 *     RFC 7616 digest on top of them.
 * Every intermediate buffer that held a password or an HA1 is wiped with
 * sodium_memzero before return.
 */
#include "sip.h"

#include "errbuf.h"
#include "sbuf.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ------------------------------------------------------------------ */
/* errors and checks                                                   */



/* 0 when s is free of CR and LF, -1 (err names the field) otherwise. */
static int
check_line(const char *field, const char *s, char *err, size_t errlen)
{
	if (s != NULL && strpbrk(s, "\r\n") != NULL) {
		hd_seterr(err, errlen, "%s: contains CR, LF or NUL", field);
		return -1;
	}
	return 0;
}

static int
require(const char *field, const char *s, char *err, size_t errlen)
{
	if (s == NULL || *s == '\0') {
		hd_seterr(err, errlen, "%s: missing", field);
		return -1;
	}
	return check_line(field, s, err, errlen);
}

/* RFC 3261 token characters. */
static bool
is_token_char(unsigned char c)
{
	return isalnum(c) || strchr("-.!%*_+`'~", c) != NULL;
}

/* user = 1*( unreserved / escaped / user-unreserved ), RFC 3261 25.1. */
static bool
is_user_char(unsigned char c)
{
	return isalnum(c) || strchr("-_.!~*'()%&=+$,;?/", c) != NULL;
}

static bool
is_host_char(unsigned char c)
{
	return isalnum(c) || c == '.' || c == '-' || c == ':';
}

/* Checks s against a character class; refuses CR/LF first so the error
 * tells a header-injection attempt apart from a merely odd value. */
static int
check_chars(const char *field, const char *s, bool (*ok)(unsigned char),
    char *err, size_t errlen)
{
	if (check_line(field, s, err, errlen) != 0)
		return -1;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (!ok(*p)) {
			hd_seterr(err, errlen, "%s: character 0x%02x not allowed",
			    field, *p);
			return -1;
		}
	}
	return 0;
}

/* Call-ID is `word`: visible ASCII without white space (RFC 3261 25.1). */
static bool
is_word_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

/* ------------------------------------------------------------------ */
/* appender                                                            */

/* Appends s as the inside of a quoted-string, escaping '"' and '\'. */
static void
sb_quoted(struct sbuf *b, const char *s)
{
	sbuf_printf(b, "\"");
	for (; *s && !b->overflow; s++) {
		if (*s == '"' || *s == '\\')
			sbuf_printf(b, "\\%c", *s);
		else
			sbuf_printf(b, "%c", *s);
	}
	sbuf_printf(b, "\"");
}

/* host, bracketed when it is an IPv6 literal. */
static void
sb_host(struct sbuf *b, const char *host)
{
	if (strchr(host, ':') != NULL)
		sbuf_printf(b, "[%s]", host);
	else
		sbuf_printf(b, "%s", host);
}

/* ------------------------------------------------------------------ */
/* NOTIFY                                                              */

static int
check_port(const char *field, int port, char *err, size_t errlen)
{
	if (port < 1 || port > 65535) {
		hd_seterr(err, errlen, "%s: %d out of range 1..65535", field, port);
		return -1;
	}
	return 0;
}

static int
check_notify(const struct sip_notify_req *r, char *err, size_t errlen)
{
	if (r->target_user != NULL && r->target_user[0] != '\0' &&
	    check_chars("target_user", r->target_user, is_user_char, err,
	    errlen) != 0)
		return -1;
	if (require("target_host", r->target_host, err, errlen) != 0 ||
	    check_chars("target_host", r->target_host, is_host_char, err,
	    errlen) != 0 ||
	    check_port("target_port", r->target_port, err, errlen) != 0)
		return -1;
	if (require("local_host", r->local_host, err, errlen) != 0 ||
	    check_chars("local_host", r->local_host, is_host_char, err,
	    errlen) != 0 ||
	    check_port("local_port", r->local_port, err, errlen) != 0)
		return -1;
	if (r->from_user != NULL && (require("from_user", r->from_user, err,
	    errlen) != 0 || check_chars("from_user", r->from_user,
	    is_user_char, err, errlen) != 0))
		return -1;
	if (require("branch", r->branch, err, errlen) != 0 ||
	    check_chars("branch", r->branch, is_token_char, err, errlen) != 0)
		return -1;
	if (require("from_tag", r->from_tag, err, errlen) != 0 ||
	    check_chars("from_tag", r->from_tag, is_token_char, err,
	    errlen) != 0)
		return -1;
	if (require("call_id", r->call_id, err, errlen) != 0 ||
	    check_chars("call_id", r->call_id, is_word_char, err, errlen) != 0)
		return -1;
	if (r->cseq < 1 || r->cseq > 2147483647UL) {
		hd_seterr(err, errlen, "cseq: %lu out of range", r->cseq);
		return -1;
	}
	if (require("event", r->event, err, errlen) != 0)
		return -1;
	if (r->subscription_state != NULL &&
	    require("subscription_state", r->subscription_state, err, errlen) != 0)
		return -1;
	if ((r->content_type == NULL) != (r->body == NULL)) {
		hd_seterr(err, errlen, "%s: missing (body and content_type go "
		    "together)", r->body == NULL ? "body" : "content_type");
		return -1;
	}
	if (r->content_type != NULL &&
	    require("content_type", r->content_type, err, errlen) != 0)
		return -1;
	if (r->authorization != NULL &&
	    require("authorization", r->authorization, err, errlen) != 0)
		return -1;
	if (r->route_host != NULL) {
		if (require("route_host", r->route_host, err, errlen) != 0 ||
		    check_chars("route_host", r->route_host, is_host_char, err,
		    errlen) != 0 ||
		    check_port("route_port", r->route_port, err, errlen) != 0)
			return -1;
	}
	return 0;
}

int
sip_build_notify(const struct sip_notify_req *r, char *buf, size_t buflen,
    size_t *len, char *err, size_t errlen)
{
	struct sbuf b = { buf, buflen, 0, false };
	const char *from = r->from_user != NULL ? r->from_user : "hotdeskd";
	bool user = r->target_user != NULL && r->target_user[0] != '\0';
	size_t bodylen = r->body != NULL ? strlen(r->body) : 0;

	if (buf == NULL || buflen == 0) {
		hd_seterr(err, errlen, "buffer: none given");
		return -1;
	}
	if (check_notify(r, err, errlen) != 0)
		return -1;

	sbuf_printf(&b, "NOTIFY sip:%s%s", user ? r->target_user : "",
	    user ? "@" : "");
	sb_host(&b, r->target_host);
	sbuf_printf(&b, ":%d SIP/2.0\r\n", r->target_port);

	sbuf_printf(&b, "Via: SIP/2.0/UDP ");
	sb_host(&b, r->local_host);
	sbuf_printf(&b, ":%d;branch=" SIP_BRANCH_COOKIE "%s;rport\r\n",
	    r->local_port, r->branch);

	if (r->route_host != NULL) {
		sbuf_printf(&b, "Route: <sip:");
		sb_host(&b, r->route_host);
		sbuf_printf(&b, ":%d;lr>\r\n", r->route_port);
	}
	sbuf_printf(&b, "Max-Forwards: 70\r\n");

	sbuf_printf(&b, "From: <sip:%s@", from);
	sb_host(&b, r->local_host);
	sbuf_printf(&b, ">;tag=%s\r\n", r->from_tag);

	sbuf_printf(&b, "To: <sip:%s%s", user ? r->target_user : "",
	    user ? "@" : "");
	sb_host(&b, r->target_host);
	sbuf_printf(&b, ":%d>\r\n", r->target_port);

	sbuf_printf(&b, "Call-ID: %s\r\n", r->call_id);
	sbuf_printf(&b, "CSeq: %lu NOTIFY\r\n", r->cseq);

	sbuf_printf(&b, "Contact: <sip:%s@", from);
	sb_host(&b, r->local_host);
	sbuf_printf(&b, ":%d>\r\n", r->local_port);

	sbuf_printf(&b, "Event: %s\r\n", r->event);
	sbuf_printf(&b, "Subscription-State: %s\r\n",
	    r->subscription_state ? r->subscription_state : "terminated");
	if (r->authorization != NULL)
		sbuf_printf(&b, "%s: %s\r\n", r->proxy_authorization ?
		    "Proxy-Authorization" : "Authorization", r->authorization);
	if (r->content_type != NULL)
		sbuf_printf(&b, "Content-Type: %s\r\n", r->content_type);
	sbuf_printf(&b, "Content-Length: %zu\r\n\r\n", bodylen);
	if (!b.overflow && bodylen > 0) {
		if (bodylen >= b.cap - b.len)
			b.overflow = true;
		else {
			memcpy(b.buf + b.len, r->body, bodylen);
			b.len += bodylen;
			b.buf[b.len] = '\0';
		}
	}
	if (b.overflow) {
		hd_seterr(err, errlen, "buffer: message longer than %zu bytes",
		    buflen - 1);
		return -1;
	}
	if (len != NULL)
		*len = b.len;
	return 0;
}

int
sip_request_uri(const char *user, const char *host, int port, char *buf,
    size_t buflen, char *err, size_t errlen)
{
	struct sbuf b = { buf, buflen, 0, false };
	bool u = user != NULL && user[0] != '\0';

	if (buf == NULL || buflen == 0) {
		hd_seterr(err, errlen, "buffer: none given");
		return -1;
	}
	if ((u && check_chars("target_user", user, is_user_char, err,
	    errlen) != 0) ||
	    require("target_host", host, err, errlen) != 0 ||
	    check_chars("target_host", host, is_host_char, err, errlen) != 0 ||
	    check_port("target_port", port, err, errlen) != 0)
		return -1;
	sbuf_printf(&b, "sip:%s%s", u ? user : "", u ? "@" : "");
	sb_host(&b, host);
	sbuf_printf(&b, ":%d", port);
	if (b.overflow) {
		hd_seterr(err, errlen, "buffer: URI longer than %zu bytes",
		    buflen - 1);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* response parsing                                                    */

/* A view into the datagram or into the unfold buffer. */
struct span {
	const char *p;
	size_t n;
};

static void
trim(struct span *s)
{
	while (s->n > 0 && (s->p[0] == ' ' || s->p[0] == '\t')) {
		s->p++;
		s->n--;
	}
	while (s->n > 0 && (s->p[s->n - 1] == ' ' || s->p[s->n - 1] == '\t'))
		s->n--;
}

static bool
span_ieq(struct span s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

/* Copies s into dst[dstlen] with a NUL; -1 when it does not fit or holds
 * a control character. */
static int
span_copy(struct span s, char *dst, size_t dstlen)
{
	if (s.n >= dstlen)
		return -1;
	for (size_t i = 0; i < s.n; i++)
		if ((unsigned char)s.p[i] < 0x20 && s.p[i] != '\t')
			return -1;
	memcpy(dst, s.p, s.n);
	dst[s.n] = '\0';
	return 0;
}

/* Reads one physical line from [*pos, len): sets *line (without CR LF) and
 * advances *pos past the LF.  Returns false at the end of the buffer. */
static bool
next_line(const char *buf, size_t len, size_t *pos, struct span *line)
{
	size_t i = *pos;

	if (i >= len)
		return false;
	line->p = buf + i;
	while (i < len && buf[i] != '\n')
		i++;
	line->n = (size_t)(buf + i - line->p);
	if (line->n > 0 && line->p[line->n - 1] == '\r')
		line->n--;
	*pos = i < len ? i + 1 : len;
	return true;
}

enum hdr { H_OTHER, H_VIA, H_CSEQ, H_CALLID, H_WWW, H_PROXY };

static enum hdr
header_kind(struct span name)
{
	if (span_ieq(name, "via") || span_ieq(name, "v"))
		return H_VIA;
	if (span_ieq(name, "cseq"))
		return H_CSEQ;
	if (span_ieq(name, "call-id") || span_ieq(name, "i"))
		return H_CALLID;
	if (span_ieq(name, "www-authenticate"))
		return H_WWW;
	if (span_ieq(name, "proxy-authenticate"))
		return H_PROXY;
	return H_OTHER;
}

/* Topmost Via value: "SIP/2.0/UDP host:port;p=v;branch=x, next...".
 * Sets branch ("" when absent).  Returns -1 on a malformed or oversized
 * branch. */
static int
parse_via(struct span v, char *branch, size_t branchlen)
{
	size_t i = 0, end;
	bool inq = false;

	branch[0] = '\0';
	/* Only the first via-parm: stop at a comma outside quotes. */
	for (end = 0; end < v.n; end++) {
		if (v.p[end] == '"')
			inq = !inq;
		else if (v.p[end] == ',' && !inq)
			break;
	}
	if (v.n < 7 || strncasecmp(v.p, "SIP/2.0", 7) != 0)
		return -1;
	while (i < end && v.p[i] != ';')
		i++;
	while (i < end) {
		struct span name, val = { NULL, 0 };
		size_t s;

		i++; /* past ';' */
		s = i;
		while (i < end && v.p[i] != ';' && v.p[i] != '=')
			i++;
		name.p = v.p + s;
		name.n = i - s;
		trim(&name);
		if (i < end && v.p[i] == '=') {
			i++;
			s = i;
			while (i < end && v.p[i] != ';')
				i++;
			val.p = v.p + s;
			val.n = i - s;
			trim(&val);
		}
		if (span_ieq(name, "branch")) {
			if (val.n == 0 || span_copy(val, branch, branchlen) != 0)
				return -1;
			for (size_t k = 0; k < val.n; k++)
				if (!is_token_char((unsigned char)val.p[k]))
					return -1;
			return 0;
		}
	}
	return 0;
}

/* "CSeq: 314159 NOTIFY" */
static int
parse_cseq(struct span v, struct sip_response *out)
{
	size_t i = 0;
	unsigned long n = 0;
	struct span m;

	if (v.n == 0 || !isdigit((unsigned char)v.p[0]))
		return -1;
	while (i < v.n && isdigit((unsigned char)v.p[i])) {
		n = n * 10 + (unsigned long)(v.p[i] - '0');
		if (n > 4294967295UL)
			return -1;
		i++;
	}
	m.p = v.p + i;
	m.n = v.n - i;
	if (m.n == 0 || (m.p[0] != ' ' && m.p[0] != '\t'))
		return -1;
	trim(&m);
	if (m.n == 0)
		return -1;
	for (size_t k = 0; k < m.n; k++)
		if (!is_token_char((unsigned char)m.p[k]))
			return -1;
	if (span_copy(m, out->cseq_method, sizeof(out->cseq_method)) != 0)
		return -1;
	out->cseq = n;
	return 0;
}

/* Copies a parameter value, unescaping a quoted-string.  Returns -1 when
 * it does not fit. */
static int
param_copy(struct span v, bool quoted, char *dst, size_t dstlen)
{
	size_t o = 0;

	for (size_t i = 0; i < v.n; i++) {
		char c = v.p[i];

		if (quoted && c == '\\' && i + 1 < v.n)
			c = v.p[++i];
		if ((unsigned char)c < 0x20)
			return -1;
		if (o + 1 >= dstlen)
			return -1;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return 0;
}

/* `Digest realm="x", nonce="y", ...` into ch.  A non-Digest challenge, a
 * malformed one or one with an oversized field leaves ch->present false. */
static void
parse_challenge(struct span v, struct sip_challenge *ch)
{
	size_t i = 0;
	struct sip_challenge c;

	memset(&c, 0, sizeof(c));
	if (v.n < 6 || strncasecmp(v.p, "Digest", 6) != 0)
		return;
	i = 6;
	if (i < v.n && v.p[i] != ' ' && v.p[i] != '\t')
		return;
	while (i < v.n) {
		struct span name, val;
		bool quoted = false;
		size_t s;
		char *dst = NULL;
		size_t dstlen = 0;

		while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' ||
		    v.p[i] == ','))
			i++;
		if (i >= v.n)
			break;
		s = i;
		while (i < v.n && is_token_char((unsigned char)v.p[i]))
			i++;
		name.p = v.p + s;
		name.n = i - s;
		while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t'))
			i++;
		if (name.n == 0 || i >= v.n || v.p[i] != '=')
			return;
		i++;
		while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t'))
			i++;
		if (i < v.n && v.p[i] == '"') {
			quoted = true;
			s = ++i;
			while (i < v.n && v.p[i] != '"') {
				if (v.p[i] == '\\')
					i++;
				i++;
			}
			if (i >= v.n)
				return; /* unterminated quoted-string */
			val.p = v.p + s;
			val.n = i - s;
			i++;
		} else {
			s = i;
			while (i < v.n && v.p[i] != ',' && v.p[i] != ' ' &&
			    v.p[i] != '\t')
				i++;
			val.p = v.p + s;
			val.n = i - s;
		}
		if (span_ieq(name, "realm")) {
			dst = c.realm;
			dstlen = sizeof(c.realm);
		} else if (span_ieq(name, "nonce")) {
			dst = c.nonce;
			dstlen = sizeof(c.nonce);
		} else if (span_ieq(name, "opaque")) {
			dst = c.opaque;
			dstlen = sizeof(c.opaque);
		} else if (span_ieq(name, "algorithm")) {
			dst = c.algorithm;
			dstlen = sizeof(c.algorithm);
		} else if (span_ieq(name, "qop")) {
			dst = c.qop;
			dstlen = sizeof(c.qop);
		} else if (span_ieq(name, "stale")) {
			c.stale = span_ieq(val, "true");
		}
		if (dst != NULL && param_copy(val, quoted, dst, dstlen) != 0)
			return;
	}
	if (c.nonce[0] == '\0')
		return; /* nothing to answer */
	c.present = true;
	*ch = c;
}

static int
parse_status_line(struct span l, struct sip_response *out)
{
	struct span reason;
	size_t i = 7;
	int st = 0;

	if (l.n < 11 || strncasecmp(l.p, "SIP/2.0", 7) != 0)
		return -1;
	if (l.p[i] != ' ' && l.p[i] != '\t')
		return -1;
	while (i < l.n && (l.p[i] == ' ' || l.p[i] == '\t'))
		i++;
	for (int k = 0; k < 3; k++, i++) {
		if (i >= l.n || !isdigit((unsigned char)l.p[i]))
			return -1;
		st = st * 10 + (l.p[i] - '0');
	}
	if (i < l.n && l.p[i] != ' ' && l.p[i] != '\t')
		return -1;
	if (st < 100 || st > 699)
		return -1;
	reason.p = l.p + i;
	reason.n = l.n - i;
	trim(&reason);
	if (span_copy(reason, out->reason, sizeof(out->reason)) != 0)
		return -1;
	out->status = st;
	return 0;
}

/* Handles one unfolded header line.  Returns -1 on a malformed header the
 * transaction depends on. */
static int
parse_header(struct span line, struct sip_response *out, bool *via,
    bool *cseq, bool *callid)
{
	struct span name, val;
	const char *colon = memchr(line.p, ':', line.n);

	if (colon == NULL)
		return -1;
	name.p = line.p;
	name.n = (size_t)(colon - line.p);
	trim(&name);
	if (name.n == 0)
		return -1;
	for (size_t k = 0; k < name.n; k++)
		if (!is_token_char((unsigned char)name.p[k]))
			return -1;
	val.p = colon + 1;
	val.n = (size_t)(line.p + line.n - val.p);
	trim(&val);

	switch (header_kind(name)) {
	case H_VIA:
		if (*via)
			return 0; /* only the topmost Via matters */
		*via = true;
		return parse_via(val, out->branch, sizeof(out->branch));
	case H_CSEQ:
		if (*cseq)
			return 0;
		*cseq = true;
		return parse_cseq(val, out);
	case H_CALLID:
		if (*callid)
			return 0;
		*callid = true;
		if (val.n == 0)
			return -1;
		for (size_t k = 0; k < val.n; k++)
			if (!is_word_char((unsigned char)val.p[k]))
				return -1;
		return span_copy(val, out->call_id, sizeof(out->call_id));
	case H_WWW:
		if (!out->www_auth.present)
			parse_challenge(val, &out->www_auth);
		return 0;
	case H_PROXY:
		if (!out->proxy_auth.present)
			parse_challenge(val, &out->proxy_auth);
		return 0;
	case H_OTHER:
		return 0;
	}
	return 0;
}

int
sip_parse_response(const char *buf, size_t len, struct sip_response *out)
{
	char hdr[SIP_MAX_MSG];
	size_t pos = 0, hlen = 0;
	struct span line;
	bool have = false, via = false, cseq = false, callid = false;

	memset(out, 0, sizeof(*out));
	if (buf == NULL || len == 0)
		return -1;
	if (!next_line(buf, len, &pos, &line) ||
	    memchr(line.p, '\0', line.n) != NULL ||
	    parse_status_line(line, out) != 0)
		goto bad;

	/* Unfold: a line starting with SP/HT continues the previous one. */
	for (;;) {
		bool more = next_line(buf, len, &pos, &line);
		bool cont = more && line.n > 0 &&
		    (line.p[0] == ' ' || line.p[0] == '\t');

		if (more && memchr(line.p, '\0', line.n) != NULL)
			goto bad;
		if (cont) {
			if (!have)
				goto bad; /* continuation before any header */
			if (hlen + 1 + line.n > sizeof(hdr))
				goto bad;
			hdr[hlen++] = ' ';
			memcpy(hdr + hlen, line.p, line.n);
			hlen += line.n;
			continue;
		}
		if (have) {
			struct span h = { hdr, hlen };

			if (parse_header(h, out, &via, &cseq, &callid) != 0)
				goto bad;
			have = false;
			hlen = 0;
		}
		if (!more || line.n == 0)
			break; /* end of datagram or of the header section */
		if (line.n > sizeof(hdr))
			goto bad;
		memcpy(hdr, line.p, line.n);
		hlen = line.n;
		have = true;
	}
	if (!via || !cseq || !callid)
		goto bad;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* ------------------------------------------------------------------ */
/* MD5, from the description in RFC 1321                               */

struct md5 {
	uint32_t s[4];
	uint64_t bytes;
	unsigned char blk[64];
	size_t used;
};

static const uint32_t md5_k[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
	0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
	0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
	0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
	0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
	0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
	0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
	0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
	0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* Per-round left-rotation amounts (RFC 1321 3.4), 4 per round. */
static const unsigned md5_r[4][4] = {
	{ 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 },
};

static uint32_t
rol32(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static void
md5_block(struct md5 *m, const unsigned char *p)
{
	uint32_t x[16], a = m->s[0], b = m->s[1], c = m->s[2], d = m->s[3];

	for (int i = 0; i < 16; i++)
		x[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
		    (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
	for (int i = 0; i < 64; i++) {
		uint32_t f, t;
		int g;

		switch (i / 16) {
		case 0:
			f = (b & c) | (~b & d);
			g = i;
			break;
		case 1:
			f = (b & d) | (c & ~d);
			g = (5 * i + 1) % 16;
			break;
		case 2:
			f = b ^ c ^ d;
			g = (3 * i + 5) % 16;
			break;
		default:
			f = c ^ (b | ~d);
			g = (7 * i) % 16;
			break;
		}
		t = d;
		d = c;
		c = b;
		b = b + rol32(a + f + md5_k[i] + x[g], md5_r[i / 16][i % 4]);
		a = t;
	}
	m->s[0] += a;
	m->s[1] += b;
	m->s[2] += c;
	m->s[3] += d;
	sodium_memzero(x, sizeof(x));
}

static void
md5_init(struct md5 *m)
{
	m->s[0] = 0x67452301;
	m->s[1] = 0xefcdab89;
	m->s[2] = 0x98badcfe;
	m->s[3] = 0x10325476;
	m->bytes = 0;
	m->used = 0;
}

static void
md5_update(struct md5 *m, const void *data, size_t len)
{
	const unsigned char *p = data;

	m->bytes += len;
	while (len > 0) {
		size_t take = 64 - m->used;

		if (take > len)
			take = len;
		memcpy(m->blk + m->used, p, take);
		m->used += take;
		p += take;
		len -= take;
		if (m->used == 64) {
			md5_block(m, m->blk);
			m->used = 0;
		}
	}
}

static void
md5_final(struct md5 *m, unsigned char out[16])
{
	uint64_t bits = m->bytes * 8;
	unsigned char pad = 0x80, zero = 0, lenle[8];

	md5_update(m, &pad, 1);
	while (m->used != 56)
		md5_update(m, &zero, 1);
	for (int i = 0; i < 8; i++)
		lenle[i] = (unsigned char)(bits >> (8 * i));
	md5_update(m, lenle, 8);
	for (int i = 0; i < 4; i++) {
		out[4 * i] = (unsigned char)m->s[i];
		out[4 * i + 1] = (unsigned char)(m->s[i] >> 8);
		out[4 * i + 2] = (unsigned char)(m->s[i] >> 16);
		out[4 * i + 3] = (unsigned char)(m->s[i] >> 24);
	}
	sodium_memzero(m, sizeof(*m));
}

void
sip_md5(const void *data, size_t len, unsigned char out[16])
{
	struct md5 m;

	md5_init(&m);
	md5_update(&m, data, len);
	md5_final(&m, out);
}

/* ------------------------------------------------------------------ */
/* digest                                                              */

/* One hash computation, MD5 or SHA-256, fed with ':'-joined strings. */
struct hctx {
	bool sha;
	struct md5 md5;
	crypto_hash_sha256_state sha256;
};

static void
h_init(struct hctx *h, bool sha)
{
	h->sha = sha;
	if (sha)
		crypto_hash_sha256_init(&h->sha256);
	else
		md5_init(&h->md5);
}

static void
h_str(struct hctx *h, const char *s)
{
	if (h->sha)
		crypto_hash_sha256_update(&h->sha256, (const unsigned char *)s,
		    strlen(s));
	else
		md5_update(&h->md5, s, strlen(s));
}

/* Appends ":" then s. */
static void
h_next(struct hctx *h, const char *s)
{
	h_str(h, ":");
	h_str(h, s);
}

/* Finishes into lowercase hex (33 or 65 bytes) and wipes the state. */
static void
h_hex(struct hctx *h, char *hex, size_t hexlen)
{
	unsigned char d[crypto_hash_sha256_BYTES];
	size_t n = h->sha ? crypto_hash_sha256_BYTES : 16;

	if (h->sha)
		crypto_hash_sha256_final(&h->sha256, d);
	else
		md5_final(&h->md5, d);
	sodium_bin2hex(hex, hexlen, d, n);
	sodium_memzero(d, sizeof(d));
	sodium_memzero(h, sizeof(*h));
}

int
sip_digest_alg_parse(const char *name, enum sip_digest_alg *alg)
{
	if (name == NULL || *name == '\0' || strcasecmp(name, "MD5") == 0)
		*alg = SIP_DIGEST_MD5;
	else if (strcasecmp(name, "MD5-sess") == 0)
		*alg = SIP_DIGEST_MD5_SESS;
	else if (strcasecmp(name, "SHA-256") == 0)
		*alg = SIP_DIGEST_SHA256;
	else if (strcasecmp(name, "SHA-256-sess") == 0)
		*alg = SIP_DIGEST_SHA256_SESS;
	else
		return -1;
	return 0;
}

int
sip_digest_response(enum sip_digest_alg alg, const char *user,
    const char *realm, const char *password, const char *method,
    const char *uri, const char *nonce, const char *qop, const char *nc,
    const char *cnonce, char *out, size_t outlen)
{
	bool sha = alg == SIP_DIGEST_SHA256 || alg == SIP_DIGEST_SHA256_SESS;
	bool sess = alg == SIP_DIGEST_MD5_SESS || alg == SIP_DIGEST_SHA256_SESS;
	bool useqop = qop != NULL && *qop != '\0';
	char ha1[65], ha2[65];
	struct hctx h;

	if (user == NULL || realm == NULL || password == NULL ||
	    method == NULL || uri == NULL || nonce == NULL || out == NULL)
		return -1;
	if (outlen < (sha ? 65u : 33u))
		return -1;
	if (useqop && strcmp(qop, "auth") != 0)
		return -1; /* auth-int needs the body hash: not offered */
	if (useqop && (nc == NULL || *nc == '\0'))
		return -1;
	if ((useqop || sess) && (cnonce == NULL || *cnonce == '\0'))
		return -1;

	h_init(&h, sha);
	h_str(&h, user);
	h_next(&h, realm);
	h_next(&h, password);
	h_hex(&h, ha1, sizeof(ha1));
	if (sess) {
		h_init(&h, sha);
		h_str(&h, ha1);
		h_next(&h, nonce);
		h_next(&h, cnonce);
		h_hex(&h, ha1, sizeof(ha1));
	}
	h_init(&h, sha);
	h_str(&h, method);
	h_next(&h, uri);
	h_hex(&h, ha2, sizeof(ha2));

	h_init(&h, sha);
	h_str(&h, ha1);
	h_next(&h, nonce);
	if (useqop) {
		h_next(&h, nc);
		h_next(&h, cnonce);
		h_next(&h, qop);
	}
	h_next(&h, ha2);
	h_hex(&h, out, outlen);
	sodium_memzero(ha1, sizeof(ha1));
	sodium_memzero(ha2, sizeof(ha2));
	return 0;
}

/* True when the comma-separated qop list offers "auth". */
static bool
qop_offers_auth(const char *list)
{
	const char *p = list;

	while (*p) {
		struct span t;
		const char *e = strchr(p, ',');

		if (e == NULL)
			e = p + strlen(p);
		t.p = p;
		t.n = (size_t)(e - p);
		trim(&t);
		if (span_ieq(t, "auth"))
			return true;
		p = *e ? e + 1 : e;
	}
	return false;
}

int
sip_challenge_allowed(const struct sip_challenge *ch, const struct sip_auth_policy *pol,
    char *err, size_t errlen)
{
	enum sip_digest_alg alg;

	if (pol == NULL || pol->realm == NULL) {
		hd_seterr(err, errlen, "this phone family does not challenge");
		return -1;
	}
	if (strcmp(ch->realm, pol->realm) != 0) {
		hd_seterr(err, errlen, "realm not the phone's");
		return -1;
	}
	if (sip_digest_alg_parse(ch->algorithm, &alg) != 0 ||
	    (pol->algorithms & (1u << alg)) == 0) {
		hd_seterr(err, errlen, "algorithm not the phone's");
		return -1;
	}
	if (pol->qop_required && (ch->qop[0] == '\0' || !qop_offers_auth(ch->qop))) {
		hd_seterr(err, errlen, "qop missing");
		return -1;
	}
	return 0;
}

int
sip_build_authorization(const struct sip_challenge *ch, const char *user,
    const char *password, const char *method, const char *uri,
    const char *cnonce, char *buf, size_t buflen, char *err, size_t errlen)
{
	struct sbuf b = { buf, buflen, 0, false };
	enum sip_digest_alg alg;
	bool qop;
	char resp[65];
	const char *nc = "00000001";

	if (ch == NULL || !ch->present) {
		hd_seterr(err, errlen, "challenge: none");
		return -1;
	}
	if (buf == NULL || buflen == 0) {
		hd_seterr(err, errlen, "buffer: none given");
		return -1;
	}
	if (require("auth_user", user, err, errlen) != 0 ||
	    check_line("auth_password", password, err, errlen) != 0 ||
	    require("method", method, err, errlen) != 0 ||
	    check_chars("method", method, is_token_char, err, errlen) != 0 ||
	    require("uri", uri, err, errlen) != 0 ||
	    check_line("realm", ch->realm, err, errlen) != 0 ||
	    check_line("nonce", ch->nonce, err, errlen) != 0 ||
	    check_line("opaque", ch->opaque, err, errlen) != 0)
		return -1;
	if (password == NULL) {
		hd_seterr(err, errlen, "auth_password: missing");
		return -1;
	}
	if (sip_digest_alg_parse(ch->algorithm, &alg) != 0) {
		hd_seterr(err, errlen, "algorithm: unsupported");
		return -1;
	}
	qop = ch->qop[0] != '\0';
	if (qop && !qop_offers_auth(ch->qop)) {
		hd_seterr(err, errlen, "qop: only auth is supported");
		return -1;
	}
	if ((qop || alg == SIP_DIGEST_MD5_SESS ||
	    alg == SIP_DIGEST_SHA256_SESS) &&
	    (require("cnonce", cnonce, err, errlen) != 0 ||
	    check_chars("cnonce", cnonce, is_token_char, err, errlen) != 0))
		return -1;
	if (sip_digest_response(alg, user, ch->realm, password, method, uri,
	    ch->nonce, qop ? "auth" : NULL, nc, cnonce, resp,
	    sizeof(resp)) != 0) {
		hd_seterr(err, errlen, "digest: cannot compute");
		return -1;
	}
	sbuf_printf(&b, "Digest username=");
	sb_quoted(&b, user);
	sbuf_printf(&b, ", realm=");
	sb_quoted(&b, ch->realm);
	sbuf_printf(&b, ", nonce=");
	sb_quoted(&b, ch->nonce);
	sbuf_printf(&b, ", uri=");
	sb_quoted(&b, uri);
	sbuf_printf(&b, ", response=\"%s\", algorithm=%s", resp,
	    ch->algorithm[0] ? ch->algorithm : "MD5");
	if (ch->opaque[0] != '\0') {
		sbuf_printf(&b, ", opaque=");
		sb_quoted(&b, ch->opaque);
	}
	if (qop || alg == SIP_DIGEST_MD5_SESS || alg == SIP_DIGEST_SHA256_SESS)
		sbuf_printf(&b, ", cnonce=\"%s\"", cnonce);
	if (qop)
		sbuf_printf(&b, ", qop=auth, nc=%s", nc);
	sodium_memzero(resp, sizeof(resp));
	if (b.overflow) {
		hd_seterr(err, errlen, "buffer: header longer than %zu bytes",
		    buflen - 1);
		return -1;
	}
	return 0;
}
