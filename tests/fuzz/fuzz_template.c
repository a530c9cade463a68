/*
 * fuzz_template.c -- libFuzzer entry for the template compiler and
 * renderer.  The first byte picks the escaping mode and which values are
 * hostile; the rest is the template.
 *
 * Invariants: a template either compiles or is refused with a
 * "line L, column C: ..." message; a compiled one renders (or refuses a
 * value, naming it) into a NUL-terminated buffer of the length reported;
 * in the XML modes no value ever brings a raw '<' or '&' into the output.
 */
#include "fuzz.h"

#include "render.h"

static const char *const hostile[] = { "a<b&c\"d'e", "$x$$", "line\nfeed", "\xff\xfe",
	                               "tab\there", "" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct render_tmpl *t = NULL;
	struct render_values vals;
	struct render_buf out = { 0 };
	char err[256] = "";
	enum render_mode mode;
	unsigned char sel;

	if (size < 1)
		return 0;
	sel = data[0];
	mode = (enum render_mode)(sel % 3);
	if (render_compile((const char *)data + 1, size - 1, mode, &t, err, sizeof(err)) != 0) {
		FUZZ_CHECK(t == NULL && strncmp(err, "line ", 5) == 0);
		return 0;
	}
	render_values_empty(&vals);
	for (int v = 0; v < RENDER_VAR_COUNT; v++)
		render_values_set(&vals, (enum render_var)v,
		                  hostile[(unsigned)(v + (sel >> 2)) % (sizeof(hostile) / sizeof(*hostile))]);
	if (render_run(t, &vals, &out, err, sizeof(err)) == 0) {
		FUZZ_CHECK(out.p == NULL ? out.len == 0 : strlen(out.p) <= out.len);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	render_buf_free(&out);
	render_tmpl_free(t);
	return 0;
}
