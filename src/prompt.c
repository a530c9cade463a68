/*
 * prompt.c -- prompt files per language and their 20 ms playlists.
 *
 * Prompts are small (a few seconds each, 8 kB a second), so every language
 * is read at start-up and kept in memory in both laws; playing is copying.
 */
#include "prompt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "errbuf.h"

#define MAX_LANGS 32
#define MAX_PROMPT_BYTES (8000 * 60) /* one minute */

static const char *const names[PROMPT_COUNT] = {
	"enter_code", "wrong_code", "extension", "now_on_phone", "welcome_back",
	"goodbye", "not_allowed", "locked", "nothing", "unavailable",
	"0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
};

struct clip {
	uint8_t *ulaw, *alaw; /* NULL: missing in this language */
	size_t len;
};

struct lang {
	char name[32];
	struct clip clip[PROMPT_COUNT];
};

struct prompts {
	struct lang *v;
	size_t n;
};

const char *
prompt_name(enum prompt_id id)
{
	return (unsigned)id < PROMPT_COUNT ? names[id] : "?";
}

uint8_t
prompt_silence(int pt)
{
	return pt == 8 ? 0xD5 : 0xFF;
}

static int
ulaw_to_linear(uint8_t u)
{
	int mag;

	u = (uint8_t)~u;
	mag = (((u & 0x0f) << 3) + 0x84) << ((u >> 4) & 7);
	return (u & 0x80) ? 0x84 - mag : mag - 0x84;
}

static uint8_t
linear_to_alaw(int pcm)
{
	/* upper bounds of the eight segments of a 13-bit magnitude */
	static const int seg_end[8] = { 0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff };
	int mask, seg;
	uint8_t a;

	pcm >>= 3;
	if (pcm >= 0) {
		mask = 0xd5;
	} else {
		mask = 0x55;
		pcm = -pcm - 1;
	}
	for (seg = 0; seg < 8 && pcm > seg_end[seg]; seg++)
		;
	if (seg == 8)
		return (uint8_t)(0x7f ^ mask);
	a = (uint8_t)(seg << 4);
	a |= (uint8_t)((seg < 2 ? pcm >> 1 : pcm >> seg) & 0x0f);
	return (uint8_t)(a ^ mask);
}

uint8_t
prompt_ulaw_to_alaw(uint8_t u)
{
	return linear_to_alaw(ulaw_to_linear(u));
}

static void
lang_free(struct lang *l)
{
	size_t i;

	for (i = 0; i < PROMPT_COUNT; i++) {
		free(l->clip[i].ulaw);
		free(l->clip[i].alaw);
	}
}

void
prompts_free(struct prompts *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++)
		lang_free(&p->v[i]);
	free(p->v);
	free(p);
}

/* Reads one clip; a missing file leaves it empty (returns 1). */
static int
clip_read(const char *path, struct clip *c, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	size_t i;

	if (f == NULL) {
		if (errno == ENOENT)
			return 1;
		hd_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || st.st_size > MAX_PROMPT_BYTES) {
		hd_seterr(err, errlen, "%s: empty or longer than a minute", path);
		fclose(f);
		return -1;
	}
	c->len = (size_t)st.st_size;
	if ((c->ulaw = malloc(c->len)) == NULL || (c->alaw = malloc(c->len)) == NULL ||
	    fread(c->ulaw, 1, c->len, f) != c->len) {
		hd_seterr(err, errlen, "%s: cannot read", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	for (i = 0; i < c->len; i++)
		c->alaw[i] = prompt_ulaw_to_alaw(c->ulaw[i]);
	return 0;
}

static int
lang_load(const char *dir, const char *name, bool complete, struct lang *l, char *err,
          size_t errlen)
{
	char path[4096];
	size_t i;
	int rc;

	memset(l, 0, sizeof(*l));
	if (strlen(name) >= sizeof(l->name)) {
		hd_seterr(err, errlen, "%s/%s: language name too long", dir, name);
		return -1;
	}
	strcpy(l->name, name);
	for (i = 0; i < PROMPT_COUNT; i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s.ul", dir, name, names[i]) >=
		    sizeof(path)) {
			hd_seterr(err, errlen, "%s: path too long", dir);
			return -1;
		}
		if ((rc = clip_read(path, &l->clip[i], err, errlen)) < 0)
			return -1;
		if (rc == 1 && complete) {
			hd_seterr(err, errlen, "%s: missing (the default language needs every prompt)",
			          path);
			return -1;
		}
	}
	return 0;
}

struct prompts *
prompts_load(const char *dir, const char *default_lang, char *err, size_t errlen)
{
	struct prompts *p = calloc(1, sizeof(*p));
	struct dirent *de;
	DIR *d = NULL;

	if (p == NULL || (p->v = calloc(MAX_LANGS, sizeof(*p->v))) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (lang_load(dir, default_lang, true, &p->v[0], err, errlen) != 0) {
		lang_free(&p->v[0]);
		goto fail;
	}
	p->n = 1;
	if ((d = opendir(dir)) == NULL) {
		hd_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, default_lang) == 0)
			continue;
		if (p->n == MAX_LANGS) {
			hd_seterr(err, errlen, "%s: more than %d languages", dir, MAX_LANGS);
			goto fail;
		}
		if (lang_load(dir, de->d_name, false, &p->v[p->n], err, errlen) != 0) {
			lang_free(&p->v[p->n]);
			goto fail;
		}
		p->n++;
	}
	closedir(d);
	return p;
fail:
	if (d != NULL)
		closedir(d);
	prompts_free(p);
	return NULL;
}

size_t
prompts_languages(const struct prompts *p)
{
	return p->n;
}

int
prompts_find(const struct prompts *set, const char *lang)
{
	size_t i, cut;

	if (lang == NULL)
		return 0;
	for (i = 0; i < set->n; i++)
		if (strcmp(set->v[i].name, lang) == 0)
			return (int)i;
	/* a locale (fr_FR) plays its language's folder (fr) */
	cut = strcspn(lang, "_-");
	for (i = 0; cut > 0 && lang[cut] != '\0' && i < set->n; i++)
		if (strlen(set->v[i].name) == cut && strncmp(set->v[i].name, lang, cut) == 0)
			return (int)i;
	return 0;
}

void
prompt_play_init(struct prompt_play *pl, const struct prompts *set, const char *lang, int pt)
{
	memset(pl, 0, sizeof(*pl));
	pl->set = set;
	pl->pt = pt;
	pl->lang = prompts_find(set, lang);
}

bool
prompt_play_add(struct prompt_play *pl, enum prompt_id id)
{
	if (pl->n == PROMPT_MAX_SEQ || (unsigned)id >= PROMPT_COUNT)
		return false;
	pl->seq[pl->n++] = (uint8_t)id;
	return true;
}

bool
prompt_play_add_digits(struct prompt_play *pl, const char *number)
{
	for (; *number != '\0'; number++)
		if (*number >= '0' && *number <= '9' &&
		    !prompt_play_add(pl, (enum prompt_id)(PROMPT_DIGIT_0 + (*number - '0'))))
			return false;
	return true;
}

static const struct clip *
clip_of(const struct prompt_play *pl, size_t i)
{
	const struct clip *c = &pl->set->v[pl->lang].clip[pl->seq[i]];

	return c->ulaw != NULL ? c : &pl->set->v[0].clip[pl->seq[i]];
}

bool
prompt_play_frame(struct prompt_play *pl, uint8_t out[PROMPT_FRAME])
{
	size_t w = 0;

	memset(out, prompt_silence(pl->pt), PROMPT_FRAME);
	if (pl->idx >= pl->n)
		return false;
	while (w < PROMPT_FRAME && pl->idx < pl->n) {
		const struct clip *c = clip_of(pl, pl->idx);
		size_t take = c->len - pl->off;

		if (take > PROMPT_FRAME - w)
			take = PROMPT_FRAME - w;
		memcpy(out + w, (pl->pt == 8 ? c->alaw : c->ulaw) + pl->off, take);
		w += take;
		pl->off += take;
		if (pl->off == c->len) {
			pl->idx++;
			pl->off = 0;
		}
	}
	return true;
}
