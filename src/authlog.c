/*
 * authlog.c -- the refused-authentication log line and its counters (the
 * format and the kinds are in authlog.h).
 *
 * Owns the line's format only; what counts as a refusal is decided by the
 * HTTP handlers that call it.  Stateless apart from the counters, which
 * live in the metrics registry.
 */
#include "authlog.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

static const char *const kind_names[AUTHLOG_KIND_N] = {
	[AUTHLOG_PBX_TOKEN] = "pbx-token",
	[AUTHLOG_PBX_NETWORK] = "pbx-network",
	[AUTHLOG_ADMIN_TOKEN] = "admin-token",
	[AUTHLOG_METRICS_TOKEN] = "metrics-token",
	[AUTHLOG_DIGEST] = "digest",
	[AUTHLOG_PROV_NETWORK] = "prov-network",
	[AUTHLOG_THROTTLED] = "throttled",
	[AUTHLOG_VC_NETWORK] = "vc-network",
	[AUTHLOG_CLIENT_CERT] = "client-cert",
};

_Static_assert(METRICS_AUTH_REFUSED + AUTHLOG_KIND_N - 1 == METRICS_AUTH_REFUSED_LAST,
               "one hotdeskd_auth_refused_total counter per kind");

const char *
authlog_kind_name(enum authlog_kind k)
{
	return (unsigned)k < AUTHLOG_KIND_N ? kind_names[k] : "?";
}

void
authlog_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	const struct sockaddr_in6 *s6;
	const void *a = NULL;
	int af = AF_INET;

	if (sa != NULL && sa->sa_family == AF_INET) {
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			a = &s6->sin6_addr.s6_addr[12];
		} else {
			a = &s6->sin6_addr;
			af = AF_INET6;
		}
	}
	if (a == NULL || inet_ntop(af, a, buf, (socklen_t)len) == NULL) {
		buf[0] = '-';
		buf[1] = '\0';
	}
}

static bool
is_word(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '-'))
			return false;
	return true;
}

void
authlog_refused(const struct sockaddr *peer, enum authlog_kind kind, const char *reason)
{
	char addr[INET6_ADDRSTRLEN];

	if ((unsigned)kind >= AUTHLOG_KIND_N)
		return;
	authlog_addr(peer, addr, sizeof(addr));
	metrics_inc((enum metrics_counter)(METRICS_AUTH_REFUSED + kind), 1);
	log_warn("auth refused: src=%s kind=%s reason=%s", addr, kind_names[kind],
	         is_word(reason) ? reason : "other");
}
