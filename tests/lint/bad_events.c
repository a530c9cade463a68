/*
 * bad_events.c -- input of scripts/check-events.py's own check in `make
 * lint`: three names it must report (an older name, an unlisted one, one
 * outside noun.verb), and names it must let pass.  Never compiled.
 */
static void
calls(struct svc *s, struct store *st)
{
	event(s, "virtualized", 0, NULL, NULL, NULL);
	svc_event(s, "nosuch.thing", 0, NULL, NULL,
	          json_pack("{s:s}", "why", "a.b"));
	struct put_tx t = { .kind = 'o', .type = "Org.put" };
	event_add(st, 1, "device.put", 0, NULL, NULL, json_pack("{s:s}", "via", "import"));
	dev_event(st, EVENT_VIRTUALIZED, 0, NULL, NULL, 0);
	log_warn("event %s not recorded", "render.failed");
}
