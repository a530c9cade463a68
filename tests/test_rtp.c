/*
 * test_rtp.c -- rtp.c: RTP headers, RFC 4733 key presses and SIP INFO
 * DTMF bodies.
 *
 * The key-press sequences mirror what phones send (RFC 4733 2.5: updates,
 * then the end packet three times) and what sipp sends when it replays the
 * RFC 2833 captures of Debian's sip-tester, where the same key replayed
 * twice keeps the same RTP timestamp.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "rtp.h"

static void
ev(uint8_t out[4], int event, bool end, int duration)
{
	out[0] = (uint8_t)event;
	out[1] = (uint8_t)((end ? 0x80 : 0) | 10);
	out[2] = (uint8_t)(duration >> 8);
	out[3] = (uint8_t)duration;
}

/* One press: 3 updates and 3 end packets; returns the keys reported. */
static void
press(struct rtp_dtmf *d, uint32_t ts, int event, char *keys, size_t *nkeys)
{
	uint8_t p[4];
	int i;

	for (i = 0; i < 6; i++) {
		char k;

		ev(p, event, i >= 3, 160 * (i + 1));
		if ((k = rtp_dtmf_input(d, ts, p, sizeof(p))) != 0)
			keys[(*nkeys)++] = k;
	}
	keys[*nkeys] = '\0';
}

Test(rtp, header_round_trip_and_refusals)
{
	struct rtp_packet in = { .pt = 101, .marker = true, .seq = 65535, .ts = 0xdeadbeef,
		                 .ssrc = 0x01020304 };
	uint8_t buf[RTP_HEADER_LEN + 8] = { 0 };
	struct rtp_packet out;

	rtp_write_header(&in, buf);
	cr_assert_eq(rtp_parse(buf, sizeof(buf), &out), 0);
	cr_assert_eq(out.pt, 101);
	cr_assert(out.marker);
	cr_assert_eq(out.seq, 65535);
	cr_assert_eq(out.ts, 0xdeadbeef);
	cr_assert_eq(out.ssrc, 0x01020304);
	cr_assert_eq(out.payload_len, 8);
	cr_assert_eq(rtp_parse(buf, 11, &out), -1, "short");
	buf[0] = 0x40; /* version 1 */
	cr_assert_eq(rtp_parse(buf, sizeof(buf), &out), -1);
	buf[0] = 0x8f; /* 15 CSRCs do not fit */
	cr_assert_eq(rtp_parse(buf, sizeof(buf), &out), -1);
	buf[0] = 0xa0; /* padding longer than the payload */
	buf[sizeof(buf) - 1] = 50;
	cr_assert_eq(rtp_parse(buf, sizeof(buf), &out), -1);
	buf[sizeof(buf) - 1] = 2;
	cr_assert_eq(rtp_parse(buf, sizeof(buf), &out), 0);
	cr_assert_eq(out.payload_len, 6);
}

Test(rtp_dtmf, each_press_once_and_replays_twice)
{
	struct rtp_dtmf d = { 0 };
	char keys[32];
	size_t n = 0;

	press(&d, 1000, 1, keys, &n);
	press(&d, 2000, 0, keys, &n);
	press(&d, 3000, 2, keys, &n);
	/* a replayed capture: the same key, the same timestamp as before */
	press(&d, 2000, 0, keys, &n);
	press(&d, 4000, 11, keys, &n);
	cr_assert_str_eq(keys, "1020#");
}

Test(rtp_dtmf, lost_start_packets_and_garbage)
{
	struct rtp_dtmf d = { 0 };
	uint8_t p[4];

	/* only end packets arrive: still one press */
	ev(p, 5, true, 800);
	cr_assert_eq(rtp_dtmf_input(&d, 10, p, 4), '5');
	cr_assert_eq(rtp_dtmf_input(&d, 10, p, 4), 0);
	/* a new timestamp is a new press */
	cr_assert_eq(rtp_dtmf_input(&d, 20, p, 4), '5');
	/* not an event payload */
	cr_assert_eq(rtp_dtmf_input(&d, 30, p, 3), 0);
	p[0] = 16; /* beyond the 16 DTMF events */
	cr_assert_eq(rtp_dtmf_input(&d, 30, p, 4), 0);
}

Test(rtp_dtmf, info_bodies)
{
	cr_assert_eq(rtp_dtmf_info("Signal=5\r\nDuration=160\r\n", 24), '5');
	cr_assert_eq(rtp_dtmf_info("Duration=160\nSignal= #\n", 23), '#');
	cr_assert_eq(rtp_dtmf_info("signal=*", 8), '*');
	cr_assert_eq(rtp_dtmf_info("7\r\n", 3), '7', "application/dtmf");
	cr_assert_eq(rtp_dtmf_info("Signal=x", 8), 0);
	cr_assert_eq(rtp_dtmf_info("Signal=", 7), 0);
	cr_assert_eq(rtp_dtmf_info("", 0), 0);
	cr_assert_eq(rtp_dtmf_info("12", 2), 0);
}
