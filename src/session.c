/*
 * session.c -- the table of web sessions (session.h).
 *
 * A small open-addressed array searched linearly by the hash of the id:
 * SESSION_MAX entries at most, and a sign-in or a page request touches
 * one entry, so a linear scan of a few thousand 200-byte entries is
 * simpler than an index and fast enough.  One mutex covers the table.
 */
#include "session.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "secret.h"
#include "lockorder.h"

struct slot {
	bool used;
	char id_hash[65];
	struct session s;
};

struct session_table {
	pthread_mutex_t mu;
	int idle, max_age;
	struct slot v[SESSION_MAX];
};

struct session_table *
session_table_new(int idle, int max_age)
{
	struct session_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	pthread_mutex_init(&t->mu, NULL);
	lockorder_register(&t->mu, LOCK_SESSION, "session");
	t->idle = idle;
	t->max_age = max_age;
	return t;
}

void
session_table_free(struct session_table *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->mu);
	sodium_memzero(t->v, sizeof(t->v));
	free(t);
}

static bool
expired(const struct session_table *t, const struct slot *x, long long now)
{
	return now - x->s.last_seen >= t->idle || now - x->s.created >= t->max_age;
}

static void
drop(struct slot *x)
{
	sodium_memzero(x, sizeof(*x));
}

int
session_new(struct session_table *t, const struct session *tmpl, long long now,
            char id_out[SESSION_ID_LEN + 1], struct session *out)
{
	struct slot *pick = NULL;

	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < SESSION_MAX; i++) {
		struct slot *x = &t->v[i];

		if (x->used && expired(t, x, now))
			drop(x);
		if (!x->used) {
			if (pick == NULL || pick->used)
				pick = x;
		} else if (pick == NULL || (pick->used && x->s.last_seen < pick->s.last_seen)) {
			pick = x; /* the longest idle, dropped if nothing is free */
		}
	}
	drop(pick);
	pick->used = true;
	pick->s = *tmpl;
	pick->s.created = pick->s.last_seen = now;
	secret_token_new(pick->s.csrf);
	secret_token_new(id_out);
	secret_token_hash(id_out, pick->id_hash);
	if (out != NULL)
		*out = pick->s;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

static struct slot *
find(struct session_table *t, const char *id)
{
	char h[65];

	if (id == NULL || strlen(id) != SESSION_ID_LEN)
		return NULL;
	secret_token_hash(id, h);
	for (size_t i = 0; i < SESSION_MAX; i++)
		if (t->v[i].used && secret_equal(t->v[i].id_hash, h))
			return &t->v[i];
	return NULL;
}

int
session_get(struct session_table *t, const char *id, long long now, struct session *out)
{
	struct slot *x;
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	if ((x = find(t, id)) != NULL) {
		if (expired(t, x, now)) {
			drop(x);
		} else {
			x->s.last_seen = now;
			*out = x->s;
			rc = 1;
		}
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

void
session_end(struct session_table *t, const char *id)
{
	struct slot *x;

	pthread_mutex_lock(&t->mu);
	if ((x = find(t, id)) != NULL)
		drop(x);
	pthread_mutex_unlock(&t->mu);
}

size_t
session_end_ext(struct session_table *t, hd_id ext, const char *keep)
{
	struct slot *k;
	size_t n = 0;

	pthread_mutex_lock(&t->mu);
	k = keep ? find(t, keep) : NULL;
	for (size_t i = 0; i < SESSION_MAX; i++) {
		struct slot *x = &t->v[i];

		if (x->used && x != k && x->s.kind == SESSION_ME && x->s.ext == ext) {
			drop(x);
			n++;
		}
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}

bool
session_csrf_ok(const struct session *s, const char *token)
{
	return token != NULL && secret_equal(s->csrf, token);
}
