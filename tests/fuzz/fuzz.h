/*
 * fuzz.h -- what every libFuzzer harness in tests/fuzz/ shares: the entry
 * point's prototype (the build warns on functions without one) and a copy
 * of the input with a terminating NUL for the parsers that take C strings.
 *
 * Build and run one harness by hand (make fuzz builds and runs them all):
 *   make fuzz-build
 *   ./build-fuzz/fuzz/fuzz_sip -max_total_time=60 tests/fuzz/corpus/sip
 * Each harness states the invariant it checks; a broken one aborts, which
 * libFuzzer reports as a crash, as it does every sanitizer report and leak.
 */
#ifndef HD_FUZZ_H
#define HD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* size bytes of data and a NUL, malloc'd (NULL when out of memory). */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s != NULL) {
		memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}

/* Aborts with the invariant's text when cond is false (libFuzzer keeps the
 * input that did it). */
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : abort())

#endif
