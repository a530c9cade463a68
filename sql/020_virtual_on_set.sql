-- 020_virtual_on_set.sql -- the index of virtual_on holds only the
-- extensions virtualized somewhere.
--
-- Almost every extension is at home (virtual_on NULL).  Indexed, each
-- sat among all the others at home, so a move paid an index page of its
-- own to take the extension out of them (a *30) or to put it back (a
-- return).  What uses the index still can: the start-up's read of the
-- virtualized extensions says "virtual_on IS NOT NULL", and the foreign
-- key's check when a device is deleted ("virtual_on = ?") implies it.
DROP INDEX extensions_virtual_on;
CREATE INDEX extensions_virtual_on ON extensions (virtual_on) WHERE virtual_on IS NOT NULL;
