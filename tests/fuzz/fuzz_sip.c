/*
 * fuzz_sip.c -- libFuzzer entry for the SIP response parser and the
 * Authorization builder that consumes its output.
 *
 * Not part of the default build (the Makefile only builds tests/test_*.c).
 * Build and run by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *       tests/fuzz/fuzz_sip.c src/sip.c -lsodium -o build/fuzz_sip
 *   ./build/fuzz_sip -max_total_time=60
 * Invariant checked: any input either parses into a response with a
 * status in 100..699 and NUL-terminated fields, or is refused; nothing
 * reads outside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sip_response r;
	char hdr[1024];

	if (sip_parse_response((const char *)data, size, &r) != 0)
		return 0;
	if (r.status < 100 || r.status > 699 ||
	    strlen(r.reason) >= sizeof(r.reason) ||
	    strlen(r.call_id) >= sizeof(r.call_id))
		abort();
	if (r.www_auth.present)
		(void)sip_build_authorization(&r.www_auth, "user", "pass",
		    "NOTIFY", "sip:user@192.0.2.1:5060", "cnonce", hdr,
		    sizeof(hdr), NULL, 0);
	return 0;
}
