/*
 * digest.h -- HTTP digest authentication (RFC 7616, MD5, qop=auth) with
 * stateless nonces, for phones downloading their configuration.
 *
 * A nonce is "<time>.<salt>-<mac>": the issue time in hex, 64 random bits
 * (each challenge its own nonce), and a keyed BLAKE2b of both and the
 * request URI, under a key that lives as long as the process.  Verifying one needs no table, so a boot storm of thousands of
 * phones in their challenge window never evicts one phone's nonce for
 * another's (what a fixed nonce table does).  A nonce is good for `ttl`
 * seconds, for the URI it was issued for; an older one is "stale" (the
 * client retries at once without asking its user).
 *
 * Replays: the nonce is stateless, but its use is not.  A digest_seen
 * table records, per nonce, the highest nonce count (nc) answered with it;
 * an answer must carry a higher one, so a captured Authorization header is
 * worth nothing a second time.  The table has a fixed size: when a bucket
 * is full its oldest live nonce is dropped and the bucket remembers that
 * nonce's issue time, below which (inclusive) it vouches for nothing and
 * answers "replay" (the phone gets stale=true and retries at once with a
 * fresh nonce).  So memory stays bounded under any boot storm, and the
 * table never lets a replay through, whatever it forgets.
 * Answers without qop (RFC 2069) have no nc and are refused.
 *
 * No I/O; `now` and the key are passed in.  Thread-safe (the table locks
 * each bucket).
 */
#ifndef HD_DIGEST_H
#define HD_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define DIGEST_KEY_LEN 32
#define DIGEST_NONCE_LEN 80 /* with the NUL */

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

/* DIGEST_REPLAY: right credentials, but a nonce count already used with
 * that nonce (or a nonce the table can no longer vouch for): answer like
 * DIGEST_STALE (a fresh nonce); never serve. */
enum digest_result { DIGEST_OK, DIGEST_WRONG, DIGEST_STALE, DIGEST_REPLAY };

/* The nonce counts seen, for `capacity` nonces at most (rounded up to a
 * whole number of buckets; fixed memory, about 32 bytes a nonce).  NULL
 * when out of memory.  Free with digest_seen_free (NULL-safe). */
struct digest_seen *digest_seen_new(size_t capacity);
void digest_seen_free(struct digest_seen *t);

/*
 * Checks an answer for `method` against the user's password: the realm,
 * user name, URI (must equal req_uri), nonce (made by digest_nonce for that
 * URI, not older than ttl seconds: else DIGEST_STALE) and the response
 * (constant-time).  qop must be "auth" with nc (8 hex digits) and cnonce;
 * algorithm absent or MD5.  Only an answer right in every other way has
 * its nc recorded in seen: an nc not above the highest recorded for that
 * nonce gives DIGEST_REPLAY.
 */
enum digest_result digest_check(const struct digest_auth *a, const unsigned char key[DIGEST_KEY_LEN],
                                struct digest_seen *seen, const char *realm, const char *user,
                                const char *password, const char *method, const char *req_uri,
                                long long now, long long ttl);

/* The WWW-Authenticate value of a challenge, into out.  0, or -1 when it
 * does not fit (realm too long). */
int digest_challenge(const unsigned char key[DIGEST_KEY_LEN], const char *realm, const char *uri,
                     long long now, bool stale, char *out, size_t outlen);

#endif
