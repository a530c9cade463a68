/*
 * session.h -- web sessions of the console and the self-service page.
 *
 * A session is created at sign-in and named by a random id that only the
 * browser holds (an HttpOnly cookie); the table keeps the SHA-256 of the
 * id, never the id.  Each session has its own random CSRF token, which
 * the page sends back in a header with every change.  A session ends at
 * sign-out, after `idle` seconds without a request, or `max_age` seconds
 * after sign-in, whichever comes first; a new sign-in always makes a new
 * id (a cookie planted before sign-in is worth nothing after it).
 *
 * The table is bounded (SESSION_MAX): when full, the session idle the
 * longest is dropped.  It lives in memory: a restart signs everybody out.
 * `now` is passed in (seconds).  Thread-safe.
 */
#ifndef HD_SESSION_H
#define HD_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "world.h"

#define SESSION_MAX 4096
#define SESSION_ID_LEN 43    /* base64url of 32 random bytes */

enum session_kind { SESSION_CONSOLE = 1, SESSION_ME = 2 };

struct session {
	enum session_kind kind;
	/* console: the SHA-256 (hex) of the API token signed in with, checked
	 * again on every request so that a revoked token ends its sessions */
	char token_hash[65];
	/* self-service: the extension signed in */
	hd_id org, ext;
	char csrf[SESSION_ID_LEN + 1];
	long long created, last_seen;
};

struct session_table;

struct session_table *session_table_new(int idle, int max_age); /* NULL: out of memory */
void session_table_free(struct session_table *t);                 /* NULL-safe */

/*
 * Creates a session from *tmpl (kind, token_hash, org, ext; the csrf and
 * times are filled here) and writes its id to id_out.  Returns 0, or -1
 * when out of memory.  *out gets the stored copy (with its csrf).
 */
int session_new(struct session_table *t, const struct session *tmpl, long long now,
                char id_out[SESSION_ID_LEN + 1], struct session *out);

/* Looks id up: 1 found and alive (*out filled, last_seen updated), 0 not
 * found or expired (an expired one is removed). */
int session_get(struct session_table *t, const char *id, long long now, struct session *out);

/* Ends the session named by id (no-op if none). */
void session_end(struct session_table *t, const char *id);

/* Ends every self-service session of extension ext except the one named
 * keep (NULL: all).  Returns how many ended. */
size_t session_end_ext(struct session_table *t, hd_id ext, const char *keep);

/* Constant-time comparison of a CSRF token against a session's. */
bool session_csrf_ok(const struct session *s, const char *token);

#endif
