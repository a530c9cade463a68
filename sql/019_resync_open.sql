-- 019_resync_open.sql -- the resync outbox's index holds only the rows
-- still open.
--
-- A synced row (the phone has what it was owed) is what almost every
-- device's row is, most of the time; the scans look only for rows that
-- are pending, notified or stale.  Indexed, each synced row cost a move
-- an index page to remove it from when the move made it pending again,
-- at a place of its own among 100,000: now a move only adds its rows,
-- together, at the end of the pending ones.  Queries that want the index
-- say "state <> 'synced'" in so many words (SQLite uses a partial index
-- only for a query whose WHERE has the index's own term).
DROP INDEX resync_due;
CREATE INDEX resync_due ON resync (state, next_at) WHERE state <> 'synced';
