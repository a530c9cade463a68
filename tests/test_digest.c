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

/* An Authorization header as a client computes it for nonce, nonce count nc. */
static void
answer_nc(char *out, size_t len, const char *user, const char *pass, const char *uri,
          const char *nonce, const char *nc)
{
	char resp[65];

	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, user, "hotdeskd", pass, "GET", uri, nonce,
	                                 "auth", nc, "c0ffee", resp, sizeof(resp)), 0);
	snprintf(out, len, "Digest username=\"%s\", realm=\"hotdeskd\", nonce=\"%s\", uri=\"%s\", "
	         "response=\"%s\", qop=auth, nc=%s, cnonce=\"c0ffee\", algorithm=MD5",
	         user, nonce, uri, resp, nc);
}

static void
answer(char *out, size_t len, const char *user, const char *pass, const char *uri,
       const char *nonce)
{
	answer_nc(out, len, user, pass, uri, nonce, "00000001");
}

/* Checks hdr with the table t (each call of check() without one gets a
 * fresh table: no replay across calls). */
static enum digest_result
check_in(struct digest_seen *t, const char *hdr, const char *pass, const char *uri,
         long long now)
{
	char buf[512];
	struct digest_auth a;

	snprintf(buf, sizeof(buf), "%s", hdr);
	cr_assert_eq(digest_parse(buf, &a), 0, "%s", hdr);
	return digest_check(&a, key, t, "hotdeskd", "phone", pass, "GET", uri, now, 300);
}

static enum digest_result
check(const char *hdr, const char *pass, const char *uri, long long now)
{
	struct digest_seen *t = digest_seen_new(64);
	enum digest_result r;

	cr_assert_not_null(t);
	r = check_in(t, hdr, pass, uri, now);
	digest_seen_free(t);
	return r;
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
	answer(hdr, sizeof(hdr), "phone", "pw", uri, "3e8.0000000000000000-00000000000000000000000000000000");
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
	cr_assert(strstr(out, "Digest realm=\"hotdeskd\", qop=\"auth\", algorithm=MD5, nonce=\"3e8.")
	          == out, "%s", out);
	cr_assert_null(strstr(out, "stale"));
	cr_assert_eq(digest_challenge(key, "hotdeskd", "/x", 1000, true, out, sizeof(out)), 0);
	cr_assert_not_null(strstr(out, ", stale=true"));
	cr_assert_eq(digest_challenge(key, "bad\"realm", "/x", 1000, false, out, sizeof(out)), -1);
	cr_assert_eq(digest_challenge(key, "hotdeskd", "/x", 1000, false, out, 20), -1);
}

Test(digest, a_captured_answer_cannot_be_replayed)
{
	const char *uri = "/provision/0004f2aabbcc-line.cfg";
	char nonce[DIGEST_NONCE_LEN], h1[512], h2[512], h3[512];
	struct digest_seen *t = digest_seen_new(1024);

	cr_assert_not_null(t);
	digest_nonce(key, uri, 1000, nonce);
	answer_nc(h1, sizeof(h1), "phone", "pw", uri, nonce, "00000001");
	answer_nc(h2, sizeof(h2), "phone", "pw", uri, nonce, "00000002");
	answer_nc(h3, sizeof(h3), "phone", "pw", uri, nonce, "0000000A");
	cr_assert_eq(check_in(t, h1, "pw", uri, 1000), DIGEST_OK);
	cr_assert_eq(check_in(t, h1, "pw", uri, 1001), DIGEST_REPLAY, "the same header again");
	cr_assert_eq(check_in(t, h2, "pw", uri, 1002), DIGEST_OK, "the next count is fine");
	cr_assert_eq(check_in(t, h1, "pw", uri, 1003), DIGEST_REPLAY, "a lower count");
	cr_assert_eq(check_in(t, h3, "pw", uri, 1004), DIGEST_OK, "counts may jump (hex)");
	cr_assert_eq(check_in(t, h2, "pw", uri, 1005), DIGEST_REPLAY);
	/* a wrong answer with a high count records nothing: it cannot block
	 * the phone's next count */
	answer_nc(h1, sizeof(h1), "phone", "guess", uri, nonce, "ffffffff");
	cr_assert_eq(check_in(t, h1, "pw", uri, 1006), DIGEST_WRONG);
	answer_nc(h1, sizeof(h1), "phone", "pw", uri, nonce, "0000000b");
	cr_assert_eq(check_in(t, h1, "pw", uri, 1007), DIGEST_OK);
	/* a replay on a stale nonce is stale (a fresh nonce either way) */
	cr_assert_eq(check_in(t, h1, "pw", uri, 1400), DIGEST_STALE);
	digest_seen_free(t);
}

Test(digest, answers_without_qop_or_with_a_bad_count_are_refused)
{
	const char *uri = "/provision/x.cfg";
	char nonce[DIGEST_NONCE_LEN], hdr[512], resp[65];

	digest_nonce(key, uri, 1000, nonce);
	/* RFC 2069: H(HA1:nonce:HA2), right for the password, but no nc */
	cr_assert_eq(sip_digest_response(SIP_DIGEST_MD5, "phone", "hotdeskd", "pw", "GET", uri,
	                                 nonce, NULL, NULL, NULL, resp, sizeof(resp)), 0);
	snprintf(hdr, sizeof(hdr), "Digest username=\"phone\", realm=\"hotdeskd\", nonce=\"%s\", "
	         "uri=\"%s\", response=\"%s\"", nonce, uri, resp);
	cr_assert_eq(check(hdr, "pw", uri, 1000), DIGEST_WRONG);
	/* nc that is not 8 hex digits */
	answer_nc(hdr, sizeof(hdr), "phone", "pw", uri, nonce, "1");
	cr_assert_eq(check(hdr, "pw", uri, 1000), DIGEST_WRONG);
	answer_nc(hdr, sizeof(hdr), "phone", "pw", uri, nonce, "0000000g");
	cr_assert_eq(check(hdr, "pw", uri, 1000), DIGEST_WRONG);
}

Test(digest, a_full_table_forgets_but_never_lets_a_replay_through)
{
	/* one bucket of 16: the 17th live nonce pushes the oldest out */
	struct digest_seen *t = digest_seen_new(1);
	char uri[64], nonce[40][DIGEST_NONCE_LEN], hdr[40][512];
	int ok = 0;

	cr_assert_not_null(t);
	for (int i = 0; i < 40; i++) {
		snprintf(uri, sizeof(uri), "/provision/%02d.cfg", i);
		digest_nonce(key, uri, 1000 + i, nonce[i]);
		answer(hdr[i], sizeof(hdr[i]), "phone", "pw", uri, nonce[i]);
		cr_assert_eq(check_in(t, hdr[i], "pw", uri, 1000 + i), DIGEST_OK, "%d", i);
	}
	/* every one of the 40 answers, replayed, is refused: those still in
	 * the table by their count, the forgotten ones by the floor */
	for (int i = 0; i < 40; i++) {
		snprintf(uri, sizeof(uri), "/provision/%02d.cfg", i);
		cr_assert_eq(check_in(t, hdr[i], "pw", uri, 1041), DIGEST_REPLAY, "%d", i);
	}
	/* and a fresh nonce still works: the phone's retry after stale=true
	 * (issued after the floor, i.e. in a later second) */
	for (int i = 0; i < 40; i++) {
		char fresh[DIGEST_NONCE_LEN], h[512];

		snprintf(uri, sizeof(uri), "/provision/%02d.cfg", i);
		digest_nonce(key, uri, 1042 + i, fresh);
		answer(h, sizeof(h), "phone", "pw", uri, fresh);
		ok += check_in(t, h, "pw", uri, 1042 + i) == DIGEST_OK;
	}
	cr_assert_eq(ok, 40);
	digest_seen_free(t);
}
