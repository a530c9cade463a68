/*
 * mtls.c -- phones proven by their factory certificates (see mtls.h).
 *
 * One GnuTLS trust list per configured vendor family.  A chain is checked
 * by GnuTLS with its own time checks off, then the validity of every
 * certificate of the chain is compared with the caller's `now`: the clock
 * stays the caller's, and an expired certificate is told apart from an
 * untrusted one.  The bundles are read once (mtls_new) and never change
 * afterwards, so mtls_check needs no lock.
 */
#include "mtls.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "errbuf.h"

#define MTLS_CHAIN_MAX 8

struct bundle {
	char *profile;
	gnutls_x509_trust_list_t list;
};

struct mtls {
	struct bundle *b;
	size_t n;
	char *pem;   /* every bundle file, concatenated; NULL if none */
};

/* ---- the MAC in a name (pure) ---- */

static bool
hex12(const char *s, char out[13])
{
	for (int i = 0; i < 12; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return false;
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[12] = '\0';
	return true;
}

int
mtls_mac_from_name(const char *value, char out[13])
{
	char flat[13];
	size_t len, k = 0;

	if (value == NULL)
		return -1;
	len = strlen(value);
	/* "001122334455", "00:11:22:33:44:55", "00-11-22-33-44-55" */
	if (len == 12 && hex12(value, out))
		return 0;
	if (len == 17) {
		char sep = value[2];

		for (size_t i = 0; i < 17; i++) {
			if (i % 3 == 2) {
				if (value[i] != sep || (sep != ':' && sep != '-'))
					break;
			} else if (k < 12) {
				flat[k++] = value[i];
			}
		}
		flat[k] = '\0';
		if (k == 12 && hex12(flat, out))
			return 0;
	}
	/* "...SEP001122334455" (Cisco) */
	if (len >= 15 && strncasecmp(value + len - 15, "SEP", 3) == 0 &&
	    hex12(value + len - 12, out))
		return 0;
	out[0] = '\0';
	return -1;
}

/* ---- bundles ---- */

static int
read_file(const char *path, char **text, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	*text = NULL;
	if (f == NULL)
		return -1;
	for (;;) {
		if (cap - n < 4096) {
			char *grown = realloc(buf, cap + 65536);
			if (grown == NULL)
				goto fail;
			buf = grown;
			cap += 65536;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		goto fail;
	fclose(f);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
fail:
	fclose(f);
	free(buf);
	return -1;
}

/* Appends the bundle file to m->pem. */
static int
add_pem(struct mtls *m, const char *file, char *err, size_t errlen)
{
	size_t have = m->pem ? strlen(m->pem) : 0, len;
	char *text, *grown;

	if (read_file(file, &text, &len) != 0) {
		hd_seterr(err, errlen, "cannot read %s", file);
		return -1;
	}
	if ((grown = realloc(m->pem, have + len + 2)) == NULL) {
		free(text);
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	m->pem = grown;
	memcpy(m->pem + have, text, len);
	m->pem[have + len] = '\n';
	m->pem[have + len + 1] = '\0';
	free(text);
	return 0;
}

struct mtls *
mtls_new(const char *const *names, const char *const *files, size_t n, char *err,
         size_t errlen)
{
	struct mtls *m = calloc(1, sizeof(*m));
	int rc;

	if (m == NULL || (m->b = calloc(n ? n : 1, sizeof(*m->b))) == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		struct bundle *b = &m->b[m->n];

		if (files[i] == NULL)
			continue;
		if ((b->profile = strdup(names[i])) == NULL)
			goto oom;
		m->n++;
		if (gnutls_x509_trust_list_init(&b->list, 0) < 0) {
			b->list = NULL;
			goto oom;
		}
		rc = gnutls_x509_trust_list_add_trust_file(b->list, files[i], NULL,
		                                           GNUTLS_X509_FMT_PEM, 0, 0);
		if (rc <= 0) {
			hd_seterr(err, errlen, "[client_ca] %s: %s: %s", names[i], files[i],
			          rc < 0 ? gnutls_strerror(rc) : "no certificate in the file");
			goto fail;
		}
		if (add_pem(m, files[i], err, errlen) != 0)
			goto fail;
	}
	return m;
oom:
	hd_seterr(err, errlen, "out of memory");
fail:
	mtls_free(m);
	return NULL;
}

void
mtls_free(struct mtls *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		if (m->b[i].list != NULL)
			gnutls_x509_trust_list_deinit(m->b[i].list, 1);
		free(m->b[i].profile);
	}
	free(m->b);
	free(m->pem);
	free(m);
}

const char *
mtls_ca_pem(const struct mtls *m)
{
	return m != NULL ? m->pem : NULL;
}

const char *
mtls_verdict_name(enum mtls_verdict v)
{
	switch (v) {
	case MTLS_OK: return "ok";
	case MTLS_NO_BUNDLE: return "no trusted bundle";
	case MTLS_BAD_CERT: return "bad certificate";
	case MTLS_UNTRUSTED: return "untrusted certificate";
	case MTLS_NOT_YET_VALID: return "certificate not yet valid";
	case MTLS_EXPIRED: return "expired certificate";
	case MTLS_NO_MAC: return "certificate names no mac";
	case MTLS_WRONG_MAC: return "certificate of another mac";
	}
	return "?";
}

/* The MAC named by the subject of crt: its CN, else its serialNumber. */
static int
subject_mac(gnutls_x509_crt_t crt, char out[13])
{
	static const char *const oids[] = { GNUTLS_OID_X520_COMMON_NAME, "2.5.4.5" };
	char buf[256];

	for (size_t k = 0; k < sizeof(oids) / sizeof(oids[0]); k++) {
		for (unsigned idx = 0; idx < 4; idx++) {
			size_t len = sizeof(buf);

			if (gnutls_x509_crt_get_dn_by_oid(crt, oids[k], idx, 0, buf, &len) < 0)
				break;
			if (mtls_mac_from_name(buf, out) == 0)
				return 0;
		}
	}
	out[0] = '\0';
	return -1;
}

enum mtls_verdict
mtls_check(const struct mtls *m, const char *profile, const struct mtls_der *chain, size_t n,
           long long now, const char *want_mac, char got_mac[13])
{
	gnutls_x509_crt_t crts[MTLS_CHAIN_MAX];
	const struct bundle *b = NULL;
	enum mtls_verdict v = MTLS_OK;
	unsigned status = 0;
	size_t k = 0;

	got_mac[0] = '\0';
	for (size_t i = 0; m != NULL && i < m->n; i++)
		if (strcmp(m->b[i].profile, profile) == 0)
			b = &m->b[i];
	if (b == NULL)
		return MTLS_NO_BUNDLE;
	if (n == 0)
		return MTLS_BAD_CERT;
	if (n > MTLS_CHAIN_MAX)
		n = MTLS_CHAIN_MAX;
	for (k = 0; k < n; k++) {
		gnutls_datum_t d = { (unsigned char *)chain[k].data, (unsigned)chain[k].len };

		if (gnutls_x509_crt_init(&crts[k]) < 0)
			break;
		if (gnutls_x509_crt_import(crts[k], &d, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crt_deinit(crts[k]);
			break;
		}
	}
	if (k == 0) {
		v = MTLS_BAD_CERT;
		goto out;
	}
	/* the chain as sent, up to the first certificate that did not parse */
	if (gnutls_x509_trust_list_verify_crt(b->list, crts, (unsigned)k,
	                                      GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
	                                          GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
	                                      &status, NULL) < 0 ||
	    status != 0) {
		v = MTLS_UNTRUSTED;
		goto out;
	}
	for (size_t i = 0; i < k; i++) {
		long long from = (long long)gnutls_x509_crt_get_activation_time(crts[i]);
		long long until = (long long)gnutls_x509_crt_get_expiration_time(crts[i]);

		if (from == -1 || until == -1) {
			v = MTLS_BAD_CERT;
			goto out;
		}
		if (now < from) {
			v = MTLS_NOT_YET_VALID;
			goto out;
		}
		if (now > until) {
			v = MTLS_EXPIRED;
			goto out;
		}
	}
	if (subject_mac(crts[0], got_mac) != 0)
		v = MTLS_NO_MAC;
	else if (want_mac == NULL || strcmp(got_mac, want_mac) != 0)
		v = MTLS_WRONG_MAC;
out:
	for (size_t i = 0; i < k; i++)
		gnutls_x509_crt_deinit(crts[i]);
	return v;
}
