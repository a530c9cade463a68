/*
 * fuzz_sip.c -- libFuzzer entry for the SIP response parser and the
 * Authorization builder that consumes its output.
 *
 * Built by `make fuzz-build` (build-fuzz/fuzz/fuzz_sip); by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *       tests/fuzz/fuzz_sip.c src/sip.c src/errbuf.c -lsodium -o build/fuzz_sip
 *   ./build/fuzz_sip -max_total_time=60 tests/fuzz/corpus/sip
 * Invariant checked: any input either parses into a response with a
 * status in 100..699 and NUL-terminated fields, or is refused; nothing
 * reads outside the input; a challenge that fits a policy (sip.h) can be
 * answered or is refused with a message, never overruns.
 */
#include "fuzz.h"

#include "sip.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sip_response r;
	char hdr[1024], err[128];
	const struct sip_auth_policy any = { NULL, ~0u, false };

	if (sip_parse_response((const char *)data, size, &r) != 0)
		return 0;
	FUZZ_CHECK(r.status >= 100 && r.status <= 699);
	FUZZ_CHECK(strlen(r.reason) < sizeof(r.reason));
	FUZZ_CHECK(strlen(r.call_id) < sizeof(r.call_id));
	FUZZ_CHECK(strlen(r.branch) < sizeof(r.branch));
	if (r.www_auth.present) {
		struct sip_auth_policy pol = any;

		pol.realm = r.www_auth.realm;
		(void)sip_challenge_allowed(&r.www_auth, &pol, err, sizeof(err));
		(void)sip_build_authorization(&r.www_auth, "user", "pass", "NOTIFY",
		    "sip:user@192.0.2.1:5060", "cnonce", hdr, sizeof(hdr), err, sizeof(err));
	}
	return 0;
}
