/*
 * fuzz_xmlshape.c -- libFuzzer entry for the XML check made once per
 * render shape (vendor_render_memo, vendor.c).  The first byte picks the
 * mode (XML or Cisco's) and how values rotate; the rest is the template,
 * rendered for eight sets of values through one memo.
 *
 * Invariant: a render through the memo succeeds exactly when the same
 * render checked in full by libxml2 would, with the same output -- the
 * memo spares checks, it never passes a file the full check refuses.
 */
#include "fuzz.h"

#include "render.h"
#include "vendor.h"

/* plain and not: comments, CDATA ends, names, entities, the mark */
static const char *const pool[] = { "", "x", "1", "a-", "--", "]", "]]", "&", "<", "%", "n:m",
	                            "a b", "\xee\x80\x80", "\xef\xbf\xbf", "?>", "\xc3\xbc" };
#define NPOOL (sizeof(pool) / sizeof(pool[0]))

static void
fill(struct render_values *vals, unsigned sel, unsigned r)
{
	render_values_empty(vals);
	for (int v = 0; v < RENDER_VAR_COUNT; v++)
		if (v != RV_KEYS && (v < RV_KEY_N || v > RV_KEY_LABEL))
			render_values_set(vals, (enum render_var)v, pool[(sel + r * 3 + (unsigned)v) % NPOOL]);
	vals->nkeys = r % 3;
	vals->v[RV_KEYS] = (struct render_value){ "1", vals->nkeys > 0, vals->nkeys > 0 };
	for (size_t k = 0; k < vals->nkeys; k++)
		for (int v = 0; v < RENDER_KEY_VARS; v++) {
			const char *s = pool[(sel + r + k + (unsigned)v * 5) % NPOOL];
			vals->key[k][v] = (struct render_value){ s, strlen(s), s[0] != '\0' };
		}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct render_tmpl *t = NULL;
	struct vendor_xml_memo *m;
	char err[256], e2[256];

	if (size < 1)
		return 0;
	if (render_compile((const char *)data + 1, size - 1,
	                   data[0] & 1 ? RENDER_XML_CISCO : RENDER_XML, &t, err, sizeof(err)) != 0)
		return 0;
	m = vendor_xml_memo_new();
	for (unsigned r = 0; m != NULL && r < 8; r++) {
		struct render_values vals;
		struct render_buf full = { 0 }, memo = { 0 };
		bool full_ok, memo_ok;

		fill(&vals, data[0] >> 1, r);
		full_ok = render_run(t, &vals, &full, err, sizeof(err)) == 0 &&
		          vendor_check_xml(full.p, full.len, err, sizeof(err)) == 0;
		memo_ok = vendor_render_memo(t, m, &vals, &memo, e2, sizeof(e2)) == 0;
		FUZZ_CHECK(memo_ok == full_ok);
		FUZZ_CHECK(!memo_ok || (memo.len == full.len && memcmp(memo.p, full.p, full.len) == 0));
		render_buf_free(&full);
		render_buf_free(&memo);
	}
	vendor_xml_memo_free(m);
	render_tmpl_free(t);
	return 0;
}
