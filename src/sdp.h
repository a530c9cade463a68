/*
 * sdp.h -- the SDP offer/answer of a Virtualization Center call (sdp_).
 *
 * Owns: reading the audio stream of an SDP offer (RFC 4566, RFC 3264):
 * connection address, port, payload types, telephone-event (RFC 4733) and
 * ptime; choosing the codec (PCMU, else PCMA); writing the answer.  Pure:
 * no I/O, no clock, never logs.  Only the first audio stream is used; other
 * streams are answered with port 0 as RFC 3264 6 requires.
 */
#ifndef HD_SDP_H
#define HD_SDP_H

#include <stddef.h>
#include <stdint.h>

#define SDP_MAX_PTS 32
#define SDP_MAX_MEDIA 8

struct sdp_offer {
	char addr[64];            /* connection address of the audio stream */
	int port;                 /* audio port; 0 = stream refused by the offerer */
	int pts[SDP_MAX_PTS];     /* payload types in the offer's order */
	size_t npts;
	int te_pt;                /* telephone-event/8000 payload type, -1 none */
	int ptime;                /* a=ptime, 0 when absent */
	int audio_index;          /* index of the audio m= line among all */
	int nmedia;               /* m= lines in the offer */
	char media_kind[SDP_MAX_MEDIA][16]; /* "audio", "video", ... per m= line */
	char media_proto[SDP_MAX_MEDIA][32];
	char direction[10];       /* sendrecv (default), sendonly, recvonly, inactive */
};

/* Parses an offer.  Returns 0, or -1 with a reason in err (no audio stream,
 * no connection address, malformed line, IPv6 without support, ...). */
int sdp_parse_offer(const char *body, size_t len, struct sdp_offer *o, char *err,
    size_t errlen);

/* The codec to answer with: 0 (PCMU) when offered, else 8 (PCMA), else -1
 * (no common codec: the call is refused with 488). */
int sdp_choose_codec(const struct sdp_offer *o);

/* Writes the answer: our address and RTP port, the chosen codec and, when
 * offered, telephone-event; other streams of the offer refused with port 0.
 * Returns 0, or -1 when buf is too small or addr holds CR/LF. */
int sdp_build_answer(const struct sdp_offer *o, const char *addr, int port, int pt,
    uint64_t session_id, char *buf, size_t buflen, size_t *len);

#endif /* HD_SDP_H */
