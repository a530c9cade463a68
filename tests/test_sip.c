/*
 * test_sip.c -- sip.c: NOTIFY building, response parsing, MD5 and digest.
 *
 * Everything here is pure: exact golden text for built requests, tolerant
 * parsing of odd but legal responses, refusal of garbage, and published
 * digest vectors (RFC 1321, RFC 2617 3.5, RFC 7616 3.9.1) plus SIP-style
 * vectors computed independently with python3 hashlib (shown per test).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sip.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* building                                                            */

static struct sip_notify_req
base_req(void)
{
	struct sip_notify_req r = {
		.target_user = "1001",
		.target_host = "192.0.2.10",
		.target_port = 5062,
		.local_host = "192.0.2.1",
		.local_port = 5070,
		.branch = "abc123",
		.from_tag = "tag77",
		.call_id = "cid42@192.0.2.1",
		.cseq = 1,
		.event = "check-sync;reboot=true",
	};
	return r;
}

Test(sip_build, minimal_notify_exact_text)
{
	struct sip_notify_req r = base_req();
	char buf[2048], err[128];
	size_t len = 0;
	const char *want =
	    "NOTIFY sip:1001@192.0.2.10:5062 SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKabc123;rport\r\n"
	    "Max-Forwards: 70\r\n"
	    "From: <sip:hotdeskd@192.0.2.1>;tag=tag77\r\n"
	    "To: <sip:1001@192.0.2.10:5062>\r\n"
	    "Call-ID: cid42@192.0.2.1\r\n"
	    "CSeq: 1 NOTIFY\r\n"
	    "Contact: <sip:hotdeskd@192.0.2.1:5070>\r\n"
	    "Event: check-sync;reboot=true\r\n"
	    "Subscription-State: terminated\r\n"
	    "Content-Length: 0\r\n"
	    "\r\n";

	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), &len, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(buf, want);
	cr_assert_eq(len, strlen(want));
}

Test(sip_build, cisco_body_route_auth_and_exact_length)
{
	struct sip_notify_req r = base_req();
	char body[512], buf[4096], err[128];
	size_t len = 0;
	const char *cl, *sep;

	snprintf(body, sizeof(body), "action=restart\r\n"
	    "RegisterCallId={reg-9@10.0.0.5}\r\n");
	r.event = "service-control";
	r.content_type = "text/plain";
	r.body = body;
	r.cseq = 2;
	r.authorization = "Digest username=\"1001\", response=\"00\"";
	r.proxy_authorization = true;
	r.route_host = "192.0.2.99";
	r.route_port = 5060;
	r.from_user = "prov";
	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), &len, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(buf, "\r\nRoute: <sip:192.0.2.99:5060;lr>\r\n"));
	cr_assert_not_null(strstr(buf, "\r\nProxy-Authorization: Digest "
	    "username=\"1001\", response=\"00\"\r\n"));
	cr_assert_null(strstr(buf, "\r\nAuthorization:"));
	cr_assert_not_null(strstr(buf, "\r\nCSeq: 2 NOTIFY\r\n"));
	cr_assert_not_null(strstr(buf, "\r\nFrom: <sip:prov@192.0.2.1>;tag=tag77\r\n"));
	cr_assert_not_null(strstr(buf, "\r\nContent-Type: text/plain\r\n"));
	cr_assert_not_null(strstr(buf, "\r\nEvent: service-control\r\n"));
	/* Content-Length equals the bytes after the blank line. */
	cl = strstr(buf, "\r\nContent-Length: ");
	sep = strstr(buf, "\r\n\r\n");
	cr_assert_not_null(cl);
	cr_assert_not_null(sep);
	cr_assert_eq(strtoul(cl + 18, NULL, 10), strlen(body));
	cr_assert_eq(len - (size_t)(sep + 4 - buf), strlen(body));
	cr_assert_str_eq(sep + 4, body);
}

Test(sip_build, ipv6_hosts_are_bracketed_and_user_optional)
{
	struct sip_notify_req r = base_req();
	char buf[2048], err[128], uri[128];

	r.target_user = NULL;
	r.target_host = "2001:db8::10";
	r.local_host = "2001:db8::1";
	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), NULL, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert(strncmp(buf, "NOTIFY sip:[2001:db8::10]:5062 SIP/2.0\r\n",
	    40) == 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "Via: SIP/2.0/UDP [2001:db8::1]:5070;"));
	cr_assert_eq(sip_request_uri(NULL, "2001:db8::10", 5062, uri,
	    sizeof(uri), err, sizeof(err)), 0);
	cr_assert_str_eq(uri, "sip:[2001:db8::10]:5062");
	cr_assert_eq(sip_request_uri("1001", "192.0.2.10", 5060, uri,
	    sizeof(uri), err, sizeof(err)), 0);
	cr_assert_str_eq(uri, "sip:1001@192.0.2.10:5060");
}

/* Each header-bound field with CR or LF is refused and named. */
Test(sip_build, crlf_in_any_field_is_refused_and_named)
{
	static const char *fields[] = {
		"target_user", "target_host", "local_host", "from_user",
		"branch", "from_tag", "call_id", "event", "content_type",
		"authorization", "route_host",
	};
	const char *evil[] = { "x\r\nVia: evil", "x\nX: y", "x\ry" };

	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		for (size_t e = 0; e < 3; e++) {
			struct sip_notify_req r = base_req();
			char buf[2048], err[128] = "";
			const char **slot = NULL;

			r.route_host = "192.0.2.99";
			r.route_port = 5060;
			r.content_type = "text/plain";
			r.body = "x";
			if (!strcmp(fields[f], "target_user")) slot = &r.target_user;
			if (!strcmp(fields[f], "target_host")) slot = &r.target_host;
			if (!strcmp(fields[f], "local_host")) slot = &r.local_host;
			if (!strcmp(fields[f], "from_user")) slot = &r.from_user;
			if (!strcmp(fields[f], "branch")) slot = &r.branch;
			if (!strcmp(fields[f], "from_tag")) slot = &r.from_tag;
			if (!strcmp(fields[f], "call_id")) slot = &r.call_id;
			if (!strcmp(fields[f], "event")) slot = &r.event;
			if (!strcmp(fields[f], "content_type")) slot = &r.content_type;
			if (!strcmp(fields[f], "authorization")) slot = &r.authorization;
			if (!strcmp(fields[f], "route_host")) slot = &r.route_host;
			cr_assert_not_null(slot);
			*slot = evil[e];
			cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), NULL,
			    err, sizeof(err)), -1, "%s accepted %s", fields[f],
			    evil[e]);
			cr_assert(strncmp(err, fields[f], strlen(fields[f])) == 0,
			    "error '%s' does not name %s", err, fields[f]);
			cr_assert_not_null(strstr(err, "CR, LF"), "%s", err);
		}
	}
}

Test(sip_build, bad_values_and_small_buffer)
{
	struct sip_notify_req r;
	char buf[2048], small[64], err[128];

	r = base_req();
	r.target_user = "a@b";
	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), NULL, err,
	    sizeof(err)), -1);
	cr_assert(strncmp(err, "target_user", 11) == 0, "%s", err);

	r = base_req();
	r.target_host = "1.2.3.4>";
	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), NULL, err,
	    sizeof(err)), -1);

	r = base_req();
	r.target_port = 70000;
	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), NULL, err,
	    sizeof(err)), -1);
	cr_assert(strncmp(err, "target_port", 11) == 0, "%s", err);

	r = base_req();
	r.event = NULL;
	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), NULL, err,
	    sizeof(err)), -1);
	cr_assert_str_eq(err, "event: missing");

	r = base_req();
	r.body = "x"; /* body without content type */
	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), NULL, err,
	    sizeof(err)), -1);
	cr_assert(strncmp(err, "content_type", 12) == 0, "%s", err);

	r = base_req();
	cr_assert_eq(sip_build_notify(&r, small, sizeof(small), NULL, err,
	    sizeof(err)), -1);
	cr_assert(strncmp(err, "buffer", 6) == 0, "%s", err);

	r = base_req();
	r.subscription_state = "active\r\nX: y";
	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), NULL, err,
	    sizeof(err)), -1);
	cr_assert(strncmp(err, "subscription_state", 18) == 0, "%s", err);
}

/* A profile may name another Subscription-State (Cisco enterprise:
 * "active", VENDORS.md); NULL keeps RFC 6665's "terminated". */
Test(sip_build, subscription_state_per_profile)
{
	struct sip_notify_req r = base_req();
	char buf[2048], err[128];

	r.subscription_state = "active";
	cr_assert_eq(sip_build_notify(&r, buf, sizeof(buf), NULL, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(buf, "\r\nSubscription-State: active\r\n"));
	cr_assert_null(strstr(buf, "terminated"));
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

static int
parse(const char *s, struct sip_response *r)
{
	return sip_parse_response(s, strlen(s), r);
}

Test(sip_parse, plain_200)
{
	struct sip_response r;
	const char *m =
	    "SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKabc123;rport=5070;"
	    "received=192.0.2.1\r\n"
	    "From: <sip:hotdeskd@192.0.2.1>;tag=tag77\r\n"
	    "To: <sip:1001@192.0.2.10>;tag=xyz\r\n"
	    "Call-ID: cid42@192.0.2.1\r\n"
	    "CSeq: 1 NOTIFY\r\n"
	    "Content-Length: 0\r\n\r\n";

	cr_assert_eq(parse(m, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.reason, "OK");
	cr_assert_str_eq(r.branch, "z9hG4bKabc123");
	cr_assert_eq(r.cseq, 1);
	cr_assert_str_eq(r.cseq_method, "NOTIFY");
	cr_assert_str_eq(r.call_id, "cid42@192.0.2.1");
	cr_assert_not(r.www_auth.present);
}

Test(sip_parse, compact_folded_odd_whitespace_lf_only)
{
	struct sip_response r;
	const char *m =
	    "SIP/2.0   481 Call/Transaction   Does Not Exist  \n"
	    "v:SIP/2.0/UDP 10.0.0.1:5060 ;received=10.0.0.9\n"
	    "  ;BRANCH = z9hG4bKfold ;rport=1\n"
	    "VIA: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKsecond\n"
	    "i:   call-1@host\t\n"
	    "cseq:\t7\t  NOTIFY\n"
	    "l: 0\n\n";

	cr_assert_eq(parse(m, &r), 0);
	cr_assert_eq(r.status, 481);
	cr_assert_str_eq(r.reason, "Call/Transaction   Does Not Exist");
	cr_assert_str_eq(r.branch, "z9hG4bKfold");
	cr_assert_str_eq(r.call_id, "call-1@host");
	cr_assert_eq(r.cseq, 7);
	cr_assert_str_eq(r.cseq_method, "NOTIFY");
}

Test(sip_parse, comma_separated_via_takes_the_first)
{
	struct sip_response r;
	const char *m =
	    "SIP/2.0 100 Trying\r\n"
	    "Via: SIP/2.0/UDP a;branch=z9hG4bKone, SIP/2.0/UDP b;branch=z9hG4bKtwo\r\n"
	    "Call-ID: c\r\nCSeq: 1 NOTIFY\r\n\r\n";

	cr_assert_eq(parse(m, &r), 0);
	cr_assert_eq(r.status, 100);
	cr_assert_str_eq(r.branch, "z9hG4bKone");
}

Test(sip_parse, www_and_proxy_challenges)
{
	struct sip_response r;
	const char *m =
	    "SIP/2.0 401 Unauthorized\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKx\r\n"
	    "Call-ID: c@h\r\nCSeq: 1 NOTIFY\r\n"
	    "WWW-Authenticate: Basic realm=\"nope\"\r\n"
	    "www-authenticate: Digest realm=\"pbx \\\"one\\\"\",\r\n"
	    "\tnonce=\"4b2f6e1d\", opaque=\"op,aq\", algorithm=MD5,\r\n"
	    "  qop=\"auth,auth-int\", stale=TRUE, domain=\"sip:x\"\r\n"
	    "Proxy-Authenticate: Digest realm=proxy,nonce=n2,algorithm=SHA-256\r\n"
	    "\r\n";

	cr_assert_eq(parse(m, &r), 0);
	cr_assert_eq(r.status, 401);
	cr_assert(r.www_auth.present);
	cr_assert_str_eq(r.www_auth.realm, "pbx \"one\"");
	cr_assert_str_eq(r.www_auth.nonce, "4b2f6e1d");
	cr_assert_str_eq(r.www_auth.opaque, "op,aq");
	cr_assert_str_eq(r.www_auth.algorithm, "MD5");
	cr_assert_str_eq(r.www_auth.qop, "auth,auth-int");
	cr_assert(r.www_auth.stale);
	cr_assert(r.proxy_auth.present);
	cr_assert_str_eq(r.proxy_auth.realm, "proxy");
	cr_assert_str_eq(r.proxy_auth.nonce, "n2");
	cr_assert_str_eq(r.proxy_auth.algorithm, "SHA-256");
}

Test(sip_parse, rejects_garbage)
{
	struct sip_response r;
	static const char *bad[] = {
		"",
		"NOTIFY sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\n"
		"Call-ID: c\r\nCSeq: 1 NOTIFY\r\n\r\n",       /* a request */
		"SIP/2.0 20 OK\r\n\r\n",
		"SIP/2.0 999 Huh\r\nVia: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\n"
		"CSeq: 1 NOTIFY\r\n\r\n",
		"SIP/2.0 200 OK\r\nCall-ID: c\r\nCSeq: 1 NOTIFY\r\n\r\n", /* no Via */
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=b\r\nCSeq: 1 NOTIFY\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\n"
		"CSeq: x NOTIFY\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=b\r\nCall-ID: c\r\n"
		"CSeq: 99999999999 NOTIFY\r\n\r\n",
		"SIP/2.0 200 OK\r\n continuation first\r\n\r\n",
		"SIP/2.0 200 OK\r\nno colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.status = 42;
		cr_assert_eq(parse(bad[i], &r), -1, "accepted #%zu", i);
		cr_assert_eq(r.status, 0, "out not cleared for #%zu", i);
	}
}

Test(sip_parse, never_reads_past_len_and_rejects_nul)
{
	const char *m = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKq\r\n"
	    "Call-ID: c\r\nCSeq: 1 NOTIFY\r\n\r\n";
	size_t n = strlen(m);
	struct sip_response r;
	char *heap, withnul[256];

	/* Every prefix, copied to an exact-size heap block (ASan checks). */
	for (size_t k = 0; k <= n; k++) {
		heap = malloc(k ? k : 1);
		cr_assert_not_null(heap);
		memcpy(heap, m, k);
		(void)sip_parse_response(heap, k, &r);
		free(heap);
	}
	/* The full message parses even without a trailing NUL. */
	heap = malloc(n);
	memcpy(heap, m, n);
	cr_assert_eq(sip_parse_response(heap, n, &r), 0);
	free(heap);
	/* An embedded NUL in the header section is garbage. */
	memcpy(withnul, m, n);
	withnul[20] = '\0';
	cr_assert_eq(sip_parse_response(withnul, n, &r), -1);
}

/* A small deterministic fuzz: random bytes and mutations of a valid
 * response must never crash and must give a consistent result. */
Test(sip_parse, mutation_fuzz_does_not_crash)
{
	const char *seed = "SIP/2.0 401 Unauthorized\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKx;rport\r\n"
	    "Call-ID: c@h\r\nCSeq: 1 NOTIFY\r\n"
	    "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\"\r\n\r\n";
	size_t n = strlen(seed);
	uint32_t x = 12345;
	char buf[512];
	struct sip_response r;
	int ok = 0;

	for (int it = 0; it < 20000; it++) {
		size_t len = n;

		memcpy(buf, seed, n);
		for (int k = 0; k < 1 + it % 4; k++) {
			x = x * 1103515245u + 12345u;
			buf[(x >> 8) % n] = (char)(x >> 20);
		}
		if (it % 7 == 0) {
			x = x * 1103515245u + 12345u;
			len = (x >> 8) % (n + 1);
		}
		if (sip_parse_response(buf, len, &r) == 0) {
			ok++;
			cr_assert(r.status >= 100 && r.status <= 699);
			cr_assert(r.call_id[0] != '\0');
		}
	}
	cr_assert_gt(ok, 0); /* some mutations leave it valid */
}

/* ------------------------------------------------------------------ */
/* MD5 and digest                                                      */

static void
md5hex(const char *s, size_t len, char out[33])
{
	unsigned char d[16];

	sip_md5(s, len, d);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

Test(sip_digest, md5_rfc1321_suite)
{
	static const char *v[][2] = {
		{ "", "d41d8cd98f00b204e9800998ecf8427e" },
		{ "a", "0cc175b9c0f1b6a831c399e269772661" },
		{ "abc", "900150983cd24fb0d6963f7d28e17f72" },
		{ "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
		{ "abcdefghijklmnopqrstuvwxyz",
		  "c3fcd3d76192e4007dfb496cca67e13b" },
		{ "12345678901234567890123456789012345678901234567890123456789"
		  "012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a" },
	};
	char hex[33], *big;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		md5hex(v[i][0], strlen(v[i][0]), hex);
		cr_assert_str_eq(hex, v[i][1], "MD5(\"%s\")", v[i][0]);
	}
	/* One million 'a' (python3: hashlib.md5(b"a"*10**6)). */
	big = malloc(1000000);
	memset(big, 'a', 1000000);
	md5hex(big, 1000000, hex);
	free(big);
	cr_assert_str_eq(hex, "7707d6ae4e027c70eea2a935c2296f21");
}

Test(sip_digest, rfc2617_mufasa)
{
	char out[65];

	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, "Mufasa",
	    "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
	    "dcd98b7102dd2f0e8b11d0f600bfb0c093", "auth", "00000001",
	    "0a4f113b", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "6629fae49393a05397450978507c4ef1");
}

Test(sip_digest, rfc7616_md5_and_sha256)
{
	char out[65];
	const char *nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
	const char *cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

	cr_assert_eq(sip_digest_response(SIP_DIGEST_SHA256, "Mufasa",
	    "http-auth@example.org", "Circle of Life", "GET",
	    "/dir/index.html", nonce, "auth", "00000001", cnonce, out,
	    sizeof(out)), 0);
	cr_assert_str_eq(out,
	    "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, "Mufasa",
	    "http-auth@example.org", "Circle of Life", "GET",
	    "/dir/index.html", nonce, "auth", "00000001", cnonce, out,
	    sizeof(out)), 0);
	cr_assert_str_eq(out, "8ca523f5e9506fed4657c9700eebdbec");
}

/*
 * SIP vectors, computed with python3 hashlib:
 *   H = lambda s: hashlib.md5(s.encode()).hexdigest()
 *   ha1 = H("1001:pbx.example:s3cr&t")
 *   ha2 = H("NOTIFY:sip:1001@192.0.2.10:5060")
 *   H(f"{ha1}:4b2f6e1d:{ha2}")                         -> 0f25498d...
 *   H(f"{ha1}:4b2f6e1d:00000001:c0ffee42:auth:{ha2}")  -> f6fc2cd2...
 *   ha1s = H(f"{ha1}:4b2f6e1d:c0ffee42")  (MD5-sess, with qop=auth)
 *   H(f"{ha1s}:4b2f6e1d:00000001:c0ffee42:auth:{ha2}") -> 6f7c227e...
 */
Test(sip_digest, sip_vectors)
{
	char out[65];
	const char *uri = "sip:1001@192.0.2.10:5060";

	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, "1001", "pbx.example",
	    "s3cr&t", "NOTIFY", uri, "4b2f6e1d", NULL, NULL, NULL, out,
	    sizeof(out)), 0);
	cr_assert_str_eq(out, "0f25498da6a3c99f112ed9bae3e244fe");
	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, "1001", "pbx.example",
	    "s3cr&t", "NOTIFY", uri, "4b2f6e1d", "auth", "00000001",
	    "c0ffee42", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "f6fc2cd25fe30b90a697b2a6f6cc5de7");
	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5_SESS, "1001",
	    "pbx.example", "s3cr&t", "NOTIFY", uri, "4b2f6e1d", "auth",
	    "00000001", "c0ffee42", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "6f7c227e257f60c4bf4f8eb83040487f");
	/* Refusals: auth-int, missing cnonce with qop, short buffer. */
	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, "1001", "r", "p",
	    "NOTIFY", uri, "n", "auth-int", "00000001", "c", out,
	    sizeof(out)), -1);
	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, "1001", "r", "p",
	    "NOTIFY", uri, "n", "auth", "00000001", NULL, out,
	    sizeof(out)), -1);
	cr_assert_eq(sip_digest_response(SIP_DIGEST_SHA256, "1001", "r", "p",
	    "NOTIFY", uri, "n", NULL, NULL, NULL, out, 40), -1);
}

Test(sip_digest, authorization_header_from_parsed_challenge)
{
	struct sip_response r;
	char hdr[1024], err[128];
	const char *m =
	    "SIP/2.0 401 Unauthorized\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKx\r\n"
	    "Call-ID: c@h\r\nCSeq: 1 NOTIFY\r\n"
	    "WWW-Authenticate: Digest realm=\"pbx.example\", nonce=\"4b2f6e1d\","
	    " qop=\"auth-int,auth\", opaque=\"o1\"\r\n\r\n";

	cr_assert_eq(parse(m, &r), 0);
	cr_assert_eq(sip_build_authorization(&r.www_auth, "1001", "s3cr&t",
	    "NOTIFY", "sip:1001@192.0.2.10:5060", "c0ffee42", hdr,
	    sizeof(hdr), err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(hdr, "Digest username=\"1001\", realm=\"pbx.example\", "
	    "nonce=\"4b2f6e1d\", uri=\"sip:1001@192.0.2.10:5060\", "
	    "response=\"f6fc2cd25fe30b90a697b2a6f6cc5de7\", algorithm=MD5, "
	    "opaque=\"o1\", cnonce=\"c0ffee42\", qop=auth, nc=00000001");
	cr_assert_null(strstr(hdr, "s3cr&t"));

	/* Without qop: the RFC 2069 form, no cnonce/nc. */
	r.www_auth.qop[0] = '\0';
	r.www_auth.opaque[0] = '\0';
	cr_assert_eq(sip_build_authorization(&r.www_auth, "1001", "s3cr&t",
	    "NOTIFY", "sip:1001@192.0.2.10:5060", "c0ffee42", hdr,
	    sizeof(hdr), err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(hdr,
	    "response=\"0f25498da6a3c99f112ed9bae3e244fe\""));
	cr_assert_null(strstr(hdr, "cnonce"));

	/* A quote in the username is escaped, CR/LF refused, auth-int only
	 * and unknown algorithms refused. */
	cr_assert_eq(sip_build_authorization(&r.www_auth, "a\"b", "p",
	    "NOTIFY", "sip:x@1.2.3.4:5060", "c", hdr, sizeof(hdr), err,
	    sizeof(err)), 0);
	cr_assert_not_null(strstr(hdr, "username=\"a\\\"b\""));
	cr_assert_eq(sip_build_authorization(&r.www_auth, "a\r\nb", "p",
	    "NOTIFY", "sip:x@1.2.3.4:5060", "c", hdr, sizeof(hdr), err,
	    sizeof(err)), -1);
	strcpy(r.www_auth.qop, "auth-int");
	cr_assert_eq(sip_build_authorization(&r.www_auth, "u", "p", "NOTIFY",
	    "sip:x@1.2.3.4:5060", "c", hdr, sizeof(hdr), err,
	    sizeof(err)), -1);
	r.www_auth.qop[0] = '\0';
	strcpy(r.www_auth.algorithm, "SHA-512-256");
	cr_assert_eq(sip_build_authorization(&r.www_auth, "u", "p", "NOTIFY",
	    "sip:x@1.2.3.4:5060", "c", hdr, sizeof(hdr), err,
	    sizeof(err)), -1);
	cr_assert_str_eq(err, "algorithm: unsupported");
}

Test(sip, challenge_policy)
{
	struct sip_challenge ch = { .present = true, .realm = "PolycomSPIP", .nonce = "n",
	                            .algorithm = "", .qop = "" };
	const struct sip_auth_policy poly = { "PolycomSPIP", 1u << SIP_DIGEST_MD5, false };
	const struct sip_auth_policy mpp = { "pbx.example", 1u << SIP_DIGEST_MD5, true };
	char err[64];

	cr_assert_eq(sip_challenge_allowed(&ch, &poly, err, sizeof(err)), 0, "%s", err);
	strcpy(ch.algorithm, "md5");
	cr_assert_eq(sip_challenge_allowed(&ch, &poly, err, sizeof(err)), 0, "%s", err);
	strcpy(ch.algorithm, "SHA-256");
	cr_assert_eq(sip_challenge_allowed(&ch, &poly, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "algorithm not the phone's");
	strcpy(ch.algorithm, "MD5-sess");
	cr_assert_eq(sip_challenge_allowed(&ch, &poly, err, sizeof(err)), -1);
	strcpy(ch.algorithm, "MD5");
	strcpy(ch.realm, "polycomspip");
	cr_assert_eq(sip_challenge_allowed(&ch, &poly, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "realm not the phone's");
	strcpy(ch.realm, "pbx.example");
	cr_assert_eq(sip_challenge_allowed(&ch, &mpp, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "qop missing");
	strcpy(ch.qop, "auth-int");
	cr_assert_eq(sip_challenge_allowed(&ch, &mpp, err, sizeof(err)), -1);
	strcpy(ch.qop, "auth-int, auth");
	cr_assert_eq(sip_challenge_allowed(&ch, &mpp, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sip_challenge_allowed(&ch, NULL, err, sizeof(err)), -1);
}
