/*
 * event.c -- the one path by which events are recorded (see event.h):
 * the name checked, the detail serialized by jansson, one store row.
 */
#include "event.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Names older than the noun.verb pattern, kept: the move stream of the
 * PBX contract, the self-service page and stored rows read them. */
static const char *const legacy[] = {
	"virtualized", "returned", "denied", "code_failed", "locked", "import",
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

	if (type == NULL)
		return false;
	for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
		if (strcmp(type, legacy[i]) == 0)
			return true;
	if ((dot = strchr(type, '.')) == NULL || strlen(type) > 64)
		return false;
	return word_ok(type, (size_t)(dot - type)) && word_ok(dot + 1, strlen(dot + 1));
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
