/*
 * mtls.h -- phones proven by their factory certificates (mutual TLS).
 *
 * Owns the trusted CA bundles of each vendor family ([client_ca] in the
 * configuration, one PEM file per profile), their certificate revocation
 * lists ([client_crl], or CRLs in the bundle file itself) and the verdict
 * on the certificate chain a phone presented: signed by its family's
 * bundle, revoked by none of its CRLs, valid at `now`, and naming in its
 * subject the MAC address of the file it asks for.  Knows nothing of HTTP
 * or of organizations (the caller decides whether a certificate is
 * needed); reads no clock.
 *
 * The bundles and CRLs can be read again (mtls_reload) while checks run:
 * a check uses the set in force when it began, a set that does not load
 * leaves the one in force.
 *
 * Where the MAC is (docs/PHONES.md): the subject's common name, else its
 * serialNumber attribute, either being the 12 hex digits of the MAC (with
 * or without ':' or '-' between pairs: Polycom, Yealink) or ending with
 * "SEP" and the 12 hex digits (Cisco: "CP-8845-SEP001122334455").
 */
#ifndef HD_MTLS_H
#define HD_MTLS_H

#include <stdbool.h>
#include <stddef.h>

enum mtls_verdict {
	MTLS_OK,
	MTLS_NO_BUNDLE,     /* no [client_ca] bundle for the device's family */
	MTLS_BAD_CERT,      /* not a parsable X.509 certificate */
	MTLS_UNTRUSTED,     /* not signed (through its chain) by the bundle */
	MTLS_REVOKED,       /* it or a CA of its chain is on a CRL of the bundle */
	MTLS_NOT_YET_VALID,
	MTLS_EXPIRED,
	MTLS_NO_MAC,        /* the subject names no MAC */
	MTLS_WRONG_MAC,     /* a valid certificate of another device */
};

/* One certificate as DER (borrowed). */
struct mtls_der {
	const unsigned char *data;
	size_t len;
};

struct mtls;

/*
 * Loads the bundles: files[i] (NULL = none) is the PEM bundle of profile
 * names[i], crls[i] (crls NULL, or crls[i] NULL = none) a PEM file of
 * certificate revocation lists for it.  X509 CRL blocks in the bundle
 * file count too.  Every CRL must be signed by a CA of its bundle.
 * Returns NULL with err filled (naming the profile) when a file cannot be
 * read, a bundle holds no certificate, a CRL file holds no CRL, a CRL
 * does not parse or is signed by no CA of the bundle, or a CRL is given
 * for a profile without a bundle.  Free with mtls_free.
 */
struct mtls *mtls_new(const char *const *names, const char *const *files,
                      const char *const *crls, size_t n, char *err, size_t errlen);
/* Loads the bundles and CRLs again as mtls_new does and puts them in force
 * for the next checks; 0, or -1 with err filled, the set in force kept. */
int mtls_reload(struct mtls *m, const char *const *names, const char *const *files,
                const char *const *crls, size_t n, char *err, size_t errlen);
void mtls_free(struct mtls *m);

/* Every bundle in force concatenated (PEM), for the CA names a TLS server
 * sends with its certificate request: a malloc'd copy (caller frees), or
 * NULL when no bundle is configured (or out of memory). */
char *mtls_ca_pem_copy(struct mtls *m);

/*
 * The verdict on chain (leaf first, as the client sent it; n >= 1) for a
 * device of profile whose MAC is want_mac (12 lowercase hex), at time
 * now (seconds since the epoch).  got_mac receives the MAC the leaf
 * names ("" if none).  Never fails otherwise.
 */
enum mtls_verdict mtls_check(struct mtls *m, const char *profile,
                             const struct mtls_der *chain, size_t n, long long now,
                             const char *want_mac, char got_mac[13]);

/* A short name of a verdict ("untrusted", "expired", "wrong mac", ...). */
const char *mtls_verdict_name(enum mtls_verdict v);

/* The MAC (12 lowercase hex) named by a subject attribute value, by the
 * rules above; 0, or -1 when it names none.  Pure. */
int mtls_mac_from_name(const char *value, char out[13]);

#endif
