/*
 * digest.h -- HTTP digest authentication (RFC 7616, MD5, qop=auth) with
 * stateless nonces, for phones downloading their configuration.
 *
 * A nonce is "<time>-<mac>": the issue time in hex and a keyed BLAKE2b of
 * that time and the request URI, under a key that lives as long as the
 * process.  Verifying one needs no table, so a boot storm of thousands of
 * phones in their challenge window never evicts one phone's nonce for
 * another's (what a fixed nonce table does).  A nonce is good for `ttl`
 * seconds, for the URI it was issued for; an older one is "stale" (the
 * client retries at once without asking its user).
 *
 * Pure: no I/O; `now` and the key are passed in.  Thread-safe.
 */
#ifndef HD_DIGEST_H
#define HD_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define DIGEST_KEY_LEN 32
#define DIGEST_NONCE_LEN 64 /* with the NUL */

/* The fields of an "Authorization: Digest ..." header; pointers into the
 * caller's buffer given to digest_parse. */
struct digest_auth {
	const char *username, *realm, *nonce, *uri, *response, *qop, *nc, *cnonce,
	    *algorithm, *opaque;
};

/*
 * Parses the value of an Authorization header ("Digest k=v, k="v", ...")
 * in place: buf is modified (quotes and escapes removed) and the fields
 * point into it.  Returns 0, or -1 when it is not a well-formed Digest
 * header or lacks username, realm, nonce, uri or response.
 */
int digest_parse(char *buf, struct digest_auth *out);

/* A nonce for uri at `now`, into out (DIGEST_NONCE_LEN bytes). */
void digest_nonce(const unsigned char key[DIGEST_KEY_LEN], const char *uri, long long now,
                  char out[DIGEST_NONCE_LEN]);

enum digest_result { DIGEST_OK, DIGEST_WRONG, DIGEST_STALE };

/*
 * Checks an answer for `method` against the user's password: the realm,
 * user name, URI (must equal req_uri), nonce (made by digest_nonce for that
 * URI, not older than ttl seconds: else DIGEST_STALE) and the response
 * (constant-time).  qop must be absent or "auth"; algorithm absent or MD5.
 */
enum digest_result digest_check(const struct digest_auth *a, const unsigned char key[DIGEST_KEY_LEN],
                                const char *realm, const char *user, const char *password,
                                const char *method, const char *req_uri, long long now,
                                long long ttl);

/* The WWW-Authenticate value of a challenge, into out.  0, or -1 when it
 * does not fit (realm too long). */
int digest_challenge(const unsigned char key[DIGEST_KEY_LEN], const char *realm, const char *uri,
                     long long now, bool stale, char *out, size_t outlen);

#endif
