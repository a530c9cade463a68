/*
 * mtls.c -- phones proven by their factory certificates (see mtls.h).
 *
 * One GnuTLS trust list per configured vendor family, holding its CAs and
 * CRLs.  A chain is checked by GnuTLS with its own time checks off (a
 * revoked certificate is found whatever the CRL's dates), then the
 * validity of every certificate of the chain is compared with the
 * caller's `now`: the clock stays the caller's, and an expired
 * certificate is told apart from an untrusted one.
 *
 * The lists loaded at one time form a set (struct mtls_set), reference
 * counted: m->cur holds one reference while in force, and each check
 * holds one while it runs, so mtls_reload swaps sets under m->lock and
 * the old set is freed by whoever drops it last.  A set never changes
 * once loaded.
 */
#include "mtls.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "errbuf.h"
#include "lockorder.h"

#define MTLS_CHAIN_MAX 8

struct bundle {
	char *profile;
	gnutls_x509_trust_list_t list; /* the CAs and the CRLs */
};

/* The bundles as loaded at one time; freed by its last holder. */
struct mtls_set {
	atomic_int refs;
	struct bundle *b;
	size_t n;
	char *pem;   /* every bundle file, concatenated; NULL if none */
};

struct mtls {
	pthread_mutex_t lock; /* guards cur */
	struct mtls_set *cur; /* the set in force (one reference) */
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

/* Appends text to set->pem. */
static int
add_pem(struct mtls_set *set, const char *text, size_t len)
{
	size_t have = set->pem ? strlen(set->pem) : 0;
	char *grown;

	if ((grown = realloc(set->pem, have + len + 2)) == NULL)
		return -1;
	set->pem = grown;
	memcpy(set->pem + have, text, len);
	set->pem[have + len] = '\n';
	set->pem[have + len + 1] = '\0';
	return 0;
}

/*
 * Adds the CRLs of PEM text (from file `what`) to the trust list of b.
 * Each must be signed by one of the bundle's CAs cas[0..ncas-1]; its
 * dates are not checked: a CRL past its next update still revokes (a
 * revocation is never lifted by a list growing old).  0, or -1 with err
 * filled.
 */
static int
add_crls(struct bundle *b, gnutls_x509_crt_t *cas, unsigned ncas, const char *text,
         size_t len, const char *what, char *err, size_t errlen)
{
	const unsigned dates = GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
	                       GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE;
	gnutls_datum_t d = { (unsigned char *)text, (unsigned)len };
	gnutls_x509_crl_t *crls = NULL;
	const char *why = NULL;
	unsigned n = 0, status;
	int rc;

	rc = gnutls_x509_crl_list_import2(&crls, &n, &d, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || n == 0) {
		hd_seterr(err, errlen, "[client_crl] %s: %s: %s", b->profile, what,
		          rc < 0 ? gnutls_strerror(rc) : "no CRL in the file");
		gnutls_free(crls);
		return -1;
	}
	/* a good signature on a list out of date: INVALID and a date flag */
	for (unsigned i = 0; i < n && why == NULL; i++) {
		rc = gnutls_x509_crl_verify(crls[i], cas, ncas, 0, &status);
		if (rc < 0)
			why = gnutls_strerror(rc);
		else if ((status & ~(dates | GNUTLS_CERT_INVALID)) != 0 ||
		         ((status & GNUTLS_CERT_INVALID) != 0 && (status & dates) == 0))
			why = "a CRL is not signed by a CA of the [client_ca] bundle";
	}
	if (why != NULL) {
		for (unsigned i = 0; i < n; i++)
			gnutls_x509_crl_deinit(crls[i]);
	} else if ((rc = gnutls_x509_trust_list_add_crls(b->list, crls, n, 0, 0)) < 0) {
		why = gnutls_strerror(rc); /* the list owns the CRLs even then */
	}
	gnutls_free(crls);
	if (why != NULL) {
		hd_seterr(err, errlen, "[client_crl] %s: %s: %s", b->profile, what, why);
		return -1;
	}
	return 0;
}

static void
set_unref(struct mtls_set *set)
{
	if (set == NULL || atomic_fetch_sub(&set->refs, 1) != 1)
		return;
	for (size_t i = 0; i < set->n; i++) {
		if (set->b[i].list != NULL)
			gnutls_x509_trust_list_deinit(set->b[i].list, 1);
		free(set->b[i].profile);
	}
	free(set->b);
	free(set->pem);
	free(set);
}

/* One bundle and its CRLs into set->b[set->n]. */
static int
load_bundle(struct mtls_set *set, const char *name, const char *file, const char *crl,
            char *err, size_t errlen)
{
	struct bundle *b = &set->b[set->n];
	gnutls_x509_crt_t *cas = NULL;
	unsigned ncas = 0;
	gnutls_datum_t d;
	char *text = NULL;
	size_t len;
	int rc;

	if ((b->profile = strdup(name)) == NULL)
		goto oom;
	set->n++;
	if (gnutls_x509_trust_list_init(&b->list, 0) < 0) {
		b->list = NULL;
		goto oom;
	}
	if (read_file(file, &text, &len) != 0) {
		hd_seterr(err, errlen, "[client_ca] %s: cannot read %s", name, file);
		return -1;
	}
	d.data = (unsigned char *)text;
	d.size = (unsigned)len;
	rc = gnutls_x509_crt_list_import2(&cas, &ncas, &d, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || ncas == 0) {
		hd_seterr(err, errlen, "[client_ca] %s: %s: %s", name, file,
		          rc < 0 ? gnutls_strerror(rc) : "no certificate in the file");
		gnutls_free(cas);
		cas = NULL;
		goto fail;
	}
	/* the list takes the certificates (and still holds them below) */
	if (gnutls_x509_trust_list_add_cas(b->list, cas, ncas, 0) < 0) {
		for (unsigned i = 0; i < ncas; i++)
			gnutls_x509_crt_deinit(cas[i]);
		gnutls_free(cas);
		cas = NULL;
		goto oom;
	}
	if (add_pem(set, text, len) != 0)
		goto oom;
	/* CRLs kept with the CAs in the bundle file */
	if (strstr(text, "-----BEGIN X509 CRL-----") != NULL &&
	    add_crls(b, cas, ncas, text, len, file, err, errlen) != 0)
		goto fail;
	free(text);
	text = NULL;
	if (crl != NULL) {
		if (read_file(crl, &text, &len) != 0) {
			hd_seterr(err, errlen, "[client_crl] %s: cannot read %s", name, crl);
			goto fail;
		}
		if (add_crls(b, cas, ncas, text, len, crl, err, errlen) != 0)
			goto fail;
		free(text);
	}
	gnutls_free(cas);
	return 0;
oom:
	hd_seterr(err, errlen, "out of memory");
fail:
	gnutls_free(cas);
	free(text);
	return -1;
}

static struct mtls_set *
set_load(const char *const *names, const char *const *files, const char *const *crls,
         size_t n, char *err, size_t errlen)
{
	struct mtls_set *set = calloc(1, sizeof(*set));

	if (set == NULL || (set->b = calloc(n ? n : 1, sizeof(*set->b))) == NULL) {
		free(set);
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&set->refs, 1);
	for (size_t i = 0; i < n; i++) {
		const char *crl = crls != NULL ? crls[i] : NULL;

		if (files[i] == NULL && crl != NULL) {
			hd_seterr(err, errlen, "[client_crl] %s: no [client_ca] %s bundle for it",
			          names[i], names[i]);
			goto fail;
		}
		if (files[i] != NULL && load_bundle(set, names[i], files[i], crl, err, errlen) != 0)
			goto fail;
	}
	return set;
fail:
	set_unref(set);
	return NULL;
}

struct mtls *
mtls_new(const char *const *names, const char *const *files, const char *const *crls,
         size_t n, char *err, size_t errlen)
{
	struct mtls *m = calloc(1, sizeof(*m));

	if (m == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	lockorder_register(&m->lock, LOCK_MTLS, "mtls");
	if ((m->cur = set_load(names, files, crls, n, err, errlen)) == NULL) {
		mtls_free(m);
		return NULL;
	}
	return m;
}

int
mtls_reload(struct mtls *m, const char *const *names, const char *const *files,
            const char *const *crls, size_t n, char *err, size_t errlen)
{
	struct mtls_set *set = set_load(names, files, crls, n, err, errlen), *old;

	if (set == NULL)
		return -1;
	pthread_mutex_lock(&m->lock);
	old = m->cur;
	m->cur = set;
	pthread_mutex_unlock(&m->lock);
	set_unref(old);
	return 0;
}

void
mtls_free(struct mtls *m)
{
	if (m == NULL)
		return;
	set_unref(m->cur);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* The set in force, with a reference the caller drops (set_unref). */
static struct mtls_set *
set_get(struct mtls *m)
{
	struct mtls_set *set;

	pthread_mutex_lock(&m->lock);
	set = m->cur;
	atomic_fetch_add(&set->refs, 1);
	pthread_mutex_unlock(&m->lock);
	return set;
}

char *
mtls_ca_pem_copy(struct mtls *m)
{
	struct mtls_set *set;
	char *pem;

	if (m == NULL)
		return NULL;
	set = set_get(m);
	pem = set->pem != NULL ? strdup(set->pem) : NULL;
	set_unref(set);
	return pem;
}

const char *
mtls_verdict_name(enum mtls_verdict v)
{
	switch (v) {
	case MTLS_OK: return "ok";
	case MTLS_NO_BUNDLE: return "no trusted bundle";
	case MTLS_BAD_CERT: return "bad certificate";
	case MTLS_UNTRUSTED: return "untrusted certificate";
	case MTLS_REVOKED: return "revoked certificate";
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

/* The verdict of mtls_check against one set. */
static enum mtls_verdict
check_chain(const struct mtls_set *set, const char *profile, const struct mtls_der *chain,
            size_t n, long long now, const char *want_mac, char got_mac[13])
{
	gnutls_x509_crt_t crts[MTLS_CHAIN_MAX];
	const struct bundle *b = NULL;
	enum mtls_verdict v = MTLS_OK;
	unsigned status = 0;
	size_t k = 0;

	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->b[i].profile, profile) == 0)
			b = &set->b[i];
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
		v = (status & GNUTLS_CERT_REVOKED) != 0 ? MTLS_REVOKED : MTLS_UNTRUSTED;
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

enum mtls_verdict
mtls_check(struct mtls *m, const char *profile, const struct mtls_der *chain, size_t n,
           long long now, const char *want_mac, char got_mac[13])
{
	struct mtls_set *set;
	enum mtls_verdict v;

	got_mac[0] = '\0';
	if (m == NULL)
		return MTLS_NO_BUNDLE;
	set = set_get(m);
	v = check_chain(set, profile, chain, n, now, want_mac, got_mac);
	set_unref(set);
	return v;
}
