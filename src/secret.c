/*
 * secret.c -- secret codes (Argon2id) and API tokens (SHA-256), libsodium.
 *
 * Owns two pieces of state:
 *   - the cache of dummy hashes used by secret_verify_dummy(), one per
 *     (ops, mem) parameter set, guarded by a mutex.  A cached hash is never
 *     freed or changed once published, so it is copied out under the lock
 *     and verified outside it: concurrent dummy verifies run in parallel
 *     like real ones;
 *   - the gate of Argon2id computations (secret_set_parallel): a count of
 *     those running, under gate_lock, which is held only to change it (a
 *     leaf: nothing is taken while it is held, and waiting for a turn
 *     releases it).
 *
 * Every stack buffer that held a secret is wiped with sodium_memzero
 * before returning.
 */
#include "secret.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"
#include "lockorder.h"

_Static_assert(SECRET_TOKEN_LEN + 1 ==
                   sodium_base64_ENCODED_LEN(SECRET_TOKEN_BYTES,
                                             sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "SECRET_TOKEN_LEN must match the base64url length of SECRET_TOKEN_BYTES");

/* The code every dummy hash is made from; its value does not matter. */
#define DUMMY_CODE "00000000"
#define DUMMY_SLOTS 4

struct dummy_slot {
	bool used;
	unsigned long long ops;
	size_t mem;
	char hash[SECRET_HASH_LEN];
};

static pthread_mutex_t dummy_lock = PTHREAD_MUTEX_INITIALIZER;

#ifdef HD_LOCK_ORDER
/* a static lock: ranked before main() runs (lockorder.h) */
__attribute__((constructor)) static void
rank_lock(void)
{
	lockorder_register(&dummy_lock, LOCK_SECRET, "secret dummy");
}
#endif

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_turn = PTHREAD_COND_INITIALIZER;
static unsigned gate_slots;   /* 0: one per core, resolved at first use */
static unsigned gate_running;

#ifdef HD_LOCK_ORDER
__attribute__((constructor)) static void
rank_gate(void)
{
	lockorder_register(&gate_lock, LOCK_SECRET_GATE, "secret gate");
}
#endif

static struct dummy_slot dummy_slots[DUMMY_SLOTS];
static unsigned dummy_next; /* slot replaced when all are used */

int
secret_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

void
secret_set_parallel(unsigned n)
{
	pthread_mutex_lock(&gate_lock);
	gate_slots = n;
	pthread_mutex_unlock(&gate_lock);
}

/* gate_slots resolved; under gate_lock */
static unsigned
slots_locked(void)
{
	if (gate_slots == 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);

		gate_slots = cores > 0 ? (unsigned)cores : 1u;
	}
	return gate_slots;
}

unsigned
secret_parallel(void)
{
	unsigned n;

	pthread_mutex_lock(&gate_lock);
	n = slots_locked();
	pthread_mutex_unlock(&gate_lock);
	return n;
}

/* Waits for a turn to run one Argon2id computation (gate_leave ends it). */
static void
gate_enter(void)
{
	pthread_mutex_lock(&gate_lock);
	while (gate_running >= slots_locked())
		pthread_cond_wait(&gate_turn, &gate_lock);
	gate_running++;
	pthread_mutex_unlock(&gate_lock);
}

static void
gate_leave(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_running--;
	pthread_cond_signal(&gate_turn);
	pthread_mutex_unlock(&gate_lock);
}

int
secret_code_valid(const char *code, int min_len, char *err, size_t errlen)
{
	size_t len;

	if (code == NULL || *code == '\0') {
		hd_seterr(err, errlen, "secret code is empty");
		return -1;
	}
	len = strlen(code);
	for (size_t i = 0; i < len; i++) {
		if (code[i] < '0' || code[i] > '9') {
			hd_seterr(err, errlen, "secret code must contain digits only");
			return -1;
		}
	}
	if (min_len < 1)
		min_len = 1;
	if (len < (size_t)min_len) {
		hd_seterr(err, errlen, "secret code must have at least %d digits", min_len);
		return -1;
	}
	if (len > SECRET_CODE_MAX) {
		hd_seterr(err, errlen, "secret code must have at most %d digits", SECRET_CODE_MAX);
		return -1;
	}
	return 0;
}

static bool
limits_ok(unsigned long long ops, size_t mem)
{
	return ops >= crypto_pwhash_OPSLIMIT_MIN && ops <= crypto_pwhash_OPSLIMIT_MAX &&
	       mem >= crypto_pwhash_MEMLIMIT_MIN && mem <= crypto_pwhash_MEMLIMIT_MAX;
}

int
secret_hash(const char *code, unsigned long long ops, size_t mem_bytes,
            char out[SECRET_HASH_LEN], char *err, size_t errlen)
{
	int rc;

	if (code == NULL) {
		hd_seterr(err, errlen, "no secret code to hash");
		return -1;
	}
	if (!limits_ok(ops, mem_bytes)) {
		hd_seterr(err, errlen, "Argon2id limits out of range");
		return -1;
	}
	gate_enter();
	rc = crypto_pwhash_str_alg(out, code, strlen(code), ops, mem_bytes,
	                           crypto_pwhash_ALG_ARGON2ID13);
	gate_leave();
	if (rc != 0) {
		hd_seterr(err, errlen, "cannot hash secret code: out of memory");
		return -1;
	}
	return 0;
}

/* Whether hash is a NUL-terminated string that fits a hash buffer. */
static bool
hash_terminated(const char *hash)
{
	return hash != NULL && strnlen(hash, SECRET_HASH_LEN) < SECRET_HASH_LEN;
}

bool
secret_verify(const char *hash, const char *code)
{
	int rc;

	if (!hash_terminated(hash) || code == NULL)
		return false;
	gate_enter();
	rc = crypto_pwhash_str_verify(hash, code, strlen(code));
	gate_leave();
	return rc == 0;
}

bool
secret_needs_rehash(const char *hash, unsigned long long ops, size_t mem_bytes)
{
	if (!hash_terminated(hash))
		return true;
	return crypto_pwhash_str_needs_rehash(hash, ops, mem_bytes) != 0;
}

/*
 * Copies the dummy hash for (ops, mem) into out, computing it first if no
 * slot has it.  Returns 0, or -1 if it cannot be computed.  The hash is
 * computed under the lock: it happens once per parameter set, and other
 * threads wanting it would have to wait for it anyway.
 */
static int
dummy_hash(unsigned long long ops, size_t mem, char out[SECRET_HASH_LEN])
{
	struct dummy_slot *s = NULL;
	int rc = -1;

	pthread_mutex_lock(&dummy_lock);
	for (unsigned i = 0; i < DUMMY_SLOTS; i++) {
		if (dummy_slots[i].used && dummy_slots[i].ops == ops && dummy_slots[i].mem == mem) {
			s = &dummy_slots[i];
			break;
		}
	}
	if (s == NULL) {
		s = &dummy_slots[dummy_next];
		if (secret_hash(DUMMY_CODE, ops, mem, s->hash, NULL, 0) != 0) {
			s->used = false;
			goto out;
		}
		s->used = true;
		s->ops = ops;
		s->mem = mem;
		dummy_next = (dummy_next + 1) % DUMMY_SLOTS;
	}
	memcpy(out, s->hash, SECRET_HASH_LEN);
	rc = 0;
out:
	pthread_mutex_unlock(&dummy_lock);
	return rc;
}

void
secret_verify_dummy(const char *code, unsigned long long ops, size_t mem)
{
	char hash[SECRET_HASH_LEN];
	volatile bool ok;

	if (dummy_hash(ops, mem, hash) != 0)
		return;
	/* "" would be as slow, but hashing the real input keeps it honest */
	ok = secret_verify(hash, code != NULL ? code : "");
	(void)ok;
}

void
secret_token_new(char out[SECRET_TOKEN_LEN + 1])
{
	unsigned char raw[SECRET_TOKEN_BYTES];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, SECRET_TOKEN_LEN + 1, raw, sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

void
secret_token_hash(const char *token, char out_hex[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	if (token == NULL)
		token = "";
	crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
	sodium_bin2hex(out_hex, 65, h, sizeof(h));
}

bool
secret_equal(const char *a, const char *b)
{
	size_t la, lb;

	if (a == NULL || b == NULL)
		return false;
	la = strlen(a);
	lb = strlen(b);
	if (la != lb)
		return false;
	return sodium_memcmp(a, b, la) == 0;
}
