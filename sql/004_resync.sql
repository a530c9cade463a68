-- 004_resync.sql -- where each phone is registered now (resync targeting).
--
-- One row per device: the last registration the PBX reported for the
-- phone itself (resolved to the device when it arrived: by the MAC in the
-- User-Agent, by the contact address the phone used before, else by the
-- device that carried the registered identity at that moment).  A NOTIFY
-- goes to this contact, answered challenges use the password of sip_user:
-- the identity the phone is registered with before it reloads.
--
-- Invariants:
--   * addr is the numeric "host:port" of contact, never empty; at most one
--     device holds a given addr (store_devcontact_put drops the others);
--   * how says how the device was resolved: 'ua', 'address' or 'identity'.
CREATE TABLE device_contact (
    device_id  INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    sip_user   TEXT NOT NULL CHECK (sip_user <> ''),
    contact    TEXT NOT NULL CHECK (contact <> ''),
    addr       TEXT NOT NULL CHECK (addr <> ''),
    source     TEXT,
    call_id    TEXT,
    how        TEXT NOT NULL CHECK (how IN ('ua', 'address', 'identity')),
    expires_at INTEGER NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX device_contact_addr ON device_contact (addr);
