/*
 * secret.h -- secret codes and API tokens (libsodium).
 *
 * Secret codes (SPEC 1, 2.4) are short digit strings, so they are stored
 * only as slow salted Argon2id hashes (libsodium's crypto_pwhash "$argon2id$"
 * strings) and checked with a constant-time verify.  API tokens are long
 * random strings, so a fast SHA-256 is the right hash for storing them.
 *
 * Nothing here logs or keeps a code or token: callers own the buffers they
 * pass and wipe them (sodium_memzero) when done.  Error messages never
 * contain a code.
 *
 * Call secret_init() once at start-up, before any other function here and
 * before starting threads.  After that every function is thread-safe.
 */
#ifndef HD_SECRET_H
#define HD_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include <sodium.h>

#define SECRET_CODE_MAX 32          /* longest secret code, digits */
#define SECRET_TOKEN_BYTES 32       /* random bytes in an API token */
#define SECRET_TOKEN_LEN 43         /* its base64url form, no padding */
#define SECRET_HASH_LEN crypto_pwhash_STRBYTES /* buffer for a code hash */

/* Initialises libsodium.  Returns 0, or -1 if it cannot be used. */
int secret_init(void);

/*
 * How many Argon2id computations (secret_hash, secret_verify,
 * secret_verify_dummy) run at once, process-wide; more wait their turn.
 * Each holds its memlimit (64 MiB by default) while it runs, and more of
 * them than cores only share the cores: the bound keeps the memory peak at
 * n x memlimit however many requests check codes at once.  0 = one per
 * online CPU core (the default).  Call before starting threads.
 */
void secret_set_parallel(unsigned n);
/* The bound in force (after secret_set_parallel; resolved on first use). */
unsigned secret_parallel(void);

/*
 * Checks a secret code's form: digits only, min_len..SECRET_CODE_MAX long.
 * Returns 0, or -1 with a message in err (which never repeats the code).
 */
int secret_code_valid(const char *code, int min_len, char *err, size_t errlen);

/*
 * Hashes code with Argon2id (opslimit ops, memlimit mem_bytes) into out, a
 * NUL-terminated "$argon2id$..." string with a random salt.  Returns 0, or
 * -1 with a message in err: limits out of libsodium's range, or out of
 * memory.  Does not check the code's form (see secret_code_valid).
 */
int secret_hash(const char *code, unsigned long long ops, size_t mem_bytes,
                char out[SECRET_HASH_LEN], char *err, size_t errlen);

/*
 * Whether code matches hash (made by secret_hash, with whatever limits it
 * records).  False for a NULL or malformed hash, or NULL code.  The time
 * spent does not depend on how much of the code is right.
 */
bool secret_verify(const char *hash, const char *code);

/*
 * Whether hash was made with other limits than (ops, mem_bytes), so that
 * it should be replaced after the next successful verify.  True for a
 * malformed hash.
 */
bool secret_needs_rehash(const char *hash, unsigned long long ops, size_t mem_bytes);

/*
 * Spends the time of a secret_verify() against a hash made with (ops, mem)
 * and always fails.  Used where there is no hash to check (unknown
 * extension, no code set), so that the answer time does not reveal it.
 * The fixed hash for each parameter set is computed once (the first call
 * is twice as slow) and kept for the life of the process.  Thread-safe.
 * If hashing is impossible (out of memory), returns at once.
 */
void secret_verify_dummy(const char *code, unsigned long long ops, size_t mem);

/* A new random API token: SECRET_TOKEN_LEN base64url characters
 * (A-Z a-z 0-9 - _) and a NUL.  Cannot fail. */
void secret_token_new(char out[SECRET_TOKEN_LEN + 1]);

/* SHA-256 of token as 64 lowercase hex digits and a NUL.  This is what is
 * stored and looked up for a token.  Cannot fail. */
void secret_token_hash(const char *token, char out_hex[65]);

/*
 * Constant-time comparison of two strings of equal length; false if
 * either is NULL or their lengths differ (the length is not secret).
 */
bool secret_equal(const char *a, const char *b);

#endif
