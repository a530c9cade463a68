/*
 * test_sdp.c -- sdp.c: offers from phones (RFC 3264 examples, sipp,
 * baresip), the codec choice and the answer.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "sdp.h"

static const char offer[] =
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.9\r\ns=-\r\n"
    "c=IN IP4 192.0.2.9\r\nt=0 0\r\n"
    "m=video 51372 RTP/AVP 31\r\n"
    "m=audio 49170 RTP/AVP 8 0 101\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\na=sendrecv\r\n";

Test(sdp, offer_audio_stream_and_answer)
{
	struct sdp_offer o;
	char err[128], ans[1024];
	size_t len;

	cr_assert_eq(sdp_parse_offer(offer, strlen(offer), &o, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(o.addr, "192.0.2.10", "the stream's c= wins over the session's");
	cr_assert_eq(o.port, 49170);
	cr_assert_eq(o.npts, 3);
	cr_assert_eq(o.te_pt, 101);
	cr_assert_eq(o.ptime, 30);
	cr_assert_eq(o.nmedia, 2);
	cr_assert_eq(o.audio_index, 1);
	cr_assert_eq(sdp_choose_codec(&o), 0, "PCMU preferred whatever the offer's order");
	cr_assert_eq(sdp_build_answer(&o, "192.0.2.5", 20000, 0, 42, ans, sizeof(ans), &len), 0);
	cr_assert_eq(strlen(ans), len);
	cr_assert(strstr(ans, "m=video 0 RTP/AVP 0\r\n") != NULL, "video refused: %s", ans);
	cr_assert(strstr(ans, "m=audio 20000 RTP/AVP 0 101\r\n") != NULL, "%s", ans);
	cr_assert(strstr(ans, "a=rtpmap:101 telephone-event/8000\r\n") != NULL);
	cr_assert(strstr(ans, "c=IN IP4 192.0.2.5\r\n") != NULL);
	cr_assert(strstr(ans, "a=ptime:20\r\n") != NULL);
	cr_assert_eq(sdp_build_answer(&o, "192.0.2.5", 20000, 0, 42, ans, 60, &len), -1);
}

Test(sdp, pcma_only_and_no_common_codec)
{
	const char *alaw = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8\r\n";
	const char *g729 = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18 101\r\n"
	                   "a=rtpmap:101 telephone-event/8000\r\n";
	const char *held = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n";
	struct sdp_offer o;

	cr_assert_eq(sdp_parse_offer(alaw, strlen(alaw), &o, NULL, 0), 0);
	cr_assert_eq(sdp_choose_codec(&o), 8);
	cr_assert_eq(o.te_pt, -1);
	cr_assert_eq(sdp_parse_offer(g729, strlen(g729), &o, NULL, 0), 0);
	cr_assert_eq(sdp_choose_codec(&o), -1);
	cr_assert_eq(sdp_parse_offer(held, strlen(held), &o, NULL, 0), 0);
	cr_assert_eq(sdp_choose_codec(&o), -1, "a refused stream has no codec");
}

Test(sdp, refuses_what_is_not_a_call)
{
	static const char *const bad[] = {
		"", "hello", "v=0\r\nc=IN IP4 1.2.3.4\r\n",                    /* no audio */
		"v=0\r\nm=audio 4000 RTP/AVP 0\r\n",                           /* no c= */
		"v=0\r\nc=IN IP4 224.2.1.1/127\r\nm=audio 4000 RTP/AVP 0\r\n", /* multicast TTL */
		"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000/2 RTP/AVP 0\r\n",     /* port count */
		"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP\r\n",         /* no formats */
		"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0 x\r\n",
		"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n",
	};
	struct sdp_offer o;
	char err[128];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(sdp_parse_offer(bad[i], strlen(bad[i]), &o, err, sizeof(err)), -1,
		             "accepted: %s", bad[i]);
}
