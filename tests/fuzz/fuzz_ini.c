/*
 * fuzz_ini.c -- libFuzzer entry for the configuration file parser
 * (cfg_load_string: inih plus hotdeskd's validation of every key).
 *
 * Invariants: a text is either a configuration whose required strings are
 * set, or refused with a message that starts with the file name; nothing
 * leaks either way.
 */
#include "fuzz.h"

#include "config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size), err[512] = "";
	struct hd_config *c;

	if (text == NULL)
		return 0;
	c = cfg_load_string("fuzz.ini", text, err, sizeof(err));
	if (c == NULL) {
		FUZZ_CHECK(strncmp(err, "fuzz.ini", 8) == 0 || strcmp(err, "out of memory") == 0);
	} else {
		FUZZ_CHECK(c->pbx.token != NULL && c->server.listen != NULL);
		cfg_free(c);
	}
	free(text);
	return 0;
}
