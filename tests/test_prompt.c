/*
 * test_prompt.c -- prompt.c: loading languages, 20 ms frames, fallbacks,
 * and the mu-law to A-law conversion (G.711 tables).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "prompt.h"
#include "testutil.h"

/* Writes every prompt of `lang` under dir, prompt i filled with byte i,
 * length 100 + i (so frames straddle prompts); skip: a prompt left out. */
static void
write_lang(const char *dir, const char *lang, int skip)
{
	char path[512];
	int i;

	snprintf(path, sizeof(path), "%s/%s", dir, lang);
	mkdir(path, 0755);
	for (i = 0; i < PROMPT_COUNT; i++) {
		unsigned char buf[200];
		FILE *f;

		if (i == skip)
			continue;
		memset(buf, i, sizeof(buf));
		snprintf(path, sizeof(path), "%s/%s/%s.ul", dir, lang, prompt_name(i));
		cr_assert_not_null(f = fopen(path, "wb"));
		fwrite(buf, 1, 100 + (size_t)i, f);
		fclose(f);
	}
}

Test(prompt, playlist_frames_and_fallback)
{
	char *dir = tu_tmpdir(), err[256];
	struct prompts *p;
	struct prompt_play pl;
	uint8_t f[PROMPT_FRAME];

	write_lang(dir, "en", -1);
	write_lang(dir, "fr", PROMPT_GOODBYE);
	cr_assert_not_null(p = prompts_load(dir, "en", err, sizeof(err)), "%s", err);
	cr_assert_eq(prompts_languages(p), 2);
	/* "fr": ENTER_CODE (100 bytes of 0) then GOODBYE missing -> English (105 of 5) */
	prompt_play_init(&pl, p, "fr", 0);
	cr_assert(prompt_play_add(&pl, PROMPT_ENTER_CODE));
	cr_assert(prompt_play_add(&pl, PROMPT_GOODBYE));
	cr_assert(prompt_play_frame(&pl, f));
	cr_assert_eq(f[0], 0);
	cr_assert_eq(f[99], 0);
	cr_assert_eq(f[100], PROMPT_GOODBYE, "the next prompt starts in the same frame");
	cr_assert_eq(f[159], PROMPT_GOODBYE);
	cr_assert(prompt_play_frame(&pl, f));
	cr_assert_eq(f[44], PROMPT_GOODBYE);
	cr_assert_eq(f[45], 0xFF, "padded with mu-law silence");
	cr_assert(!prompt_play_frame(&pl, f), "ended");
	cr_assert_eq(f[0], 0xFF);
	/* a locale plays its language's folder; unknown ones the default */
	cr_assert_eq(prompts_find(p, "fr"), pl.lang);
	cr_assert_eq(prompts_find(p, "fr_FR"), prompts_find(p, "fr"));
	cr_assert_neq(prompts_find(p, "fr_FR"), 0);
	cr_assert_eq(prompts_find(p, "de_DE"), 0);
	cr_assert_eq(prompts_find(p, "f"), 0);
	cr_assert_eq(prompts_find(p, NULL), 0);
	/* digits of a number, one prompt each */
	prompt_play_init(&pl, p, NULL, 8);
	cr_assert(prompt_play_add_digits(&pl, "1a0"));
	cr_assert_eq(pl.n, 2);
	cr_assert_eq(pl.seq[0], PROMPT_DIGIT_0 + 1);
	prompts_free(p);
	tu_rmtree(dir);
}

Test(prompt, default_language_must_be_complete)
{
	char *dir = tu_tmpdir(), err[256];

	write_lang(dir, "en", PROMPT_LOCKED);
	cr_assert_null(prompts_load(dir, "en", err, sizeof(err)));
	cr_assert(strstr(err, "locked.ul") != NULL, "%s", err);
	cr_assert_null(prompts_load(dir, "de", err, sizeof(err)));
	tu_rmtree(dir);
}

Test(prompt, ulaw_to_alaw_tables)
{
	/* reference values from Python's audioop (lin2alaw(ulaw2lin(u))), an
	 * independent G.711 implementation; the checksum covers all 256 */
	static const uint8_t u[] = { 0xFF, 0x7F, 0x80, 0x00, 0x9A, 0x1A, 0xC5 };
	static const uint8_t a[] = { 0xD5, 0xD5, 0xAA, 0x2A, 0xB0, 0x30, 0xED };
	unsigned long sum = 0;
	unsigned i;

	for (i = 0; i < sizeof(u); i++)
		cr_assert_eq(prompt_ulaw_to_alaw(u[i]), a[i], "u=%#x", u[i]);
	for (i = 0; i < 256; i++)
		sum += (unsigned long)prompt_ulaw_to_alaw((uint8_t)i) * (i + 1);
	cr_assert_eq(sum, 5467618UL);
	cr_assert_eq(prompt_silence(0), 0xFF);
	cr_assert_eq(prompt_silence(8), 0xD5);
}
