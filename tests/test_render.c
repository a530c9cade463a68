/*
 * test_render.c -- the template language (src/render.c): compiling,
 * sections, standalone lines, compile errors with positions, escaping per
 * mode, refusal of values a format cannot carry, the output buffer.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "render.h"
#include "testutil.h"

static struct render_input
base_input(void)
{
	struct render_input in = {0};
	in.mac = "0004f2a1b2c3";
	in.model = "VVX_500";
	in.org = "acme";
	in.line_enabled = true;
	in.line.sip_user = "acme-201";
	in.line.password = "pw";
	in.line.display_name = "Alice";
	in.line.label = "201";
	in.line.registrar_host = "pbx.acme.test";
	in.line.registrar_port = 5060;
	in.line.transport = "udp";
	in.version = 42;
	return in;
}

/* Compiles src in mode, renders it with in; returns the output (static
 * buffer) or NULL with the error in err. */
static const char *
render_str(const char *src, enum render_mode mode,
           const struct render_input *in, char *err, size_t errlen)
{
	static char out[8192];
	struct render_tmpl *t = NULL;
	struct render_values vals;
	struct render_buf b = {0};
	if (render_compile(src, strlen(src), mode, &t, err, errlen) < 0)
		return NULL;
	cr_assert_eq(render_values_init(&vals, in, err, errlen), 0, "%s", err);
	int rc = render_run(t, &vals, &b, err, errlen);
	render_tmpl_free(t);
	if (rc < 0) {
		cr_assert_eq(b.len, 0, "failed render left output behind");
		render_buf_free(&b);
		return NULL;
	}
	cr_assert(b.p != NULL && b.p[b.len] == '\0');
	cr_assert_lt(b.len, sizeof(out));
	memcpy(out, b.p, b.len + 1);
	render_buf_free(&b);
	return out;
}

static const char *
ok(const char *src, enum render_mode mode, const struct render_input *in)
{
	char err[256] = "";
	const char *s = render_str(src, mode, in, err, sizeof(err));
	cr_assert(s != NULL, "render of [%s] failed: %s", src, err);
	return s;
}

/* The compile (or render) error message of src. */
static const char *
fails(const char *src, enum render_mode mode, const struct render_input *in)
{
	static char err[256];
	err[0] = '\0';
	const char *s = render_str(src, mode, in, err, sizeof(err));
	cr_assert(s == NULL, "[%s] should have failed, gave [%s]", src, s ? s : "");
	cr_assert(err[0] != '\0', "no error message");
	return err;
}

Test(render, substitution_and_derived_variables)
{
	struct render_input in = base_input();
	cr_assert_str_eq(ok("{{mac}} {{MAC}} {{mac_colons}}", RENDER_XML, &in),
	                 "0004f2a1b2c3 0004F2A1B2C3 00:04:f2:a1:b2:c3");
	cr_assert_str_eq(ok("{{ model }}/{{org}}/{{version}}", RENDER_XML, &in), "VVX_500/acme/42");
	cr_assert_str_eq(ok("{{line.registrar_host}}:{{line.registrar_port}}", RENDER_KV, &in),
	                 "pbx.acme.test:5060");
	/* auth_name defaults to sip_user; an explicit one wins */
	cr_assert_str_eq(ok("{{line.auth_name}}", RENDER_KV, &in), "acme-201");
	in.line.auth_name = "auth-x";
	cr_assert_str_eq(ok("{{line.auth_name}}", RENDER_KV, &in), "auth-x");
	/* booleans render as 1/0 */
	cr_assert_str_eq(ok("{{line_enabled}}{{parked}}{{parking}}", RENDER_KV, &in), "100");
}

Test(render, sections)
{
	struct render_input in = base_input();
	const char *src = "a{{#parked}}P{{/parked}}{{^parked}}H{{/parked}}b";
	cr_assert_str_eq(ok(src, RENDER_KV, &in), "aHb");
	in.parked = true;
	cr_assert_str_eq(ok(src, RENDER_KV, &in), "aPb");
	/* strings: true when non-empty; port 0 renders empty and is false */
	in.line.label = "";
	in.line.registrar_port = 0;
	cr_assert_str_eq(ok("[{{#line.label}}L{{/line.label}}{{^line.label}}none{{/line.label}}]"
	                    "[{{line.registrar_port}}{{^line.registrar_port}}5060{{/line.registrar_port}}]",
	                    RENDER_KV, &in),
	                 "[none][5060]");
	/* nesting, including the same variable twice */
	in.line_enabled = true;
	cr_assert_str_eq(ok("{{#line_enabled}}1{{#parked}}2{{^parked}}x{{/parked}}3{{/parked}}"
	                    "{{#line_enabled}}4{{/line_enabled}}{{/line_enabled}}",
	                    RENDER_KV, &in),
	                 "1234");
	in.line_enabled = false;
	cr_assert_str_eq(ok("{{#line_enabled}}1{{#parked}}2{{/parked}}{{/line_enabled}}end",
	                    RENDER_KV, &in),
	                 "end");
}

Test(render, standalone_tags_and_comments_take_their_line)
{
	struct render_input in = base_input();
	const char *src = "first\n"
	                  "  {{#line_enabled}}  \n"
	                  "on = 1\n"
	                  "{{/line_enabled}}\n"
	                  "{{! a comment\n"
	                  "    over two lines }}\n"
	                  "{{^line_enabled}}\r\n"
	                  "on = 0\n"
	                  "{{/line_enabled}}\n"
	                  "last {{! inline }}x\n";
	cr_assert_str_eq(ok(src, RENDER_KV, &in), "first\non = 1\nlast x\n");
	in.line_enabled = false;
	cr_assert_str_eq(ok(src, RENDER_KV, &in), "first\non = 0\nlast x\n");
	/* a tag that shares its line with text is not standalone */
	cr_assert_str_eq(ok("a {{#parked}}b{{/parked}}\nc", RENDER_KV, &in), "a \nc");
	/* a section tag at the very end, with no newline */
	cr_assert_str_eq(ok("x\n{{#parked}}\ny\n{{/parked}}", RENDER_KV, &in), "x\n");
}

Test(render, compile_errors_carry_line_and_column)
{
	struct render_input in = base_input();
	cr_assert_str_eq(fails("line one\nline two\nline {{#parked}}\nnever closed\n", RENDER_XML, &in),
	                 "line 3, column 6: unclosed section 'parked'");
	cr_assert_str_eq(fails("ab\n  {{nope}}", RENDER_XML, &in),
	                 "line 2, column 5: unknown variable 'nope'");
	cr_assert_str_eq(fails("{{#parked}}{{/parking}}", RENDER_XML, &in),
	                 "line 1, column 12: '{{/parking}}' does not close section 'parked' "
	                 "opened at line 1, column 1");
	cr_assert_str_eq(fails("x{{/parked}}", RENDER_XML, &in),
	                 "line 1, column 2: '{{/parked}}' closes no open section");
	cr_assert_str_eq(fails("a\nb {{mac", RENDER_XML, &in),
	                 "line 2, column 3: unclosed tag '{{' (no '}}' follows)");
	cr_assert_str_eq(fails("{{{line.password}}}", RENDER_XML, &in),
	                 "line 1, column 1: raw (unescaped) substitution is not supported");
	cr_assert_str_eq(fails("{{&line.password}}", RENDER_XML, &in),
	                 "line 1, column 1: raw (unescaped) substitution is not supported");
	cr_assert_str_eq(fails("{{>other}}", RENDER_XML, &in),
	                 "line 1, column 1: partials are not supported");
	cr_assert_str_eq(fails("{{  }}", RENDER_XML, &in), "line 1, column 1: empty tag");
	cr_assert_str_eq(fails("{{line-password}}", RENDER_XML, &in),
	                 "line 1, column 7: invalid character in tag name");
	/* a variable name is case-sensitive: MAC and mac are different ones */
	cr_assert_str_eq(fails("{{Mac}}", RENDER_XML, &in), "line 1, column 3: unknown variable 'Mac'");
}

Test(render, compile_rejects_nul_and_oversize)
{
	struct render_tmpl *t = (struct render_tmpl *)1;
	char err[128];
	cr_assert_eq(render_compile("ab\0cd", 5, RENDER_XML, &t, err, sizeof(err)), -1);
	cr_assert_null(t);
	cr_assert_str_eq(err, "line 1, column 3: NUL byte in template");
	char *big = malloc(RENDER_MAX_SOURCE + 1);
	memset(big, 'a', RENDER_MAX_SOURCE + 1);
	cr_assert_eq(render_compile(big, RENDER_MAX_SOURCE + 1, RENDER_XML, &t, err, sizeof(err)), -1);
	free(big);
}

Test(render, xml_escaping)
{
	struct render_input in = base_input();
	in.line.password = "a&b<c>d\"e'f";
	cr_assert_str_eq(ok("<x p=\"{{line.password}}\">{{line.password}}</x>", RENDER_XML, &in),
	                 "<x p=\"a&amp;b&lt;c&gt;d&quot;e&apos;f\">a&amp;b&lt;c&gt;d&quot;e&apos;f</x>");
	in.line.display_name = "tab\there\r\nnext";
	cr_assert_str_eq(ok("{{line.display_name}}", RENDER_XML, &in), "tab&#9;here&#13;&#10;next");
	/* non-ASCII UTF-8 passes through untouched */
	in.line.label = "Zoë € 😀";
	cr_assert_str_eq(ok("{{line.label}}", RENDER_XML, &in), "Zoë € 😀");
	/* '$' is only special for Cisco macro parameters */
	in.line.label = "$x";
	cr_assert_str_eq(ok("{{line.label}}", RENDER_XML, &in), "$x");
}

Test(render, xml_refuses_controls_and_bad_utf8_naming_the_variable)
{
	struct render_input in = base_input();
	in.line.password = "a\x01z";
	cr_assert_str_eq(fails("<x>{{line.password}}</x>", RENDER_XML, &in),
	                 "variable 'line.password': value contains a control character");
	in.line.password = "ok";
	in.line.label = "bad\xc3(";
	cr_assert_str_eq(fails("<x>{{line.label}}</x>", RENDER_XML, &in),
	                 "variable 'line.label': value is not valid UTF-8");
	const char *bad[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\xaf", "\xff", "\x80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		in.line.label = bad[i];
		fails("{{line.label}}", RENDER_KV, &in);
	}
}

Test(render, kv_refuses_line_breaks_naming_the_variable)
{
	struct render_input in = base_input();
	in.line.display_name = "Alice\nevil.key = 1";
	cr_assert_str_eq(fails("account.1.display_name = {{line.display_name}}\n", RENDER_KV, &in),
	                 "variable 'line.display_name': value contains a line break, which this "
	                 "format cannot carry");
	in.line.display_name = "Alice";
	in.line.password = "pw\r";
	cr_assert(strstr(fails("p = {{line.password}}\n", RENDER_KV, &in), "'line.password'") != NULL);
	/* XML characters mean nothing in this format */
	in.line.password = "a&b<c>\"'$";
	cr_assert_str_eq(ok("p = {{line.password}}", RENDER_KV, &in), "p = a&b<c>\"'$");
	/* the error does not show the value */
	in.line.password = "s3cr3t\nx";
	cr_assert(strstr(fails("{{line.password}}", RENDER_KV, &in), "s3cr3t") == NULL);
}

Test(render, cisco_macro_elements_double_dollar)
{
	struct render_input in = base_input();
	in.line.password = "a$b";
	in.line.label = "$USER";
	in.line.registrar_host = "h$";
	const char *src = "<flat-profile>\n"
	                  "<Password_1_ ua=\"na\">{{line.password}}</Password_1_>\n"
	                  "<Short_Name_1_ ua=\"na\">{{line.label}}</Short_Name_1_>\n"
	                  "<Profile_Rule_B>{{line.registrar_host}}/$MA.xml</Profile_Rule_B>\n"
	                  "<Upgrade_Rule>{{line.registrar_host}}</Upgrade_Rule>\n"
	                  "<Display_Name_1_/>{{line.password}}\n"
	                  "</flat-profile>";
	cr_assert_str_eq(ok(src, RENDER_XML_CISCO, &in),
	                 "<flat-profile>\n"
	                 "<Password_1_ ua=\"na\">a$b</Password_1_>\n"
	                 "<Short_Name_1_ ua=\"na\">$$USER</Short_Name_1_>\n"
	                 "<Profile_Rule_B>h$$/$MA.xml</Profile_Rule_B>\n"
	                 "<Upgrade_Rule>h$$</Upgrade_Rule>\n"
	                 "<Display_Name_1_/>a$b\n"
	                 "</flat-profile>");
	/* plain XML mode leaves '$' alone even in a rule element */
	cr_assert_str_eq(ok("<Profile_Rule>{{line.registrar_host}}</Profile_Rule>", RENDER_XML, &in),
	                 "<Profile_Rule>h$</Profile_Rule>");
}

Test(render, values_init_validates)
{
	struct render_input in = base_input();
	struct render_values v;
	char err[128];
	const char *badmacs[] = {NULL, "", "0004F2A1B2C3", "0004f2a1b2c", "0004f2a1b2c3d",
	                         "00:04:f2:a1:b2:c3", "0004f2a1b2cg"};
	for (size_t i = 0; i < sizeof(badmacs) / sizeof(badmacs[0]); i++) {
		in.mac = badmacs[i];
		cr_assert_eq(render_values_init(&v, &in, err, sizeof(err)), -1, "mac %zu accepted", i);
	}
	in = base_input();
	in.line.registrar_port = 70000;
	cr_assert_eq(render_values_init(&v, &in, err, sizeof(err)), -1);
	in.line.registrar_port = 0;
	in.line.label = NULL;
	cr_assert_eq(render_values_init(&v, &in, err, sizeof(err)), 0);
	cr_assert_str_eq(v.v[RV_LINE_REGISTRAR_PORT].s, "");
	cr_assert_str_eq(v.v[RV_LINE_LABEL].s, "");
	cr_assert(!v.v[RV_LINE_LABEL].on);
	cr_assert_str_eq(render_var_name(RV_LINE_PASSWORD), "line.password");
	cr_assert_str_eq(render_var_name(RENDER_VAR_COUNT), "");
}

Test(render, long_values_grow_the_buffer_and_append)
{
	struct render_input in = base_input();
	char *longv = malloc(5001);
	for (int i = 0; i < 5000; i++)
		longv[i] = "a&<"[i % 3];
	longv[5000] = '\0';
	in.line.password = longv;
	struct render_tmpl *t;
	struct render_values vals;
	char err[128];
	struct render_buf b = {0};
	cr_assert_eq(render_compile("[{{line.password}}]", 19, RENDER_XML, &t, err, sizeof(err)), 0);
	cr_assert_eq(render_values_init(&vals, &in, err, sizeof(err)), 0);
	cr_assert_eq(render_buf_append(&b, "head", 4), 0);
	cr_assert_eq(render_run(t, &vals, &b, err, sizeof(err)), 0, "%s", err);
	/* 1667 '&' and 1666 '<' (and 1667 'a') escaped */
	cr_assert_eq(b.len, 4 + 2 + 1667 + 1667 * 5 + 1666 * 4);
	cr_assert(strncmp(b.p, "head[a&amp;&lt;a", 16) == 0);
	cr_assert_eq(b.p[b.len - 1], ']');
	/* a failing render keeps what was there before */
	in.line.password = "x\x02";
	cr_assert_eq(render_values_init(&vals, &in, err, sizeof(err)), 0);
	size_t before = b.len;
	cr_assert_eq(render_run(t, &vals, &b, err, sizeof(err)), -1);
	cr_assert_eq(b.len, before);
	cr_assert_eq(b.p[b.len], '\0');
	render_buf_reset(&b);
	cr_assert_eq(b.len, 0);
	render_buf_free(&b);
	cr_assert_null(b.p);
	render_tmpl_free(t);
	free(longv);
}

Test(render, uses_reports_variables)
{
	struct render_tmpl *t;
	char err[128];
	const char *src = "{{#parked}}{{model}}{{/parked}}{{! {{line.password}} }}";
	cr_assert_eq(render_compile(src, strlen(src), RENDER_KV, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert(render_tmpl_uses(t, RV_PARKED));
	cr_assert(render_tmpl_uses(t, RV_MODEL));
	cr_assert(!render_tmpl_uses(t, RV_LINE_PASSWORD));
	cr_assert_eq(render_tmpl_mode(t), RENDER_KV);
	render_tmpl_free(t);
}

/* {{#keys}} repeats its body once per line key, in order, with key.*
 * bound to that key; nothing when there is none.  key.* outside it, a
 * nested {{#keys}} and a {{keys}} substitution are compile errors. */
Test(render, keys_repeat_per_line_key)
{
	struct render_input in = base_input();
	const char *t = "[{{#keys}}{{key.n}}/{{key.button}}:{{#key.blf}}B{{/key.blf}}"
	                "{{#key.speed_dial}}S{{/key.speed_dial}}={{key.value}}({{key.label}})"
	                "{{^key.label}}-{{/key.label}};{{/keys}}]{{^keys}}none{{/keys}}";

	cr_assert_str_eq(ok(t, RENDER_KV, &in), "[]none");
	in.keys[0] = (struct render_key){true, "202", "Bob"};
	in.keys[1] = (struct render_key){false, "*97", NULL};
	in.keys[2] = (struct render_key){true, "203", "<&>"};
	in.nkeys = 3;
	cr_assert_str_eq(ok(t, RENDER_KV, &in), "[1/2:B=202(Bob);2/3:S=*97()-;3/4:B=203(<&>);]");
	cr_assert_str_eq(ok("{{#keys}}{{key.label}}{{/keys}}", RENDER_XML, &in),
	                 "Bob&lt;&amp;&gt;");
	/* the loop body may end the template, and other variables work inside */
	cr_assert_str_eq(ok("{{#keys}}{{mac}}{{key.n}} {{/keys}}", RENDER_KV, &in),
	                 "0004f2a1b2c31 0004f2a1b2c32 0004f2a1b2c33 ");
	in.keys[1].label = "x\ny";
	cr_assert_not_null(strstr(fails(t, RENDER_KV, &in), "key.label"));
	cr_assert_not_null(strstr(fails("{{key.n}}", RENDER_KV, &in), "only available inside"));
	cr_assert_not_null(strstr(fails("{{^keys}}{{key.n}}{{/keys}}", RENDER_KV, &in),
	                          "only available inside"));
	cr_assert_not_null(strstr(fails("{{#keys}}{{#keys}}{{/keys}}{{/keys}}", RENDER_KV, &in),
	                          "do not nest"));
	cr_assert_not_null(strstr(fails("{{keys}}", RENDER_KV, &in), "is a section"));
}

/* Site settings: the offset in three spellings and the daylight rule. */
Test(render, site_settings)
{
	struct render_input in = base_input();
	const char *t = "{{site.utc_offset}} {{site.utc_offset_seconds}} {{site.utc_offset_hours}} "
	                "{{site.dst}}{{site.dst_eu}}{{site.dst_us}}";

	cr_assert_str_eq(ok(t, RENDER_KV, &in), "+00:00 0 +0 000");
	in.site.utc_offset = 60;
	in.site.dst = 1;
	cr_assert_str_eq(ok(t, RENDER_KV, &in), "+01:00 3600 +1 110");
	in.site.utc_offset = -330;
	in.site.dst = 2;
	cr_assert_str_eq(ok(t, RENDER_KV, &in), "-05:30 -19800 -5:30 101");
	in.site.utc_offset = 345;
	in.site.dst = 0;
	cr_assert_str_eq(ok(t, RENDER_KV, &in), "+05:45 20700 +5:45 000");
}

/* Renders src (XML) with in, recording the shape into *sh; the output is
 * freed.  Returns the skeleton (static buffer) and its marks. */
static const char *
shape_of(const char *src, const struct render_input *in, struct render_shape *sh,
         size_t *marks)
{
	static char out[4096];
	struct render_tmpl *t = NULL;
	struct render_values vals;
	struct render_buf b = {0}, sk = {0};
	char err[256];

	cr_assert_eq(render_compile(src, strlen(src), RENDER_XML, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(render_values_init(&vals, in, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(render_run_shaped(t, &vals, &b, sh, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(render_skeleton(t, &vals, &sk, marks, err, sizeof(err)), 0, "%s", err);
	snprintf(out, sizeof(out), "%s", sk.p);
	render_buf_free(&b);
	render_buf_free(&sk);
	render_tmpl_free(t);
	return out;
}

static bool
same_shape(const struct render_shape *a, const struct render_shape *b)
{
	return a->n == b->n && a->hash == b->hash && memcmp(a->b, b->b, a->n) == 0;
}

Test(render, shapes_and_skeletons)
{
	const char *src = "<a u=\"{{line.sip_user}}\">{{#parked}}P{{/parked}}{{line.voicemail}}"
	                  "{{#keys}}<k{{key.n}} v=\"{{key.value}}\"/>{{/keys}}</a>";
	struct render_input in = base_input(), other = base_input();
	struct render_shape a, b;
	size_t marks;

	in.keys[0] = (struct render_key){true, "202", "Bob"};
	in.keys[1] = (struct render_key){false, "", NULL};
	in.nkeys = 2;
	/* non-empty values are marked, empty ones stay empty, the keys'
	 * numbers are written */
	cr_assert_str_eq(shape_of(src, &in, &a, &marks),
	                 "<a u=\"" RENDER_MARK "\"><k1 v=\"" RENDER_MARK "\"/><k2 v=\"\"/></a>");
	cr_assert_eq(marks, 2);
	cr_assert(a.plain);
	/* other text, same shape */
	other = in;
	other.line.sip_user = "someone-else";
	other.keys[0].value = "7";
	shape_of(src, &other, &b, &marks);
	cr_assert(same_shape(&a, &b));
	/* a section, an emptiness, a key count: another shape each */
	other.parked = true;
	shape_of(src, &other, &b, &marks);
	cr_assert_not(same_shape(&a, &b));
	other = in;
	other.line.voicemail = "*97";
	shape_of(src, &other, &b, &marks);
	cr_assert_not(same_shape(&a, &b));
	cr_assert_eq(marks, 3);
	other = in;
	other.nkeys = 1;
	cr_assert_str_eq(shape_of(src, &other, &b, &marks),
	                 "<a u=\"" RENDER_MARK "\"><k1 v=\"" RENDER_MARK "\"/></a>");
	cr_assert_not(same_shape(&a, &b));
	/* ']' and the noncharacters make a render not plain */
	other = in;
	other.line.sip_user = "a]b";
	shape_of(src, &other, &b, &marks);
	cr_assert_not(b.plain);
	other.line.sip_user = "a\xef\xbf\xbe";
	shape_of(src, &other, &b, &marks);
	cr_assert_not(b.plain);
}

Test(render, a_template_holding_the_mark_has_no_skeleton)
{
	const char *src = "<a>" RENDER_MARK "{{org}}</a>";
	struct render_tmpl *t = NULL;
	struct render_values vals;
	struct render_input in = base_input();
	struct render_buf sk = {0};
	char err[256] = "";
	size_t marks;

	cr_assert_eq(render_compile(src, strlen(src), RENDER_XML, &t, err, sizeof(err)), 0);
	cr_assert_eq(render_values_init(&vals, &in, err, sizeof(err)), 0);
	cr_assert_eq(render_skeleton(t, &vals, &sk, &marks, err, sizeof(err)), -1);
	cr_assert(strstr(err, "mark") != NULL, "%s", err);
	cr_assert_eq(sk.len, 0);
	render_buf_free(&sk);
	render_tmpl_free(t);
}
