/*
 * sdp.c -- SDP offer/answer for Virtualization Center calls.
 *
 * The offer is read line by line ("x=value"); session-level c= applies to
 * every stream without its own.  Only static G.711 (0 PCMU, 8 PCMA) is
 * answered: prompts are stored in G.711 and no transcoding happens.
 */
#include "sdp.h"

#include "errbuf.h"
#include "sbuf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sbuf.h"

static int
fail(char *err, size_t errlen, const char *msg)
{
	hd_seterr(err, errlen, "%s", msg);
	return -1;
}

/* Reads a decimal number of at most 9 digits at *p; advances *p. */
static int
read_num(const char **p, const char *end, int *out)
{
	int n = 0, digits = 0;

	while (*p < end && **p >= '0' && **p <= '9' && digits < 9) {
		n = n * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	if (digits == 0)
		return -1;
	*out = n;
	return 0;
}

/* "IN IP4 addr" into dst. */
static int
read_conn(const char *v, size_t n, char *dst, size_t dstlen)
{
	char buf[96];
	char nettype[8], addrtype[8], addr[64];

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	if (sscanf(buf, "%7s %7s %63s", nettype, addrtype, addr) != 3 ||
	    strcmp(nettype, "IN") != 0 ||
	    (strcmp(addrtype, "IP4") != 0 && strcmp(addrtype, "IP6") != 0))
		return -1;
	/* a multicast TTL or address count ("/127") is not for a call */
	if (strchr(addr, '/') != NULL || strlen(addr) >= dstlen)
		return -1;
	strcpy(dst, addr);
	return 0;
}

/* "audio 4000 RTP/AVP 0 8 101" for m= line number idx. */
static int
read_media(const char *v, size_t n, struct sdp_offer *o, bool *is_audio)
{
	const char *p = v, *end = v + n, *sp;
	size_t kl, pl;
	int idx = o->nmedia, port;

	if (idx >= SDP_MAX_MEDIA || (sp = memchr(p, ' ', n)) == NULL)
		return -1;
	kl = (size_t)(sp - p);
	if (kl == 0 || kl >= sizeof(o->media_kind[0]))
		return -1;
	memcpy(o->media_kind[idx], p, kl);
	o->media_kind[idx][kl] = '\0';
	p = sp + 1;
	if (read_num(&p, end, &port) != 0 || port > 65535)
		return -1;
	if (p < end && *p == '/') /* port/count */
		return -1;
	if (p >= end || *p != ' ')
		return -1;
	p++;
	sp = memchr(p, ' ', (size_t)(end - p));
	pl = (size_t)((sp ? sp : end) - p);
	if (pl == 0 || pl >= sizeof(o->media_proto[0]))
		return -1;
	memcpy(o->media_proto[idx], p, pl);
	o->media_proto[idx][pl] = '\0';
	o->nmedia++;
	*is_audio = o->audio_index < 0 && strcmp(o->media_kind[idx], "audio") == 0 &&
	            strcmp(o->media_proto[idx], "RTP/AVP") == 0;
	if (!*is_audio)
		return 0;
	o->audio_index = idx;
	o->port = port;
	p = sp ? sp : end;
	while (p < end) {
		int pt;

		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		if (read_num(&p, end, &pt) != 0 || pt > 127 || (p < end && *p != ' '))
			return -1;
		if (o->npts < SDP_MAX_PTS)
			o->pts[o->npts++] = pt;
	}
	return o->npts > 0 ? 0 : -1;
}

/* An attribute of the audio stream. */
static void
read_attr(const char *v, size_t n, struct sdp_offer *o)
{
	char buf[128];
	int pt, rate, ptime;
	char name[32];

	if (n >= sizeof(buf))
		return;
	memcpy(buf, v, n);
	buf[n] = '\0';
	if (sscanf(buf, "rtpmap:%d %31[^/]/%d", &pt, name, &rate) == 3) {
		if (strcasecmp(name, "telephone-event") == 0 && rate == 8000 && pt >= 96 && pt <= 127)
			o->te_pt = pt;
	} else if (sscanf(buf, "ptime:%d", &ptime) == 1 && ptime > 0 && ptime <= 1000) {
		o->ptime = ptime;
	} else if (strcmp(buf, "sendrecv") == 0 || strcmp(buf, "sendonly") == 0 ||
	           strcmp(buf, "recvonly") == 0 || strcmp(buf, "inactive") == 0) {
		memcpy(o->direction, buf, strlen(buf) + 1); /* at most "sendrecv" */
	}
}

int
sdp_parse_offer(const char *body, size_t len, struct sdp_offer *o, char *err, size_t errlen)
{
	const char *p = body, *end = body + len;
	char session_addr[64] = "", media_addr[64] = "";
	bool in_audio = false, saw_v = false;

	memset(o, 0, sizeof(*o));
	o->te_pt = -1;
	o->audio_index = -1;
	strcpy(o->direction, "sendrecv");
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t n;

		if (le > p && le[-1] == '\r')
			le--;
		n = (size_t)(le - p);
		if (n == 0) {
			p = nl ? nl + 1 : end;
			continue;
		}
		if (n < 2 || p[1] != '=')
			return fail(err, errlen, "malformed SDP line");
		switch (p[0]) {
		case 'v':
			saw_v = true;
			break;
		case 'c':
			if (read_conn(p + 2, n - 2, in_audio ? media_addr : session_addr,
			              sizeof(media_addr)) != 0 && (in_audio || o->nmedia == 0))
				return fail(err, errlen, "unsupported connection line");
			break;
		case 'm':
			if (read_media(p + 2, n - 2, o, &in_audio) != 0)
				return fail(err, errlen, "malformed media line");
			break;
		case 'a':
			if (in_audio)
				read_attr(p + 2, n - 2, o);
			break;
		default:
			break;
		}
		p = nl ? nl + 1 : end;
	}
	if (!saw_v)
		return fail(err, errlen, "not an SDP body");
	if (o->audio_index < 0)
		return fail(err, errlen, "no RTP/AVP audio stream");
	snprintf(o->addr, sizeof(o->addr), "%s", media_addr[0] ? media_addr : session_addr);
	if (o->addr[0] == '\0')
		return fail(err, errlen, "no connection address");
	return 0;
}

int
sdp_choose_codec(const struct sdp_offer *o)
{
	size_t i;
	bool a = false;

	if (o->port == 0)
		return -1;
	for (i = 0; i < o->npts; i++) {
		if (o->pts[i] == 0)
			return 0;
		if (o->pts[i] == 8)
			a = true;
	}
	return a ? 8 : -1;
}

int
sdp_build_answer(const struct sdp_offer *o, const char *addr, int port, int pt,
    uint64_t session_id, char *buf, size_t buflen, size_t *len)
{
	const char *ip = strchr(addr, ':') ? "IP6" : "IP4";
	const char *dir = "sendrecv";
	struct sbuf b = sbuf_init(buf, buflen);
	int i;

	if (strpbrk(addr, "\r\n ") != NULL || (pt != 0 && pt != 8))
		return -1;
	if (strcmp(o->direction, "recvonly") == 0)
		dir = "sendonly";
	else if (strcmp(o->direction, "sendonly") == 0)
		dir = "recvonly";
	else if (strcmp(o->direction, "inactive") == 0)
		dir = "inactive";
	sbuf_printf(&b, "v=0\r\no=hotdeskd %llu %llu IN %s %s\r\ns=hotdeskd\r\nc=IN %s %s\r\nt=0 0\r\n",
	    (unsigned long long)session_id, (unsigned long long)session_id, ip, addr, ip, addr);
	for (i = 0; i < o->nmedia; i++) {
		if (i != o->audio_index) {
			sbuf_printf(&b, "m=%s 0 %s 0\r\n", o->media_kind[i], o->media_proto[i]);
			continue;
		}
		if (o->te_pt >= 0)
			sbuf_printf(&b, "m=audio %d RTP/AVP %d %d\r\n", port, pt, o->te_pt);
		else
			sbuf_printf(&b, "m=audio %d RTP/AVP %d\r\n", port, pt);
		sbuf_printf(&b, "a=rtpmap:%d %s/8000\r\n", pt, pt == 0 ? "PCMU" : "PCMA");
		if (o->te_pt >= 0)
			sbuf_printf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-15\r\n", o->te_pt,
			    o->te_pt);
		sbuf_printf(&b, "a=ptime:20\r\na=%s\r\n", dir);
	}
	if (b.overflow)
		return -1;
	*len = b.len;
	return 0;
}
