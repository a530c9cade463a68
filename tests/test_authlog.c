/*
 * test_authlog.c -- the refused-authentication line (format of authlog.h)
 * and its counters.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authlog.h"
#include "log.h"
#include "metrics.h"
#include "testutil.h"

#define capture_stderr tu_capture_stderr
#define captured tu_captured

Test(authlog, one_line_per_refusal_in_the_documented_format)
{
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 mapped = { .sin6_family = AF_INET6 }, v6 = { .sin6_family = AF_INET6 };
	int fd = capture_stderr();
	const char *out;

	inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
	inet_pton(AF_INET6, "::ffff:198.51.100.9", &mapped.sin6_addr);
	inet_pton(AF_INET6, "2001:db8::5", &v6.sin6_addr);
	log_init("hotdeskd", LOG_LEVEL_WARN, false);
	authlog_refused((struct sockaddr *)&v4, AUTHLOG_PBX_TOKEN, "invalid");
	authlog_refused((struct sockaddr *)&mapped, AUTHLOG_DIGEST, "wrong-credentials");
	authlog_refused((struct sockaddr *)&v6, AUTHLOG_THROTTLED, "blocked");
	/* a reason that is not a fixed word is never written */
	authlog_refused((struct sockaddr *)&v4, AUTHLOG_ADMIN_TOKEN, "x\" src=6.6.6.6");
	authlog_refused(NULL, AUTHLOG_METRICS_TOKEN, "missing");
	authlog_refused((struct sockaddr *)&v4, AUTHLOG_KIND_N, "invalid"); /* ignored */
	out = captured(fd);
	cr_assert_not_null(strstr(out, "]: warn: auth refused: src=192.0.2.7 kind=pbx-token "
	                               "reason=invalid\n"), "%s", out);
	cr_assert_not_null(strstr(out, "]: warn: auth refused: src=198.51.100.9 kind=digest "
	                               "reason=wrong-credentials\n"), "%s", out);
	cr_assert_not_null(strstr(out, "]: warn: auth refused: src=2001:db8::5 kind=throttled "
	                               "reason=blocked\n"), "%s", out);
	cr_assert_not_null(strstr(out, "]: warn: auth refused: src=192.0.2.7 kind=admin-token "
	                               "reason=other\n"), "%s", out);
	cr_assert_not_null(strstr(out, "]: warn: auth refused: src=- kind=metrics-token "
	                               "reason=missing\n"), "%s", out);
	cr_assert_null(strstr(out, "6.6.6.6"), "%s", out);
	cr_assert_eq(metrics_counter(METRICS_AUTH_REFUSED + AUTHLOG_PBX_TOKEN), 1);
	cr_assert_eq(metrics_counter(METRICS_AUTH_REFUSED + AUTHLOG_DIGEST), 1);
	cr_assert_eq(metrics_counter(METRICS_AUTH_REFUSED + AUTHLOG_THROTTLED), 1);
	cr_assert_eq(metrics_counter(METRICS_AUTH_REFUSED + AUTHLOG_PROV_NETWORK), 0);
	cr_assert_str_eq(authlog_kind_name(AUTHLOG_PROV_NETWORK), "prov-network");
	cr_assert_str_eq(authlog_kind_name(AUTHLOG_KIND_N), "?");
}
