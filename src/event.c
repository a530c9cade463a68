/*
 * event.c -- the one path by which events are recorded (see event.h):
 * the name checked, the detail serialized by jansson, one store row; the
 * list of every name and of the older names each replaces.
 */
#include "event.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Every name hotdeskd records (docs/API.md, Events), by noun. */
const char *const event_names[] = {
	"code.failed", "code.locked",
	"device.delete", "device.put", "device.reveal",
	"export.reveal",
	"extension.delete", "extension.put", "extension.returned", "extension.virtualized",
	"import.applied",
	"move.denied", "move.refused",
	"org.delete", "org.put",
	"prov.denied", "prov.throttled", "prov.tripped",
	"render.failed",
	"resync.failed", "resync.requested", "resync.sent", "resync.stale", "resync.synced",
	"template.put", "template.rollback",
	"token.new", "token.revoke", "token.rotate",
	"web.console_login_failed", "web.locked", "web.login", "web.login_failed",
	"web_password.clear", "web_password.set",
	NULL,
};

/* Names older than the noun.verb pattern; migration 016 renamed their
 * stored rows, the events API still takes them as filters. */
const struct event_alias event_aliases[] = {
	{ "virtualized", "extension.virtualized" },
	{ "returned", "extension.returned" },
	{ "denied", "move.denied" },
	{ "code_failed", "code.failed" },
	{ "locked", "code.locked" },
	{ "import", "import.applied" },
	{ "render_failed", "render.failed" },
	{ NULL, NULL },
};

/* [a-z0-9_]+ of exactly n bytes, n > 0. */
static bool
word_ok(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
			return false;
	return true;
}

bool
event_name_ok(const char *type)
{
	const char *dot;

	if (type == NULL || (dot = strchr(type, '.')) == NULL || strlen(type) > 64)
		return false;
	return word_ok(type, (size_t)(dot - type)) && word_ok(dot + 1, strlen(dot + 1));
}

const char *
event_name_current(const char *type)
{
	if (type == NULL)
		return NULL;
	for (const struct event_alias *a = event_aliases; a->old != NULL; a++)
		if (strcmp(type, a->old) == 0)
			return a->now;
	return type;
}

int
event_add(struct store *st, long long at, const char *type, hd_id org, const char *ext,
          const char *mac, json_t *detail)
{
	char *txt = NULL;
	int rc = -1;

	if (!event_name_ok(type) || (detail != NULL && !json_is_object(detail)))
		goto out;
	if (detail != NULL && (txt = json_dumps(detail, JSON_COMPACT)) == NULL)
		goto out;
	rc = store_event_add(st, at, type, org, ext, mac, txt) == 0 ? 0 : -1;
out:
	free(txt);
	json_decref(detail);
	return rc;
}
