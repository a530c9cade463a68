/*
 * event.h -- the one path by which hotdeskd records an event: its name
 * checked (noun.verb), its detail a JSON object built with jansson, one
 * row through the store (store_event_add is called from here only).
 *
 * Names are `noun.verb` (lowercase letters, digits and '_' on each side
 * of one dot: "device.put", "resync.synced", "render.failed"), all of
 * them listed in event_names.  Seven older names (the moves' "virtualized"
 * and "returned", "denied", "code_failed", "locked", "import",
 * "render_failed") are no longer recorded: sql/016 renamed their stored
 * rows and event_name_current maps them to their names now, so that
 * filters saved with them keep working (docs/API.md, Events).
 *
 * Thread-safety: as the store (the caller holds the service lock).
 */
#ifndef HD_EVENT_H
#define HD_EVENT_H

#include <stdbool.h>

#include <jansson.h>

#include "world.h"

struct store;

/* Whether type is a name an event may have (noun.verb, see above). */
bool event_name_ok(const char *type);

/* The names of a move (the move stream, /me/ and the service read them). */
#define EVENT_VIRTUALIZED "extension.virtualized"
#define EVENT_RETURNED "extension.returned"

/* Every name hotdeskd records, NULL-terminated. */
extern const char *const event_names[];

/* An older name and the name it has now; the list ends with { NULL, NULL }. */
struct event_alias {
	const char *old, *now;
};
extern const struct event_alias event_aliases[];

/* The name an event named `type` has now: the new name of an older one,
 * else type itself (NULL for NULL). */
const char *event_name_current(const char *type);

/*
 * Records event `type` at `at` (seconds) about organization org (0: none),
 * extension number ext and device mac (NULL: none), with detail (a JSON
 * object, or NULL; the reference is taken in every case).  Returns 0, or
 * -1 when the name is not one an event may have, detail is not an object,
 * memory runs out or the store fails (store_errmsg says why).
 */
int event_add(struct store *st, long long at, const char *type, hd_id org, const char *ext,
              const char *mac, json_t *detail);

#endif
