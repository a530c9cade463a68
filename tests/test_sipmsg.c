/*
 * test_sipmsg.c -- sipmsg.c: parsing requests a proxy sends, reading URIs
 * and parameters, building a UAS's responses and BYE.
 *
 * Messages follow RFC 3261's examples (section 24) and what Kamailio and
 * sipp actually send: compact header names, folded lines, LF-only ends,
 * percent-encoded '*' in the Request-URI.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "sipmsg.h"

static const char invite[] =
    "INVITE sip:%2A30102@192.0.2.5:5070;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1;rport\r\n"
    "v: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKphone1\r\n"
    "Record-Route: <sip:192.0.2.1;lr>\r\n"
    "f: \"Alice\" <sip:acme-101@example.com>;tag=a1\r\n"
    "To: <sip:*30102@example.com>\r\n"
    "i: call-1@192.0.2.9\r\n"
    "CSeq: 7 INVITE\r\n"
    "P-Asserted-Identity: <sip:acme-101@example.com>\r\n"
    "Contact: <sip:acme-101@192.0.2.9:5062>\r\n"
    "Subject: a folded\r\n"
    " value\r\n"
    "c: application/sdp\r\n"
    "l: 4\r\n"
    "\r\n"
    "v=0\r\nextra";

static struct sipmsg
parsed(const char *text)
{
	struct sipmsg m;

	cr_assert_eq(sipmsg_parse(text, strlen(text), &m), 0, "parse: %s", text);
	return m;
}

Test(sipmsg_parse, request_with_compact_and_folded_headers)
{
	struct sipmsg m = parsed(invite);
	struct sipmsg_span v;
	char user[64], host[64], buf[128];
	int port;

	cr_assert(m.request);
	cr_assert(sipmsg_span_is(m.method, "INVITE"));
	cr_assert_eq(sipmsg_uri_parts(m.uri, NULL, 0, user, sizeof(user), host, sizeof(host),
	                              &port), 0);
	cr_assert_str_eq(user, "*30102");
	cr_assert_str_eq(host, "192.0.2.5");
	cr_assert_eq(port, 5070);
	cr_assert(sipmsg_header(&m, "Call-ID", &v));
	cr_assert_eq(sipmsg_copy(v, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "call-1@192.0.2.9");
	cr_assert(sipmsg_header(&m, "From", &v));
	cr_assert_eq(sipmsg_param(v, "tag", buf, sizeof(buf)), 1);
	cr_assert_str_eq(buf, "a1");
	cr_assert_eq(sipmsg_uri_parts(v, NULL, 0, user, sizeof(user), NULL, 0, NULL), 0);
	cr_assert_str_eq(user, "acme-101");
	cr_assert(sipmsg_header(&m, "Subject", &v));
	cr_assert(v.n > 7 && memcmp(v.p, "a folded", 8) == 0);
	cr_assert_eq(m.body.n, 4, "Content-Length bounds the body");
	cr_assert_eq(memcmp(m.body.p, "v=0\r", 4), 0);
}

Test(sipmsg_parse, lf_only_and_responses)
{
	struct sipmsg m = parsed("SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\nFrom: <sip:a@h>;tag=1\n"
	                         "To: <sip:b@h>;tag=2\nCall-ID: c\nCSeq: 1 BYE\n\n");
	struct sipmsg_span v;
	unsigned long n;
	char meth[16];

	cr_assert(!m.request);
	cr_assert_eq(m.status, 200);
	cr_assert(sipmsg_header(&m, "CSeq", &v));
	cr_assert_eq(sipmsg_cseq(v, &n, meth, sizeof(meth)), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(meth, "BYE");
}

Test(sipmsg_parse, refuses_garbage)
{
	static const char *const bad[] = {
		"",
		"INVITE\r\n\r\n",
		"INVITE sip:a SIP/3.0\r\nVia: x\r\nFrom: x\r\nTo: x\r\nCall-ID: x\r\nCSeq: 1 X\r\n\r\n",
		/* no Call-ID */
		"BYE sip:a SIP/2.0\r\nVia: x\r\nFrom: x\r\nTo: x\r\nCSeq: 1 BYE\r\n\r\n",
		/* a body shorter than Content-Length */
		("BYE sip:a SIP/2.0\r\nVia: x\r\nFrom: x\r\nTo: x\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n"
		 "Content-Length: 10\r\n\r\nabc"),
		/* no blank line */
		"BYE sip:a SIP/2.0\r\nVia: x\r\nFrom: x\r\nTo: x\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n",
		"SIP/2.0 2000 OK\r\n\r\n",
		" folded first\r\n\r\n",
	};
	/* a NUL inside a header (found by fuzz_vcsip) */
	static const char nul[] = "BYE sip:a SIP/2.0\r\nVia: x\r\nFrom: x\r\nTo: x\0y\r\n"
	                          "Call-ID: c\r\nCSeq: 1 BYE\r\n\r\n";
	struct sipmsg m;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(sipmsg_parse(bad[i], strlen(bad[i]), &m), -1, "accepted: %s", bad[i]);
	cr_assert_eq(sipmsg_parse(nul, sizeof(nul) - 1, &m), -1);
}

Test(sipmsg_uri, forms_and_limits)
{
	struct {
		const char *in, *user, *host;
		int port, rc;
	} cases[] = {
		{ "sip:bob@[2001:db8::1]:5062;transport=udp", "bob", "2001:db8::1", 5062, 0 },
		{ "<sip:proxy.example.com;lr>", "", "proxy.example.com", 0, 0 },
		{ "\"A, B\" <sips:a:secret@h:5061>;tag=9", "a", "h", 5061, 0 },
		{ "tel:+15551234", "", "", 0, -1 },
		{ "sip:a@h:99999", "", "", 0, -1 },
		{ "sip:a%00b@h", "", "", 0, -1 },
		{ "sip:a%2@h", "", "", 0, -1 },
		{ "sip:@", "", "", 0, -1 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char user[64], host[64];
		int port = -1;
		int rc = sipmsg_uri_parts((struct sipmsg_span){ cases[i].in, strlen(cases[i].in) },
		                          NULL, 0, user, sizeof(user), host, sizeof(host), &port);

		cr_assert_eq(rc, cases[i].rc, "%s", cases[i].in);
		if (rc == 0) {
			cr_assert_str_eq(user, cases[i].user, "%s", cases[i].in);
			cr_assert_str_eq(host, cases[i].host, "%s", cases[i].in);
			cr_assert_eq(port, cases[i].port, "%s", cases[i].in);
		}
	}
}

Test(sipmsg_build, response_copies_the_transaction_and_tags_to)
{
	struct sipmsg m = parsed(invite);
	struct sipmsg_resp r = { .status = 200, .reason = "OK", .to_tag = "t9",
		                 .contact = "sip:vc@192.0.2.5:5070", .record_route = true,
		                 .content_type = "application/sdp", .body = "v=0\r\n", .body_len = 5 };
	char out[2048];
	size_t len;

	cr_assert_eq(sipmsg_build_response(&m, &r, out, sizeof(out), &len), 0);
	cr_assert_eq(strlen(out), len);
	cr_assert(strstr(out, "SIP/2.0 200 OK\r\n") == out);
	/* both Vias, in order, whatever their form in the request */
	cr_assert(strstr(out, "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1;rport\r\n"
	                      "Via: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKphone1\r\n") != NULL,
	          "%s", out);
	cr_assert(strstr(out, "Record-Route: <sip:192.0.2.1;lr>\r\n") != NULL);
	cr_assert(strstr(out, "To: <sip:*30102@example.com>;tag=t9\r\n") != NULL, "%s", out);
	cr_assert(strstr(out, "Call-ID: call-1@192.0.2.9\r\nCSeq: 7 INVITE\r\n") != NULL);
	cr_assert(strstr(out, "Content-Length: 5\r\n\r\nv=0\r\n") != NULL);
	/* too small a buffer is an error, never a cut message */
	cr_assert_eq(sipmsg_build_response(&m, &r, out, 100, &len), -1);
	r.reason = "OK\r\nX-Injected: 1";
	cr_assert_eq(sipmsg_build_response(&m, &r, out, sizeof(out), &len), -1);
}

Test(sipmsg_build, bye_follows_the_route_set)
{
	const char *routes[] = { "sip:192.0.2.1;lr" };
	struct sipmsg_req r = { .method = "BYE", .ruri = "sip:acme-101@192.0.2.9:5062",
		                .routes = routes, .nroutes = 1, .via_host = "192.0.2.5",
		                .via_port = 5070, .branch = "b1", .from = "<sip:*30102@x>;tag=t9",
		                .to = "<sip:acme-101@x>;tag=a1", .call_id = "call-1", .cseq = 1 };
	char out[1024];
	size_t len;

	cr_assert_eq(sipmsg_build_request(&r, out, sizeof(out), &len), 0);
	cr_assert(strstr(out, "BYE sip:acme-101@192.0.2.9:5062 SIP/2.0\r\n") == out);
	cr_assert(strstr(out, "Via: SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bKb1;rport\r\n") != NULL);
	cr_assert(strstr(out, "Route: <sip:192.0.2.1;lr>\r\n") != NULL);
	cr_assert(strstr(out, "CSeq: 1 BYE\r\n") != NULL);
	r.call_id = "x\ny";
	cr_assert_eq(sipmsg_build_request(&r, out, sizeof(out), &len), -1);
}
