/*
 * rtp.h -- RTP packets (RFC 3550) and the telephone-events in them
 * (RFC 4733), for Virtualization Center calls (rtp_).
 *
 * Owns: parsing and writing the fixed RTP header, turning a stream of
 * telephone-event packets into key presses (each event reported once,
 * however often its end packet is repeated), and reading the DTMF of a SIP
 * INFO body (application/dtmf-relay).  Pure: no I/O, no clock, never logs.
 */
#ifndef HD_RTP_H
#define HD_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTP_HEADER_LEN 12

struct rtp_packet {
	int pt;                   /* payload type 0..127 */
	bool marker;
	uint16_t seq;
	uint32_t ts;
	uint32_t ssrc;
	const uint8_t *payload;   /* borrowed from the parsed buffer */
	size_t payload_len;
};

/* Parses a packet: version 2, CSRCs, header extension and padding skipped.
 * Returns 0, or -1 for anything that is not RTP. */
int rtp_parse(const uint8_t *buf, size_t len, struct rtp_packet *p);

/* Writes the 12-byte header of p into buf (payload not copied).  Cannot
 * fail. */
void rtp_write_header(const struct rtp_packet *p, uint8_t buf[RTP_HEADER_LEN]);

/* Key presses from RFC 4733 events of one stream. */
struct rtp_dtmf {
	bool have_last;           /* an event was reported */
	uint32_t last_ts;         /* its RTP timestamp */
	int last_event;
	bool in_event;            /* packets of a new event seen since */
};

/*
 * Feeds the payload of one telephone-event packet with RTP timestamp ts.
 * Returns the key ('0'-'9', '*', '#', 'A'-'D') when this packet completes an
 * event not yet reported (its first end packet), 0 otherwise (event still
 * going, a repeated end packet, or a malformed payload).  The same key
 * pressed twice is reported twice, even with the same timestamp, as long as
 * packets of the second press precede its end.
 */
char rtp_dtmf_input(struct rtp_dtmf *d, uint32_t ts, const uint8_t *payload, size_t len);

/* Reads "Signal=5\r\nDuration=160" (application/dtmf-relay) or a bare key
 * (application/dtmf).  Returns the key, or 0 if there is none. */
char rtp_dtmf_info(const char *body, size_t len);

#endif /* HD_RTP_H */
