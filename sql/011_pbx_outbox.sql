-- 011_pbx_outbox.sql -- the move webhook's outbox ([pbx] move_webhook).
--
-- One row per SIP user whose location a committed change moved, written
-- in the transaction of that change (so a crash right after the commit
-- still owes the PBX the event), and deleted when the PBX has accepted it.
-- Rows are delivered one at a time in id order.
--
--   move      the id of the first row of the same change: every user a
--             change moved shares it;
--   sip_user  the SIP identity (an extension's SIP user or a parking
--             account) whose location changed;
--   device    the MAC of the device that carries it now ('' when none);
--   contact   that device's last registered contact ('' when unknown);
--   cause     what made the change ("star30", "admin", "import", ...).
--
-- Invariants:
--   * ids only grow (AUTOINCREMENT): delivery order is commit order;
--   * move <= id, and move is the id of a row of the same change.
--
-- pbx_moves (007) was never written: GET /pbx/v1/moves reads the events.
DROP TABLE IF EXISTS pbx_moves;

CREATE TABLE pbx_outbox (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	move     INTEGER NOT NULL DEFAULT 0,
	at       INTEGER NOT NULL,
	sip_user TEXT NOT NULL CHECK (sip_user <> ''),
	device   TEXT NOT NULL DEFAULT '',
	contact  TEXT NOT NULL DEFAULT '',
	cause    TEXT NOT NULL DEFAULT ''
);
