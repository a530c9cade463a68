/*
 * sipmsg.c -- SIP requests received and answered by the Virtualization
 * Center: a span parser and the builders of a user agent server's answers.
 *
 * The parser makes one pass over the start line and the header lines,
 * recording each header as a pair of spans into the caller's buffer;
 * lookups walk that small table.  Builders write into a caller's buffer
 * through a bounded appender that remembers overflow, so a truncated
 * message can never be sent.
 */
#include "sipmsg.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hex.h"
#include "sbuf.h"

#define MAGIC "z9hG4bK"

/* Long names and their compact forms (RFC 3261 7.3.3, RFC 3515). */
static const struct {
	const char *full;
	char compact;
} compact_names[] = {
	{ "Via", 'v' },           { "From", 'f' },          { "To", 't' },
	{ "Call-ID", 'i' },       { "Contact", 'm' },       { "Content-Length", 'l' },
	{ "Content-Type", 'c' },  { "Supported", 'k' },     { "Subject", 's' },
	{ "Content-Encoding", 'e' }, { "Refer-To", 'r' },
};

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t';
}

bool
sipmsg_span_is(struct sipmsg_span s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

int
sipmsg_copy(struct sipmsg_span s, char *dst, size_t dstlen)
{
	if (s.n >= dstlen || memchr(s.p, '\0', s.n) != NULL)
		return -1;
	memcpy(dst, s.p, s.n);
	dst[s.n] = '\0';
	return 0;
}

static struct sipmsg_span
span_trim(const char *p, size_t n)
{
	while (n > 0 && is_ws(*p)) {
		p++;
		n--;
	}
	while (n > 0 && (is_ws(p[n - 1]) || p[n - 1] == '\r' || p[n - 1] == '\n'))
		n--;
	return (struct sipmsg_span){ p, n };
}

/* The line starting at *pos: its span without the line end.  Returns false
 * at the end of the buffer without a line end. */
static bool
line_at(const char *buf, size_t len, size_t *pos, struct sipmsg_span *line)
{
	const char *nl = memchr(buf + *pos, '\n', len - *pos);
	size_t end;

	if (nl == NULL)
		return false;
	end = (size_t)(nl - buf);
	line->p = buf + *pos;
	line->n = end - *pos;
	if (line->n > 0 && line->p[line->n - 1] == '\r')
		line->n--;
	*pos = end + 1;
	return true;
}

static bool
name_matches(struct sipmsg_span name, const char *want)
{
	size_t i;

	if (sipmsg_span_is(name, want))
		return true;
	if (name.n != 1)
		return false;
	for (i = 0; i < sizeof(compact_names) / sizeof(compact_names[0]); i++)
		if (strcasecmp(compact_names[i].full, want) == 0)
			return (name.p[0] | 0x20) == compact_names[i].compact;
	return false;
}

bool
sipmsg_header(const struct sipmsg *m, const char *name, struct sipmsg_span *v)
{
	size_t i;

	for (i = 0; i < m->nh; i++)
		if (name_matches(m->h[i].name, name)) {
			*v = m->h[i].value;
			return true;
		}
	return false;
}

static int
parse_start(struct sipmsg_span l, struct sipmsg *m)
{
	const char *sp1 = memchr(l.p, ' ', l.n), *sp2;
	size_t rest;

	if (sp1 == NULL)
		return -1;
	if (l.n > 8 && strncmp(l.p, "SIP/2.0 ", 8) == 0) {
		int st = 0;
		size_t i;

		for (i = 8; i < l.n && i < 11; i++) {
			if (l.p[i] < '0' || l.p[i] > '9')
				return -1;
			st = st * 10 + (l.p[i] - '0');
		}
		if (i != 11 || st < 100 || st > 699)
			return -1;
		m->request = false;
		m->status = st;
		return 0;
	}
	rest = l.n - (size_t)(sp1 + 1 - l.p);
	sp2 = memchr(sp1 + 1, ' ', rest);
	if (sp2 == NULL || sp1 == l.p || sp2 == sp1 + 1)
		return -1;
	if ((size_t)(l.p + l.n - (sp2 + 1)) != 7 || strncmp(sp2 + 1, "SIP/2.0", 7) != 0)
		return -1;
	m->request = true;
	m->method = (struct sipmsg_span){ l.p, (size_t)(sp1 - l.p) };
	m->uri = (struct sipmsg_span){ sp1 + 1, (size_t)(sp2 - sp1 - 1) };
	return 0;
}

static int
parse_length(struct sipmsg_span v, size_t *out)
{
	size_t i, n = 0;

	if (v.n == 0 || v.n > 9)
		return -1;
	for (i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		n = n * 10 + (size_t)(v.p[i] - '0');
	}
	*out = n;
	return 0;
}

int
sipmsg_parse(const char *buf, size_t len, struct sipmsg *m)
{
	static const char *const required[] = { "Via", "From", "To", "Call-ID", "CSeq" };
	struct sipmsg_span line, v;
	size_t pos = 0, i, clen;
	bool ended = false;

	memset(m, 0, sizeof(*m));
	if (!line_at(buf, len, &pos, &line) || parse_start(line, m) != 0)
		return -1;
	while (line_at(buf, len, &pos, &line)) {
		const char *colon;
		struct sipmsg_hdr *h;

		if (line.n == 0) {
			ended = true;
			break;
		}
		if (is_ws(line.p[0])) { /* folded: extends the previous value */
			if (m->nh == 0)
				return -1;
			h = &m->h[m->nh - 1];
			h->value = span_trim(h->value.p, (size_t)(line.p + line.n - h->value.p));
			continue;
		}
		if ((colon = memchr(line.p, ':', line.n)) == NULL || m->nh == SIPMSG_MAX_HDRS)
			return -1;
		h = &m->h[m->nh++];
		h->name = span_trim(line.p, (size_t)(colon - line.p));
		h->value = span_trim(colon + 1, (size_t)(line.p + line.n - colon - 1));
		if (h->name.n == 0)
			return -1;
	}
	/* no NUL in the start line and headers: SIP text never has one, and a
	 * header copied into an answer must not carry one */
	if (!ended || memchr(buf, '\0', pos) != NULL)
		return -1;
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!sipmsg_header(m, required[i], &v) || v.n == 0)
			return -1;
	m->body = (struct sipmsg_span){ buf + pos, len - pos };
	if (sipmsg_header(m, "Content-Length", &v)) {
		if (parse_length(v, &clen) != 0 || clen > len - pos)
			return -1;
		m->body.n = clen;
	}
	return 0;
}

/* Percent-decodes p[0..n) into dst. */
static int
pct_decode(const char *p, size_t n, char *dst, size_t dstlen)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		char c = p[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n || (hi = hex_value((unsigned char)p[i + 1])) < 0 ||
			    (lo = hex_value((unsigned char)p[i + 2])) < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0' || o + 1 >= dstlen)
			return -1;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return 0;
}

/* The URI inside a header value: between <> when there are brackets, else
 * up to the first ';' (header parameters) or the end. */
static struct sipmsg_span
uri_of(struct sipmsg_span v, const char **after)
{
	const char *lt = memchr(v.p, '<', v.n), *gt;
	struct sipmsg_span u = v;
	size_t i;

	if (lt != NULL && (gt = memchr(lt, '>', v.n - (size_t)(lt - v.p))) != NULL) {
		u = (struct sipmsg_span){ lt + 1, (size_t)(gt - lt - 1) };
		*after = gt + 1;
		return u;
	}
	for (i = 0; i < v.n && v.p[i] != ';'; i++)
		;
	u.n = i;
	*after = v.p + i;
	return span_trim(u.p, u.n);
}

int
sipmsg_uri_parts(struct sipmsg_span v, char *uri, size_t urilen, char *user,
    size_t userlen, char *host, size_t hostlen, int *port)
{
	const char *after, *p, *end, *at, *hp, *he;
	struct sipmsg_span u = uri_of(v, &after);
	size_t skip;

	if (u.n >= 4 && strncasecmp(u.p, "sip:", 4) == 0)
		skip = 4;
	else if (u.n >= 5 && strncasecmp(u.p, "sips:", 5) == 0)
		skip = 5;
	else
		return -1;
	if (uri != NULL && sipmsg_copy(u, uri, urilen) != 0)
		return -1;
	p = u.p + skip;
	end = u.p + u.n;
	/* the host part ends at ';' (URI parameters) or '?' (headers) */
	for (he = p; he < end && *he != ';' && *he != '?'; he++)
		;
	at = memchr(p, '@', (size_t)(he - p));
	if (user != NULL) {
		if (at == NULL) {
			if (userlen == 0)
				return -1;
			user[0] = '\0';
		} else {
			const char *ue = memchr(p, ':', (size_t)(at - p)); /* user:password */

			if (pct_decode(p, (size_t)((ue ? ue : at) - p), user, userlen) != 0)
				return -1;
		}
	}
	hp = at ? at + 1 : p;
	if (port != NULL)
		*port = 0;
	if (hp < he && *hp == '[') {
		const char *rb = memchr(hp, ']', (size_t)(he - hp));

		if (rb == NULL)
			return -1;
		if (host != NULL && sipmsg_copy((struct sipmsg_span){ hp + 1, (size_t)(rb - hp - 1) },
		                                host, hostlen) != 0)
			return -1;
		hp = rb + 1;
	} else {
		const char *colon = memchr(hp, ':', (size_t)(he - hp));
		const char *hend = colon ? colon : he;

		if (hend == hp)
			return -1;
		if (host != NULL && sipmsg_copy((struct sipmsg_span){ hp, (size_t)(hend - hp) }, host,
		                                hostlen) != 0)
			return -1;
		hp = hend;
	}
	if (hp < he && *hp == ':') {
		int n = 0;

		for (hp++; hp < he; hp++) {
			if (*hp < '0' || *hp > '9' || n > 65535)
				return -1;
			n = n * 10 + (*hp - '0');
		}
		if (n < 1 || n > 65535)
			return -1;
		if (port != NULL)
			*port = n;
	} else if (hp != he) {
		return -1;
	}
	return 0;
}

int
sipmsg_param(struct sipmsg_span v, const char *name, char *dst, size_t dstlen)
{
	const char *after, *p, *end = v.p + v.n;
	size_t nlen = strlen(name);

	(void)uri_of(v, &after);
	for (p = after; p < end;) {
		const char *semi = memchr(p, ';', (size_t)(end - p)), *pe, *eq;
		struct sipmsg_span key, val;

		if (semi == NULL)
			return 0;
		p = semi + 1;
		for (pe = p; pe < end && *pe != ';' && *pe != ','; pe++)
			;
		eq = memchr(p, '=', (size_t)(pe - p));
		key = span_trim(p, (size_t)((eq ? eq : pe) - p));
		if (key.n == nlen && strncasecmp(key.p, name, nlen) == 0) {
			val = eq ? span_trim(eq + 1, (size_t)(pe - eq - 1)) : (struct sipmsg_span){ pe, 0 };
			if (val.n >= 2 && val.p[0] == '"' && val.p[val.n - 1] == '"')
				val = (struct sipmsg_span){ val.p + 1, val.n - 2 };
			return sipmsg_copy(val, dst, dstlen) == 0 ? 1 : -1;
		}
		if (pe < end && *pe == ',')
			return 0;
		p = pe;
	}
	return 0;
}

int
sipmsg_cseq(struct sipmsg_span v, unsigned long *num, char *method, size_t methodlen)
{
	unsigned long n = 0;
	size_t i = 0;

	while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9' && i < 10)
		n = n * 10 + (unsigned long)(v.p[i++] - '0');
	if (i == 0 || i >= v.n || !is_ws(v.p[i]))
		return -1;
	*num = n;
	return sipmsg_copy(span_trim(v.p + i, v.n - i), method, methodlen);
}

/* ---- builders ------------------------------------------------------------ */

static bool
has_crlf(const char *s)
{
	return s != NULL && strpbrk(s, "\r\n") != NULL;
}

/* Writes "Name: value\r\n" for every header of m named `name`. */
static void
copy_headers(struct sbuf *o, const struct sipmsg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nh; i++)
		if (name_matches(m->h[i].name, name)) {
			sbuf_printf(o, "%s: ", name);
			sbuf_bytes(o, m->h[i].value.p, m->h[i].value.n);
			sbuf_bytes(o, "\r\n", 2);
		}
}

static int
out_end(struct sbuf *o, size_t *len)
{
	if (o->overflow)
		return -1;
	*len = o->len;
	return 0;
}

int
sipmsg_build_response(const struct sipmsg *req, const struct sipmsg_resp *r,
    char *buf, size_t buflen, size_t *len)
{
	struct sbuf o = sbuf_init(buf, buflen);
	struct sipmsg_span to;
	char tag[8];

	if (r->status < 100 || r->status > 699 || r->reason == NULL || has_crlf(r->reason) ||
	    has_crlf(r->to_tag) || has_crlf(r->contact) || has_crlf(r->content_type) ||
	    (r->body != NULL && r->content_type == NULL) || !sipmsg_header(req, "To", &to))
		return -1;
	sbuf_printf(&o, "SIP/2.0 %d %s\r\n", r->status, r->reason);
	copy_headers(&o, req, "Via");
	if (r->record_route)
		copy_headers(&o, req, "Record-Route");
	copy_headers(&o, req, "From");
	sbuf_bytes(&o, "To: ", 4);
	sbuf_bytes(&o, to.p, to.n);
	if (r->to_tag != NULL && sipmsg_param(to, "tag", tag, sizeof(tag)) == 0)
		sbuf_printf(&o, ";tag=%s", r->to_tag);
	sbuf_bytes(&o, "\r\n", 2);
	copy_headers(&o, req, "Call-ID");
	copy_headers(&o, req, "CSeq");
	if (r->contact != NULL)
		sbuf_printf(&o, "Contact: <%s>\r\n", r->contact);
	sbuf_printf(&o, "Server: hotdeskd\r\n%s", r->extra ? r->extra : "");
	if (r->body != NULL)
		sbuf_printf(&o, "Content-Type: %s\r\n", r->content_type);
	sbuf_printf(&o, "Content-Length: %zu\r\n\r\n", r->body ? r->body_len : 0);
	if (r->body != NULL)
		sbuf_bytes(&o, r->body, r->body_len);
	return out_end(&o, len);
}

int
sipmsg_build_request(const struct sipmsg_req *r, char *buf, size_t buflen, size_t *len)
{
	struct sbuf o = sbuf_init(buf, buflen);
	const char *const vals[] = { r->method, r->ruri, r->via_host, r->branch, r->from, r->to,
		                     r->call_id };
	bool v6 = r->via_host != NULL && strchr(r->via_host, ':') != NULL;
	size_t i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (vals[i] == NULL || vals[i][0] == '\0' || has_crlf(vals[i]))
			return -1;
	for (i = 0; i < r->nroutes; i++)
		if (has_crlf(r->routes[i]))
			return -1;
	sbuf_printf(&o, "%s %s SIP/2.0\r\n", r->method, r->ruri);
	sbuf_printf(&o, "Via: SIP/2.0/UDP %s%s%s:%d;branch=" MAGIC "%s;rport\r\n", v6 ? "[" : "",
	           r->via_host, v6 ? "]" : "", r->via_port, r->branch);
	sbuf_printf(&o, "Max-Forwards: 70\r\n");
	for (i = 0; i < r->nroutes; i++)
		sbuf_printf(&o, "Route: <%s>\r\n", r->routes[i]);
	sbuf_printf(&o, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %lu %s\r\n", r->from, r->to,
	           r->call_id, r->cseq, r->method);
	sbuf_printf(&o, "User-Agent: hotdeskd\r\nContent-Length: 0\r\n\r\n");
	return out_end(&o, len);
}
