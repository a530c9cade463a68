/*
 * digest.c -- HTTP digest authentication with stateless nonces (digest.h).
 *
 * The response arithmetic (RFC 2617/7616: HA1, HA2, KD) is the one SIP
 * uses too; it lives in sip.c (sip_digest_response) and is shared.
 */
#include "digest.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "sip.h"

/* ---- parsing ------------------------------------------------------------ */

static bool
is_tchar(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_';
}

int
digest_parse(char *buf, struct digest_auth *out)
{
	char *p = buf;

	memset(out, 0, sizeof(*out));
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "Digest", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return -1;
	p += 6;
	for (;;) {
		char *key, *val, *w;
		size_t klen;
		const char **slot = NULL;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		key = p;
		while (is_tchar(*p))
			p++;
		klen = (size_t)(p - key);
		while (*p == ' ' || *p == '\t')
			p++;
		if (klen == 0 || *p != '=')
			return -1;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		val = w = p;
		if (*p == '"') {
			/* quoted-string, unescaped in place */
			val = w = ++p;
			for (; *p != '"'; p++) {
				if (*p == '\0')
					return -1;
				if (*p == '\\' && p[1] != '\0')
					p++;
				*w++ = *p;
			}
			p++; /* the closing quote */
		} else {
			while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			w = p;
		}
		if (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
			return -1;
		if (*p != '\0')
			p++;
		*w = '\0';
#define FIELD(name) (klen == sizeof(name) - 1 && strncasecmp(key, name, klen) == 0)
		if (FIELD("username"))
			slot = &out->username;
		else if (FIELD("realm"))
			slot = &out->realm;
		else if (FIELD("nonce"))
			slot = &out->nonce;
		else if (FIELD("uri"))
			slot = &out->uri;
		else if (FIELD("response"))
			slot = &out->response;
		else if (FIELD("qop"))
			slot = &out->qop;
		else if (FIELD("nc"))
			slot = &out->nc;
		else if (FIELD("cnonce"))
			slot = &out->cnonce;
		else if (FIELD("algorithm"))
			slot = &out->algorithm;
		else if (FIELD("opaque"))
			slot = &out->opaque;
#undef FIELD
		if (slot != NULL) {
			if (*slot != NULL)
				return -1; /* a field given twice */
			*slot = val;
		}
	}
	return out->username && out->realm && out->nonce && out->uri && out->response ? 0 : -1;
}

/* ---- nonces ------------------------------------------------------------- */

static void
nonce_mac(const unsigned char key[DIGEST_KEY_LEN], const char *uri, const char *stamp,
          char hex[33])
{
	crypto_generichash_state st;
	unsigned char h[16];

	crypto_generichash_init(&st, key, DIGEST_KEY_LEN, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)stamp, strlen(stamp));
	crypto_generichash_update(&st, (const unsigned char *)"\n", 1);
	crypto_generichash_update(&st, (const unsigned char *)uri, strlen(uri));
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(hex, 33, h, sizeof(h));
}

void
digest_nonce(const unsigned char key[DIGEST_KEY_LEN], const char *uri, long long now,
             char out[DIGEST_NONCE_LEN])
{
	char stamp[20], mac[33];

	snprintf(stamp, sizeof(stamp), "%llx", (unsigned long long)now);
	nonce_mac(key, uri, stamp, mac);
	snprintf(out, DIGEST_NONCE_LEN, "%s-%s", stamp, mac); /* 16 + 1 + 32 < 64 */
}

/* DIGEST_OK when nonce is ours for uri and fresh, DIGEST_STALE when ours
 * but too old, DIGEST_WRONG otherwise. */
static enum digest_result
nonce_check(const unsigned char key[DIGEST_KEY_LEN], const char *nonce, const char *uri,
            long long now, long long ttl)
{
	const char *dash = strchr(nonce, '-');
	char stamp[20], mac[33];
	unsigned long long t;
	char *end;

	if (dash == NULL || dash == nonce || (size_t)(dash - nonce) >= sizeof(stamp) ||
	    strlen(dash + 1) != 32)
		return DIGEST_WRONG;
	memcpy(stamp, nonce, (size_t)(dash - nonce));
	stamp[dash - nonce] = '\0';
	t = strtoull(stamp, &end, 16);
	if (*end != '\0')
		return DIGEST_WRONG;
	nonce_mac(key, uri, stamp, mac);
	if (sodium_memcmp(mac, dash + 1, 32) != 0)
		return DIGEST_WRONG;
	if ((long long)t > now + 5 || now - (long long)t > ttl)
		return DIGEST_STALE;
	return DIGEST_OK;
}

/* ---- checking ----------------------------------------------------------- */

enum digest_result
digest_check(const struct digest_auth *a, const unsigned char key[DIGEST_KEY_LEN],
             const char *realm, const char *user, const char *password, const char *method,
             const char *req_uri, long long now, long long ttl)
{
	char want[65];
	enum digest_result n;
	bool ok;

	if (strcmp(a->realm, realm) != 0 || strcmp(a->username, user) != 0 ||
	    strcmp(a->uri, req_uri) != 0)
		return DIGEST_WRONG;
	if (a->algorithm != NULL && strcasecmp(a->algorithm, "MD5") != 0)
		return DIGEST_WRONG;
	if (a->qop != NULL && strcasecmp(a->qop, "auth") != 0)
		return DIGEST_WRONG;
	if ((n = nonce_check(key, a->nonce, req_uri, now, ttl)) == DIGEST_WRONG)
		return DIGEST_WRONG;
	if (sip_digest_response(SIP_DIGEST_MD5, user, realm, password, method, a->uri, a->nonce,
	                        a->qop, a->nc, a->cnonce, want, sizeof(want)) != 0)
		return DIGEST_WRONG;
	ok = strlen(a->response) == strlen(want) &&
	     sodium_memcmp(want, a->response, strlen(want)) == 0;
	sodium_memzero(want, sizeof(want));
	if (!ok)
		return DIGEST_WRONG;
	/* right credentials on an expired nonce: the client retries with a
	 * fresh one at once (stale=true) */
	return n;
}

int
digest_challenge(const unsigned char key[DIGEST_KEY_LEN], const char *realm, const char *uri,
                 long long now, bool stale, char *out, size_t outlen)
{
	char nonce[DIGEST_NONCE_LEN];
	int n;

	if (strchr(realm, '"') != NULL || strchr(realm, '\\') != NULL)
		return -1;
	digest_nonce(key, uri, now, nonce);
	n = snprintf(out, outlen,
	             "Digest realm=\"%s\", qop=\"auth\", algorithm=MD5, nonce=\"%s\"%s", realm,
	             nonce, stale ? ", stale=true" : "");
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
