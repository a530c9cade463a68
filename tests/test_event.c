/*
 * test_event.c -- the one path of events (event.h): names noun.verb only
 * (every name of the list, the older names mapped to theirs now), details
 * JSON objects built with jansson, one row each through an in-memory store.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "store.h"

static struct store *
open_mem(void)
{
	char err[256];
	struct store *st = store_open(":memory:", "sql", err, sizeof err);

	cr_assert_not_null(st, "%s", err);
	return st;
}

struct got {
	int n;
	char type[64], detail[256], ext[16], dev[16];
};

static int
last(const struct store_event *ev, void *arg)
{
	struct got *g = arg;

	g->n++;
	snprintf(g->type, sizeof g->type, "%s", ev->type);
	snprintf(g->detail, sizeof g->detail, "%s", ev->detail ? ev->detail : "");
	snprintf(g->ext, sizeof g->ext, "%s", ev->extension ? ev->extension : "");
	snprintf(g->dev, sizeof g->dev, "%s", ev->device ? ev->device : "");
	return 0;
}

static struct got
events(struct store *st)
{
	struct got g = { 0 };

	cr_assert_geq(store_events_list(st, NULL, last, &g), 0);
	return g;
}

Test(event, names)
{
	const char *good[] = { "device.put", "render.failed", "web.login_failed",
	                       "resync.synced", "token.new", "prov.denied", "move.refused",
	                       "extension.virtualized", "code.locked", "x1.y_2" };
	const char *bad[] = { NULL, "", "render_failed", "virtualized", "returned", "denied",
	                      "code_failed", "locked", "import", "device", "device.", ".put",
	                      "device.put.now", "Device.put", "device.Put", "device put",
	                      "device-put.x", "devi\xc3\xa7" "e.put", "imports", "moved",
	                      "device.put\n" };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert(event_name_ok(good[i]), "%s refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not(event_name_ok(bad[i]), "%s accepted", bad[i] ? bad[i] : "NULL");
}

/* Every name hotdeskd records is noun.verb, listed once, and accepted. */
Test(event, every_name_is_noun_verb)
{
	regex_t re;
	size_t n = 0;

	cr_assert_eq(regcomp(&re, "^[a-z_]+\\.[a-z_]+$", REG_EXTENDED | REG_NOSUB), 0);
	for (const char *const *p = event_names; *p != NULL; p++, n++) {
		cr_assert_eq(regexec(&re, *p, 0, NULL, 0), 0, "%s is not noun.verb", *p);
		cr_assert(event_name_ok(*p), "%s refused", *p);
		for (const char *const *q = event_names; q != p; q++)
			cr_assert_str_neq(*q, *p, "%s listed twice", *p);
	}
	regfree(&re);
	/* the moves, the six names renamed and render.failed among them */
	cr_assert_geq(n, 35);
	for (const struct event_alias *a = event_aliases; a->old != NULL; a++) {
		bool listed = false;

		cr_assert_not(event_name_ok(a->old), "older name %s still accepted", a->old);
		for (const char *const *p = event_names; *p != NULL; p++)
			listed = listed || strcmp(*p, a->now) == 0;
		cr_assert(listed, "%s (for %s) is not in the list", a->now, a->old);
	}
}

/* Older names map to the names recorded now; any other name is itself. */
Test(event, older_names_map_to_theirs_now)
{
	static const char *const map[][2] = {
		{ "virtualized", EVENT_VIRTUALIZED },  { "returned", EVENT_RETURNED },
		{ "denied", "move.denied" },           { "code_failed", "code.failed" },
		{ "locked", "code.locked" },           { "import", "import.applied" },
		{ "render_failed", "render.failed" },  { "device.put", "device.put" },
		{ "extension.virtualized", "extension.virtualized" },
		{ "nonsense", "nonsense" },            { "", "" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		cr_assert_str_eq(event_name_current(map[i][0]), map[i][1], "%s", map[i][0]);
	cr_assert_null(event_name_current(NULL));
	cr_assert_str_eq(EVENT_VIRTUALIZED, "extension.virtualized");
	cr_assert_str_eq(EVENT_RETURNED, "extension.returned");
}

Test(event, recorded_with_a_jansson_detail)
{
	struct store *st = open_mem();
	struct got g;

	cr_assert_eq(event_add(st, 5, "render.failed", 0, "101", "0004f2000001",
	                       json_pack("{s:s, s:s}", "error", "render failed", "q",
	                                 "a \"quoted\" \\ value")), 0, "%s", store_errmsg(st));
	g = events(st);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.type, "render.failed");
	cr_assert_str_eq(g.ext, "101");
	cr_assert_str_eq(g.dev, "0004f2000001");
	cr_assert_str_eq(g.detail,
	                 "{\"error\":\"render failed\",\"q\":\"a \\\"quoted\\\" \\\\ value\"}");
	cr_assert_eq(event_add(st, 6, "device.reveal", 0, NULL, NULL, NULL), 0);
	g = events(st);
	cr_assert_eq(g.n, 2);
	cr_assert_str_eq(g.detail, "");
	store_close(st);
}

Test(event, refused_writes_nothing)
{
	struct store *st = open_mem();

	/* a bad name, a detail that is no object: refused, nothing written
	 * (and the detail's reference taken all the same: no leak) */
	cr_assert_eq(event_add(st, 1, "render_failed", 0, NULL, NULL,
	                       json_pack("{s:s}", "error", "x")), -1);
	cr_assert_eq(event_add(st, 1, "device.put", 0, NULL, NULL, json_string("x")), -1);
	cr_assert_eq(event_add(st, 1, "device.put", 0, NULL, NULL, json_pack("[i]", 1)), -1);
	cr_assert_eq(events(st).n, 0);
	store_close(st);
}
