/*
 * authlog.h -- one log line per refused authentication, in a stable format
 * an operator and fail2ban (contrib/fail2ban/filter.d/hotdeskd.conf) can
 * act on, and a counter per kind (hotdeskd_auth_refused_total{kind}).
 *
 * The message, at level warn, after log.c's prefix:
 *
 *   auth refused: src=<address> kind=<kind> reason=<reason>
 *
 * <address> is the peer's numeric address (an IPv4-mapped IPv6 address is
 * written as IPv4), "-" when unknown.  <kind> and <reason> are fixed words
 * (below); nothing a client sent is written, so a client cannot forge a
 * line that names another address.  The format is an interface: it only
 * ever gains kinds and reasons (docs/OPERATIONS.md).
 *
 *   kind           what was refused                       reasons
 *   pbx-token      bearer token on /pbx/v1/               missing, invalid
 *   pbx-network    source outside [pbx] networks          not-allowed
 *   admin-token    bearer token on /api/v1/               missing, invalid
 *   metrics-token  bearer token on /metrics               missing, invalid
 *   digest         phone download credentials (digest)    wrong-credentials
 *   prov-network   source outside an org's networks       not-allowed
 *   throttled      request from a source blocked after    blocked
 *                  repeated misses
 *   vc-network     a SIP call from outside [vc] networks  not-allowed
 *   client-cert    a phone's TLS client certificate       wrong-mac, revoked,
 *                  (mutual TLS: untrusted, expired, ...)  refused
 *
 * A digest challenge (a request without credentials, or with a stale
 * nonce) is the protocol's normal first step, not a refusal: not logged.
 */
#ifndef HD_AUTHLOG_H
#define HD_AUTHLOG_H

#include <stddef.h>
#include <sys/socket.h>

enum authlog_kind {
	AUTHLOG_PBX_TOKEN,
	AUTHLOG_PBX_NETWORK,
	AUTHLOG_ADMIN_TOKEN,
	AUTHLOG_METRICS_TOKEN,
	AUTHLOG_DIGEST,
	AUTHLOG_PROV_NETWORK,
	AUTHLOG_THROTTLED,
	AUTHLOG_VC_NETWORK,
	AUTHLOG_CLIENT_CERT,
	AUTHLOG_KIND_N
};

/* "pbx-token" ... ; "?" out of range. */
const char *authlog_kind_name(enum authlog_kind k);

/*
 * Logs one refusal and counts it.  reason: one of the words above (any
 * other text than [a-z-] is written as "other").  peer may be NULL.
 * Cannot fail; any thread.
 */
void authlog_refused(const struct sockaddr *peer, enum authlog_kind kind, const char *reason);

/* The numeric address of sa as written in the line ("-" when unknown or
 * another family); IPv4-mapped IPv6 as IPv4.  buf of len >= 2. */
void authlog_addr(const struct sockaddr *sa, char *buf, size_t len);

#endif
