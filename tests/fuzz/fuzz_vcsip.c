/*
 * fuzz_vcsip.c -- libFuzzer entry for what the Virtualization Center reads
 * from the network: SIP requests (sipmsg.c), SDP offers (sdp.c), RTP
 * packets, RFC 4733 events and SIP INFO bodies (rtp.c).
 *
 * The first byte chooses the parser (0-84 SIP, 85-169 SDP, 170-255 RTP);
 * the rest is the input.  Invariants checked: a parsed SIP message's spans
 * lie inside the input and a response built from it fits and is
 * NUL-terminated; a parsed offer has a port in range and an answer is
 * built or refused without overrun; RTP payloads lie inside the input and
 * key presses are only 0-9 * # A-D.
 */
#include "fuzz.h"

#include "rtp.h"
#include "sdp.h"
#include "sipmsg.h"

static int
inside(const uint8_t *data, size_t size, struct sipmsg_span s)
{
	return s.n == 0 || ((const uint8_t *)s.p >= data && (const uint8_t *)s.p + s.n <= data + size);
}

static void
fuzz_sip(const uint8_t *data, size_t size)
{
	struct sipmsg m;
	struct sipmsg_resp r = { .status = 200, .reason = "OK", .to_tag = "t",
		                 .contact = "sip:vc@192.0.2.5:5080", .record_route = true };
	struct sipmsg_span v;
	char out[16384], user[128], host[128], tag[64], meth[16];
	unsigned long cseq;
	size_t i, len;
	int port;

	if (sipmsg_parse((const char *)data, size, &m) != 0)
		return;
	FUZZ_CHECK(inside(data, size, m.body));
	for (i = 0; i < m.nh; i++)
		FUZZ_CHECK(inside(data, size, m.h[i].name) && inside(data, size, m.h[i].value));
	if (m.request) {
		FUZZ_CHECK(inside(data, size, m.method) && inside(data, size, m.uri));
		(void)sipmsg_uri_parts(m.uri, NULL, 0, user, sizeof(user), host, sizeof(host), &port);
	}
	if (sipmsg_header(&m, "From", &v)) {
		if (sipmsg_uri_parts(v, NULL, 0, user, sizeof(user), host, sizeof(host), &port) == 0)
			FUZZ_CHECK(strlen(user) < sizeof(user) && port >= 0 && port <= 65535);
		(void)sipmsg_param(v, "tag", tag, sizeof(tag));
	}
	if (sipmsg_header(&m, "CSeq", &v) && sipmsg_cseq(v, &cseq, meth, sizeof(meth)) == 0)
		FUZZ_CHECK(strlen(meth) < sizeof(meth));
	if (sipmsg_build_response(&m, &r, out, sizeof(out), &len) == 0)
		FUZZ_CHECK(len < sizeof(out) && out[len] == '\0' && strlen(out) == len);
}

static void
fuzz_sdp(const uint8_t *data, size_t size)
{
	struct sdp_offer o;
	char err[128], ans[4096];
	size_t len;
	int pt;

	if (sdp_parse_offer((const char *)data, size, &o, err, sizeof(err)) != 0)
		return;
	FUZZ_CHECK(o.port >= 0 && o.port <= 65535 && o.npts <= SDP_MAX_PTS);
	FUZZ_CHECK(o.audio_index >= 0 && o.audio_index < o.nmedia && o.nmedia <= SDP_MAX_MEDIA);
	if ((pt = sdp_choose_codec(&o)) >= 0 &&
	    sdp_build_answer(&o, "192.0.2.5", 20000, pt, 1, ans, sizeof(ans), &len) == 0)
		FUZZ_CHECK(strlen(ans) == len);
}

static void
fuzz_rtp(const uint8_t *data, size_t size)
{
	static const char keys[] = "0123456789*#ABCD";
	struct rtp_dtmf d = { 0 };
	struct rtp_packet p;
	char k;

	if ((k = rtp_dtmf_info((const char *)data, size)) != 0)
		FUZZ_CHECK(strchr(keys, k) != NULL);
	if (rtp_parse(data, size, &p) != 0)
		return;
	FUZZ_CHECK(p.payload >= data && p.payload + p.payload_len <= data + size);
	if ((k = rtp_dtmf_input(&d, p.ts, p.payload, p.payload_len)) != 0)
		FUZZ_CHECK(strchr(keys, k) != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] < 85)
		fuzz_sip(data + 1, size - 1);
	else if (data[0] < 170)
		fuzz_sdp(data + 1, size - 1);
	else
		fuzz_rtp(data + 1, size - 1);
	return 0;
}
