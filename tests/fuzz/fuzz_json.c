/*
 * fuzz_json.c -- libFuzzer entry for JSON request bodies: the flat objects
 * the PBX API accepts as JSON (form_from_json).
 *
 * Invariants: accepted documents give a form whose every key maps back to
 * its value; refused ones leave a message and no form; nothing leaks.
 */
#include "fuzz.h"

#include "form.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128] = "";
	struct form *f = (struct form *)1;

	if (form_from_json((const char *)data, size, &f, err, sizeof(err)) != 0) {
		FUZZ_CHECK(f == NULL && err[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(f != NULL);
	for (size_t i = 0; i < form_count(f); i++)
		FUZZ_CHECK(form_get(f, form_key(f, i)) == form_value(f, i));
	form_free(f);
	return 0;
}
