/*
 * rtp.c -- RTP headers and RFC 4733 key presses.
 *
 * A telephone-event is one key press: several packets share its RTP
 * timestamp, the last ones carry the E (end) bit and are usually sent three
 * times.  A press is reported at its first end packet.  Repeats of that end
 * packet are recognised by the same timestamp and event with no start
 * packet in between, which also copes with senders that replay recorded
 * presses with identical timestamps.
 */
#include "rtp.h"

#include <string.h>
#include <strings.h>

static const char keys[] = "0123456789*#ABCD";

int
rtp_parse(const uint8_t *buf, size_t len, struct rtp_packet *p)
{
	size_t off = RTP_HEADER_LEN, cc;

	if (len < RTP_HEADER_LEN || (buf[0] >> 6) != 2)
		return -1;
	cc = buf[0] & 0x0f;
	off += cc * 4;
	if (off > len)
		return -1;
	if (buf[0] & 0x10) { /* header extension */
		size_t words;

		if (off + 4 > len)
			return -1;
		words = (size_t)buf[off + 2] << 8 | buf[off + 3];
		off += 4 + words * 4;
		if (off > len)
			return -1;
	}
	if (buf[0] & 0x20) { /* padding: the last byte counts it */
		size_t pad = buf[len - 1];

		if (pad == 0 || pad > len - off)
			return -1;
		len -= pad;
	}
	p->marker = (buf[1] & 0x80) != 0;
	p->pt = buf[1] & 0x7f;
	p->seq = (uint16_t)(buf[2] << 8 | buf[3]);
	p->ts = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
	p->ssrc = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 |
	          buf[11];
	p->payload = buf + off;
	p->payload_len = len - off;
	return 0;
}

void
rtp_write_header(const struct rtp_packet *p, uint8_t buf[RTP_HEADER_LEN])
{
	buf[0] = 0x80;
	buf[1] = (uint8_t)((p->marker ? 0x80 : 0) | (p->pt & 0x7f));
	buf[2] = (uint8_t)(p->seq >> 8);
	buf[3] = (uint8_t)p->seq;
	buf[4] = (uint8_t)(p->ts >> 24);
	buf[5] = (uint8_t)(p->ts >> 16);
	buf[6] = (uint8_t)(p->ts >> 8);
	buf[7] = (uint8_t)p->ts;
	buf[8] = (uint8_t)(p->ssrc >> 24);
	buf[9] = (uint8_t)(p->ssrc >> 16);
	buf[10] = (uint8_t)(p->ssrc >> 8);
	buf[11] = (uint8_t)p->ssrc;
}

char
rtp_dtmf_input(struct rtp_dtmf *d, uint32_t ts, const uint8_t *payload, size_t len)
{
	int event;
	bool end;

	if (len < 4 || payload[0] > 15)
		return 0;
	event = payload[0];
	end = (payload[1] & 0x80) != 0;
	if (!end) {
		/* a start or continuation: the next end packet completes a
		 * press not yet reported (a packet of the reported press
		 * arriving after its end would count it twice: RTP over a
		 * LAN or loopback does not reorder in practice) */
		d->in_event = true;
		return 0;
	}
	if (d->have_last && d->last_ts == ts && d->last_event == event && !d->in_event)
		return 0; /* a repeated end packet */
	d->have_last = true;
	d->last_ts = ts;
	d->last_event = event;
	d->in_event = false;
	return keys[event];
}

char
rtp_dtmf_info(const char *body, size_t len)
{
	const char *p = body, *end = body + len;

	/* application/dtmf-relay: a "Signal=" line */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end;

		if ((size_t)(le - p) >= 7 && strncasecmp(p, "Signal=", 7) == 0) {
			const char *v = p + 7;

			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			if (v < le) {
				char c = *v;
				const char *k;

				if (c >= 'a' && c <= 'd')
					c = (char)(c - 'a' + 'A');
				if (c != '\0' && (k = strchr(keys, c)) != NULL)
					return *k;
			}
			return 0;
		}
		p = nl ? nl + 1 : end;
	}
	/* application/dtmf: the key alone */
	while (len > 0 && (body[len - 1] == '\r' || body[len - 1] == '\n' || body[len - 1] == ' '))
		len--;
	if (len == 1 && body[0] != '\0' && strchr(keys, body[0]) != NULL)
		return body[0];
	return 0;
}
