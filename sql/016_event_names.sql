-- 016_event_names.sql -- every stored event named noun.verb.
--
-- Events recorded before this version may carry one of the names older
-- than the noun.verb pattern; each is renamed to the name hotdeskd records
-- now (src/event.c, event_aliases), so that every reader (the events API,
-- the PBX move stream, /me/) sees one name per kind of event.  Ids, times
-- and details are kept: a PBX's move-stream cursor (an event id) stays
-- valid.  The events API still accepts the older names as filters.
UPDATE events SET type = 'extension.virtualized' WHERE type = 'virtualized';
UPDATE events SET type = 'extension.returned' WHERE type = 'returned';
UPDATE events SET type = 'move.denied' WHERE type = 'denied';
UPDATE events SET type = 'code.failed' WHERE type = 'code_failed';
UPDATE events SET type = 'code.locked' WHERE type = 'locked';
UPDATE events SET type = 'import.applied' WHERE type = 'import';
UPDATE events SET type = 'render.failed' WHERE type = 'render_failed';
