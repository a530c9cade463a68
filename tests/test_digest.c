/*
 * test_digest.c -- HTTP digest with stateless nonces: header parsing
 * (quoting, escapes, odd spacing, duplicates, garbage), nonces bound to
 * their URI and time (fresh, stale, forged, for another URI), and the
 * whole check (right password, wrong password, user, realm, qop,
 * algorithm).  The response arithmetic itself is sip_digest_response,
 * checked against RFC 2617's example in test_sip.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "digest.h"
#include "sip.h"
#include "testutil.h"

static const unsigned char key[DIGEST_KEY_LEN] = "0123456789abcdef0123456789abcdef";

Test(digest, parses_quoted_and_token_values)
{
	char h[] = "Digest username=\"0004f2aabbcc\",realm=\"hot\\\"desk\",  nonce=\"abc-1\", "
	           "uri=\"/provision/0004f2aabbcc-line.cfg\", response=\"0123\", qop=auth, "
	           "nc=00000001, cnonce=\"xyz\", algorithm=MD5";
	struct digest_auth a;

	cr_assert_eq(digest_parse(h, &a), 0);
	cr_assert_str_eq(a.username, "0004f2aabbcc");
	cr_assert_str_eq(a.realm, "hot\"desk");
	cr_assert_str_eq(a.nonce, "abc-1");
	cr_assert_str_eq(a.uri, "/provision/0004f2aabbcc-line.cfg");
	cr_assert_str_eq(a.qop, "auth");
	cr_assert_str_eq(a.nc, "00000001");
	cr_assert_str_eq(a.cnonce, "xyz");
	cr_assert_str_eq(a.algorithm, "MD5");
}

Test(digest, refuses_garbage)
{
	const char *bad[] = {
		"Basic dXNlcjpwYXNz",
		"Digest",
		"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"/\"", /* no response */
		"Digest username=\"a\", username=\"b\", realm=\"r\", nonce=\"n\", uri=\"/\", response=\"x\"",
		"Digest username=\"unterminated, realm=\"r\"",
		"Digest =x",
		"Digest username\"a\"",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[256];
		struct digest_auth a;

		snprintf(buf, sizeof(buf), "%s", bad[i]);
		cr_assert_eq(digest_parse(buf, &a), -1, "%s", bad[i]);
	}
}

/* An Authorization header as a client computes it for nonce. */
static void
answer(char *out, size_t len, const char *user, const char *pass, const char *uri,
       const char *nonce)
{
	char resp[65];

	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, user, "hotdeskd", pass, "GET", uri, nonce,
	                                 "auth", "00000001", "c0ffee", resp, sizeof(resp)), 0);
	snprintf(out, len, "Digest username=\"%s\", realm=\"hotdeskd\", nonce=\"%s\", uri=\"%s\", "
	         "response=\"%s\", qop=auth, nc=00000001, cnonce=\"c0ffee\", algorithm=MD5",
	         user, nonce, uri, resp);
}

static enum digest_result
check(const char *hdr, const char *pass, const char *uri, long long now)
{
	char buf[512];
	struct digest_auth a;

	snprintf(buf, sizeof(buf), "%s", hdr);
	cr_assert_eq(digest_parse(buf, &a), 0, "%s", hdr);
	return digest_check(&a, key, "hotdeskd", "phone", pass, "GET", uri, now, 300);
}

Test(digest, the_whole_check)
{
	const char *uri = "/provision/0004f2aabbcc-line.cfg";
	char nonce[DIGEST_NONCE_LEN], hdr[512], other[DIGEST_NONCE_LEN];

	digest_nonce(key, uri, 1000, nonce);
	answer(hdr, sizeof(hdr), "phone", "pw", uri, nonce);
	cr_assert_eq(check(hdr, "pw", uri, 1000), DIGEST_OK);
	cr_assert_eq(check(hdr, "pw", uri, 1300), DIGEST_OK, "fresh for ttl seconds");
	cr_assert_eq(check(hdr, "pw", uri, 1301), DIGEST_STALE, "then stale: retry at once");
	cr_assert_eq(check(hdr, "wrong", uri, 1000), DIGEST_WRONG);
	cr_assert_eq(check(hdr, "wrong", uri, 1301), DIGEST_WRONG, "stale never hides a wrong one");
	cr_assert_eq(check(hdr, "pw", "/provision/other.cfg", 1000), DIGEST_WRONG,
	             "the answer is for one URI");

	/* a nonce made for another URI, or not by us, is worth nothing */
	digest_nonce(key, "/provision/other.cfg", 1000, other);
	answer(hdr, sizeof(hdr), "phone", "pw", uri, other);
	cr_assert_eq(check(hdr, "pw", uri, 1000), DIGEST_WRONG);
	answer(hdr, sizeof(hdr), "phone", "pw", uri, "3e8-00000000000000000000000000000000");
	cr_assert_eq(check(hdr, "pw", uri, 1000), DIGEST_WRONG);

	/* another user name */
	answer(hdr, sizeof(hdr), "mallory", "pw", uri, nonce);
	cr_assert_eq(check(hdr, "pw", uri, 1000), DIGEST_WRONG);
}

Test(digest, challenge_header)
{
	char out[256];

	cr_assert_eq(digest_challenge(key, "hotdeskd", "/provision/x.cfg", 1000, false, out,
	                              sizeof(out)), 0);
	cr_assert(strstr(out, "Digest realm=\"hotdeskd\", qop=\"auth\", algorithm=MD5, nonce=\"3e8-")
	          == out, "%s", out);
	cr_assert_null(strstr(out, "stale"));
	cr_assert_eq(digest_challenge(key, "hotdeskd", "/x", 1000, true, out, sizeof(out)), 0);
	cr_assert_not_null(strstr(out, ", stale=true"));
	cr_assert_eq(digest_challenge(key, "bad\"realm", "/x", 1000, false, out, sizeof(out)), -1);
	cr_assert_eq(digest_challenge(key, "hotdeskd", "/x", 1000, false, out, 20), -1);
}
