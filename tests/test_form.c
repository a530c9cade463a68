/*
 * test_form.c -- form.c: strict urlencoded decoding, duplicate and NUL
 * refusal, the answer encoder (and its round trip through the parser),
 * and flat JSON objects with their errors; the hex digit table (hex.h)
 * every percent-decoder uses.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "hex.h"
#include "testutil.h"

static struct form *
parse(const char *s, char *err, size_t errlen)
{
	return form_parse(s, strlen(s), err, errlen);
}

Test(form, basic_fields_in_order)
{
	char err[128] = "";
	struct form *f = parse("caller=alice&digits=201&code=1234", err, sizeof(err));

	cr_assert_not_null(f, "%s", err);
	cr_assert_eq(form_count(f), 3);
	cr_assert_str_eq(form_get(f, "caller"), "alice");
	cr_assert_str_eq(form_get(f, "digits"), "201");
	cr_assert_str_eq(form_get(f, "code"), "1234");
	cr_assert_null(form_get(f, "call_id"));
	cr_assert_str_eq(form_key(f, 0), "caller");
	cr_assert_str_eq(form_value(f, 2), "1234");
	cr_assert_null(form_key(f, 3));
	form_free(f);
}

Test(form, percent_and_plus)
{
	char err[128] = "";
	struct form *f = parse("contact=sip%3Aalice%40192.0.2.1%3a5060&ua=Yealink+T46S%2b1&k%20x=v",
	                       err, sizeof(err));

	cr_assert_not_null(f, "%s", err);
	cr_assert_str_eq(form_get(f, "contact"), "sip:alice@192.0.2.1:5060");
	cr_assert_str_eq(form_get(f, "ua"), "Yealink T46S+1");
	cr_assert_str_eq(form_get(f, "k x"), "v");
	form_free(f);
}

Test(form, empty_values_and_pieces)
{
	char err[128] = "";
	struct form *f = parse("digits=&flag&&code=1&", err, sizeof(err));

	cr_assert_not_null(f, "%s", err);
	cr_assert_eq(form_count(f), 3);
	cr_assert_str_eq(form_get(f, "digits"), "");
	cr_assert_str_eq(form_get(f, "flag"), "");
	cr_assert_str_eq(form_get(f, "code"), "1");
	form_free(f);

	f = parse("", err, sizeof(err));
	cr_assert_not_null(f);
	cr_assert_eq(form_count(f), 0);
	form_free(f);

	f = form_parse(NULL, 0, err, sizeof(err));
	cr_assert_not_null(f);
	cr_assert_eq(form_count(f), 0);
	form_free(f);
}

Test(form, value_with_equals_sign)
{
	char err[128] = "";
	struct form *f = parse("a=b=c", err, sizeof(err));

	cr_assert_not_null(f, "%s", err);
	cr_assert_str_eq(form_get(f, "a"), "b=c");
	form_free(f);
}

Test(form, not_nul_terminated_input)
{
	char err[128] = "";
	const char buf[] = { 'a', '=', '1', '&', 'b', '=', '2', 'X', 'Y' };
	struct form *f = form_parse(buf, 7, err, sizeof(err));

	cr_assert_not_null(f, "%s", err);
	cr_assert_str_eq(form_get(f, "b"), "2");
	form_free(f);
}

Test(form, bad_escapes_are_errors)
{
	const char *bad[] = { "a=%zz", "a=%4", "a=%", "a=1%2", "%zz=1", "a=%g0",
	                      "a=%0g", "x=1&a=%%41" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[128] = "";
		struct form *f = parse(bad[i], err, sizeof(err));
		cr_assert_null(f, "accepted %s", bad[i]);
		cr_assert(strstr(err, "percent escape") != NULL, "%s: err '%s'", bad[i], err);
		form_free(f);
	}
}

Test(form, nul_refused)
{
	char err[128] = "";
	struct form *f = parse("code=12%00", err, sizeof(err));

	cr_assert_null(f);
	cr_assert(strstr(err, "NUL") != NULL, "%s", err);

	const char raw[] = "code=1\0002";
	f = form_parse(raw, sizeof(raw) - 1, err, sizeof(err));
	cr_assert_null(f, "raw NUL accepted");

	f = parse("k%00=1", err, sizeof(err));
	cr_assert_null(f);
}

Test(form, duplicates_are_errors)
{
	char err[128] = "";
	struct form *f = parse("code=1&caller=a&code=2", err, sizeof(err));

	cr_assert_null(f);
	cr_assert_str_eq(err, "duplicate field code");
	/* an encoded spelling of the same key is the same key */
	f = parse("code=1&c%6fde=2", err, sizeof(err));
	cr_assert_null(f);
	cr_assert_str_eq(err, "duplicate field code");
	/* and a value-less repeat too */
	f = parse("flag&flag", err, sizeof(err));
	cr_assert_null(f);
}

Test(form, many_fields_no_quadratic_trap)
{
	/* 20,000 distinct keys, then the same with one duplicate at the end */
	size_t cap = 20000 * 12, len = 0;
	char *buf = malloc(cap);
	char err[128] = "";

	cr_assert_not_null(buf);
	for (int i = 0; i < 20000; i++) {
		int n = snprintf(buf + len, cap - len, "%sk%d=%d", i ? "&" : "", i, i);
		cr_assert(n > 0 && (size_t)n < cap - len);
		len += (size_t)n;
	}
	struct form *f = form_parse(buf, len, err, sizeof(err));
	cr_assert_not_null(f, "%s", err);
	cr_assert_eq(form_count(f), 20000);
	cr_assert_str_eq(form_get(f, "k19999"), "19999");
	form_free(f);
	int n = snprintf(buf + len, cap - len, "&k7=x");
	cr_assert(n > 0 && (size_t)n < cap - len);
	len += (size_t)n;
	f = form_parse(buf, len, err, sizeof(err));
	cr_assert_null(f);
	cr_assert_str_eq(err, "duplicate field k7");
	free(buf);
}

Test(form, empty_key_is_error)
{
	char err[128] = "";
	struct form *f = parse("=v", err, sizeof(err));

	cr_assert_null(f);
	cr_assert_str_eq(err, "empty field name");
}

Test(form, error_names_are_sanitised)
{
	char err[128] = "";
	struct form *f = parse("a%0Ab=1&a%0Ab=2", err, sizeof(err));

	cr_assert_null(f);
	cr_assert_str_eq(err, "duplicate field a?b");
}

Test(form, unescape_contract)
{
	char out[16];

	cr_assert_eq(form_unescape("a+b%41", 6, true, out), 4);
	cr_assert_str_eq(out, "a bA");
	cr_assert_eq(form_unescape("a+b", 3, false, out), 3);
	cr_assert_str_eq(out, "a+b");
	cr_assert_eq(form_unescape("%2e%2E", 6, false, out), 2);
	cr_assert_str_eq(out, "..");
	cr_assert_eq(form_unescape("%", 1, false, out), -1);
	cr_assert_eq(form_unescape("%00", 3, false, out), -1);
}

Test(form_out, encoding)
{
	struct form_out o = FORM_OUT_INIT;
	size_t len = 0;
	char *s;

	cr_assert_eq(form_out_add(&o, "result", "retry"), 0);
	cr_assert_eq(form_out_add(&o, "tries_left", "2"), 0);
	cr_assert_eq(form_out_add(&o, "reason", "a b&c=d/e+f~g.h-i_j%"), 0);
	cr_assert_eq(form_out_add(&o, "device", NULL), 0);
	s = form_out_finish(&o, &len);
	cr_assert_not_null(s);
	cr_assert_str_eq(s, "result=retry&tries_left=2&reason=a%20b%26c%3Dd%2Fe%2Bf~g.h-i_j%25&device=");
	cr_assert_eq(len, strlen(s));
	free(s);
	/* the builder is reset and reusable */
	cr_assert_null(o.buf);
	s = form_out_finish(&o, &len);
	cr_assert_str_eq(s, "");
	cr_assert_eq(len, 0);
	free(s);
}

Test(form_out, utf8_and_controls)
{
	struct form_out o = FORM_OUT_INIT;
	char *s;

	form_out_add(&o, "name", "J\xc3\xbcrg\n\r");
	s = form_out_finish(&o, NULL);
	cr_assert_str_eq(s, "name=J%C3%BCrg%0A%0D");
	free(s);
	form_out_add(&o, "x", "1");
	form_out_discard(&o);
	cr_assert_null(o.buf);
	form_out_discard(NULL);
}

Test(form_out, round_trip)
{
	const char *vals[] = { "", "plain", "sp ace", "+plus+", "%25", "a&b=c",
	                       "\xe2\x82\xac uro", "tab\there", "~._-",
	                       "sip:bob@[2001:db8::1]:5060;transport=tcp" };
	struct form_out o = FORM_OUT_INIT;
	char key[16], err[128] = "";
	size_t len, n = sizeof(vals) / sizeof(vals[0]);

	for (size_t i = 0; i < n; i++) {
		cr_assert_lt((size_t)snprintf(key, sizeof(key), "k %zu", i), sizeof(key));
		form_out_add(&o, key, vals[i]);
	}
	char *s = form_out_finish(&o, &len);
	cr_assert_not_null(s);
	struct form *f = form_parse(s, len, err, sizeof(err));
	cr_assert_not_null(f, "%s", err);
	cr_assert_eq(form_count(f), n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_lt((size_t)snprintf(key, sizeof(key), "k %zu", i), sizeof(key));
		cr_assert_str_eq(form_get(f, key), vals[i]);
	}
	form_free(f);
	free(s);
}

/* ---- JSON ---- */

static struct form *
json(const char *s, char *err, size_t errlen)
{
	struct form *f = (struct form *)1;
	int r = form_from_json(s, strlen(s), &f, err, errlen);

	if (r != 0)
		cr_assert_null(f, "out not NULL on error");
	else
		cr_assert_not_null(f);
	return f;
}

Test(form_json, flat_object)
{
	char err[128] = "";
	struct form *f = json("{\"caller\":\"alice\",\"digits\":\"201\",\"expires\":3600,"
	                      "\"ratio\":0.1,\"neg\":-7,\"big\":1e300,\"ok\":true,\"no\":false,"
	                      "\"code\":null,\"empty\":\"\"}", err, sizeof(err));

	cr_assert_not_null(f, "%s", err);
	cr_assert_str_eq(form_get(f, "caller"), "alice");
	cr_assert_str_eq(form_get(f, "expires"), "3600");
	cr_assert_str_eq(form_get(f, "ratio"), "0.1");
	cr_assert_str_eq(form_get(f, "neg"), "-7");
	cr_assert_str_eq(form_get(f, "big"), "1e+300");
	cr_assert_str_eq(form_get(f, "ok"), "true");
	cr_assert_str_eq(form_get(f, "no"), "false");
	cr_assert_null(form_get(f, "code"), "null is absent");
	cr_assert_str_eq(form_get(f, "empty"), "");
	cr_assert_eq(form_count(f), 9);
	cr_assert_str_eq(form_key(f, 0), "caller");
	cr_assert_str_eq(form_key(f, 8), "empty");
	form_free(f);
}

Test(form_json, unicode_strings_kept)
{
	char err[128] = "";
	struct form *f = json("{\"name\":\"J\\u00fcrg & co=\"}", err, sizeof(err));

	cr_assert_not_null(f, "%s", err);
	cr_assert_str_eq(form_get(f, "name"), "J\xc3\xbcrg & co=");
	form_free(f);
}

Test(form_json, nested_named)
{
	char err[128] = "";

	cr_assert_null(json("{\"a\":1,\"deep\":{\"x\":1}}", err, sizeof(err)));
	cr_assert_str_eq(err, "field deep: nested values are not allowed");
	cr_assert_null(json("{\"list\":[1,2]}", err, sizeof(err)));
	cr_assert_str_eq(err, "field list: nested values are not allowed");
}

Test(form_json, errors)
{
	char err[128] = "";

	cr_assert_null(json("[1,2]", err, sizeof(err)));
	cr_assert_str_eq(err, "JSON body is not an object");
	cr_assert_null(json("\"s\"", err, sizeof(err)));
	cr_assert_null(json("{\"a\":", err, sizeof(err)));
	cr_assert(strncmp(err, "bad JSON", 8) == 0, "%s", err);
	cr_assert_null(json("", err, sizeof(err)));
	cr_assert_null(json("{\"a\":1,\"a\":2}", err, sizeof(err)));
	cr_assert(strncmp(err, "duplicate field", 15) == 0, "%s", err);
	cr_assert_null(json("{\"a\":\"x\\u0000y\"}", err, sizeof(err)));
	cr_assert_null(json("{\"\":\"x\"}", err, sizeof(err)));
	cr_assert_str_eq(err, "empty field name");
	cr_assert_null(json("{} trailing", err, sizeof(err)));
}

Test(form_json, empty_object)
{
	char err[128] = "";
	struct form *f = json("{}", err, sizeof(err));

	cr_assert_not_null(f);
	cr_assert_eq(form_count(f), 0);
	cr_assert_null(form_get(f, "x"));
	form_free(f);
}

Test(form, small_error_buffer_is_terminated)
{
	char err[8];
	struct form *f = parse("averyveryverylongname=1&averyveryverylongname=2", err, sizeof(err));

	cr_assert_null(f);
	cr_assert_eq(strlen(err), 7);
	cr_assert_str_eq(err + 4, "...");
}

Test(form, hex_value_of_every_byte)
{
	static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";

	for (int c = 0; c < 256; c++) {
		const char *l = c != 0 ? strchr(lower, c) : NULL;
		const char *u = c != 0 ? strchr(upper, c) : NULL;
		int want = l != NULL ? (int)(l - lower) : u != NULL ? (int)(u - upper) : -1;

		cr_assert_eq(hex_value((unsigned char)c), want, "byte %d", c);
	}
}
