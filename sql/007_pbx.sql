-- 007_pbx.sql -- the PBX contract: tries across redials, move events.
--
-- guard_pairs.call_failures / call_last: the wrong codes a calling device
-- entered for one target extension in calls that followed each other
-- within [secrets] redial_window seconds (call_last: the last one).  They
-- make tries_left true when every redial is a new call (a proxy that
-- carries the code in the dialed string).
--
-- pbx_moves: the outgoing move events (GET /pbx/v1/moves), written in the
-- transaction of the change they describe.  One row per SIP user whose
-- location changed: the device that carries it now ('' when none) and that
-- device's last registered contact ('' when unknown).  Rows are kept
-- [pbx] moves_keep seconds.
--
-- Invariants:
--   * call_failures >= 0; call_last = 0 iff no failure was ever counted;
--   * pbx_moves ids only grow: a reader's cursor never misses a row that
--     was committed after it (rows appear in id order at commit).
ALTER TABLE guard_pairs ADD COLUMN call_failures INTEGER NOT NULL DEFAULT 0
	CHECK (call_failures >= 0);
ALTER TABLE guard_pairs ADD COLUMN call_last INTEGER NOT NULL DEFAULT 0;

CREATE TABLE pbx_moves (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	at       INTEGER NOT NULL,
	sip_user TEXT NOT NULL CHECK (sip_user <> ''),
	device   TEXT NOT NULL DEFAULT '',
	contact  TEXT NOT NULL DEFAULT '',
	cause    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX pbx_moves_at ON pbx_moves(at);
