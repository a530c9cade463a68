/*
 * prompt.h -- the spoken prompts of Virtualization Center calls (prompt_).
 *
 * Owns: the prompt files of every language (one folder per language, one
 * file per prompt: raw G.711 mu-law, 8 kHz, mono, named "<name>.ul", see
 * docs/VC.md), their A-law copies, and playlists that cut prompts into
 * 20 ms frames.  Loading reads files; everything else is pure.
 *
 * Invariants:
 *   1. The default language has every prompt; another language may lack
 *      some, and those play in the default language.
 *   2. A frame is always 160 bytes; the end of a playlist is padded with
 *      silence of the playlist's law.
 */
#ifndef HD_PROMPT_H
#define HD_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROMPT_FRAME 160   /* bytes of G.711 in 20 ms */
#define PROMPT_MAX_SEQ 32  /* prompts in one playlist */

enum prompt_id {
	PROMPT_ENTER_CODE,     /* "Enter your secret code, then pound." */
	PROMPT_WRONG_CODE,     /* "Wrong code, try again." */
	PROMPT_EXTENSION,      /* "Extension" */
	PROMPT_NOW_ON_PHONE,   /* "is now on this phone." */
	PROMPT_WELCOME_BACK,   /* "Welcome back." */
	PROMPT_GOODBYE,        /* "Goodbye." */
	PROMPT_NOT_ALLOWED,    /* "Not allowed on this phone." */
	PROMPT_LOCKED,         /* "Too many wrong codes. Try again later." */
	PROMPT_NOTHING,        /* "This phone is already at home." */
	PROMPT_UNAVAILABLE,    /* "The service is not available." */
	PROMPT_DIGIT_0,        /* "zero" ... PROMPT_DIGIT_0 + 9: "nine" */
	PROMPT_COUNT = PROMPT_DIGIT_0 + 10
};

/* The file name (without ".ul") of a prompt. */
const char *prompt_name(enum prompt_id id);

struct prompts;

/*
 * Loads dir/<lang>/<name>.ul for every language folder in dir.
 * default_lang's folder must hold every prompt.  Returns the set (free
 * with prompts_free), or NULL with a message in err naming the missing or
 * unreadable file.
 */
struct prompts *prompts_load(const char *dir, const char *default_lang, char *err,
    size_t errlen);
void prompts_free(struct prompts *p);

/* Languages loaded, default first. */
size_t prompts_languages(const struct prompts *p);

/* The index of a language: the folder named `lang` exactly, else the
 * folder of its language part ("fr_FR" plays "fr"), else the default (0).
 * NULL: the default. */
int prompts_find(const struct prompts *set, const char *lang);

/* A playlist: prompts in order, played in one language and law. */
struct prompt_play {
	const struct prompts *set;
	int lang;                 /* index; the default is 0 */
	int pt;                   /* 0 PCMU, 8 PCMA */
	uint8_t seq[PROMPT_MAX_SEQ];
	size_t n, idx, off;
};

/* Starts a playlist in language `lang` (as prompts_find chooses). */
void prompt_play_init(struct prompt_play *pl, const struct prompts *set, const char *lang,
    int pt);
/* Appends a prompt; false when the playlist is full. */
bool prompt_play_add(struct prompt_play *pl, enum prompt_id id);
/* Appends the digits of a number, one prompt each (non-digits skipped). */
bool prompt_play_add_digits(struct prompt_play *pl, const char *number);

/* Writes the next 20 ms into out.  Returns true while audio remains (the
 * frame may end in silence), false once the playlist has ended (out is
 * silence). */
bool prompt_play_frame(struct prompt_play *pl, uint8_t out[PROMPT_FRAME]);

/* One G.711 sample: mu-law to A-law.  Pure, cannot fail. */
uint8_t prompt_ulaw_to_alaw(uint8_t u);

/* The silence byte of a law (0 PCMU: 0xFF, 8 PCMA: 0xD5). */
uint8_t prompt_silence(int pt);

#endif /* HD_PROMPT_H */
