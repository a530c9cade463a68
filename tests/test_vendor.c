/*
 * test_vendor.c -- the vendor registry and the default templates
 * (src/vendor*.c, templates/, provisioning/): golden files for every
 * profile's files, escaping round trips through libxml2, parked devices
 * blanking their credentials, file-name matching and traversal attempts,
 * User-Agent parsing, NOTIFY events and bodies, template replacement, the
 * XML check made once per render shape against the check of every file.
 *
 * Goldens live in tests/golden/<profile>/<case>/<file name>.  Run with
 * UPDATE_GOLDEN=1 to rewrite them, then review the diff before committing.
 * Tests run from the repository root.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "render.h"
#include "testutil.h"
#include "vendor.h"

#define MAC "0004f2a1b2c3"

static struct vendor_templates *T;

static void
load(void)
{
	char err[512] = "";
	int rc = vendor_templates_load("templates", "provisioning", &T, err, sizeof(err));
	cr_assert_eq(rc, 0, "loading default templates: %s", err);
}

static void
unload(void)
{
	vendor_templates_free(T);
	T = NULL;
}

/* ---- the four device cases ---------------------------------------------- */

static char long_pw[2101];

static char long_label[130];

static struct render_input
case_input(const char *c)
{
	struct render_input in = {0};
	in.mac = MAC;
	in.model = "test-model";
	in.org = "acme";
	in.version = 12;
	/* site settings: every case (the organization's) */
	in.language = "de_DE";
	in.site.ntp_server = "ntp.acme.test";
	in.site.utc_offset = 60;
	in.site.dst = 1;
	if (strcmp(c, "parked-none") == 0) {
		/* what the publisher gives: the parked label and the registrar */
		in.parked = true;
		in.line.label = "Dial *30 to log in";
		in.line.registrar_host = "pbx.acme.test";
		in.line.registrar_port = 5060;
		in.line.transport = "udp";
		return in;
	}
	in.line_enabled = true;
	in.line.sip_user = "acme-201";
	in.line.password = "Xk4-pw";
	in.line.display_name = "Alice Smith";
	in.line.label = "201";
	in.line.registrar_host = "pbx.acme.test";
	in.line.registrar_port = 5060;
	in.line.transport = "udp";
	/* the user's settings (a parked phone has none) */
	if (strcmp(c, "normal") == 0 || strcmp(c, "hostile") == 0) {
		in.line.voicemail = "*97";
		in.language = "fr_FR";
		in.keys[0] = (struct render_key){true, "202", "Bob"};
		in.keys[1] = (struct render_key){false, "5551234", "Pizza"};
		in.keys[2] = (struct render_key){true, "203", NULL};
		in.nkeys = 3;
	}
	if (strcmp(c, "parked-parking") == 0) {
		in.parked = in.parking = true;
		in.line.sip_user = "park-0004f2a1b2c3";
		in.line.password = "park-pw";
		in.line.display_name = "Parked phone";
		in.line.label = "Dial *30 to log in";
	} else if (strcmp(c, "hostile") == 0) {
		/* every XML special, '$', non-ASCII, and a value of ~2100 bytes */
		strcpy(long_pw, "p&ss<w>rd\"'$xü");
		size_t n = strlen(long_pw);
		for (; n < 2100; n++)
			long_pw[n] = (char)('a' + n % 26);
		long_pw[n] = '\0';
		in.line.password = long_pw;
		in.line.display_name = "Zoë \"Z\" O'Brien & <Co> 😀";
		in.line.label = "<Away> & 'back' $HOME ☎";
		in.line.auth_name = "auth&<>";
		in.line.transport = "tls";
		in.line.registrar_port = 5061;
		/* every user and site setting hostile too: XML specials, '$', a
		 * long label, every key slot (CR/LF: see
		 * user_settings_line_breaks) */
		memset(long_label, 'L', sizeof(long_label) - 1);
		memcpy(long_label, "<&\"'$MA>", 9);
		in.line.voicemail = "*#+0123456789*#+0123456789*#+012";
		in.site.ntp_server = "ntp<&>\"'$x";
		in.site.utc_offset = -330;
		in.site.dst = 2;
		for (size_t k = 0; k < RENDER_MAX_KEYS; k++)
			in.keys[k] = (struct render_key){k % 2 == 0, "*#+0123456789",
			                                 k == 0 ? long_label : "A&B <C> \"D\" 'E' $HOME Zoë"};
		in.nkeys = RENDER_MAX_KEYS;
	}
	return in;
}

static const char *const CASES[] = {"normal", "parked-parking", "parked-none", "hostile"};
#define NCASES (sizeof(CASES) / sizeof(CASES[0]))

/* Renders per-device file i of p for case c into b (reset first). */
static void
render_case(const struct vendor_profile *p, size_t i, const char *c,
            struct render_buf *b)
{
	char err[512] = "";
	struct render_input in = case_input(c);
	render_buf_reset(b);
	int rc = vendor_render_device(p, T, i, &in, b, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s/%s (%s): %s", p->name, p->device_files[i].pattern, c, err);
}

/* ---- goldens ------------------------------------------------------------ */

static void
mkdirs(const char *path)
{
	char tmp[512];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *s = tmp + 1; *s; s++) {
		if (*s == '/') {
			*s = '\0';
			mkdir(tmp, 0755);
			*s = '/';
		}
	}
}

static void
golden(const char *dir, const char *name, const char *p, size_t len)
{
	char path[512];
	int n = snprintf(path, sizeof(path), "tests/golden/%s/%s", dir, name);
	cr_assert(n > 0 && (size_t)n < sizeof(path));
	const char *upd = getenv("UPDATE_GOLDEN");
	if (upd != NULL && strcmp(upd, "1") == 0) {
		mkdirs(path);
		FILE *f = fopen(path, "wb");
		cr_assert_not_null(f, "%s: %s", path, strerror(errno));
		cr_assert_eq(fwrite(p, 1, len, f), len);
		fclose(f);
		return;
	}
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s missing (UPDATE_GOLDEN=1 creates it)", path);
	static char want[65536];
	size_t wn = fread(want, 1, sizeof(want), f);
	fclose(f);
	cr_assert_eq(wn, len, "%s: length %zu, rendered %zu", path, wn, len);
	cr_assert(memcmp(want, p, len) == 0, "%s differs from the render", path);
}

static bool
is_xml(const struct vendor_file *f)
{
	return f->mode != RENDER_KV;
}

/* Independent well-formedness check with the flags the spec names. */
static xmlDocPtr
parse(const char *p, size_t len)
{
	xmlDocPtr d = xmlReadMemory(p, (int)len, "x.xml", NULL,
	                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	cr_assert_not_null(d, "not well-formed:\n%.*s", (int)len, p);
	return d;
}

Test(vendor, goldens_for_every_device_file, .init = load, .fini = unload)
{
	struct render_buf b = {0};
	size_t files = 0;
	for (size_t k = 0; k < vendor_registry_len; k++) {
		const struct vendor_profile *p = vendor_registry[k];
		for (size_t i = 0; i < p->n_device_files; i++) {
			char name[VENDOR_NAME_MAX + 1], dir[128];
			cr_assert_eq(vendor_file_name(&p->device_files[i], MAC, NULL, name, sizeof(name)), 0);
			for (size_t c = 0; c < NCASES; c++) {
				render_case(p, i, CASES[c], &b);
				snprintf(dir, sizeof(dir), "%s/%s", p->name, CASES[c]);
				golden(dir, name, b.p, b.len);
				if (is_xml(&p->device_files[i]))
					xmlFreeDoc(parse(b.p, b.len));
				files++;
			}
		}
	}
	size_t want = 0;
	for (size_t k = 0; k < vendor_registry_len; k++)
		want += vendor_registry[k]->n_device_files;
	cr_assert_eq(files, want * NCASES);
	render_buf_free(&b);
}

Test(vendor, goldens_for_every_shared_file, .init = load, .fini = unload)
{
	struct render_buf b = {0};
	char err[512];
	for (size_t k = 0; k < vendor_registry_len; k++) {
		const struct vendor_profile *p = vendor_registry[k];
		for (size_t i = 0; i < p->n_shared_files; i++) {
			const struct vendor_file *f = &p->shared_files[i];
			const char *model = strstr(f->pattern, "{code}")  ? "066"
			                    : strncmp(f->pattern, "spa", 3) == 0 ? "502G"
			                    : strncmp(f->pattern, "CP-", 3) == 0 ? "8841-3PCC"
			                                                         : "8841";
			char name[VENDOR_NAME_MAX + 1], dir[128];
			cr_assert_eq(vendor_file_name(f, NULL, model, name, sizeof(name)), 0, "%s", f->pattern);
			render_buf_reset(&b);
			cr_assert_eq(vendor_render_shared(p, T, i, model, &b, err, sizeof(err)), 0, "%s", err);
			snprintf(dir, sizeof(dir), "%s/shared", p->name);
			golden(dir, name, b.p, b.len);
			if (is_xml(f))
				xmlFreeDoc(parse(b.p, b.len));
			/* a shared file never carries a device's credentials */
			cr_assert_null(strstr(b.p, "Xk4-pw"));
			cr_assert_null(strstr(b.p, MAC));
		}
	}
	render_buf_free(&b);
}

/* ---- round trips: what the phone reads back is what was put in ---------- */

static char *
xpath_str(xmlDocPtr d, const char *expr)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(d);
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	cr_assert(o != NULL && o->nodesetval != NULL && o->nodesetval->nodeNr == 1,
	          "xpath %s: not exactly one node", expr);
	xmlChar *s = xmlNodeGetContent(o->nodesetval->nodeTab[0]);
	char *r = strdup((const char *)s);
	xmlFree(s);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	return r;
}

/* The number of nodes expr selects. */
static int
xpath_count(xmlDocPtr d, const char *expr)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(d);
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	cr_assert(o != NULL, "xpath %s", expr);
	int n = o->nodesetval ? o->nodesetval->nodeNr : 0;
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	return n;
}

static void
expect(xmlDocPtr d, const char *expr, const char *want)
{
	char *got = xpath_str(d, expr);
	cr_assert_str_eq(got, want, "%s", expr);
	free(got);
}

Test(vendor, hostile_values_round_trip_through_xml, .init = load, .fini = unload)
{
	struct render_buf b = {0};
	struct render_input in = case_input("hostile");

	render_case(vendor_profile_by_name("polycom"), 0, "hostile", &b);
	xmlDocPtr d = parse(b.p, b.len);
	expect(d, "/polycomConfig/reg/@reg.1.auth.password", in.line.password);
	expect(d, "/polycomConfig/reg/@reg.1.displayName", in.line.display_name);
	expect(d, "/polycomConfig/reg/@reg.1.label", in.line.label);
	expect(d, "/polycomConfig/reg/@reg.1.auth.userId", "auth&<>");
	expect(d, "/polycomConfig/reg/@reg.1.server.1.transport", "TLS");
	xmlFreeDoc(d);

	/* Cisco MPP: '$' doubled only where the phone expands macros */
	render_case(vendor_profile_by_name("cisco-mpp"), 0, "hostile", &b);
	d = parse(b.p, b.len);
	expect(d, "/flat-profile/Password_1_", in.line.password);
	expect(d, "/flat-profile/Display_Name_1_", in.line.display_name);
	expect(d, "/flat-profile/Short_Name_1_", "<Away> & 'back' $$HOME ☎");
	expect(d, "/flat-profile/SIP_Transport_1_", "TLS");
	expect(d, "/flat-profile/Proxy_1_", "pbx.acme.test:5061");
	xmlFreeDoc(d);

	render_case(vendor_profile_by_name("cisco-enterprise"), 0, "hostile", &b);
	d = parse(b.p, b.len);
	expect(d, "/device/sipProfile/sipLines/line[@button='1']/authPassword", in.line.password);
	expect(d, "/device/sipProfile/sipLines/line[@button='1']/displayName", in.line.display_name);
	expect(d, "/device/sipProfile/sipLines/line[@button='1']/featureLabel", in.line.label);
	expect(d, "/device/devicePool/callManagerGroup/members/member/callManager/ports/sipPort", "5061");
	xmlFreeDoc(d);
	render_buf_free(&b);
}

/* ---- parked devices ----------------------------------------------------- */

static size_t
count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(vendor, yealink_version_line_and_exact_line_count, .init = load, .fini = unload)
{
	const struct vendor_profile *p = vendor_profile_by_name("yealink");
	struct render_buf b = {0};
	/* 1 version line + 9 account keys when a line is carried, 1 + 7 when
	 * blanked; 9 time, language and voicemail lines (EU or US rule); 4
	 * per line key: a value can never add a line */
	const size_t want[NCASES] = {10 + 9 + 4 * 3, 10 + 9, 8 + 9, 10 + 9 + 4 * 10};
	static const char *const prefixes[] = {"account.1.", "local_time.", "lang.gui = ",
	                                       "voice_mail.number.1 = ", "linekey."};
	for (size_t c = 0; c < NCASES; c++) {
		render_case(p, 0, CASES[c], &b);
		cr_assert(strncmp(b.p, "#!version:1.0.0.1\n", 18) == 0, "%s: first line", CASES[c]);
		cr_assert_eq(count_lines(b.p), want[c], "%s: %zu lines", CASES[c], count_lines(b.p));
		cr_assert_eq(b.p[b.len - 1], '\n');
		for (const char *l = strchr(b.p, '\n') + 1; *l; l = strchr(l, '\n') + 1) {
			bool known = false;
			for (size_t k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++)
				known |= strncmp(l, prefixes[k], strlen(prefixes[k])) == 0;
			cr_assert(known, "%s: stray line %.40s", CASES[c], l);
		}
	}
	render_buf_free(&b);
}

Test(vendor, yealink_refuses_line_breaks_naming_the_variable, .init = load, .fini = unload)
{
	const struct vendor_profile *p = vendor_profile_by_name("yealink");
	struct render_buf b = {0};
	char err[512];
	struct {
		const char *which;
		const char *var;
	} cases[] = {{"password", "line.password"},
	             {"display", "line.display_name"},
	             {"label", "line.label"}};
	for (size_t i = 0; i < 3; i++) {
		struct render_input in = case_input("normal");
		const char *evil = i % 2 ? "x\naccount.2.enable = 1" : "x\r";
		if (i == 0)
			in.line.password = evil;
		else if (i == 1)
			in.line.display_name = evil;
		else
			in.line.label = evil;
		cr_assert_eq(render_buf_append(&b, "kept", 4), 0);
		cr_assert_eq(vendor_render_device(p, T, 0, &in, &b, err, sizeof(err)), -1);
		cr_assert(strstr(err, cases[i].var) != NULL, "%s: error [%s]", cases[i].which, err);
		cr_assert_eq(b.len, 4, "failed render changed the buffer");
		render_buf_reset(&b);
	}
	render_buf_free(&b);
}

Test(vendor, parked_without_parking_account_blanks_credentials, .init = load, .fini = unload)
{
	struct render_buf b = {0};
	render_case(vendor_profile_by_name("yealink"), 0, "parked-none", &b);
	cr_assert_not_null(strstr(b.p, "\naccount.1.enable = 0\n"));
	cr_assert_not_null(strstr(b.p, "\naccount.1.password = %NULL%\n"));
	cr_assert_not_null(strstr(b.p, "\naccount.1.user_name = %NULL%\n"));
	cr_assert_not_null(strstr(b.p, "\naccount.1.auth_name = %NULL%\n"));

	render_case(vendor_profile_by_name("cisco-mpp"), 0, "parked-none", &b);
	cr_assert_not_null(strstr(b.p, "<Line_Enable_1_ ua=\"na\">No</Line_Enable_1_>"));
	cr_assert_not_null(strstr(b.p, "<User_ID_1_ ua=\"na\"></User_ID_1_>"));
	cr_assert_not_null(strstr(b.p, "<Password_1_ ua=\"na\"></Password_1_>"));
	cr_assert_not_null(strstr(b.p, "<Auth_ID_1_ ua=\"na\"></Auth_ID_1_>"));

	render_case(vendor_profile_by_name("polycom"), 0, "parked-none", &b);
	cr_assert_not_null(strstr(b.p, "reg.1.address=\"\""));
	cr_assert_not_null(strstr(b.p, "reg.1.auth.password=\"\""));

	render_buf_free(&b);
}

Test(vendor, parked_with_parking_account_carries_it, .init = load, .fini = unload)
{
	struct render_buf b = {0};
	for (size_t k = 0; k < vendor_registry_len; k++) {
		render_case(vendor_registry[k], 0, "parked-parking", &b);
		cr_assert_not_null(strstr(b.p, "park-0004f2a1b2c3"), "%s", vendor_registry[k]->name);
		cr_assert_not_null(strstr(b.p, "park-pw"), "%s", vendor_registry[k]->name);
		cr_assert_not_null(strstr(b.p, "Dial *30 to log in"), "%s", vendor_registry[k]->name);
		cr_assert_null(strstr(b.p, "acme-201"), "%s", vendor_registry[k]->name);
	}
	render_buf_free(&b);
}

Test(vendor, per_device_files_stay_small, .init = load, .fini = unload)
{
	/* 100,000 devices' files must fit well under 400 MB: a user with
	 * three line keys, voicemail, a language and a site with a daylight
	 * saving rule stays under 2 KB (blanking lives in the shared files) */
	struct render_buf b = {0};
	for (size_t k = 0; k < vendor_registry_len; k++) {
		render_case(vendor_registry[k], 0, "normal", &b);
		cr_assert_lt(b.len, 2048, "%s: %zu bytes", vendor_registry[k]->name, b.len);
	}
	render_buf_free(&b);
}

Test(vendor, render_errors, .init = load, .fini = unload)
{
	const struct vendor_profile *p = vendor_profile_by_name("polycom");
	struct render_buf b = {0};
	char err[256];
	struct render_input in = case_input("normal");
	in.line.transport = "sctp";
	cr_assert_eq(vendor_render_device(p, T, 0, &in, &b, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "transport"));
	in = case_input("normal");
	in.line.transport = "TCP";
	cr_assert_eq(vendor_render_device(p, T, 0, &in, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(b.p, "transport=\"TCPOnly\""));
	in.mac = "0004F2A1B2C3";
	cr_assert_eq(vendor_render_device(p, T, 0, &in, &b, err, sizeof(err)), -1);
	in = case_input("normal");
	cr_assert_eq(vendor_render_device(p, T, p->n_device_files, &in, &b, err, sizeof(err)), -1);
	cr_assert_eq(vendor_render_shared(p, T, 99, NULL, &b, err, sizeof(err)), -1);
	/* XML values that XML cannot carry */
	in.line.display_name = "bell\a";
	cr_assert_eq(vendor_render_device(p, T, 0, &in, &b, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "line.display_name"));
	render_buf_free(&b);
}

/* ---- the XML check -------------------------------------------------------- */

Test(vendor, the_xml_check_accepts_well_formed_documents_only)
{
	static const char *const good[] = {
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a x=\"1\"><b/>t&amp;&#65;&lt;</a>\n",
		"<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>",
		"<a><!-- c --><![CDATA[<not an element>]]></a>",
	};
	static const struct { const char *doc; int line; } bad[] = {
		{ "<a><b></a>", 1 },
		{ "<a>\n\n<b x=\"1\" x=\"2\"/></a>", 3 },
		{ "<a>&foo;</a>", 1 },
		{ "<a></a><b></b>", 1 },
		{ "", 1 },
		{ "<a>\n", 2 },
	};
	char err[256], want[32];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(vendor_check_xml(good[i], strlen(good[i]), err, sizeof(err)), 0,
		             "%s: %s", good[i], err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(vendor_check_xml(bad[i].doc, strlen(bad[i].doc), err, sizeof(err)), -1,
		             "accepted: %s", bad[i].doc);
		snprintf(want, sizeof(want), "malformed XML, line %d: ", bad[i].line);
		cr_assert_eq(strncmp(err, want, strlen(want)), 0, "%s: %s", bad[i].doc, err);
	}
}

/* ---- templates: loading and replacing ----------------------------------- */

Test(vendor, template_replacement_is_validated, .init = load, .fini = unload)
{
	const struct vendor_profile *p = vendor_profile_by_name("cisco-mpp");
	char err[512];
	struct render_buf b = {0};
	struct render_input in = case_input("normal");

	const char *bad = "<flat-profile>\n<User_ID_1_>{{line.sip_user}}</User_ID_1_>\n"
	                  "<x>{{#parked}}</x>\n</flat-profile>\n";
	cr_assert_eq(vendor_templates_set(T, p, "device.xml", bad, strlen(bad), err, sizeof(err)), -1);
	cr_assert_str_eq(err, "line 3, column 4: unclosed section 'parked'");

	const char *malformed = "<flat-profile><User_ID_1_>{{line.sip_user}}</flat-profile>";
	cr_assert_eq(vendor_templates_set(T, p, "device.xml", malformed, strlen(malformed), err,
	                                  sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "malformed XML"), "%s", err);

	/* well-formed for a normal device, broken for a parked one */
	const char *sneaky = "<flat-profile>{{#parked}}<open>{{/parked}}</flat-profile>";
	cr_assert_eq(vendor_templates_set(T, p, "device.xml", sneaky, strlen(sneaky), err,
	                                  sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "parked"), "%s", err);

	const char *leaky = "<flat-profile><x>{{line.password}}</x></flat-profile>";
	cr_assert_eq(vendor_templates_set(T, p, "bootstrap.xml", leaky, strlen(leaky), err,
	                                  sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "'line.password' is not available in a shared file"), "%s", err);
	cr_assert_eq(vendor_templates_set(T, p, "nope.xml", leaky, strlen(leaky), err, sizeof(err)), -1);

	/* after the failures the old template still renders */
	cr_assert_eq(vendor_render_device(p, T, 0, &in, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(b.p, "<Password_1_ ua=\"na\">Xk4-pw</Password_1_>"));

	const char *good = "<flat-profile><User_ID_1_>{{line.sip_user}}</User_ID_1_></flat-profile>";
	cr_assert_eq(vendor_templates_set(T, p, "device.xml", good, strlen(good), err, sizeof(err)),
	             0, "%s", err);
	render_buf_reset(&b);
	cr_assert_eq(vendor_render_device(p, T, 0, &in, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(b.p, "<flat-profile><User_ID_1_>acme-201</User_ID_1_></flat-profile>");

	/* a static file is checked for well-formedness too */
	const struct vendor_profile *pc = vendor_profile_by_name("polycom");
	cr_assert_eq(vendor_template_check(pc, "000000000000.cfg", "<APPLICATION", 12, err,
	                                   sizeof(err)), -1);
	const char *master = "<APPLICATION CONFIG_FILES=\"x.cfg\"/>";
	cr_assert_eq(vendor_templates_set(T, pc, "000000000000.cfg", master, strlen(master), err,
	                                  sizeof(err)), 0, "%s", err);
	render_buf_reset(&b);
	cr_assert_eq(vendor_render_shared(pc, T, 0, NULL, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(b.p, master);
	render_buf_free(&b);
}

Test(vendor, load_reports_the_failing_file)
{
	char *dir = tu_tmpdir();
	char err[512], path[512];
	struct vendor_templates *t = (struct vendor_templates *)1;
	cr_assert_not_null(dir);
	cr_assert_eq(vendor_templates_load(dir, dir, &t, err, sizeof(err)), -1);
	cr_assert_null(t);
	snprintf(path, sizeof(path), "%s/polycom/", dir);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
	tu_rmtree(dir);
}

/* A copy of the shipped templates and static files, in a new directory. */
static char *
copy_templates(void)
{
	char *dir = tu_tmpdir();
	char cmd[1024];

	cr_assert_not_null(dir);
	snprintf(cmd, sizeof(cmd), "cp -r templates provisioning %s/", dir);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	return dir;
}

static int
load_copy(const char *dir, char *err, size_t errlen)
{
	char tmpl[512], stat_dir[512];
	struct vendor_templates *t = NULL;
	int rc;

	snprintf(tmpl, sizeof(tmpl), "%s/templates", dir);
	snprintf(stat_dir, sizeof(stat_dir), "%s/provisioning", dir);
	rc = vendor_templates_load(tmpl, stat_dir, &t, err, errlen);
	cr_assert_eq(rc == 0, t != NULL);
	vendor_templates_free(t);
	return rc;
}

/* A template is read whole, up to VENDOR_FILE_MAX bytes; a larger file or
 * one that is not a regular file is refused and named. */
Test(vendor, load_refuses_a_template_too_large_or_not_a_file)
{
	char *dir = copy_templates();
	char err[512], path[512];
	FILE *f;

	cr_assert_eq(load_copy(dir, err, sizeof(err)), 0, "%s", err);

	snprintf(path, sizeof(path), "%s/templates/yealink/common.cfg", dir);
	f = fopen(path, "a");
	cr_assert_not_null(f);
	for (long i = 0; i <= VENDOR_FILE_MAX; i += 2)
		fputs("#\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(load_copy(dir, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_not_null(strstr(err, "larger than"), "%s", err);

	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(load_copy(dir, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
	tu_rmtree(dir);
}

Test(vendor, master_file_lists_line_and_common_only, .init = load, .fini = unload)
{
	const struct vendor_profile *p = vendor_profile_by_name("polycom");
	struct vendor_file_match m;
	struct render_buf b = {0};
	char err[256];
	cr_assert_eq(vendor_match_file("000000000000.cfg", &m), 1);
	cr_assert_eq(vendor_render_shared(p, T, m.file_index, NULL, &b, err, sizeof(err)), 0, "%s", err);
	xmlDocPtr d = parse(b.p, b.len);
	expect(d, "/APPLICATION/@CONFIG_FILES", "[PHONE_MAC_ADDRESS]-line.cfg, common.cfg");
	xmlFreeDoc(d);
	cr_assert_null(strstr(b.p, "-phone.cfg\""));
	render_buf_free(&b);
}

/* ---- file names --------------------------------------------------------- */

struct name_case {
	const char *name;
	const char *profile;
	enum vendor_kind kind;
	size_t index;
	const char *mac_or_model;
};

Test(vendor, match_every_name_form)
{
	const struct name_case cases[] = {
	    {"0004f2a1b2c3-line.cfg", "polycom", VENDOR_DEVICE, 0, MAC},
	    {"0004F2A1B2C3-LINE.cfg", "polycom", VENDOR_DEVICE, 0, MAC},
	    {"000000000000.cfg", "polycom", VENDOR_SHARED, 0, ""},
	    {"common.cfg", "polycom", VENDOR_SHARED, 1, ""},
	    {"0004f2a1b2c3.cfg", "yealink", VENDOR_DEVICE, 0, MAC},
	    {"0004F2a1B2c3.cfg", "yealink", VENDOR_DEVICE, 0, MAC},
	    {"y000000000066.cfg", "yealink", VENDOR_SHARED, 0, "066"},
	    {"Y000000000000.CFG", "yealink", VENDOR_SHARED, 0, "000"},
	    {"0004f2a1b2c3.xml", "cisco-mpp", VENDOR_DEVICE, 0, MAC},
	    {"spa502G.cfg", "cisco-mpp", VENDOR_SHARED, 0, "502G"},
	    {"SPA502G.CFG", "cisco-mpp", VENDOR_SHARED, 0, "502G"},
	    {"spa525G2.xml", "cisco-mpp", VENDOR_SHARED, 1, "525G2"},
	    {"CP-8841-3PCC.xml", "cisco-mpp", VENDOR_SHARED, 2, "8841-3PCC"},
	    {"cp-7841-3pcc.XML", "cisco-mpp", VENDOR_SHARED, 2, "7841-3pcc"},
	    {"8841-3PCC.xml", "cisco-mpp", VENDOR_SHARED, 3, "8841"},
	    {"8861-3pcc.xml", "cisco-mpp", VENDOR_SHARED, 3, "8861"},
	    {"SEP0004F2A1B2C3.cnf.xml", "cisco-enterprise", VENDOR_DEVICE, 0, MAC},
	    {"sep0004f2a1b2c3.CNF.XML", "cisco-enterprise", VENDOR_DEVICE, 0, MAC},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vendor_file_match m;
		const struct name_case *c = &cases[i];
		cr_assert_eq(vendor_match_file(c->name, &m), 1, "%s: no match", c->name);
		cr_assert_str_eq(m.profile->name, c->profile, "%s", c->name);
		cr_assert_eq(m.kind, c->kind, "%s", c->name);
		cr_assert_eq(m.file_index, c->index, "%s", c->name);
		if (c->kind == VENDOR_DEVICE) {
			cr_assert_str_eq(m.mac, c->mac_or_model, "%s", c->name);
			cr_assert_str_eq(m.model, "");
		} else {
			cr_assert_str_eq(m.model, c->mac_or_model, "%s", c->name);
			cr_assert_str_eq(m.mac, "");
		}
		/* the same within the profile itself */
		struct vendor_file_match m2;
		cr_assert_eq(vendor_profile_match_file(m.profile, c->name, &m2), 1);
		cr_assert_eq(m2.file_index, m.file_index);
	}
}

Test(vendor, names_nobody_serves)
{
	const char *none[] = {
	    "0004f2a1b2c3-app.log",
	    "0004f2a1b2c3-boot.log", "0004f2a1b2c3-directory.xml", "000000000000-directory.xml",
	    "0004f2a1b2c3-license.cfg", "0004f2a1b2c3-calls.xml", "sip.ld",
	    "0004f2a1b2c-line.cfg", "0004f2a1b2cg-line.cfg", "0004f2a1b2c3d.cfg",
	    "CTLSEP0004F2A1B2C3.tlv", "ITLFile.tlv", "XMLDefault.cnf.xml",
	    "SEP0004F2A1B2C3.cnf", "y00000000066.cfg", "y000000000abc.cfg",
	    "y0000000000066.cfg", "spa.cfg", "CP-.xml", "-3PCC.xml", "8841.xml",
	    "0004f2a1b2c3.boot", "y000000000000.boot", "index.html", "common.cfg.bak",
	};
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		struct vendor_file_match m;
		cr_assert_eq(vendor_match_file(none[i], &m), 0, "%s matched %s", none[i],
		             m.profile ? m.profile->name : "?");
		cr_assert_eq(m.kind, VENDOR_NONE);
	}
}

Test(vendor, one_name_two_families)
{
	/* <mac>.cfg is Yealink's; for a Polycom device it must not match */
	struct vendor_file_match m;
	cr_assert_eq(vendor_match_file("0004f2a1b2c3.cfg", &m), 1);
	cr_assert_str_eq(m.profile->name, "yealink");
	cr_assert_eq(vendor_profile_match_file(vendor_profile_by_name("polycom"), "0004f2a1b2c3.cfg",
	                                       &m), 0);
	cr_assert_eq(vendor_profile_match_file(vendor_profile_by_name("cisco-mpp"), "common.cfg", &m), 0);
}

Test(vendor, traversal_and_non_plain_names_are_refused)
{
	char longname[VENDOR_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	const char *bad[] = {
	    "", ".", "..", "../x", "..\\x", "x/../y", "a/b", "/etc/passwd", "a\\b",
	    "0004f2a1b2c3/../common.cfg", "../0004f2a1b2c3.cfg", "common..cfg",
	    ".hidden", "x\ny", "x\ty", "x\x01y", "x\x7fy", "0004f2a1b2c3.cfg ",
	    " common.cfg", "%2e%2e", "%2e%2e%2fcommon.cfg", "common.cfg%00",
	    "c\xc3\xb6mmon.cfg", "file:common.cfg", "common.cfg?x=1", longname,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vendor_file_match m;
		cr_assert(!vendor_file_name_ok(bad[i]), "[%s] accepted", bad[i]);
		cr_assert_eq(vendor_match_file(bad[i], &m), -1, "[%s]", bad[i]);
		cr_assert_eq(vendor_profile_match_file(vendor_registry[0], bad[i], &m), -1);
	}
	/* a NUL inside the name ends it: the part before must stand alone */
	const char withnul[] = "common.cfg\0/../../etc/passwd";
	struct vendor_file_match m;
	cr_assert_eq(vendor_match_file(withnul, &m), 1);
	cr_assert(!vendor_file_name_ok(NULL));
	longname[VENDOR_NAME_MAX] = '\0';
	cr_assert(vendor_file_name_ok(longname));
}

Test(vendor, canonical_file_names)
{
	char buf[64];
	const struct vendor_profile *ent = vendor_profile_by_name("cisco-enterprise");
	cr_assert_eq(vendor_file_name(&ent->device_files[0], "0004F2a1b2c3", NULL, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "SEP0004F2A1B2C3.cnf.xml");
	const struct vendor_profile *pc = vendor_profile_by_name("polycom");
	cr_assert_eq(vendor_file_name(&pc->device_files[0], "00:04:F2:A1:B2:C3", NULL, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "0004f2a1b2c3-line.cfg");
	cr_assert_eq(vendor_file_name(&pc->device_files[0], NULL, NULL, buf, sizeof(buf)), -1);
	cr_assert_eq(vendor_file_name(&pc->device_files[0], "0004f2a1b2", NULL, buf, sizeof(buf)), -1);
	/* exactly fitting, then one byte short */
	cr_assert_eq(vendor_file_name(&pc->device_files[0], MAC, NULL, buf, 22), 0);
	cr_assert_eq(vendor_file_name(&pc->device_files[0], MAC, NULL, buf, 21), -1);
	const struct vendor_profile *y = vendor_profile_by_name("yealink");
	cr_assert_eq(vendor_file_name(&y->shared_files[0], NULL, "108", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "y000000000108.cfg");
	cr_assert_eq(vendor_file_name(&y->shared_files[0], NULL, "1080", buf, sizeof(buf)), -1);
	cr_assert_eq(vendor_file_name(&y->shared_files[0], NULL, "10a", buf, sizeof(buf)), -1);
	const struct vendor_profile *mpp = vendor_profile_by_name("cisco-mpp");
	cr_assert_eq(vendor_file_name(&mpp->shared_files[0], NULL, "../x", buf, sizeof(buf)), -1);
	/* every canonical name maps back to its own file */
	for (size_t k = 0; k < vendor_registry_len; k++) {
		const struct vendor_profile *p = vendor_registry[k];
		for (size_t i = 0; i < p->n_device_files; i++) {
			struct vendor_file_match m;
			cr_assert_eq(vendor_file_name(&p->device_files[i], MAC, NULL, buf, sizeof(buf)), 0);
			cr_assert_eq(vendor_profile_match_file(p, buf, &m), 1, "%s", buf);
			cr_assert_eq(m.kind, VENDOR_DEVICE);
			cr_assert_eq(m.file_index, i);
		}
	}
}

/* The registry is generated from the vendor files (scripts/mkregistry.sh):
 * every family appears once, found by its name and index, in increasing
 * match_priority (the order file names and User-Agents are matched in). */
Test(vendor, registry_is_consistent)
{
	const char *names[] = {"polycom", "yealink", "cisco-mpp", "cisco-enterprise",
	                       "grandstream"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_assert_not_null(vendor_profile_by_name(names[i]), "%s", names[i]);
	cr_assert_geq(vendor_registry_len, sizeof(names) / sizeof(names[0]));
	for (size_t i = 0; i < vendor_registry_len; i++) {
		const struct vendor_profile *p = vendor_registry[i];
		cr_assert_eq(vendor_profile_by_name(p->name), p, "%s", p->name);
		cr_assert_eq(vendor_profile_index(p), i, "%s", p->name);
		if (i > 0)
			cr_assert_lt(vendor_registry[i - 1]->match_priority, p->match_priority,
			             "%s before %s", vendor_registry[i - 1]->name, p->name);
		cr_assert_not_null(p->ops->parse_user_agent);
		for (size_t k = 0; k < p->n_device_files; k++)
			cr_assert(strstr(p->device_files[k].pattern, "{mac}") ||
			          strstr(p->device_files[k].pattern, "{MAC}"));
		for (size_t k = 0; k < p->n_shared_files; k++)
			cr_assert(!strstr(p->shared_files[k].pattern, "{mac}") &&
			          !strstr(p->shared_files[k].pattern, "{MAC}"));
	}
	cr_assert_null(vendor_profile_by_name("snom"));
	cr_assert_null(vendor_profile_by_name(NULL));
	struct vendor_profile copy = *vendor_registry[0];
	cr_assert_eq(vendor_profile_index(&copy), SIZE_MAX, "not a registered profile");
	cr_assert_str_eq(vendor_transport(vendor_profile_by_name("polycom"), "udp"), "UDPOnly");
	cr_assert_str_eq(vendor_transport(vendor_profile_by_name("yealink"), "tls"), "2");
	cr_assert_str_eq(vendor_transport(vendor_profile_by_name("cisco-mpp"), "Tcp"), "TCP");
	cr_assert_str_eq(vendor_transport(vendor_profile_by_name("cisco-mpp"), NULL), "");
	cr_assert_null(vendor_transport(vendor_profile_by_name("cisco-mpp"), "ws"));
}

/* ---- User-Agent --------------------------------------------------------- */

struct ua_case {
	const char *ua, *profile, *model, *firmware, *mac;
};

Test(vendor, user_agents)
{
	const struct ua_case cases[] = {
	    {"FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application", "polycom",
	     "VVX_500", "5.9.7.4477", ""},
	    {"FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Updater", "polycom", "VVX_500",
	     "5.9.7.4477", ""},
	    {"FileTransport PolycomSoundPointIP-SPIP_550-UA/4.0.15.1047 (SN:0004f2aabbcc) "
	     "Type/Application",
	     "polycom", "SPIP_550", "4.0.15.1047", "0004f2aabbcc"},
	    {"FileTransport PolyEdge-Edge_E450-UA/8.0.1.1234 Type/Application", "polycom",
	     "Edge_E450", "8.0.1.1234", ""},
	    {"PolycomVVX-VVX_411-UA/6.4.0.1000", "polycom", "VVX_411", "6.4.0.1000", ""},
	    {"Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37", "yealink", "T46G", "28.72.0.1",
	     "0015654aa937"},
	    {"Yealink SIP-T56A 58.80.0.25 001565f429a4", "yealink", "T56A", "58.80.0.25",
	     "001565f429a4"},
	    {"Yealink SIP-T38G  38.70.0.185 00:15:65:12:34:56", "yealink", "T38G", "38.70.0.185",
	     "001565123456"},
	    {"Yealink  W60B\t77.83.0.10", "yealink", "W60B", "77.83.0.10", ""},
	    {"Cisco-CP-8841-3PCC/11.0 (00562b043615)", "cisco-mpp", "CP-8841-3PCC", "11.0",
	     "00562b043615"},
	    {"Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)", "cisco-mpp", "SPA508G", "7.4.4",
	     "0002fdff2103"},
	    {"Cisco/SPA504G-7.5.5 (CBT141400UK)", "cisco-mpp", "SPA504G", "7.5.5", ""},
	    {"Cisco-CP8845/12.8.1", "cisco-enterprise", "CP8845", "12.8.1", ""},
	    /* Grandstream: both forms seen in its provisioning requests */
	    {"Grandstream GXP2170 1.0.11.3", "grandstream", "GXP2170", "1.0.11.3", ""},
	    {"Grandstream Model HW GXP2160 SW 1.0.9.132 DevId 000b8286abcd", "grandstream",
	     "GXP2160", "1.0.9.132", "000b8286abcd"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vendor_ua u;
		const struct ua_case *c = &cases[i];
		const struct vendor_profile *p = vendor_parse_user_agent(c->ua, &u);
		cr_assert_not_null(p, "%s: not recognised", c->ua);
		cr_assert_str_eq(p->name, c->profile, "%s", c->ua);
		cr_assert_str_eq(u.model, c->model, "%s", c->ua);
		cr_assert_str_eq(u.firmware, c->firmware, "%s", c->ua);
		cr_assert_str_eq(u.mac, c->mac, "%s", c->ua);
	}
	const char *unknown[] = {"", "curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)",
	                         "Wget/1.21", "Yealinkish T46G", "Cisco", "Cisco-",
	                         "Polycom without a version"};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		struct vendor_ua u;
		cr_assert_null(vendor_parse_user_agent(unknown[i], &u), "[%s] recognised", unknown[i]);
		cr_assert_str_eq(u.model, "");
		cr_assert_str_eq(u.mac, "");
	}
	struct vendor_ua u;
	cr_assert_null(vendor_parse_user_agent(NULL, &u));
}

/* ---- NOTIFY ------------------------------------------------------------- */

Test(vendor, notify_events_and_bodies)
{
	cr_assert_str_eq(vendor_profile_by_name("polycom")->notify_event, "check-sync");
	cr_assert_str_eq(vendor_profile_by_name("yealink")->notify_event, "check-sync;reboot=true");
	cr_assert_str_eq(vendor_profile_by_name("cisco-mpp")->notify_event, "resync");
	const struct vendor_profile *ent = vendor_profile_by_name("cisco-enterprise");
	cr_assert_str_eq(ent->notify_event, "service-control");
	cr_assert_str_eq(ent->notify_content_type, "text/plain");

	char buf[512];
	struct vendor_notify in = {.register_call_id = "abc123@10.0.0.5", .version = 3};
	int n = vendor_notify_body(ent, &in, buf, sizeof(buf));
	/* zero stamps in the GUID form, Subscription-State active: what the
	 * usecallmanager patches send (VENDORS.md, Cisco enterprise) */
	cr_assert_str_eq(buf, "action=restart\r\n"
	                      "RegisterCallId={abc123@10.0.0.5}\r\n"
	                      "ConfigVersionStamp={00000000-0000-0000-0000-000000000000}\r\n"
	                      "DialplanVersionStamp={00000000-0000-0000-0000-000000000000}\r\n"
	                      "SoftkeyVersionStamp={00000000-0000-0000-0000-000000000000}\r\n");
	cr_assert_str_eq(ent->notify_subscription_state, "active");
	cr_assert_eq(n, (int)strlen(buf));
	in.register_call_id = "x}\r\naction=reset";
	cr_assert_eq(vendor_notify_body(ent, &in, buf, sizeof(buf)), -1);
	in.register_call_id = NULL;
	cr_assert_gt(vendor_notify_body(ent, &in, buf, sizeof(buf)), 0);
	cr_assert_not_null(strstr(buf, "RegisterCallId={}\r\n"));
	cr_assert_eq(vendor_notify_body(ent, &in, buf, 20), -1);
	for (size_t k = 0; k < vendor_registry_len; k++) {
		if (vendor_registry[k] == ent)
			continue;
		cr_assert_null(vendor_registry[k]->notify_subscription_state); /* terminated */
		cr_assert_null(vendor_registry[k]->notify_content_type);
		cr_assert_eq(vendor_notify_body(vendor_registry[k], &in, buf, sizeof(buf)), 0);
		cr_assert_str_eq(buf, "");
	}
}

/* Yealink: a template that sets sip.notify_reboot_enable = 0 makes the
 * resync NOTIFY ask for no reboot; the others keep their own event. */
Test(vendor, notify_event_follows_the_templates, .init = load, .fini = unload)
{
	const struct vendor_profile *y = vendor_profile_by_name("yealink");
	const struct vendor_profile *pc = vendor_profile_by_name("polycom");
	const char *common = "#!version:1.0.0.1\nlocal_time.ntp_server1 = pool.ntp.org\n"
	                     "sip.notify_reboot_enable  =  0\n";
	const char *other = "#!version:1.0.0.1\n# sip.notify_reboot_enable = 0\n"
	                    "sip.notify_reboot_enable = 1\n";
	char err[256];

	/* the default common file asks for no reboot (issue: every move
	 * rebooted the phone) */
	cr_assert_str_eq(vendor_notify_event(y, T), "check-sync;reboot=false");
	cr_assert_str_eq(vendor_notify_event(pc, T), "check-sync");
	cr_assert_eq(vendor_templates_set(T, y, "common.cfg", other, strlen(other), err,
	                                  sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(vendor_notify_event(y, T), "check-sync;reboot=true");
	cr_assert_eq(vendor_templates_set(T, y, "common.cfg", common, strlen(common), err,
	                                  sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(vendor_notify_event(y, T), "check-sync;reboot=false");
	cr_assert_eq(vendor_templates_set(T, y, "common.cfg", other, strlen(other), err,
	                                  sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(vendor_notify_event(y, T), "check-sync;reboot=true",
	                 "a comment or another value does not count");
	cr_assert_str_eq(vendor_notify_event(y, NULL), "check-sync;reboot=true");
}

/* The publisher derives a device's file names from its MAC alone (it keeps
 * no names): every per-device pattern must be nameable without a model. */
Test(vendor, per_device_names_need_only_the_mac)
{
	for (size_t k = 0; k < vendor_registry_len; k++) {
		const struct vendor_profile *p = vendor_registry[k];

		for (size_t i = 0; i < p->n_device_files; i++) {
			char name[VENDOR_NAME_MAX + 1];
			struct vendor_file_match m;

			cr_assert_eq(vendor_file_name(&p->device_files[i], "0004f2abcdef", NULL, name,
			                              sizeof(name)), 0, "%s: %s", p->name,
			             p->device_files[i].pattern);
			cr_assert_eq(vendor_profile_match_file(p, name, &m), 1, "%s", name);
			cr_assert_eq(m.kind, VENDOR_DEVICE);
			cr_assert_str_eq(m.mac, "0004f2abcdef");
		}
	}
}

/* ---- values a profile can render (vendor_field_check) ------------------- */

/* Values every profile must refuse: what XML 1.0 cannot carry, Unicode
 * noncharacters, control characters, and broken UTF-8. */
static const char *const unrenderable[] = {
	"A\xef\xbf\xbf",         /* U+FFFF */
	"\xef\xbf\xbe",          /* U+FFFE */
	"x\xef\xb7\x90",         /* U+FDD0 */
	"\xef\xb7\xaf",          /* U+FDEF */
	"\xf0\x9f\xbf\xbf",      /* U+1FFFF */
	"\xf4\x8f\xbf\xbe",      /* U+10FFFE */
	"a\x01z",                /* C0 control */
	"tab\there",             /* TAB: values are one line */
	"del\x7f",               /* DEL */
	"c1\xc2\x85",            /* U+0085, a C1 control */
	"\xed\xa0\x80",          /* a UTF-16 surrogate in UTF-8 */
	"\xc0\xaf",              /* overlong '/' */
	"\xe2\x82",              /* truncated */
	"\xf5\x80\x80\x80",      /* beyond U+10FFFF */
};

/* Values every profile renders. */
static const char *const renderable_values[] = {
	"Alice", "Zo\xc3\xab & <Bob> \"'$", "\xe2\x98\x8e \xf0\x9f\x98\x80", "\xef\xbf\xbd",
	"\xef\xb7\x8f\xef\xb7\xb0", /* U+FDCF, U+FDF0: next to the noncharacters */
	"\xf0\x9f\xbf\xbd",         /* U+1FFFD */
};

Test(vendor, field_check_refuses_what_no_phone_can_take)
{
	char err[200];

	for (size_t i = 0; i < sizeof(unrenderable) / sizeof(*unrenderable); i++) {
		err[0] = '\0';
		cr_expect_eq(vendor_field_check(NULL, "display_name", unrenderable[i], err,
		                                sizeof(err)), -1, "value %zu passed", i);
		cr_expect(err[0] != '\0', "value %zu: no reason", i);
		for (size_t k = 0; k < vendor_registry_len; k++)
			cr_expect_eq(vendor_field_check(vendor_registry[k], "label", unrenderable[i],
			                                err, sizeof(err)), -1,
			             "value %zu passed for %s", i, vendor_registry[k]->name);
	}
	for (size_t i = 0; i < sizeof(renderable_values) / sizeof(*renderable_values); i++)
		cr_expect_eq(vendor_field_check(NULL, "display_name", renderable_values[i], err,
		                                sizeof(err)), 0, "value %zu refused: %s", i, err);
	cr_expect_eq(vendor_field_check(NULL, "display_name", NULL, err, sizeof(err)), 0);
	cr_expect_eq(vendor_field_check(NULL, "display_name", "", err, sizeof(err)), 0);
}

/* What the check lets through renders on every profile, as XML well-formed:
 * the API refuses nothing a phone could take and lets nothing through that
 * one cannot. */
Test(vendor, what_the_field_check_passes_renders_everywhere, .init = load, .fini = unload)
{
	struct render_buf b = {0};
	char err[256];

	for (size_t i = 0; i < sizeof(renderable_values) / sizeof(*renderable_values); i++) {
		struct render_input in = case_input("normal");

		in.line.display_name = renderable_values[i];
		in.line.label = renderable_values[i];
		in.line.password = renderable_values[i];
		for (size_t k = 0; k < vendor_registry_len; k++) {
			const struct vendor_profile *p = vendor_registry[k];

			for (size_t f = 0; f < p->n_device_files; f++) {
				render_buf_reset(&b);
				cr_expect_eq(vendor_render_device(p, T, f, &in, &b, err, sizeof(err)), 0,
				             "value %zu on %s: %s", i, p->name, err);
			}
		}
	}
	/* and U+FFFF, which only the check stops, breaks an XML profile */
	struct render_input in = case_input("normal");
	in.line.display_name = unrenderable[0];
	render_buf_reset(&b);
	cr_expect_eq(vendor_render_device(vendor_profile_by_name("polycom"), T, 0, &in, &b, err,
	                                  sizeof(err)), -1);
	render_buf_free(&b);
}

/* A profile's limits are data: a table of fields and their lengths in
 * characters (not bytes). */
Test(vendor, field_limits_count_characters_and_name_the_profile)
{
	static const struct vendor_field_limit limits[] = {
		{ "display_name", 5 },
		{ "parking.sip_user", 3 },
		{ NULL, 0 },
	};
	struct vendor_profile fake = *vendor_profile_by_name("yealink");
	char err[200];

	fake.name = "fake-family";
	fake.field_limits = limits;
	cr_expect_eq(vendor_field_max(&fake, "display_name"), 5);
	cr_expect_eq(vendor_field_max(&fake, "label"), 0);
	cr_expect_eq(vendor_field_max(NULL, "label"), 0);
	/* 5 characters in 10 bytes */
	cr_expect_eq(vendor_field_check(&fake, "display_name", "Zo\xc3\xab\xf0\x9f\x98\x80\xe2\x98\x8e",
	                                err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(vendor_field_check(&fake, "display_name", "Zo\xc3\xab\xf0\x9f\x98\x80xy",
	                                err, sizeof(err)), -1);
	cr_expect(strstr(err, "5 characters") != NULL && strstr(err, "fake-family") != NULL,
	          "%s", err);
	cr_expect(strstr(err, "Zo") == NULL, "the value is quoted: %s", err);
	cr_expect_eq(vendor_field_check(&fake, "parking.sip_user", "abcd", err, sizeof(err)), -1);
	cr_expect_eq(vendor_field_check(&fake, "label", "a long label is fine here", err,
	                                sizeof(err)), 0);
}

/* ---- the phones' own rules (issue: every family boots right) ----------- */

/* Every rule the MPP bootstrap writes names a file path that begins with
 * '/': a rule is "[scheme://][server[:port]]/filepath" (Cisco IP Phone
 * 7800/8800 Multiplatform Phones Provisioning Guide, "Profile Rule
 * syntax"; VENDORS.md), and "$MA.xml" without the slash is never
 * fetched. */
Test(vendor, cisco_mpp_rules_have_absolute_file_paths, .init = load, .fini = unload)
{
	const struct vendor_profile *p = vendor_profile_by_name("cisco-mpp");
	struct render_buf b = {0};
	char err[256];
	size_t rules = 0;

	for (size_t i = 0; i < p->n_shared_files; i++) {
		render_buf_reset(&b);
		cr_assert_eq(vendor_render_shared(p, T, i, "8841", &b, err, sizeof(err)), 0, "%s", err);
		xmlDocPtr d = parse(b.p, b.len);
		for (xmlNodePtr n = xmlDocGetRootElement(d)->children; n; n = n->next) {
			const char *name = (const char *)n->name;
			size_t nl = strlen(name);
			if (n->type != XML_ELEMENT_NODE ||
			    !((nl > 5 && strcmp(name + nl - 5, "_Rule") == 0) || strstr(name, "_Rule_")))
				continue;
			xmlChar *v = xmlNodeGetContent(n);
			const char *s = (const char *)v;
			if (*s == '[') /* options such as [--key ...] */
				s = strchr(s, ']') ? strchr(s, ']') + 1 : s;
			const char *scheme = strstr(s, "://");
			if (scheme != NULL)
				s = strchr(scheme + 3, '/') ? strchr(scheme + 3, '/') : "";
			cr_assert_eq(*s, '/', "%s: '%s' has no absolute file path", name, (char *)v);
			rules++;
			xmlFree(v);
		}
		xmlFreeDoc(d);
	}
	cr_assert_geq(rules, p->n_shared_files, "each bootstrap writes Profile_Rule_B");
	render_buf_free(&b);
}

/* Cisco enterprise: transportLayerProtocol 1 TCP, 2 UDP, 3 TLS from the
 * line's transport, UDP when unset (VENDORS.md; wazo-provd's cisco-sip
 * base.tpl renders the element as a child of <device>). */
Test(vendor, cisco_enterprise_transport_layer_protocol, .init = load, .fini = unload)
{
	const struct vendor_profile *p = vendor_profile_by_name("cisco-enterprise");
	static const char *const tr[][2] = {
		{"udp", "2"}, {"tcp", "1"}, {"tls", "3"}, {"TLS", "3"}, {NULL, "2"},
	};
	struct render_buf b = {0};
	char err[256];

	for (size_t i = 0; i < sizeof(tr) / sizeof(tr[0]); i++) {
		struct render_input in = case_input("normal");
		in.line.transport = tr[i][0];
		render_buf_reset(&b);
		cr_assert_eq(vendor_render_device(p, T, 0, &in, &b, err, sizeof(err)), 0, "%s", err);
		xmlDocPtr d = parse(b.p, b.len);
		expect(d, "/device/transportLayerProtocol", tr[i][1]);
		xmlFreeDoc(d);
	}
	render_buf_free(&b);
}

/* Cisco enterprise: every case has exactly one featureID 9 line (an empty
 * <sipLines> is not a valid configuration, VENDORS.md); the parked phone
 * without a parking account shows the parked label and no credentials. */
Test(vendor, cisco_enterprise_always_has_one_line, .init = load, .fini = unload)
{
	const struct vendor_profile *p = vendor_profile_by_name("cisco-enterprise");
	struct render_buf b = {0};

	for (size_t c = 0; c < NCASES; c++) {
		render_case(p, 0, CASES[c], &b);
		xmlDocPtr d = parse(b.p, b.len);
		expect(d, "/device/sipProfile/sipLines/line[@button='1']/featureID", "9");
		cr_assert_eq(xpath_count(d, "/device/sipProfile/sipLines/line[featureID='9']"), 1,
		             "%s", CASES[c]);
		xmlFreeDoc(d);
	}
	render_case(p, 0, "parked-none", &b);
	xmlDocPtr d = parse(b.p, b.len);
	expect(d, "/device/sipProfile/sipLines/line/featureLabel", "Dial *30 to log in");
	expect(d, "/device/sipProfile/sipLines/line/name", "");
	expect(d, "/device/sipProfile/sipLines/line/authPassword", "");
	expect(d, "/device/devicePool/callManagerGroup/members/member/callManager/processNodeName",
	       "pbx.acme.test");
	xmlFreeDoc(d);
	render_buf_free(&b);
}

/* Yealink: the common file renders sip.notify_reboot_enable = 0 (a
 * check-sync reboots only with reboot=true: Yealink CP969 admin guide;
 * wazo-provd's v80 template) and static.auto_provision.custom.protect = 0
 * (local edits do not survive provisioning: VENDORS.md); every account
 * but the first is blanked (omitted keys keep their values; T4xU/T5x
 * phones have 16 accounts) in the common file, which the phone reads
 * before <mac>.cfg, and the device file never names them. */
Test(vendor, yealink_no_reboot_no_local_edits_other_accounts_blank, .init = load, .fini = unload)
{
	const struct vendor_profile *y = vendor_profile_by_name("yealink");
	struct render_buf b = {0};
	char err[256], want[96];

	cr_assert_eq(vendor_render_shared(y, T, 0, "066", &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(b.p, "\nsip.notify_reboot_enable = 0\n"));
	cr_assert_not_null(strstr(b.p, "\nstatic.auto_provision.custom.protect = 0\n"));
	for (int n = 2; n <= 16; n++) {
		static const char *const keys[] = {"enable = 0", "user_name = %NULL%",
		                                   "auth_name = %NULL%", "password = %NULL%",
		                                   "label = %NULL%"};
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			snprintf(want, sizeof(want), "\naccount.%d.%s\n", n, keys[k]);
			cr_assert_not_null(strstr(b.p, want), "%s missing", want + 1);
		}
	}
	for (size_t c = 0; c < NCASES; c++) {
		render_case(y, 0, CASES[c], &b);
		cr_assert_null(strstr(b.p, "\naccount.2."), "%s", CASES[c]);
	}
	render_buf_free(&b);
}

/* Polycom: the override files (<mac>-phone.cfg, <mac>-web.cfg) take
 * precedence over every server file (Polycom CX5100/UC software admin
 * guides, "Override Files") and the phone synchronizes its cached files
 * with the boot server at boot (SoundPoint IP admin guide, "Centralized
 * Configuration").  hotdeskd serves them empty for every case: no
 * parameter, nothing of any user. */
Test(vendor, polycom_override_files_are_served_empty, .init = load, .fini = unload)
{
	const struct vendor_profile *p = vendor_profile_by_name("polycom");
	struct render_buf b = {0};
	size_t found = 0;

	for (size_t i = 0; i < p->n_device_files; i++) {
		const char *pat = p->device_files[i].pattern;
		if (strcmp(pat, "{mac}-phone.cfg") != 0 && strcmp(pat, "{mac}-web.cfg") != 0)
			continue;
		found++;
		for (size_t c = 0; c < NCASES; c++) {
			render_case(p, i, CASES[c], &b);
			xmlDocPtr d = parse(b.p, b.len);
			xmlNodePtr root = xmlDocGetRootElement(d);
			cr_assert_str_eq((const char *)root->name, "PHONE_CONFIG");
			for (xmlNodePtr n = root; n != NULL; n = n->children ? n->children : n->next)
				if (n->type == XML_ELEMENT_NODE)
					cr_assert_null(n->properties, "%s: %s has parameters", pat,
					               (const char *)n->name);
			xmlFreeDoc(d);
			cr_assert_null(strstr(b.p, "acme"), "%s", pat);
		}
	}
	cr_assert_eq(found, 2);
	render_buf_free(&b);
}

/* The model files a factory-fresh phone asks for over TFTP (Yealink's
 * y000000000<code>.cfg, Cisco's /spa$PSN.cfg and /$PSN.xml) are listed per
 * shared file; each listed name maps back to that very file. */
Test(vendor, tftp_model_names_are_served_names)
{
	size_t names = 0;

	for (size_t k = 0; k < vendor_registry_len; k++) {
		const struct vendor_profile *p = vendor_registry[k];
		for (size_t i = 0; i < p->n_shared_files; i++) {
			const struct vendor_file *f = &p->shared_files[i];
			bool has_model = strstr(f->pattern, "{model}") || strstr(f->pattern, "{code}");
			cr_assert(!has_model || f->tftp_models != NULL, "%s lists no model", f->pattern);
			for (const char *const *m = f->tftp_models; m && *m; m++) {
				char name[VENDOR_NAME_MAX + 1];
				struct vendor_file_match fm;
				cr_assert_eq(vendor_file_name(f, NULL, *m, name, sizeof(name)), 0, "%s", *m);
				cr_assert_eq(vendor_match_file(name, &fm), 1, "%s", name);
				cr_assert_eq(fm.profile, p, "%s", name);
				cr_assert_eq(fm.kind, VENDOR_SHARED, "%s", name);
				cr_assert_str_eq(fm.model, *m, "%s", name);
				names++;
			}
		}
	}
	/* Yealink T46S and T54W, SPA502G, MPP 8841 in both spellings */
	cr_assert_geq(names, 17 + 11 * 2 + 17 * 2);
}

/* Cisco enterprise phones take at most 30 characters in name,
 * displayName, authName, authPassword and featureLabel (VENDORS.md): the
 * profile declares it, so the admin API refuses longer values. */
Test(vendor, cisco_enterprise_30_character_fields)
{
	const struct vendor_profile *ent = vendor_profile_by_name("cisco-enterprise");
	static const char *const fields[] = {"sip_user", "sip_password", "display_name", "label",
	                                     "parking.sip_user", "parking.sip_password"};
	char err[200];
	/* 30 characters, two of them two-byte: fits; one more does not */
	const char *ok30 = "\xc3\xa9\xc3\xa9" "abcdefghijklmnopqrstuvwxyz12";
	const char *bad31 = "\xc3\xa9\xc3\xa9" "abcdefghijklmnopqrstuvwxyz123";

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		cr_assert_eq(vendor_field_max(ent, fields[i]), 30, "%s", fields[i]);
		cr_assert_eq(vendor_field_check(ent, fields[i], ok30, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(vendor_field_check(ent, fields[i], bad31, err, sizeof(err)), -1, "%s",
		             fields[i]);
		cr_assert_not_null(strstr(err, "30"), "%s", err);
		cr_assert_null(strstr(err, "abcdefghijklmnopqrstuvwxyz"), "the value is quoted: %s", err);
	}
}

/* ---- the phone follows its user ------------------------------------------ */

/* CR/LF in any user or site setting: the key = value format cannot carry
 * it (the render fails, naming the variable, and nothing is written); XML
 * families escape it and a parser reads back exactly the value. */
Test(vendor, user_settings_line_breaks, .init = load, .fini = unload)
{
	struct render_buf b = {0};
	char err[256];
	const char *nl = "a\r\nkey = injected";

	for (int which = 0; which < 3; which++) {
		struct render_input in = case_input("normal");
		const char *var = which == 0 ? "key.label" : which == 1 ? "site.ntp_server"
		                                                         : "line.voicemail";
		if (which == 0)
			in.keys[1].label = nl;
		else if (which == 1)
			in.site.ntp_server = nl;
		else
			in.line.voicemail = nl;
		render_buf_reset(&b);
		cr_assert_eq(vendor_render_device(vendor_profile_by_name("yealink"), T, 0, &in, &b, err,
		                                  sizeof(err)), -1, "%s", var);
		cr_assert_not_null(strstr(err, var), "%s", err);
		cr_assert_eq(b.len, 0);
		for (size_t k = 0; k < vendor_registry_len; k++) {
			const struct vendor_profile *p = vendor_registry[k];
			if (p->device_files[0].mode == RENDER_KV)
				continue;
			render_buf_reset(&b);
			cr_assert_eq(vendor_render_device(p, T, 0, &in, &b, err, sizeof(err)), 0, "%s: %s",
			             p->name, err);
			cr_assert_null(strstr(b.p, "\r\nkey"), "%s: raw line break", p->name);
			xmlFreeDoc(parse(b.p, b.len));
		}
	}
	render_buf_free(&b);
}

/* A parked phone, with or without a parking account, keeps nothing of a
 * user: no line key, no voicemail, the site's language; every key slot and
 * account is blanked by the shared files (Yealink, Polycom, Cisco MPP), and
 * Cisco enterprise's whole file has only its one line. */
Test(vendor, parked_phone_keeps_no_user_settings, .init = load, .fini = unload)
{
	struct render_buf b = {0};
	char err[256];
	const char *parked[] = {"parked-parking", "parked-none"};

	for (size_t c = 0; c < 2; c++) {
		for (size_t k = 0; k < vendor_registry_len; k++) {
			render_case(vendor_registry[k], 0, parked[c], &b);
			cr_assert_null(strstr(b.p, "202"), "%s %s: a key", vendor_registry[k]->name, parked[c]);
			cr_assert_null(strstr(b.p, "Bob"), "%s %s", vendor_registry[k]->name, parked[c]);
			cr_assert_null(strstr(b.p, "*97"), "%s %s: voicemail", vendor_registry[k]->name,
			               parked[c]);
			cr_assert_null(strstr(b.p, "French"), "%s %s: the user's language",
			               vendor_registry[k]->name, parked[c]);
		}
		render_case(vendor_profile_by_name("yealink"), 0, parked[c], &b);
		cr_assert_not_null(strstr(b.p, "\nvoice_mail.number.1 = %NULL%\n"));
		cr_assert_not_null(strstr(b.p, "\nlang.gui = German\n"));
		cr_assert_null(strstr(b.p, "linekey."));
		render_case(vendor_profile_by_name("polycom"), 0, parked[c], &b);
		cr_assert_not_null(strstr(b.p, "msg.mwi.1.callBackMode=\"disabled\""));
		cr_assert_not_null(strstr(b.p, "lcl.ml.lang=\"German_Germany\""));
	}
	/* the shared files blank every slot a user's key can take */
	render_buf_reset(&b);
	cr_assert_eq(vendor_render_shared(vendor_profile_by_name("yealink"), T, 0, "066", &b, err,
	                                  sizeof(err)), 0, "%s", err);
	for (int n = 2; n <= 1 + RENDER_MAX_KEYS; n++) {
		char want[64];
		snprintf(want, sizeof(want), "\nlinekey.%d.type = 0\nlinekey.%d.value = %%NULL%%\n", n, n);
		cr_assert_not_null(strstr(b.p, want), "%s", want);
	}
	const struct vendor_profile *pc = vendor_profile_by_name("polycom");
	for (size_t i = 0; i < pc->n_shared_files; i++) {
		if (strcmp(pc->shared_files[i].pattern, "common.cfg") != 0)
			continue;
		render_buf_reset(&b);
		cr_assert_eq(vendor_render_shared(pc, T, i, NULL, &b, err, sizeof(err)), 0, "%s", err);
		for (int n = 1; n <= RENDER_MAX_KEYS; n++) {
			char want[64];
			snprintf(want, sizeof(want), "attendant.resourceList.%d.address=\"\"", n);
			cr_assert_not_null(strstr(b.p, want), "%s", want);
		}
	}
	const struct vendor_profile *mpp = vendor_profile_by_name("cisco-mpp");
	render_buf_reset(&b);
	cr_assert_eq(vendor_render_shared(mpp, T, 0, "502G", &b, err, sizeof(err)), 0, "%s", err);
	for (int n = 2; n <= 1 + RENDER_MAX_KEYS; n++) {
		char want[96];
		snprintf(want, sizeof(want), "<Extended_Function_%d_ ua=\"na\"></Extended_Function_%d_>",
		         n, n);
		cr_assert_not_null(strstr(b.p, want), "%s", want);
	}
	render_buf_free(&b);
}

/* What the user's keys become, per family (sources in the templates'
 * comments: Yealink DSS key types 16 BLF / 13 speed dial; Cisco MPP
 * Extended_Function fnc=blf+sd / fnc=sd; Polycom attendant.resourceList;
 * Cisco enterprise featureID 21 speed dial). */
Test(vendor, user_keys_per_family, .init = load, .fini = unload)
{
	struct render_buf b = {0};

	render_case(vendor_profile_by_name("yealink"), 0, "normal", &b);
	cr_assert_not_null(strstr(b.p, "\nlinekey.2.type = 16\nlinekey.2.line = 1\n"
	                               "linekey.2.value = 202\nlinekey.2.label = Bob\n"));
	cr_assert_not_null(strstr(b.p, "\nlinekey.3.type = 13\n"));
	cr_assert_not_null(strstr(b.p, "\nlinekey.4.label = %NULL%\n"));
	cr_assert_not_null(strstr(b.p, "\nlocal_time.time_zone = +1\n"));

	render_case(vendor_profile_by_name("cisco-mpp"), 0, "normal", &b);
	xmlDocPtr d = parse(b.p, b.len);
	expect(d, "/flat-profile/Extended_Function_2_", "fnc=blf+sd;sub=202@pbx.acme.test");
	expect(d, "/flat-profile/Extended_Function_3_", "fnc=sd;ext=5551234@pbx.acme.test");
	expect(d, "/flat-profile/Short_Name_2_", "Bob");
	expect(d, "/flat-profile/Voice_Mail_Number", "*97");
	expect(d, "/flat-profile/Time_Zone", "GMT+01:00");
	expect(d, "/flat-profile/Daylight_Saving_Time_Rule", "start=3/-1/7/2;end=10/-1/7/3;save=1");
	xmlFreeDoc(d);

	render_case(vendor_profile_by_name("polycom"), 0, "hostile", &b);
	d = parse(b.p, b.len);
	expect(d, "//attendant/@attendant.resourceList.2.label", "A&B <C> \"D\" 'E' $HOME Zoë");
	expect(d, "//attendant/@attendant.resourceList.1.label", long_label);
	expect(d, "//tcpIpApp/@tcpIpApp.sntp.gmtOffset", "-19800");
	expect(d, "//tcpIpApp/@tcpIpApp.sntp.address", "ntp<&>\"'$x");
	xmlFreeDoc(d);

	render_case(vendor_profile_by_name("cisco-enterprise"), 0, "normal", &b);
	d = parse(b.p, b.len);
	expect(d, "/device/sipProfile/sipLines/line[@button='3']/featureID", "21");
	expect(d, "/device/sipProfile/sipLines/line[@button='3']/speedDialNumber", "5551234");
	expect(d, "/device/sipProfile/sipLines/line[@button='1']/messagesNumber", "*97");
	expect(d, "/device/userLocale/langCode", "fr_FR");
	expect(d, "/device/devicePool/dateTimeSetting/ntps/ntp/name", "ntp.acme.test");
	xmlFreeDoc(d);
	render_buf_free(&b);
}

/* Grandstream (the fifth family: src/vendor_grandstream.c and its
 * template only): cfg<mac>.xml with the P-values of the Grandstream GXP
 * admin guide (P271 active, P47 server, P130 transport 0/1/2, P35 user,
 * P36 auth ID, P34 password, P3 display name, P270 account name, P33
 * voicemail, P30 NTP, P1362 language); a parked phone without a parking
 * account has its account off and every credential cleared. */
Test(vendor, grandstream_p_values, .init = load, .fini = unload)
{
	const struct vendor_profile *g = vendor_profile_by_name("grandstream");
	struct render_buf b = {0};
	struct vendor_file_match m;

	cr_assert_not_null(g);
	cr_assert_eq(vendor_match_file("cfg0004f2a1b2c3.xml", &m), 1);
	cr_assert_eq(m.profile, g);
	cr_assert_str_eq(g->notify_event, "check-sync");
	render_case(g, 0, "hostile", &b);
	xmlDocPtr d = parse(b.p, b.len);
	expect(d, "/gs_provision/mac", MAC);
	expect(d, "/gs_provision/config/P271", "1");
	expect(d, "/gs_provision/config/P130", "2");
	expect(d, "/gs_provision/config/P34", long_pw);
	expect(d, "/gs_provision/config/P3", "Zoë \"Z\" O'Brien & <Co> 😀");
	expect(d, "/gs_provision/config/P270", "<Away> & 'back' $HOME ☎");
	expect(d, "/gs_provision/config/P33", "*#+0123456789*#+0123456789*#+012");
	expect(d, "/gs_provision/config/P30", "ntp<&>\"'$x");
	expect(d, "/gs_provision/config/P1362", "fr");
	xmlFreeDoc(d);
	render_case(g, 0, "parked-none", &b);
	d = parse(b.p, b.len);
	expect(d, "/gs_provision/config/P271", "0");
	expect(d, "/gs_provision/config/P35", "");
	expect(d, "/gs_provision/config/P34", "");
	expect(d, "/gs_provision/config/P33", "");
	expect(d, "/gs_provision/config/P270", "Dial *30 to log in");
	expect(d, "/gs_provision/config/P1362", "de");
	xmlFreeDoc(d);
	render_buf_free(&b);
}

/* ---- the XML check once per shape (vendor_render_memo) ------------------ */

/* Every per-device file of every profile rendered a second time for the
 * same cases: each XML render is spared its own check (its shape was
 * checked the first time), and the output is what the goldens hold. */
Test(vendor, the_default_templates_are_checked_once_per_shape, .init = load, .fini = unload)
{
	struct render_buf b = {0};
	size_t shapes, skipped, before, xml = 0;

	for (int round = 0; round < 2; round++) {
		for (size_t k = 0; k < vendor_registry_len; k++) {
			const struct vendor_profile *p = vendor_registry[k];
			for (size_t i = 0; i < p->n_device_files; i++) {
				char name[VENDOR_NAME_MAX + 1], dir[128];
				cr_assert_eq(vendor_file_name(&p->device_files[i], MAC, NULL, name,
				                              sizeof(name)), 0);
				for (size_t c = 0; c < NCASES; c++) {
					vendor_templates_xml_stats(T, &shapes, &before);
					render_case(p, i, CASES[c], &b);
					vendor_templates_xml_stats(T, &shapes, &skipped);
					snprintf(dir, sizeof(dir), "%s/%s", p->name, CASES[c]);
					golden(dir, name, b.p, b.len);
					if (round == 1 && is_xml(&p->device_files[i])) {
						cr_assert_eq(skipped, before + 1, "%s (%s) checked again",
						             name, CASES[c]);
						xml++;
					}
				}
			}
		}
	}
	cr_assert_gt(xml, 8);
	cr_assert_gt(shapes, 0);
	render_buf_free(&b);
}

/* Values that reach each part of an XML document a template can put them
 * in: empty, plain, '-' runs (comments), ']' (CDATA ends), XML specials,
 * a noncharacter, the skeleton's own mark, names with ':', '%' (parameter
 * entities in a DTD). */
static const char *const shape_vals[] = {
	"", "a", "a b", "a--b", "-", "]", "]]", "x]", "&", "<>", "\"'", "\xc3\xa9",
	"\xef\xbf\xbe", RENDER_MARK, "?>", "-->", "a:b", "1", "\t", "ab;", "#65", "xml", "$x",
	"%", "%x;", "preserve",
};
#define NSHAPE_VALS (sizeof(shape_vals) / sizeof(shape_vals[0]))

/* Templates putting values in each of those parts, well-formed or not. */
static const char *const shape_tmpls[] = {
	"<a b=\"{{mac}}\">{{line.label}}</a>",
	("<a>{{#keys}}<k n=\"{{key.n}}\" v='{{key.value}}'>{{key.label}}</k>{{/keys}}"
	 "{{^keys}}none{{/keys}}</a>"),
	"<?xml version=\"1.0\"?>\n<!-- {{line.label}} -->\n<a>{{org}}</a>",
	"<{{model}}/>",
	"<a {{model}}=\"1\"/>",
	"<a><![CDATA[{{line.password}}]]></a>",
	"<a>]{{line.label}}]></a>",
	"<a>]]{{line.label}}></a>",
	"<a>&{{org}};</a>",
	"<a>&#{{line.registrar_port}};</a>",
	"<?pi {{model}}?><a/>",
	"<!DOCTYPE a [<!ENTITY e \"{{org}}\">]><a>&e;</a>",
	"<!DOCTYPE a [<!ENTITY e \"{{org}}\">]><a b=\"&e;\"/>",
	"<!DOCTYPE a [<!ATTLIST a b CDATA \"{{org}}\">]><a/>",
	"<a xml:space=\"{{org}}\"/>",
	"<a xml:lang=\"{{language_code}}\" xmlns:p=\"{{org}}\" p:x=\"1\"/>",
	"<?xml version=\"{{model}}\"?><a/>",
	"{{model}}<a/>",
	"<a>{{model}}</a>{{org}}",
	"<a b=\"{{org}}\" {{#parked}}b=\"2\"{{/parked}}/>",
	"<a>\xee\x80\x80{{org}}</a>",
	"<Profile_Rule>{{line.label}}</Profile_Rule><x/>",
	"<r><Profile_Rule>{{line.label}}</Profile_Rule></r>",
	"<a><!--{{org}}-->{{#keys}}<k>{{key.n}}</k>{{/keys}}</a>",
};

/* Round r's values: each variable a value of the list, the keys 0-2. */
static void
shape_values(struct render_values *vals, size_t r)
{
	render_values_empty(vals);
	for (int v = 0; v < RENDER_VAR_COUNT; v++)
		if (v != RV_KEYS && (v < RV_KEY_N || v > RV_KEY_LABEL))
			render_values_set(vals, (enum render_var)v,
			                  shape_vals[(r + (size_t)v * 5) % NSHAPE_VALS]);
	vals->nkeys = r % 3;
	vals->v[RV_KEYS] = (struct render_value){"1", vals->nkeys > 0 ? 1 : 0, vals->nkeys > 0};
	for (size_t k = 0; k < vals->nkeys; k++)
		for (int v = 0; v < RENDER_KEY_VARS; v++) {
			const char *s = shape_vals[(r + k * 3 + (size_t)v * 7) % NSHAPE_VALS];
			vals->key[k][v] = (struct render_value){s, strlen(s), s[0] != '\0'};
		}
}

/* Whatever the values and wherever the template puts them, a render
 * through the memo succeeds exactly when the render checked in full
 * would, with the same output; and the safe templates' later renders are
 * spared the check. */
Test(vendor, the_check_once_per_shape_agrees_with_the_full_check)
{
	size_t spared_safe = 0;

	for (size_t t = 0; t < sizeof(shape_tmpls) / sizeof(shape_tmpls[0]); t++) {
		for (int mode = RENDER_XML; mode <= RENDER_XML_CISCO; mode++) {
			struct render_tmpl *tm = NULL;
			struct vendor_xml_memo *m = vendor_xml_memo_new();
			char err[256], e2[256];
			size_t shapes, skipped;

			cr_assert_not_null(m);
			cr_assert_eq(render_compile(shape_tmpls[t], strlen(shape_tmpls[t]),
			                            (enum render_mode)mode, &tm, err, sizeof(err)), 0,
			             "template %zu: %s", t, err);
			for (size_t r = 0; r < 6 * NSHAPE_VALS; r++) {
				struct render_values vals;
				struct render_buf full = {0}, memo = {0};

				shape_values(&vals, r);
				bool full_ok = render_run(tm, &vals, &full, err, sizeof(err)) == 0 &&
				               vendor_check_xml(full.p, full.len, err, sizeof(err)) == 0;
				bool memo_ok = vendor_render_memo(tm, m, &vals, &memo, e2, sizeof(e2)) == 0;
				cr_assert_eq(memo_ok, full_ok, "template %zu, round %zu: full %s, memo %s",
				             t, r, full_ok ? "ok" : err, memo_ok ? "ok" : e2);
				if (memo_ok)
					cr_assert(full.len == memo.len && memcmp(full.p, memo.p, full.len) == 0);
				else
					cr_assert_eq(memo.len, 0);
				render_buf_free(&full);
				render_buf_free(&memo);
			}
			vendor_xml_memo_stats(m, &shapes, &skipped);
			if (t < 2)
				spared_safe += skipped;
			render_tmpl_free(tm);
			vendor_xml_memo_free(m);
		}
	}
	cr_assert_gt(spared_safe, NSHAPE_VALS, "the memo spared no check");
}
