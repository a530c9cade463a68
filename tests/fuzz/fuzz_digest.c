/*
 * fuzz_digest.c -- libFuzzer entry for the HTTP digest Authorization
 * header parser and checker of phone downloads.
 *
 * Invariants: a parsed header has username, realm, nonce, uri and
 * response; no input is ever DIGEST_OK for a password it was not made
 * with (nonces are keyed with a random key here, so none can match), and
 * the checker never reads outside the parsed strings.
 */
#include "fuzz.h"

#include <sodium.h>

#include "digest.h"

static unsigned char key[DIGEST_KEY_LEN];
static struct digest_seen *seen;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_cstr(data, size);
	struct digest_auth a;

	if (seen == NULL) {
		FUZZ_CHECK(sodium_init() >= 0);
		randombytes_buf(key, sizeof(key));
		seen = digest_seen_new(64);
	}
	if (buf == NULL)
		return 0;
	if (digest_parse(buf, &a) == 0) {
		FUZZ_CHECK(a.username && a.realm && a.nonce && a.uri && a.response);
		FUZZ_CHECK(digest_check(&a, key, seen, a.realm, a.username, "pw", "GET", a.uri,
		                        1000, 300) != DIGEST_OK);
	}
	free(buf);
	return 0;
}
