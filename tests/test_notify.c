/*
 * test_notify.c -- notify.c: NOTIFY client transactions.
 *
 * Two parts:
 *   1. the transaction logic against a fake clock and a fake network (an
 *      injected notify_ops send that records every datagram): RFC 3261
 *      17.1.2 timer schedule, provisional responses, digest challenges,
 *      response matching, errors, re-entrancy, many concurrent
 *      transactions;
 *   2. integration through the real UDP socket against sipp (Debian's
 *      sip-tester) playing the phone, one scenario per vendor event plus a
 *      digest challenge and a phone that never answers (tests/sip/).
 *      sipp is required: when it is missing these tests fail, saying so.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "fsutil.h"
#include "notify.h"
#include "sip.h"
#include "testutil.h"
#include "vendor.h"

/* ------------------------------------------------------------------ */
/* fake network and result collection                                  */

#define MAXPKT 4096
#define MAXSENT 256

struct sent {
	char host[64];
	int port;
	long long at;
	char data[MAXPKT];
	size_t len;
};

static struct sent sent[MAXSENT];
static int nsent;
static long long fake_now;
static int fail_sends; /* > 0: that many next sends fail */

#define MAXRES 2048
static struct notify_result results[MAXRES];
static int nresults;

static int
fake_send(void *arg, const char *host, int port, const void *buf, size_t len)
{
	struct sent *s;

	(void)arg;
	if (fail_sends > 0) {
		fail_sends--;
		return -1;
	}
	cr_assert_lt(nsent, MAXSENT, "too many datagrams");
	cr_assert_lt(len, MAXPKT);
	s = &sent[nsent++];
	snprintf(s->host, sizeof(s->host), "%s", host);
	s->port = port;
	s->at = fake_now;
	memcpy(s->data, buf, len);
	s->data[len] = '\0';
	s->len = len;
	return 0;
}

static void
on_done(void *arg, const struct notify_result *r)
{
	(void)arg;
	cr_assert_lt(nresults, MAXRES);
	results[nresults++] = *r;
}

static const struct notify_ops fake_ops = { fake_send, NULL };

static struct notify *
fake_notify(int t1, int t2, int f, const char *proxy)
{
	struct notify_opts o = {
		.bind_host = "192.0.2.1",
		.bind_port = 5070,
		.outbound_proxy = proxy,
		.t1_ms = t1, .t2_ms = t2, .timer_f_ms = f,
		.ops = &fake_ops,
		.done = on_done,
	};
	char err[128] = "";
	struct notify *n = notify_new(&o, err, sizeof(err));

	cr_assert_not_null(n, "notify_new: %s", err);
	nsent = 0;
	nresults = 0;
	fake_now = 0;
	fail_sends = 0;
	return n;
}

static const struct notify_target yealink = {
	.host = "192.0.2.10", .port = 5062, .user = "1001",
	.event = "check-sync;reboot=true",
};

/* Copies header `name` (with its CRLF) from a request into out. */
static void
copy_header(const char *req, const char *name, char *out, size_t outlen)
{
	char pat[64];
	const char *p, *e;
	size_t l = strlen(out);

	snprintf(pat, sizeof(pat), "\r\n%s:", name);
	p = strstr(req, pat);
	cr_assert_not_null(p, "no %s in request", name);
	p += 2;
	e = strstr(p, "\r\n");
	cr_assert_not_null(e);
	cr_assert_lt(l + (size_t)(e + 2 - p), outlen);
	memcpy(out + l, p, (size_t)(e + 2 - p));
	out[l + (size_t)(e + 2 - p)] = '\0';
}

/* Builds a response to a recorded request, as a phone would. */
static size_t
reply(const struct sent *req, const char *status_line, const char *extra,
    char *out, size_t outlen)
{
	snprintf(out, outlen, "%s\r\n", status_line);
	copy_header(req->data, "Via", out, outlen);
	copy_header(req->data, "From", out, outlen);
	copy_header(req->data, "To", out, outlen);
	copy_header(req->data, "Call-ID", out, outlen);
	copy_header(req->data, "CSeq", out, outlen);
	if (extra != NULL)
		strncat(out, extra, outlen - strlen(out) - 1);
	strncat(out, "Content-Length: 0\r\n\r\n", outlen - strlen(out) - 1);
	return strlen(out);
}

/* Value of header `name` in a recorded request (static buffer). */
static const char *
hval(const struct sent *s, const char *name)
{
	static char v[1024];
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\r\n%s: ", name);
	p = strstr(s->data, pat);
	if (p == NULL)
		return NULL;
	p += strlen(pat);
	e = strstr(p, "\r\n");
	snprintf(v, sizeof(v), "%.*s", (int)(e - p), p);
	return v;
}

static void
run_until(struct notify *n, long long until, long long step)
{
	for (; fake_now <= until; fake_now += step)
		(void)notify_tick(n, fake_now, 0);
	fake_now = until;
}

/* ------------------------------------------------------------------ */
/* timers                                                              */

Test(notify_timers, rfc3261_defaults_retransmit_then_timer_f)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	static const long long want[] = { 0, 500, 1500, 3500, 7500, 11500,
	    15500, 19500, 23500, 27500, 31500 };
	uint64_t id = 0;

	cr_assert_eq(notify_send(n, &yealink, 0, &id), 0);
	cr_assert_eq(nsent, 1, "first datagram is sent by notify_send");
	cr_assert_eq(notify_next_timeout_ms(n, 0), 500);
	run_until(n, 31999, 1);
	cr_assert_eq(nresults, 0);
	cr_assert_eq(nsent, 11);
	for (int i = 0; i < nsent; i++) {
		cr_assert_eq(sent[i].at, want[i], "send %d at %lld, want %lld",
		    i, sent[i].at, want[i]);
		cr_assert_eq(sent[i].len, sent[0].len);
		cr_assert(memcmp(sent[i].data, sent[0].data, sent[0].len) == 0,
		    "a retransmission is the same request");
		cr_assert_str_eq(sent[i].host, "192.0.2.10");
		cr_assert_eq(sent[i].port, 5062);
	}
	cr_assert_eq(notify_next_timeout_ms(n, 31999), 1);
	(void)notify_tick(n, 32000, 0);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].id, id);
	cr_assert_eq(results[0].status, 0);
	cr_assert_str_eq(results[0].reason, "timeout");
	cr_assert_eq(results[0].attempts, 11);
	cr_assert_eq(results[0].requests, 1);
	cr_assert_eq(results[0].elapsed_ms, 32000);
	cr_assert_eq(notify_pending(n), 0);
	cr_assert_eq(notify_next_timeout_ms(n, 32000), -1);
	notify_free(n);
}

Test(notify_timers, provisional_switches_to_t2_and_final_completes)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	char resp[2048];
	size_t len;

	cr_assert_eq(notify_send(n, &yealink, 0, NULL), 0);
	fake_now = 100;
	len = reply(&sent[0], "SIP/2.0 100 Trying", NULL, resp, sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 100), 1);
	cr_assert_eq(nresults, 0);
	/* Timer E still fires at 500, then every T2. */
	run_until(n, 9000, 1);
	cr_assert_eq(nsent, 4);
	cr_assert_eq(sent[1].at, 500);
	cr_assert_eq(sent[2].at, 4500);
	cr_assert_eq(sent[3].at, 8500);
	len = reply(&sent[0], "SIP/2.0 200 OK", NULL, resp, sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 9000), 1);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, 200);
	cr_assert_str_eq(results[0].reason, "OK");
	cr_assert_eq(results[0].attempts, 4);
	cr_assert_eq(results[0].elapsed_ms, 9000);
	/* Nothing more is sent, a late duplicate is ignored. */
	run_until(n, 40000, 100);
	cr_assert_eq(nsent, 4);
	cr_assert_eq(notify_input(n, resp, len, 40000), 0);
	cr_assert_eq(nresults, 1);
	notify_free(n);
}

Test(notify_timers, small_configured_timers)
{
	struct notify *n = fake_notify(20, 160, 0, NULL);

	cr_assert_eq(notify_send(n, &yealink, 0, NULL), 0);
	run_until(n, 1280, 1);
	/* 0 20 60 140 300 460 620 780 940 1100 1260, F = 64*T1 = 1280 */
	cr_assert_eq(nsent, 11);
	cr_assert_eq(sent[4].at, 300);
	cr_assert_eq(sent[10].at, 1260);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, 0);
	cr_assert_eq(results[0].elapsed_ms, 1280);
	notify_free(n);
}

/* ------------------------------------------------------------------ */
/* request content and matching                                        */

Test(notify_msg, request_fields_and_cisco_body)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	char body[512];
	struct vendor_notify vn = { NULL, 1 };
	struct notify_target t = {
		.host = "192.0.2.20", .port = 0, .user = "2002",
		.event = "service-control", .content_type = "text/plain",
		.body = body,
	};
	const char *via, *cid;

	cr_assert_gt(vendor_notify_body(vendor_profile_by_name("cisco-enterprise"),
	    &vn, body, sizeof(body)), 0);
	cr_assert_eq(notify_send(n, &t, 0, NULL), 0);
	cr_assert_eq(nsent, 1);
	cr_assert_eq(sent[0].port, 5060, "port 0 means 5060");
	cr_assert(strncmp(sent[0].data, "NOTIFY sip:2002@192.0.2.20:5060 "
	    "SIP/2.0\r\n", 41) == 0, "%s", sent[0].data);
	via = hval(&sent[0], "Via");
	cr_assert_not_null(via);
	cr_assert(strncmp(via, "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK",
	    41) == 0, "%s", via);
	cr_assert_not_null(strstr(via, ";rport"));
	cid = hval(&sent[0], "Call-ID");
	cr_assert_not_null(strstr(cid, "@192.0.2.1"));
	cr_assert_str_eq(hval(&sent[0], "Event"), "service-control");
	cr_assert_str_eq(hval(&sent[0], "Content-Type"), "text/plain");
	cr_assert_not_null(strstr(sent[0].data, "\r\n\r\naction=restart\r\n"));
	cr_assert_null(hval(&sent[0], "Route"));
	notify_free(n);
}

Test(notify_msg, outbound_proxy_gets_datagrams_and_route)
{
	struct notify *n = fake_notify(0, 0, 0, "192.0.2.99:5080");

	cr_assert_eq(notify_send(n, &yealink, 0, NULL), 0);
	cr_assert_str_eq(sent[0].host, "192.0.2.99");
	cr_assert_eq(sent[0].port, 5080);
	cr_assert_str_eq(hval(&sent[0], "Route"), "<sip:192.0.2.99:5080;lr>");
	cr_assert(strncmp(sent[0].data, "NOTIFY sip:1001@192.0.2.10:5062 ",
	    32) == 0);
	notify_free(n);
}

Test(notify_msg, each_transaction_has_its_own_randomness)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	char a[256], b[256];

	cr_assert_eq(notify_send(n, &yealink, 0, NULL), 0);
	cr_assert_eq(notify_send(n, &yealink, 0, NULL), 0);
	snprintf(a, sizeof(a), "%s", hval(&sent[0], "Via"));
	snprintf(b, sizeof(b), "%s", hval(&sent[1], "Via"));
	cr_assert_str_neq(a, b);
	snprintf(a, sizeof(a), "%s", hval(&sent[0], "Call-ID"));
	snprintf(b, sizeof(b), "%s", hval(&sent[1], "Call-ID"));
	cr_assert_str_neq(a, b);
	snprintf(a, sizeof(a), "%s", hval(&sent[0], "From"));
	snprintf(b, sizeof(b), "%s", hval(&sent[1], "From"));
	cr_assert_str_neq(a, b);
	notify_free(n);
}

Test(notify_msg, unmatched_responses_are_ignored)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	char resp[2048], *p;
	size_t len;

	cr_assert_eq(notify_send(n, &yealink, 0, NULL), 0);
	/* Wrong branch. */
	len = reply(&sent[0], "SIP/2.0 200 OK", NULL, resp, sizeof(resp));
	p = strstr(resp, "z9hG4bK");
	p[8] = p[8] == 'f' ? 'e' : 'f';
	cr_assert_eq(notify_input(n, resp, len, 10), 0);
	/* Wrong CSeq number and wrong method. */
	len = reply(&sent[0], "SIP/2.0 200 OK", NULL, resp, sizeof(resp));
	p = strstr(resp, "CSeq: 1 NOTIFY");
	p[6] = '9';
	cr_assert_eq(notify_input(n, resp, len, 10), 0);
	len = reply(&sent[0], "SIP/2.0 200 OK", NULL, resp, sizeof(resp));
	p = strstr(resp, "CSeq: 1 NOTIFY");
	memcpy(p + 8, "INVITE", 6);
	cr_assert_eq(notify_input(n, resp, len - 0, 10), 0);
	/* Garbage, and the request itself echoed back. */
	cr_assert_eq(notify_input(n, "hello", 5, 10), 0);
	cr_assert_eq(notify_input(n, sent[0].data, sent[0].len, 10), 0);
	cr_assert_eq(nresults, 0);
	cr_assert_eq(notify_pending(n), 1);
	/* The right one still completes it (a 481 from a generic UA). */
	len = reply(&sent[0], "SIP/2.0 481 Call/Transaction Does Not Exist",
	    NULL, resp, sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 20), 1);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, 481);
	notify_free(n);
}

/* ------------------------------------------------------------------ */
/* digest                                                              */

static const char *challenge401 =
    "WWW-Authenticate: Digest realm=\"pbx.example\", nonce=\"4b2f6e1d\", "
    "qop=\"auth\", opaque=\"op1\"\r\n";

Test(notify_auth, challenge_is_answered_once_with_new_branch_and_cseq)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	struct notify_target t = yealink;
	char resp[2048], via1[256], cid1[256], expect[65], cnonce[64] = "";
	const char *a, *c;
	size_t len;

	t.auth_user = "1001";
	t.auth_password = "s3cr&t";
	t.auth_policy = (struct sip_auth_policy){ "pbx.example", 1u << SIP_DIGEST_MD5, true };
	cr_assert_eq(notify_send(n, &t, 0, NULL), 0);
	snprintf(via1, sizeof(via1), "%s", hval(&sent[0], "Via"));
	snprintf(cid1, sizeof(cid1), "%s", hval(&sent[0], "Call-ID"));
	cr_assert_null(hval(&sent[0], "Authorization"));
	len = reply(&sent[0], "SIP/2.0 401 Unauthorized", challenge401, resp,
	    sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 50), 1);
	cr_assert_eq(nresults, 0);
	cr_assert_eq(nsent, 2);
	cr_assert_str_eq(hval(&sent[1], "CSeq"), "2 NOTIFY");
	cr_assert_str_eq(hval(&sent[1], "Call-ID"), cid1);
	cr_assert_str_neq(hval(&sent[1], "Via"), via1);
	a = hval(&sent[1], "Authorization");
	cr_assert_not_null(a);
	cr_assert_null(strstr(sent[1].data, "s3cr&t"), "password on the wire");
	c = strstr(a, "cnonce=\"");
	cr_assert_not_null(c);
	sscanf(c + 8, "%63[^\"]", cnonce);
	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, "1001", "pbx.example",
	    "s3cr&t", "NOTIFY", "sip:1001@192.0.2.10:5062", "4b2f6e1d", "auth",
	    "00000001", cnonce, expect, sizeof(expect)), 0);
	cr_assert_not_null(strstr(a, expect), "%s lacks %s", a, expect);
	cr_assert_not_null(strstr(a, "opaque=\"op1\""));
	cr_assert_not_null(strstr(a, "uri=\"sip:1001@192.0.2.10:5062\""));
	/* A retransmitted 401 for the first request is now stray. */
	cr_assert_eq(notify_input(n, resp, len, 60), 0);
	cr_assert_eq(nsent, 2);
	/* Timers restarted at 50: the retry is retransmitted at 550. */
	run_until(n, 600, 1);
	cr_assert_eq(nsent, 3);
	cr_assert_eq(sent[2].at, 550);
	len = reply(&sent[1], "SIP/2.0 200 OK", NULL, resp, sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 700), 1);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, 200);
	cr_assert_eq(results[0].requests, 2);
	cr_assert_eq(results[0].attempts, 3);
	cr_assert_eq(results[0].elapsed_ms, 700);
	notify_free(n);
}

Test(notify_auth, second_challenge_fails)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	struct notify_target t = yealink;
	char resp[2048];
	size_t len;

	t.auth_user = "1001";
	t.auth_password = "wrong";
	t.auth_policy = (struct sip_auth_policy){ "pbx.example", 1u << SIP_DIGEST_MD5, true };
	cr_assert_eq(notify_send(n, &t, 0, NULL), 0);
	len = reply(&sent[0], "SIP/2.0 401 Unauthorized", challenge401, resp,
	    sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 10), 1);
	len = reply(&sent[1], "SIP/2.0 401 Unauthorized", challenge401, resp,
	    sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 20), 1);
	cr_assert_eq(nsent, 2);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, 401);
	cr_assert_eq(results[0].requests, 2);
	notify_free(n);
}

Test(notify_auth, proxy_challenge_uses_proxy_authorization)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	struct notify_target t = yealink;
	char resp[2048];
	size_t len;

	t.auth_user = "1001";
	t.auth_password = "pw";
	t.auth_policy = (struct sip_auth_policy){ "px", 1u << SIP_DIGEST_MD5, false };
	cr_assert_eq(notify_send(n, &t, 0, NULL), 0);
	len = reply(&sent[0], "SIP/2.0 407 Proxy Authentication Required",
	    "Proxy-Authenticate: Digest realm=\"px\", nonce=\"nn\"\r\n", resp,
	    sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 10), 1);
	cr_assert_eq(nsent, 2);
	cr_assert_not_null(hval(&sent[1], "Proxy-Authorization"));
	cr_assert_null(hval(&sent[1], "Authorization"));
	notify_free(n);
}

Test(notify_auth, challenge_without_credentials_is_final)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	char resp[2048];
	size_t len;

	cr_assert_eq(notify_send(n, &yealink, 0, NULL), 0);
	len = reply(&sent[0], "SIP/2.0 401 Unauthorized", challenge401, resp,
	    sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 10), 1);
	cr_assert_eq(nsent, 1);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, 401);
	cr_assert_str_eq(results[0].reason, "Unauthorized");
	notify_free(n);
}

/* ------------------------------------------------------------------ */
/* errors, re-entrancy, scale                                          */

Test(notify_err, invalid_targets_are_refused_without_callback)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	struct notify_target t;

	t = yealink;
	t.host = "phone.example.com"; /* names are the caller's to resolve */
	cr_assert_eq(notify_send(n, &t, 0, NULL), -1);
	t = yealink;
	t.event = "check-sync\r\nX-Evil: 1";
	cr_assert_eq(notify_send(n, &t, 0, NULL), -1);
	t = yealink;
	t.user = "a b";
	cr_assert_eq(notify_send(n, &t, 0, NULL), -1);
	t = yealink;
	t.auth_user = "1001"; /* without a password */
	cr_assert_eq(notify_send(n, &t, 0, NULL), -1);
	t = yealink;
	t.event = NULL;
	cr_assert_eq(notify_send(n, &t, 0, NULL), -1);
	cr_assert_eq(nsent, 0);
	run_until(n, 100, 10);
	cr_assert_eq(nresults, 0);
	cr_assert_eq(notify_pending(n), 0);
	notify_free(n);
}

Test(notify_err, send_failure_is_reported_at_next_tick)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);

	fail_sends = 1;
	cr_assert_eq(notify_send(n, &yealink, 0, NULL), 0);
	cr_assert_eq(nresults, 0, "done is never called from notify_send");
	cr_assert_eq(notify_next_timeout_ms(n, 0), 0);
	(void)notify_tick(n, 1, 0);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, -1);
	cr_assert_eq(results[0].attempts, 1);
	notify_free(n);
}

Test(notify_err, bad_options)
{
	struct notify_opts o = { .bind_host = "127.0.0.1", .done = on_done };
	char err[128];

	o.bind_host = "localhost";
	cr_assert_null(notify_new(&o, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "bind_host"));
	o.bind_host = "0.0.0.0";
	cr_assert_null(notify_new(&o, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "contact_host"));
	o.bind_host = "127.0.0.1";
	o.outbound_proxy = "pbx.example:5060";
	cr_assert_null(notify_new(&o, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "outbound_proxy"));
	o.outbound_proxy = NULL;
	o.done = NULL;
	cr_assert_null(notify_new(&o, err, sizeof(err)));
	notify_free(NULL);
}

static struct notify *reentrant_n;
static int reentrant_left;

static void
on_done_resend(void *arg, const struct notify_result *r)
{
	on_done(arg, r);
	if (reentrant_left-- > 0)
		cr_assert_eq(notify_send(reentrant_n, &yealink, fake_now,
		    NULL), 0);
}

Test(notify_err, done_may_start_new_transactions)
{
	struct notify_opts o = {
		.bind_host = "192.0.2.1", .bind_port = 5070,
		.t1_ms = 10, .t2_ms = 40, .timer_f_ms = 100,
		.ops = &fake_ops, .done = on_done_resend,
	};
	char err[128];

	nsent = nresults = 0;
	fake_now = 0;
	reentrant_n = notify_new(&o, err, sizeof(err));
	cr_assert_not_null(reentrant_n, "%s", err);
	reentrant_left = 3;
	for (int i = 0; i < 3; i++)
		cr_assert_eq(notify_send(reentrant_n, &yealink, 0, NULL), 0);
	run_until(reentrant_n, 1000, 1);
	cr_assert_eq(nresults, 6);
	cr_assert_eq(notify_pending(reentrant_n), 0);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(results[i].status, 0);
	notify_free(reentrant_n);
}

Test(notify_err, many_concurrent_each_done_once)
{
	struct notify *n = fake_notify(50, 400, 0, NULL);
	enum { N = 200 };
	static uint64_t ids[N];
	int seen[N + 1] = { 0 };
	char resp[2048];
	size_t len;

	for (int i = 0; i < N; i++)
		cr_assert_eq(notify_send(n, &yealink, 0, &ids[i]), 0);
	cr_assert_eq(notify_pending(n), N);
	/* Answer in a scrambled order, each twice. */
	for (int k = 0; k < 2 * N; k++) {
		int i = (k * 37) % N;

		len = reply(&sent[i], "SIP/2.0 200 OK", NULL, resp,
		    sizeof(resp));
		(void)notify_input(n, resp, len, 10);
	}
	cr_assert_eq(nresults, N);
	for (int i = 0; i < N; i++) {
		cr_assert(results[i].id >= 1 && results[i].id <= N);
		seen[results[i].id]++;
	}
	for (int i = 1; i <= N; i++)
		cr_assert_eq(seen[i], 1, "id %d reported %d times", i, seen[i]);
	cr_assert_eq(notify_pending(n), 0);
	notify_free(n);
}

/* Transactions started 7 ms apart, half answered, half timing out: at
 * every millisecond the next timeout is exact (something happens at a
 * tick exactly when it says 0, never else), each is reported once, and
 * the silent ones end at Timer F to the millisecond. */
Test(notify_timers, many_transactions_each_on_its_own_schedule)
{
	enum { N = 20, F = 1000, ANSWER = 120 };
	struct notify *n = fake_notify(50, 400, F, NULL);
	uint64_t ids[N];
	int first[N], seen[N + 1] = { 0 };
	char resp[2048];
	size_t len;

	for (long long t = 0; t <= (N - 1) * 7 + F + 10; t++) {
		int r0, s0;
		long long w;

		fake_now = t;
		if (t % 7 == 0 && t / 7 < N) {
			int i = (int)(t / 7);

			cr_assert_eq(notify_send(n, &yealink, t, &ids[i]), 0);
			first[i] = nsent - 1;
		}
		for (int i = 0; i < N; i += 2)
			if (t == i * 7 + ANSWER) {
				len = reply(&sent[first[i]], "SIP/2.0 200 OK", NULL, resp, sizeof(resp));
				cr_assert_eq(notify_input(n, resp, len, t), 1);
			}
		w = notify_next_timeout_ms(n, t);
		r0 = nresults;
		s0 = nsent;
		(void)notify_tick(n, t, 0);
		cr_assert_eq(nsent != s0 || nresults != r0, w == 0, "at %lld ms: next timeout %lld",
		             t, w);
	}
	cr_assert_eq(nresults, N);
	cr_assert_eq(notify_pending(n), 0);
	for (int k = 0; k < N; k++) {
		int i = -1;

		for (int j = 0; j < N; j++)
			if (ids[j] == results[k].id)
				i = j;
		cr_assert_geq(i, 0);
		seen[i]++;
		if (i % 2 == 0)
			cr_assert(results[k].status == 200 && results[k].elapsed_ms == ANSWER);
		else
			cr_assert(results[k].status == 0 && results[k].elapsed_ms == F,
			          "%d: status %d after %lld ms", i, results[k].status,
			          results[k].elapsed_ms);
	}
	for (int i = 0; i < N; i++)
		cr_assert_eq(seen[i], 1);
	notify_free(n);
}

/* Ten transactions due at once, two of them with a send that failed:
 * notify_tick fires at most its max, soonest first, and the rest on
 * later calls (the failed ones end, the others retransmit once each). */
Test(notify_timers, tick_fires_at_most_max)
{
	struct notify *n = fake_notify(100, 4000, 32000, NULL);

	fail_sends = 2;
	for (int i = 0; i < 10; i++)
		cr_assert_eq(notify_send(n, &yealink, i, NULL), 0);
	cr_assert_eq(nsent, 8, "the first two sends failed");
	cr_assert_eq(notify_tick(n, 200, 4), 4);
	cr_assert_eq(nresults, 2, "the failed ones are due first");
	cr_assert_eq(nsent, 10, "then two retransmissions");
	cr_assert_eq(notify_tick(n, 200, 4), 4);
	cr_assert_eq(nsent, 14);
	cr_assert_eq(notify_tick(n, 200, 4), 2, "the rest: fewer than max");
	cr_assert_eq(nsent, 16);
	cr_assert_eq(notify_tick(n, 200, 4), 0, "a retransmitted one is not due again");
	cr_assert_eq(nresults, 2);
	cr_assert_eq(notify_pending(n), 8);
	notify_free(n);
}

/* ------------------------------------------------------------------ */
/* the real socket, with a hand-driven peer                            */

/* A UDP socket bound to family's loopback address, on a port the system
 * picks (put in *port). */
static int
loopback_socket(int family, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = socket(family, SOCK_DGRAM, 0);

	cr_assert_geq(fd, 0);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&ss, family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)), 0,
	    "bind: %s", strerror(errno));
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	*port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                  : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* A peer on `family` loopback answers the first NOTIFY it gets with 200;
 * checks the socket path (bind, sendto, recv, poll) without sipp, and
 * IPv6 both ways. */
static void
socket_roundtrip(const char *bind_host, int family, const char *peer_host)
{
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	struct notify_opts o = { .bind_host = bind_host, .t1_ms = 50,
	    .done = on_done };
	struct notify_target t = { .host = peer_host, .user = "1001",
	    .event = "check-sync" };
	struct timeval tv = { 2, 0 };
	struct sent req;
	char resp[2048], err[128] = "";
	struct notify *n;
	ssize_t r;
	int fd = loopback_socket(family, &t.port);

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	nresults = 0;
	o.contact_host = strcmp(bind_host, "::") == 0 ? "::1" : NULL;
	n = notify_new(&o, err, sizeof(err));
	cr_assert_not_null(n, "%s", err);
	cr_assert_eq(notify_send(n, &t, notify_now_ms(), NULL), 0);
	r = recvfrom(fd, req.data, sizeof(req.data) - 1, 0,
	    (struct sockaddr *)&from, &fl);
	cr_assert_gt(r, 0, "peer got nothing: %s", strerror(errno));
	req.data[r] = '\0';
	req.len = (size_t)r;
	reply(&req, "SIP/2.0 200 OK", NULL, resp, sizeof(resp));
	cr_assert_eq(sendto(fd, resp, strlen(resp), 0,
	    (struct sockaddr *)&from, fl), (ssize_t)strlen(resp));
	cr_assert_eq(notify_run_until_idle(n, 2000), 0);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, 200);
	notify_free(n);
	close(fd);
}

Test(notify_socket, ipv4_roundtrip)
{
	socket_roundtrip("127.0.0.1", AF_INET, "127.0.0.1");
}

Test(notify_socket, ipv6_roundtrip)
{
	socket_roundtrip("::1", AF_INET6, "::1");
}

Test(notify_socket, ipv6_wildcard_socket_reaches_ipv4_target)
{
	socket_roundtrip("::", AF_INET, "127.0.0.1");
}

Test(notify_socket, run_until_idle_gives_up_at_max_ms)
{
	struct notify_opts o = { .bind_host = "127.0.0.1", .t1_ms = 500,
	    .done = on_done };
	struct notify_target t = { .host = "127.0.0.1", .event = "check-sync" };
	char err[128];
	struct notify *n = notify_new(&o, err, sizeof(err));
	long long t0;
	/* a phone that never answers (its port open) */
	int fd = loopback_socket(AF_INET, &t.port);
	cr_assert_not_null(n, "%s", err);
	nresults = 0;
	cr_assert_eq(notify_send(n, &t, notify_now_ms(), NULL), 0);
	t0 = notify_now_ms();
	cr_assert_eq(notify_run_until_idle(n, 100), 1);
	cr_assert(notify_now_ms() - t0 >= 100);
	cr_assert_eq(nresults, 0);
	notify_free(n);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* integration with sipp                                               */

/* Finds `sipp` on PATH; fails the test with advice when it is absent. */
static void
need_sipp(void)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (path == NULL)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t l = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/sipp", (int)l, path);
		if (access(buf, X_OK) == 0)
			return;
		path += l + (path[l] == ':');
	}
	cr_assert_fail("sipp not found on PATH: install Debian package "
	    "sip-tester (apt-get install sip-tester); these tests do not skip");
}

/* A tests/sip/ file, from the work tree root, next to the binary
 * (build/tests/../../tests/sip) or next to this source file. */
static void
scenario_path(const char *name, char *out, size_t outlen)
{
	char exe[PATH_MAX], *slash;
	ssize_t l;

	snprintf(out, outlen, "tests/sip/%s", name);
	if (access(out, R_OK) == 0)
		return;
	l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (l > 0) {
		exe[l] = '\0';
		slash = strrchr(exe, '/');
		if (slash != NULL) {
			*slash = '\0';
			int w = snprintf(out, outlen, "%s/../../tests/sip/%s",
			    exe, name);

			if (w > 0 && (size_t)w < outlen && access(out, R_OK) == 0)
				return;
		}
	}
	snprintf(out, outlen, "%s", __FILE__);
	slash = strrchr(out, '/');
	if (slash != NULL) {
		*slash = '\0';
		snprintf(out + strlen(out), outlen - strlen(out), "/sip/%s",
		    name);
		if (access(out, R_OK) == 0)
			return;
	}
	cr_assert_fail("scenario %s not found (run from the work tree root)",
	    name);
}

/* Binds UDP 127.0.0.1:port; returns the fd or -1. */
static int
udp_bind(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A UDP port the OS says is free now (and, when pair, port+2 too, for
 * sipp's media sockets). */
static int
free_port(int pair)
{
	for (int tries = 0; tries < 50; tries++) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		int fd = udp_bind(0), fd2 = -1, port;

		cr_assert_geq(fd, 0);
		cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
		port = ntohs(a.sin_port);
		if (pair && (port % 2 != 0 || port > 65000 ||
		    (fd2 = udp_bind(port + 2)) < 0)) {
			close(fd);
			continue;
		}
		close(fd);
		if (fd2 >= 0)
			close(fd2);
		return port;
	}
	cr_assert_fail("no free port pair");
	return -1;
}

struct sipp_run {
	pid_t pid;
	int port;
	char dir[128];
	char msglog[256];
};

/* Whether sipp's output file says it could not bind a port. */
static bool
sipp_bind_failed(const char *out)
{
	size_t len;
	char *text = fs_read_path(out, 1 << 20, &len, NULL, 0);
	bool failed = text != NULL && strstr(text, "Unable to bind") != NULL;

	free(text);
	return failed;
}

/* One try of sipp_start on ports free a moment ago: 1 when it listens,
 * 0 when another process took one of them first (it exited, saying so). */
static int
sipp_try(struct sipp_run *s, const char *sf, const char *out)
{
	char port[16], mp[16], cp[16];

	s->port = free_port(0);
	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(mp, sizeof(mp), "%d", free_port(1));
	snprintf(cp, sizeof(cp), "%d", free_port(0));
	s->pid = fork();
	cr_assert_geq(s->pid, 0);
	if (s->pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("sipp", "sipp", "-sf", sf, "-i", "127.0.0.1", "-p", port,
		    "-mp", mp, "-cp", cp, "-m", "1", "-nostdin",
		    "-timeout", "15s", "-timeout_error", "-trace_msg",
		    "-message_file", s->msglog, (char *)NULL);
		_exit(127);
	}
	/* Ready when its SIP port is taken. */
	for (int i = 0; i < 500; i++) {
		int fd = udp_bind(s->port), st;

		if (fd < 0 && errno == EADDRINUSE)
			return 1;
		if (fd >= 0)
			close(fd);
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			if (sipp_bind_failed(out))
				return 0;
			cr_assert_fail("sipp exited early (status %d), see %s",
			    st, out);
		}
		usleep(10000);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	cr_assert_fail("sipp did not bind port %d", s->port);
	return -1;
}

/* Starts sipp as a UAS on 127.0.0.1 with scenario `name`, and waits until
 * it listens.  A port found free can be taken by a test running beside
 * this one before sipp binds it: sipp then tries on other ports. */
static void
sipp_start(struct sipp_run *s, const char *name)
{
	char sf[PATH_MAX], out[300];
	char *tmp;

	need_sipp();
	scenario_path(name, sf, sizeof(sf));
	tmp = tu_tmpdir();
	cr_assert_not_null(tmp);
	snprintf(s->dir, sizeof(s->dir), "%s", tmp);
	free(tmp);
	snprintf(s->msglog, sizeof(s->msglog), "%s/messages.log", s->dir);
	snprintf(out, sizeof(out), "%s/sipp.out", s->dir);
	for (int tries = 0; tries < 5; tries++)
		if (sipp_try(s, sf, out) == 1)
			return;
	cr_assert_fail("sipp found no free port in 5 tries, see %s", out);
}

/* Waits for sipp (at most 10 s) and returns its exit code. */
static int
sipp_wait(struct sipp_run *s)
{
	int st = 0;

	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		if (r == s->pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 +
			    WTERMSIG(st);
		usleep(10000);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	cr_assert_fail("sipp did not finish");
	return -1;
}

/* Removes sipp's files after a passing test (a failing one keeps them
 * for the message that names the directory). */
static void
sipp_cleanup(struct sipp_run *s)
{
	char p[300];

	if (snprintf(p, sizeof(p), "%s/sipp.out", s->dir) < (int)sizeof(p))
		unlink(p);
	unlink(s->msglog);
	rmdir(s->dir);
}

static struct notify *
real_notify(int t1, int t2, int f)
{
	struct notify_opts o = {
		.bind_host = "127.0.0.1", .bind_port = 0,
		.t1_ms = t1, .t2_ms = t2, .timer_f_ms = f,
		.done = on_done,
	};
	char err[128] = "";
	struct notify *n = notify_new(&o, err, sizeof(err));

	cr_assert_not_null(n, "notify_new: %s", err);
	cr_assert_geq(notify_poll_fd(n), 0);
	cr_assert_gt(notify_local_port(n), 0);
	nresults = 0;
	return n;
}

/* Sends one NOTIFY to a sipp phone running `scenario` and checks both
 * sides: sipp's exit code 0 (its checks passed) and our result. Timer F
 * is 10 s, not 64*T1: under a loaded machine sipp may answer late, and
 * these cases check what it answers, not how soon (a longer test timeout
 * than criterion's 20 s here made its runner leak under LeakSanitizer). */
static void
vendor_case(const char *scenario, const struct notify_target *tmpl,
    int want_status, int want_requests)
{
	struct sipp_run s;
	struct notify *n;
	struct notify_target t = *tmpl;
	uint64_t id = 0;
	int rc;

	sipp_start(&s, scenario);
	n = real_notify(50, 400, 10000);
	t.host = "127.0.0.1";
	t.port = s.port;
	cr_assert_eq(notify_send(n, &t, notify_now_ms(), &id), 0);
	cr_assert_eq(notify_run_until_idle(n, 11000), 0, "still pending");
	rc = sipp_wait(&s);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].id, id);
	cr_assert_eq(results[0].status, want_status, "status %d (%s)",
	    results[0].status, results[0].reason);
	cr_assert_eq(results[0].requests, want_requests);
	cr_assert_eq(rc, 0, "sipp %s exited %d: see %s", scenario, rc, s.dir);
	notify_free(n);
	sipp_cleanup(&s);
}

Test(notify_sipp, polycom_check_sync, .timeout = 20)
{
	struct notify_target t = { .user = "1001", .event = "check-sync" };

	vendor_case("uas_polycom.xml", &t, 200, 1);
}

Test(notify_sipp, yealink_check_sync_reboot, .timeout = 20)
{
	struct notify_target t = { .user = "1001",
	    .event = "check-sync;reboot=true" };

	vendor_case("uas_yealink.xml", &t, 200, 1);
}

Test(notify_sipp, cisco_mpp_resync, .timeout = 20)
{
	struct notify_target t = { .user = "1001", .event = "resync" };

	vendor_case("uas_cisco_mpp.xml", &t, 200, 1);
}

Test(notify_sipp, cisco_enterprise_service_control, .timeout = 20)
{
	const struct vendor_profile *ent =
	    vendor_profile_by_name("cisco-enterprise");
	char body[512];
	struct vendor_notify vn = { "a84b4c76e66710@10.0.0.5", 7 };
	struct notify_target t = { .user = "1001", .event = ent->notify_event,
	    .subscription_state = ent->notify_subscription_state,
	    .content_type = ent->notify_content_type, .body = body };

	cr_assert_gt(vendor_notify_body(ent, &vn, body, sizeof(body)), 0);
	vendor_case("uas_cisco_enterprise.xml", &t, 200, 1);
}

/* The negative control: a wrong event must make sipp fail. */
Test(notify_sipp, wrong_event_fails_the_scenario, .timeout = 20)
{
	struct sipp_run s;
	struct notify *n;
	struct notify_target t = { .user = "1001", .event = "check-sync" };

	sipp_start(&s, "uas_cisco_mpp.xml");
	n = real_notify(20, 160, 0);
	t.host = "127.0.0.1";
	t.port = s.port;
	cr_assert_eq(notify_send(n, &t, notify_now_ms(), NULL), 0);
	(void)notify_run_until_idle(n, 2000);
	cr_assert_neq(sipp_wait(&s), 0, "sipp accepted a wrong Event");
	notify_free(n);
	sipp_cleanup(&s);
}

Test(notify_sipp, digest_challenge_answered, .timeout = 20)
{
	struct notify_target t = { .user = "1001", .event = "resync",
	    .auth_user = "1001", .auth_password = "s3cr&t",
	    .auth_policy = { "hotdeskd.test", 1u << SIP_DIGEST_MD5, false } };

	vendor_case("uas_auth.xml", &t, 200, 2);
}

Test(notify_sipp, digest_wrong_password_is_refused, .timeout = 20)
{
	struct notify_target t = { .user = "1001", .event = "resync",
	    .auth_user = "1001", .auth_password = "not-it",
	    .auth_policy = { "hotdeskd.test", 1u << SIP_DIGEST_MD5, false } };

	/* sipp's verifyauth fails, it answers 403 and its call succeeds. */
	vendor_case("uas_auth.xml", &t, 403, 2);
}

/* Counts the NOTIFY requests sipp logged as received. */
static int
count_received_notifies(const char *log)
{
	FILE *f = fopen(log, "r");
	char line[1024];
	int count = 0, after_recv = 0;

	cr_assert_not_null(f, "no sipp message log %s", log);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, "message received") != NULL)
			after_recv = 1;
		else if (after_recv && strncmp(line, "NOTIFY sip:", 11) == 0) {
			count++;
			after_recv = 0;
		} else if (line[0] != '\n' && line[0] != '\r')
			after_recv = 0;
	}
	fclose(f);
	return count;
}

Test(notify_sipp, silent_phone_retransmits_then_times_out, .timeout = 20)
{
	struct sipp_run s;
	struct notify *n;
	struct notify_target t = { .user = "1001", .event = "check-sync" };
	int rc, got;

	sipp_start(&s, "uas_silent.xml");
	/* T1 20 ms, T2 160 ms, F 64*T1 = 1280 ms: 11 sends on time. */
	n = real_notify(20, 160, 0);
	t.host = "127.0.0.1";
	t.port = s.port;
	cr_assert_eq(notify_send(n, &t, notify_now_ms(), NULL), 0);
	cr_assert_eq(notify_run_until_idle(n, 5000), 0);
	rc = sipp_wait(&s);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, 0);
	cr_assert_str_eq(results[0].reason, "timeout");
	cr_assert(results[0].attempts >= 8 && results[0].attempts <= 11,
	    "attempts %d", results[0].attempts);
	cr_assert(results[0].elapsed_ms >= 1280 && results[0].elapsed_ms < 2500,
	    "elapsed %lld", results[0].elapsed_ms);
	got = count_received_notifies(s.msglog);
	cr_assert_eq(got, results[0].attempts,
	    "sipp saw %d NOTIFYs, we sent %d", got, results[0].attempts);
	cr_assert_eq(rc, 0, "sipp exited %d: see %s", rc, s.dir);
	notify_free(n);
	sipp_cleanup(&s);
}

/* A challenge that does not fit the family's policy is not answered: the
 * transaction ends with the 401, and no digest of the password leaves. */
static void
refused_case(const char *challenge, struct sip_auth_policy pol)
{
	struct notify *n = fake_notify(0, 0, 0, NULL);
	struct notify_target t = yealink;
	char resp[2048];
	size_t len;

	nresults = 0;
	t.auth_user = "1001";
	t.auth_password = "s3cr&t";
	t.auth_policy = pol;
	cr_assert_eq(notify_send(n, &t, 0, NULL), 0);
	len = reply(&sent[0], "SIP/2.0 401 Unauthorized", challenge, resp, sizeof(resp));
	cr_assert_eq(notify_input(n, resp, len, 50), 1);
	cr_assert_eq(nsent, 1, "an unfit challenge was answered: %s", challenge);
	cr_assert_eq(nresults, 1);
	cr_assert_eq(results[0].status, 401);
	notify_free(n);
}

Test(notify_auth, only_the_familys_realm_algorithm_and_qop_are_answered)
{
	const struct sip_auth_policy mpp = { "pbx.example", 1u << SIP_DIGEST_MD5, true };

	/* another realm: a digest for the PBX's realm is what an attacker wants */
	refused_case("WWW-Authenticate: Digest realm=\"pbx.evil\", nonce=\"n1\", qop=\"auth\"\r\n",
	             mpp);
	/* an algorithm the phone does not use */
	refused_case("WWW-Authenticate: Digest realm=\"pbx.example\", nonce=\"n1\", "
	             "algorithm=SHA-256, qop=\"auth\"\r\n", mpp);
	/* no qop where the family always offers it (RFC 2069 downgrade) */
	refused_case("WWW-Authenticate: Digest realm=\"pbx.example\", nonce=\"n1\"\r\n", mpp);
	/* a family that never challenges: nothing is ever answered */
	refused_case(challenge401, (struct sip_auth_policy){ NULL, 0, false });
}
