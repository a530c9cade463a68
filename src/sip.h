/*
 * sip.h -- SIP message building, response parsing and HTTP digest (sip_).
 *
 * Owns: the text of the out-of-dialog NOTIFY requests hotdeskd sends to make
 * phones resync (SPEC 5, VENDORS.md), the parsing of the responses to them,
 * and the RFC 2617 / RFC 7616 digest computation that answers a 401/407.
 * Does not own: sockets, timers, transactions (notify.c), nor randomness:
 * branch, tag, Call-ID and cnonce are passed in by the caller, so every
 * function here is a pure function from values to bytes and is tested as
 * such.  No I/O, no clock, no globals, never logs.
 *
 * Invariants:
 *   1. No value supplied by a caller or by the network reaches a built
 *      header line if it contains CR, LF (or, for lengths given, NUL): the
 *      builder refuses it and names the field in the error buffer.
 *   2. Content-Length is always the exact byte length of the body written.
 *   3. The parser reads at most `len` bytes, never needs a terminating NUL,
 *      and either fills the whole struct sip_response or returns -1; it
 *      never crashes on garbage (a libFuzzer entry exercises it).
 */
#ifndef HD_SIP_H
#define HD_SIP_H

#include <stdbool.h>
#include <stddef.h>

/* Longest datagram we build or accept (RFC 3261 18.1.1 path MTU aside). */
#define SIP_MAX_MSG 8192

/* The magic cookie every RFC 3261 branch starts with. */
#define SIP_BRANCH_COOKIE "z9hG4bK"

/* One out-of-dialog NOTIFY.  Every string is borrowed for the call only. */
struct sip_notify_req {
	/* Request-URI sip:user@host:port and To; user may be NULL or "". */
	const char *target_user;
	const char *target_host;   /* IPv4, IPv6 (no brackets) or a host name */
	int target_port;           /* 1..65535 */
	/* Our side: Via sent-by and Contact, host:port we send from. */
	const char *local_host;
	int local_port;
	const char *from_user;     /* NULL = "hotdeskd" */
	/* Randomness, supplied by the caller (tokens, no whitespace). */
	const char *branch;        /* without the z9hG4bK cookie: it is added */
	const char *from_tag;
	const char *call_id;       /* written as given (callers add "@host") */
	unsigned long cseq;        /* 1 .. 2^31-1 */
	const char *event;         /* e.g. "check-sync;reboot=true" */
	/* Subscription-State value; NULL = "terminated". */
	const char *subscription_state;
	/* Optional body: both or neither. */
	const char *content_type;
	const char *body;
	/* Optional credentials line: full header value "Digest ...". */
	const char *authorization;
	bool proxy_authorization;  /* write it as Proxy-Authorization */
	/* Optional outbound proxy: adds Route: <sip:host:port;lr>. */
	const char *route_host;
	int route_port;
};

/* Builds the NOTIFY described by r into buf (NUL-terminated; *len gets the
 * byte length without the NUL).  Returns 0, or -1 with a message naming the
 * offending field in err (err may be NULL): a missing field, a value with
 * CR/LF, a port out of range, or a buf too small.  buf's content is
 * unspecified after a failure. */
int sip_build_notify(const struct sip_notify_req *r, char *buf, size_t buflen,
    size_t *len, char *err, size_t errlen);

/* Writes the Request-URI sip_build_notify uses for user/host/port
 * ("sip:user@host:port", IPv6 hosts bracketed, "sip:host:port" without a
 * user) into buf: the digest `uri` must be exactly this string.  Returns 0,
 * or -1 with err filled on a bad value or a buf too small. */
int sip_request_uri(const char *user, const char *host, int port, char *buf,
    size_t buflen, char *err, size_t errlen);

/* A digest challenge, from WWW-Authenticate or Proxy-Authenticate.  Quoted
 * strings are unescaped.  present is false when there was none (or it was
 * not a Digest challenge). */
struct sip_challenge {
	bool present;
	bool stale;
	char realm[128];
	char nonce[256];
	char opaque[256];
	char algorithm[32];    /* as sent, "" when absent (means MD5) */
	char qop[64];          /* as sent, e.g. "auth,auth-int"; "" when absent */
};

struct sip_response {
	int status;                /* 100..699 */
	char reason[128];
	char branch[128];          /* branch of the topmost Via, "" when absent */
	unsigned long cseq;
	char cseq_method[32];
	char call_id[256];
	struct sip_challenge www_auth;   /* first Digest WWW-Authenticate */
	struct sip_challenge proxy_auth; /* first Digest Proxy-Authenticate */
};

/* Parses a SIP response of len bytes (need not be NUL-terminated).
 * Tolerates LF-only line ends, folded headers, compact header names, header
 * names in any case and extra white space.  Requires a status line, a Via,
 * a CSeq and a Call-ID.  Returns 0 with *out filled, or -1 (out zeroed) for
 * anything else: a request, garbage, an oversized field.  Never reads past
 * buf + len. */
int sip_parse_response(const char *buf, size_t len, struct sip_response *out);

enum sip_digest_alg {
	SIP_DIGEST_MD5,
	SIP_DIGEST_MD5_SESS,
	SIP_DIGEST_SHA256,
	SIP_DIGEST_SHA256_SESS,
};

/* Maps a challenge's algorithm ("" or "MD5", "MD5-sess", "SHA-256",
 * "SHA-256-sess", any case) to *alg.  Returns 0, or -1 when unsupported. */
int sip_digest_alg_parse(const char *name, enum sip_digest_alg *alg);

/* Computes the digest `response` value (lowercase hex) into out (at least
 * 65 bytes for SHA-256, 33 for MD5).  qop is NULL/"" (RFC 2069 style:
 * H(HA1:nonce:HA2)) or "auth" (H(HA1:nonce:nc:cnonce:qop:HA2)); with qop,
 * nc (8 hex digits) and cnonce are required, and -sess algorithms need
 * cnonce.  Intermediate secrets are wiped.  Returns 0, or -1 on a missing
 * argument, an unsupported qop, or out too small. */
int sip_digest_response(enum sip_digest_alg alg, const char *user,
    const char *realm, const char *password, const char *method,
    const char *uri, const char *nonce, const char *qop, const char *nc,
    const char *cnonce, char *out, size_t outlen);

/* Builds a full Authorization header value ("Digest username=...") that
 * answers challenge ch for method/uri.  qop=auth is used when the challenge
 * offers it (with nc=00000001 and the given cnonce), none otherwise.
 * Quoted values are escaped; CR/LF anywhere is refused.  Returns 0, or -1
 * with err filled (unsupported algorithm or qop, bad value, buf too small).
 * The password is never copied into err. */
int sip_build_authorization(const struct sip_challenge *ch, const char *user,
    const char *password, const char *method, const char *uri,
    const char *cnonce, char *buf, size_t buflen, char *err, size_t errlen);

/* What a challenge to a NOTIFY may ask for before it is answered: the one
 * realm the phone uses, the algorithms it uses (bits 1u << enum
 * sip_digest_alg), and whether it always offers qop=auth. */
struct sip_auth_policy {
	const char *realm;
	unsigned algorithms;
	bool qop_required;
};

/* 0 when challenge ch fits pol (realm equal, algorithm allowed, qop=auth
 * offered when required), else -1 with the reason in err ("realm",
 * "algorithm", "qop"; never a secret).  A NULL pol fits nothing. */
int sip_challenge_allowed(const struct sip_challenge *ch, const struct sip_auth_policy *pol,
    char *err, size_t errlen);

/* MD5 (RFC 1321) of len bytes into out[16].  Cannot fail. */
void sip_md5(const void *data, size_t len, unsigned char out[16]);

#endif /* HD_SIP_H */
