/*
 * fuzz_form.c -- libFuzzer entry for form-encoded request bodies
 * (form_parse), what the PBX API reads.
 *
 * Invariants: a parsed form has NUL-terminated keys and values, a key
 * appears once, form_get finds each key's value; a refused body leaves a
 * message and no form.
 */
#include "fuzz.h"

#include "form.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128] = "";
	struct form *f = form_parse((const char *)data, size, err, sizeof(err));

	if (f == NULL) {
		FUZZ_CHECK(err[0] != '\0');
		return 0;
	}
	for (size_t i = 0; i < form_count(f); i++) {
		const char *k = form_key(f, i), *v = form_value(f, i);

		FUZZ_CHECK(k != NULL && v != NULL);
		FUZZ_CHECK(form_get(f, k) == v);
	}
	form_free(f);
	return 0;
}
