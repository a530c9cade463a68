/*
 * event.h -- the one path by which hotdeskd records an event: its name
 * checked (noun.verb), its detail a JSON object built with jansson, one
 * row through the store (store_event_add is called from here only).
 *
 * Names are `noun.verb` (lowercase letters, digits and '_' on each side
 * of one dot: "device.put", "resync.synced", "render.failed"), except the
 * six names that moves and code checks carried before the pattern and
 * that the PBX contract's move stream, the self-service page and stored
 * history read: "virtualized", "returned", "denied", "code_failed",
 * "locked" and "import" (docs/API.md, Events).
 *
 * Thread-safety: as the store (the caller holds the service lock).
 */
#ifndef HD_EVENT_H
#define HD_EVENT_H

#include <stdbool.h>

#include <jansson.h>

#include "world.h"

struct store;

/* Whether type is a name an event may have (see above). */
bool event_name_ok(const char *type);

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
