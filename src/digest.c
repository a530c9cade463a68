/*
 * digest.c -- HTTP digest authentication with stateless nonces (digest.h).
 *
 * The response arithmetic (RFC 2617/7616: HA1, HA2, KD) is the one SIP
 * uses too; it lives in sip.c (sip_digest_response) and is shared.
 */
#include "digest.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "sip.h"
#include "lockorder.h"

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
	char stamp[40], mac[33];
	unsigned char salt[8];

	/* the salt makes every challenge's nonce its own, so two phones (or
	 * two boots of one) never share a nonce and its counts */
	randombytes_buf(salt, sizeof(salt));
	snprintf(stamp, sizeof(stamp), "%llx.%016llx", (unsigned long long)now,
	         (unsigned long long)salt[0] << 56 | (unsigned long long)salt[1] << 48 |
	             (unsigned long long)salt[2] << 40 | (unsigned long long)salt[3] << 32 |
	             (unsigned long long)salt[4] << 24 | (unsigned long long)salt[5] << 16 |
	             (unsigned long long)salt[6] << 8 | (unsigned long long)salt[7]);
	nonce_mac(key, uri, stamp, mac);
	snprintf(out, DIGEST_NONCE_LEN, "%s-%s", stamp, mac); /* 16+1+16 + 1 + 32 < 80 */
}

/* DIGEST_OK when nonce is ours for uri and fresh, DIGEST_STALE when ours
 * but too old, DIGEST_WRONG otherwise.  *t gets its issue time. */
static enum digest_result
nonce_check(const unsigned char key[DIGEST_KEY_LEN], const char *nonce, const char *uri,
            long long now, long long ttl, long long *t)
{
	const char *dash = strchr(nonce, '-');
	char stamp[40], mac[33];
	unsigned long long v;
	char *end;

	if (dash == NULL || dash == nonce || (size_t)(dash - nonce) >= sizeof(stamp) ||
	    strlen(dash + 1) != 32)
		return DIGEST_WRONG;
	memcpy(stamp, nonce, (size_t)(dash - nonce));
	stamp[dash - nonce] = '\0';
	v = strtoull(stamp, &end, 16);
	if (end == stamp || *end != '.' || strlen(end + 1) != 16 || v > (unsigned long long)LLONG_MAX)
		return DIGEST_WRONG;
	nonce_mac(key, uri, stamp, mac);
	if (sodium_memcmp(mac, dash + 1, 32) != 0)
		return DIGEST_WRONG;
	*t = (long long)v;
	if (*t > now + 5 || now - *t > ttl)
		return DIGEST_STALE;
	return DIGEST_OK;
}

/* ---- nonce counts ------------------------------------------------------- */

#define SEEN_WAYS 16

struct seen_entry {
	unsigned char mac[16]; /* the nonce's MAC: names it (the stamp is in t) */
	long long t;           /* its issue time; 0 = free slot */
	uint32_t nc;           /* highest nonce count answered */
};

struct seen_bucket {
	long long floor; /* nonces issued at or before this were dropped */
	struct seen_entry e[SEEN_WAYS];
};

/* The buckets' locks apart from the buckets: initialising them writes
 * n * 40 bytes at start-up, and a bucket's page is first written when a
 * nonce lands in it (a lock inside each bucket wrote all 2.3 MB of the
 * daemon's table at every start). */
struct digest_seen {
	size_t nbuckets;     /* a power of two */
	pthread_mutex_t *mu; /* mu[i] guards b[i] */
	struct seen_bucket b[];
};

struct digest_seen *
digest_seen_new(size_t capacity)
{
	size_t n = 1;
	struct digest_seen *t;

	while (n * SEEN_WAYS < capacity)
		n *= 2;
	if ((t = calloc(1, sizeof(*t) + n * sizeof(t->b[0]))) == NULL)
		return NULL;
	if ((t->mu = malloc(n * sizeof(t->mu[0]))) == NULL) {
		free(t);
		return NULL;
	}
	t->nbuckets = n;
	for (size_t i = 0; i < n; i++)
		pthread_mutex_init(&t->mu[i], NULL);
	/* one rank for every bucket: a thread holds at most one (seen_use
	 * calls nothing that locks while it holds its bucket) */
	lockorder_register_array(&t->mu[0], n, sizeof(t->mu[0]), LOCK_DIGEST, "digest bucket");
	return t;
}

void
digest_seen_free(struct digest_seen *t)
{
	if (t == NULL)
		return;
	lockorder_forget(&t->mu[0]);
	for (size_t i = 0; i < t->nbuckets; i++)
		pthread_mutex_destroy(&t->mu[i]);
	free(t->mu);
	free(t);
}

/* Records nc for the nonce (MAC mac, issued at t).  true when nc is above
 * every count recorded for it; false for a replay, or when the nonce is
 * not in the table and at or below the bucket's floor. */
static bool
seen_use(struct digest_seen *s, const unsigned char mac[16], long long t, uint32_t nc,
         long long now, long long ttl)
{
	uint64_t h;
	struct seen_bucket *b;
	struct seen_entry *slot = NULL, *oldest = NULL;
	pthread_mutex_t *mu;
	size_t at;
	bool ok = false;

	memcpy(&h, mac, sizeof(h)); /* keyed hash output: already uniform */
	at = (size_t)(h & (s->nbuckets - 1));
	b = &s->b[at];
	mu = &s->mu[at];
	pthread_mutex_lock(mu);
	for (size_t i = 0; i < SEEN_WAYS; i++) {
		struct seen_entry *e = &b->e[i];

		if (e->t != 0 && e->t == t && sodium_memcmp(e->mac, mac, 16) == 0) {
			if (nc > e->nc) {
				e->nc = nc;
				ok = true;
			}
			goto out;
		}
		if (e->t == 0 || now - e->t > ttl) {
			/* free, or its nonce is stale anyway (never accepted again) */
			if (slot == NULL)
				slot = e;
		} else if (oldest == NULL || e->t < oldest->t) {
			oldest = e;
		}
	}
	if (t <= b->floor)
		goto out;
	if (slot == NULL) {
		/* full of live nonces: forget the oldest, and every nonce as old */
		slot = oldest;
		if (slot->t > b->floor)
			b->floor = slot->t;
		if (t <= b->floor)
			goto out;
	}
	memcpy(slot->mac, mac, 16);
	slot->t = t;
	slot->nc = nc;
	ok = true;
out:
	pthread_mutex_unlock(mu);
	return ok;
}

/* The 8 hex digits of nc as a number; -1 when not that. */
static long long
nc_value(const char *nc)
{
	unsigned long long v = 0;

	if (nc == NULL || strlen(nc) != 8)
		return -1;
	for (size_t i = 0; i < 8; i++) {
		int c = (unsigned char)nc[i];

		if (!isxdigit(c))
			return -1;
		v = v * 16 + (unsigned long long)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
	}
	return (long long)v;
}

/* ---- checking ----------------------------------------------------------- */

enum digest_result
digest_check(const struct digest_auth *a, const unsigned char key[DIGEST_KEY_LEN],
             struct digest_seen *seen, const char *realm, const char *user,
             const char *password, const char *method, const char *req_uri, long long now,
             long long ttl)
{
	char want[65];
	enum digest_result n;
	unsigned char mac[16];
	long long nc, t = 0;
	bool ok;

	if (strcmp(a->realm, realm) != 0 || strcmp(a->username, user) != 0 ||
	    strcmp(a->uri, req_uri) != 0)
		return DIGEST_WRONG;
	if (a->algorithm != NULL && strcasecmp(a->algorithm, "MD5") != 0)
		return DIGEST_WRONG;
	/* RFC 2069 answers (no qop) carry no nonce count: refused */
	if (a->qop == NULL || strcasecmp(a->qop, "auth") != 0 || (nc = nc_value(a->nc)) < 0)
		return DIGEST_WRONG;
	if ((n = nonce_check(key, a->nonce, req_uri, now, ttl, &t)) == DIGEST_WRONG)
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
	if (n != DIGEST_OK)
		return n;
	/* nonce_check vouched for its form: "<stamp>-<32 hex>" */
	if (sodium_hex2bin(mac, sizeof(mac), strchr(a->nonce, '-') + 1, 32, NULL, NULL, NULL) != 0 ||
	    !seen_use(seen, mac, t, (uint32_t)nc, now, ttl))
		return DIGEST_REPLAY;
	return DIGEST_OK;
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
