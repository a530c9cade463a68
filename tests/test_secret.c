/*
 * test_secret.c -- secret codes (Argon2id) and API tokens.
 *
 * Hashes use libsodium's smallest limits so that the suite stays fast;
 * the limits do not change the logic under test.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "secret.h"
#include "testutil.h"

#define OPS crypto_pwhash_OPSLIMIT_MIN
#define MEM crypto_pwhash_MEMLIMIT_MIN

static void
init(void)
{
	cr_assert_eq(secret_init(), 0);
}

TestSuite(secret, .init = init);

Test(secret, code_valid)
{
	char err[128];

	cr_assert_eq(secret_code_valid("1234", 4, err, sizeof(err)), 0);
	cr_assert_eq(secret_code_valid("0000", 4, err, sizeof(err)), 0);
	cr_assert_eq(secret_code_valid("12345678901234567890123456789012", 4, err, sizeof(err)), 0);

	err[0] = '\0';
	cr_assert_eq(secret_code_valid("123", 4, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "secret code must have at least 4 digits");
	cr_assert_eq(secret_code_valid("123456", 8, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "secret code must have at least 8 digits");

	cr_assert_eq(secret_code_valid("123456789012345678901234567890123", 4, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "secret code must have at most 32 digits");

	cr_assert_eq(secret_code_valid("12a4", 4, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "secret code must contain digits only");
	cr_assert(strstr(err, "12a4") == NULL, "the code must not appear in the message");
	cr_assert_eq(secret_code_valid("1234 ", 4, err, sizeof(err)), -1);
	cr_assert_eq(secret_code_valid("-123", 4, err, sizeof(err)), -1);
	cr_assert_eq(secret_code_valid("12\n34", 4, err, sizeof(err)), -1);
	cr_assert_eq(secret_code_valid("", 4, err, sizeof(err)), -1);
	cr_assert_eq(secret_code_valid(NULL, 4, err, sizeof(err)), -1);
	/* a tiny error buffer is never overrun */
	char small[8];
	cr_assert_eq(secret_code_valid("1", 4, small, sizeof(small)), -1);
	cr_assert_eq(strlen(small), 7);
	cr_assert_str_eq(small, "secr...", "a cut message shows the cut (errbuf.h)");
}

Test(secret, hash_verify_round_trip)
{
	char hash[SECRET_HASH_LEN], err[128];

	cr_assert_eq(secret_hash("4711", OPS, MEM, hash, err, sizeof(err)), 0, "%s", err);
	cr_assert(strncmp(hash, "$argon2id$", 10) == 0, "not Argon2id: %s", hash);
	cr_assert(strstr(hash, "4711") == NULL);
	cr_assert(secret_verify(hash, "4711"));
	cr_assert_not(secret_verify(hash, "4712"));
	cr_assert_not(secret_verify(hash, "47110"));
	cr_assert_not(secret_verify(hash, ""));
	cr_assert_not(secret_verify(hash, NULL));
	cr_assert_not(secret_verify(NULL, "4711"));
	cr_assert_not(secret_verify("$argon2id$garbage", "4711"));
	cr_assert_not(secret_verify("", "4711"));
}

Test(secret, hashes_are_salted)
{
	char h1[SECRET_HASH_LEN], h2[SECRET_HASH_LEN];

	cr_assert_eq(secret_hash("123456", OPS, MEM, h1, NULL, 0), 0);
	cr_assert_eq(secret_hash("123456", OPS, MEM, h2, NULL, 0), 0);
	cr_assert_str_neq(h1, h2);
	cr_assert(secret_verify(h1, "123456"));
	cr_assert(secret_verify(h2, "123456"));
}

Test(secret, hash_bad_limits)
{
	char hash[SECRET_HASH_LEN], err[128] = "";

	cr_assert_eq(secret_hash("1234", 0, MEM, hash, err, sizeof(err)), -1);
	cr_assert_neq(err[0], '\0');
	cr_assert_eq(secret_hash("1234", OPS, 1024, hash, err, sizeof(err)), -1);
	cr_assert_eq(secret_hash(NULL, OPS, MEM, hash, err, sizeof(err)), -1);
}

Test(secret, needs_rehash)
{
	char hash[SECRET_HASH_LEN];

	cr_assert_eq(secret_hash("1234", OPS, MEM, hash, NULL, 0), 0);
	cr_assert_not(secret_needs_rehash(hash, OPS, MEM));
	cr_assert(secret_needs_rehash(hash, OPS + 1, MEM));
	cr_assert(secret_needs_rehash(hash, OPS, MEM * 2));
	cr_assert(secret_needs_rehash(NULL, OPS, MEM));
}

Test(secret, verify_dummy_returns)
{
	/* no observable result but time; it must not crash, with any input */
	secret_verify_dummy("1234", OPS, MEM);
	secret_verify_dummy("1234", OPS, MEM); /* cached */
	secret_verify_dummy(NULL, OPS, MEM);
	secret_verify_dummy("1234", OPS + 1, MEM);
	secret_verify_dummy("1234", 0, 0); /* impossible limits: returns at once */
	/* more parameter sets than cache slots */
	for (unsigned long long ops = 1; ops <= 6; ops++)
		secret_verify_dummy("1", ops, MEM);
}

static void *
dummy_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++)
		secret_verify_dummy("98765", OPS, MEM * 2);
	return NULL;
}

Test(secret, verify_dummy_threads)
{
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, dummy_thread, NULL), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
}

static double
elapsed(struct timespec a, struct timespec b)
{
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* The dummy really does the work of a verify: with a memory-hard limit
 * it cannot be orders of magnitude faster than the real thing. */
Test(secret, verify_dummy_spends_time)
{
	const size_t mem = 16u << 20; /* 16 MiB makes the cost measurable */
	char hash[SECRET_HASH_LEN];
	struct timespec t0, t1, t2;

	cr_assert_eq(secret_hash("2468", OPS, mem, hash, NULL, 0), 0);
	secret_verify_dummy("1357", OPS, mem); /* computes the cached hash */
	/* the work done, in this thread's CPU time: a busy machine that
	 * preempts the thread does not count */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	cr_assert_not(secret_verify(hash, "1357"));
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	secret_verify_dummy("1357", OPS, mem);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t2);
	cr_assert_gt(elapsed(t1, t2), elapsed(t0, t1) / 10,
	             "dummy %.6fs vs real %.6fs", elapsed(t1, t2), elapsed(t0, t1));
}

static bool
is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

Test(secret, token_format_and_uniqueness)
{
	enum { N = 200 };
	static char toks[N][SECRET_TOKEN_LEN + 1];

	for (int i = 0; i < N; i++) {
		memset(toks[i], 'X', sizeof(toks[i]));
		secret_token_new(toks[i]);
		cr_assert_eq(strlen(toks[i]), SECRET_TOKEN_LEN);
		for (int j = 0; j < SECRET_TOKEN_LEN; j++)
			cr_assert(is_b64url(toks[i][j]), "bad char %c in %s", toks[i][j], toks[i]);
		for (int k = 0; k < i; k++)
			cr_assert_str_neq(toks[i], toks[k]);
	}
}

Test(secret, token_hash_hex)
{
	char hex[65];

	/* SHA-256("abc"), FIPS 180-2 example */
	secret_token_hash("abc", hex);
	cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	secret_token_hash("", hex);
	cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	char tok[SECRET_TOKEN_LEN + 1], h1[65], h2[65];
	secret_token_new(tok);
	secret_token_hash(tok, h1);
	secret_token_hash(tok, h2);
	cr_assert_str_eq(h1, h2);
	cr_assert_eq(strlen(h1), 64);
	cr_assert_eq(strspn(h1, "0123456789abcdef"), 64);
}

Test(secret, equal)
{
	cr_assert(secret_equal("abcdef", "abcdef"));
	cr_assert(secret_equal("", ""));
	cr_assert_not(secret_equal("abcdef", "abcdeg"));
	cr_assert_not(secret_equal("abcdef", "Abcdef"));
	cr_assert_not(secret_equal("abcdef", "abcde"));
	cr_assert_not(secret_equal("abc", "abcdef"));
	cr_assert_not(secret_equal(NULL, "abc"));
	cr_assert_not(secret_equal("abc", NULL));
	cr_assert_not(secret_equal(NULL, NULL));
}

/* ---- the gate: Argon2id computations at once ---- */

#define GATE_MEM (32u * 1024u * 1024u)

/* VmHWM of this process, KiB (each test runs in a process of its own) */
static long
hwm_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	cr_assert_gt(kib, 0);
	return kib;
}

static const char *gate_hash;

static void *
gate_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 2; i++)
		cr_assert(secret_verify(gate_hash, "2468"));
	return NULL;
}

Test(secret, parallel_defaults_to_one_per_core)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	cr_assert_eq(secret_parallel(), (unsigned)(cores > 0 ? cores : 1));
	secret_set_parallel(3);
	cr_assert_eq(secret_parallel(), 3);
}

/* Eight threads verify a 32 MiB code at once; two run at a time, so the
 * peak holds two hashes' memory, not eight. */
Test(secret, parallel_bounds_the_memory_of_concurrent_hashes)
{
	static char hash[SECRET_HASH_LEN];
	char err[128];
	pthread_t t[8];
	long before, grown;

	secret_set_parallel(2);
	cr_assert_eq(secret_hash("2468", OPS, GATE_MEM, hash, err, sizeof(err)), 0, "%s", err);
	gate_hash = hash;
	before = hwm_kib();
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, gate_thread, NULL), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	grown = hwm_kib() - before;
	/* two hashes' memory and some slack (thread stacks, the allocator),
	 * far below the 256 MiB of eight at once */
	cr_assert_leq(grown, 2 * (long)(GATE_MEM / 1024) + 24 * 1024,
	              "peak grew by %ld KiB", grown);
}
