/*
 * test_session.c -- session.c: ids and CSRF tokens, idle and absolute
 * expiry with a passed-in clock, sign-out, per-extension sign-out, a full
 * table dropping the longest idle session.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "secret.h"
#include "session.h"

static struct session_table *t;

static void
setup(void)
{
	cr_assert_eq(secret_init(), 0);
	t = session_table_new(100, 1000);
	cr_assert_not_null(t);
}

static void
teardown(void)
{
	session_table_free(t);
}

TestSuite(session, .init = setup, .fini = teardown);

Test(session, new_get_and_csrf)
{
	struct session tmpl = { .kind = SESSION_ME, .org = 3, .ext = 7 }, s, got;
	char id[SESSION_ID_LEN + 1], id2[SESSION_ID_LEN + 1];

	cr_assert_eq(session_new(t, &tmpl, 1000, id, &s), 0);
	cr_assert_eq(strlen(id), SESSION_ID_LEN);
	cr_assert_eq(strlen(s.csrf), SESSION_ID_LEN);
	cr_assert_str_neq(id, s.csrf);
	cr_assert_eq(session_get(t, id, 1001, &got), 1);
	cr_assert_eq(got.ext, 7);
	cr_assert_eq(got.org, 3);
	cr_assert(session_csrf_ok(&got, s.csrf));
	cr_assert_not(session_csrf_ok(&got, NULL));
	cr_assert_not(session_csrf_ok(&got, "x"));
	cr_assert_eq(session_new(t, &tmpl, 1000, id2, NULL), 0);
	cr_assert_str_neq(id, id2, "every sign-in gets a new id");
	cr_assert_eq(session_get(t, "short", 1001, &got), 0);
	id[0] = id[0] == 'A' ? 'B' : 'A';
	cr_assert_eq(session_get(t, id, 1001, &got), 0, "an id one letter off is nothing");
}

Test(session, idle_and_absolute_expiry)
{
	struct session tmpl = { .kind = SESSION_CONSOLE }, got;
	char id[SESSION_ID_LEN + 1];

	session_new(t, &tmpl, 1000, id, NULL);
	cr_assert_eq(session_get(t, id, 1099, &got), 1, "99 s idle is alive");
	cr_assert_eq(session_get(t, id, 1198, &got), 1, "a request resets the idle time");
	cr_assert_eq(session_get(t, id, 1298, &got), 0, "100 s idle ends it");
	cr_assert_eq(session_get(t, id, 1200, &got), 0, "and it stays ended");

	session_new(t, &tmpl, 1000, id, NULL);
	for (long long now = 1050; now < 2000; now += 50)
		cr_assert_eq(session_get(t, id, now, &got), 1, "at %lld", now);
	cr_assert_eq(session_get(t, id, 2000, &got), 0, "ends 1000 s after sign-in, busy or not");
}

Test(session, end_and_end_ext)
{
	struct session me = { .kind = SESSION_ME, .ext = 5 }, con = { .kind = SESSION_CONSOLE },
	               got;
	char a[SESSION_ID_LEN + 1], b[SESSION_ID_LEN + 1], c[SESSION_ID_LEN + 1];

	session_new(t, &me, 10, a, NULL);
	session_new(t, &me, 10, b, NULL);
	session_new(t, &con, 10, c, NULL);
	cr_assert_eq(session_end_ext(t, 5, a), 1);
	cr_assert_eq(session_get(t, a, 11, &got), 1, "the one kept");
	cr_assert_eq(session_get(t, b, 11, &got), 0);
	cr_assert_eq(session_get(t, c, 11, &got), 1, "console sessions are not the user's");
	session_end(t, a);
	cr_assert_eq(session_get(t, a, 11, &got), 0);
}

Test(session, full_table_drops_the_longest_idle)
{
	struct session tmpl = { .kind = SESSION_CONSOLE }, got;
	char first[SESSION_ID_LEN + 1], id[SESSION_ID_LEN + 1];

	session_new(t, &tmpl, 10, first, NULL);
	for (int i = 1; i < SESSION_MAX; i++)
		session_new(t, &tmpl, 20, id, NULL);
	cr_assert_eq(session_get(t, first, 21, &got), 1, "the table holds SESSION_MAX");
	/* first was just used: the longest idle is now one of the others */
	session_new(t, &tmpl, 22, id, NULL);
	cr_assert_eq(session_get(t, first, 23, &got), 1);
	cr_assert_eq(session_get(t, id, 23, &got), 1);
}
