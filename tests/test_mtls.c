/*
 * test_mtls.c -- mutual TLS verdicts: where each vendor's MAC is found in
 * a certificate name, and the checks that need no certificate (missing
 * bundle, unreadable bundle, garbage instead of a certificate).  Chains
 * signed by real CAs are checked end to end in tests/e2e/test_mtls.py.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "mtls.h"
#include "testutil.h"

Test(mtls, mac_where_each_vendor_puts_it)
{
	char mac[13];

	/* Polycom, Yealink: the MAC itself */
	cr_assert_eq(mtls_mac_from_name("0004f2abcdef", mac), 0);
	cr_assert_str_eq(mac, "0004f2abcdef");
	cr_assert_eq(mtls_mac_from_name("0004F2ABCDEF", mac), 0);
	cr_assert_str_eq(mac, "0004f2abcdef");
	cr_assert_eq(mtls_mac_from_name("00:04:F2:AB:CD:EF", mac), 0);
	cr_assert_str_eq(mac, "0004f2abcdef");
	cr_assert_eq(mtls_mac_from_name("80-5e-c0-01-02-03", mac), 0);
	cr_assert_str_eq(mac, "805ec0010203");
	/* Cisco: model, then SEP and the MAC */
	cr_assert_eq(mtls_mac_from_name("CP-8845-SEP001122AABBCC", mac), 0);
	cr_assert_str_eq(mac, "001122aabbcc");
	cr_assert_eq(mtls_mac_from_name("SEP001122334455", mac), 0);
	cr_assert_str_eq(mac, "001122334455");
	/* not a MAC */
	const char *bad[] = { "", "phone", "0004f2abcde", "0004f2abcdefa", "0004f2abcdeg",
	                      "00:04:f2-ab:cd:ef", "00:04:f2:ab:cd:e", "00.04.f2.ab.cd.ef",
	                      "CP-8845-SEP00112233445", "CP-8845-XYZ001122334455",
	                      "0004f2abcdef ", " 0004f2abcdef" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(mtls_mac_from_name(bad[i], mac), -1, "'%s'", bad[i]);
		cr_assert_str_eq(mac, "");
	}
	cr_assert_eq(mtls_mac_from_name(NULL, mac), -1);
}

Test(mtls, bundles_and_verdicts_without_a_chain)
{
	const char *names[] = { "polycom", "yealink" };
	const char *none[] = { NULL, NULL };
	const char *missing[] = { "/nonexistent/ca.pem", NULL };
	const char *files[2] = { NULL, NULL };
	char err[256] = "", path[] = "/tmp/hotdeskd-mtls-XXXXXX", got[13];
	struct mtls *m;
	FILE *f;
	int fd;

	/* no bundle at all: nothing to ask for, nothing trusted */
	m = mtls_new(names, none, NULL, 2, err, sizeof(err));
	cr_assert_not_null(m, "%s", err);
	cr_assert_null(mtls_ca_pem_copy(m));
	struct mtls_der junk = { (const unsigned char *)"junk", 4 };
	cr_assert_eq(mtls_check(m, "polycom", &junk, 1, 0, "0004f2abcdef", got), MTLS_NO_BUNDLE);
	mtls_free(m);
	/* unreadable and empty bundles are refused, naming the family */
	cr_assert_null(mtls_new(names, missing, NULL, 2, err, sizeof(err)));
	cr_assert(strstr(err, "polycom") != NULL, "%s", err);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	fputs("not a certificate\n", f);
	fclose(f);
	files[1] = path;
	cr_assert_null(mtls_new(names, files, NULL, 2, err, sizeof(err)));
	cr_assert(strstr(err, "yealink") != NULL, "%s", err);
	unlink(path);
	cr_assert_str_eq(mtls_verdict_name(MTLS_WRONG_MAC), "certificate of another mac");
	cr_assert_str_eq(mtls_verdict_name(MTLS_EXPIRED), "expired certificate");
	mtls_free(NULL);
}
