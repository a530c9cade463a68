-- 002_publish.sql -- what hotdeskd published, and what it owes phones.

-- The configuration version each device was given, with the hash of its
-- rendered files: versions survive restarts and grow only when content
-- changes.
CREATE TABLE device_config (
    device_id  INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    version    INTEGER NOT NULL CHECK (version >= 1),
    hash       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Files hotdeskd wrote into the TFTP root: only these are ever removed.
CREATE TABLE tftp_files (
    name TEXT PRIMARY KEY
);

-- The last configuration fetch of each device (where to send a NOTIFY when
-- no registration is known, and what version the phone has).
CREATE TABLE device_fetch (
    device_id  INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    source     TEXT,
    user_agent TEXT,
    version    INTEGER NOT NULL DEFAULT 0,
    at         INTEGER NOT NULL
);

-- The resync outbox: one row per device that must load a new
-- configuration.  Written in the same transaction as the change.
CREATE TABLE resync (
    device_id   INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'notified', 'synced', 'stale')),
    version     INTEGER NOT NULL DEFAULT 0,  -- version to fetch; 0 = not yet known
    attempts    INTEGER NOT NULL DEFAULT 0,  -- NOTIFYs sent for this version
    next_at     INTEGER NOT NULL DEFAULT 0,  -- when to send (again)
    last_result TEXT,
    last_at     INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX resync_due ON resync (state, next_at);

-- Administrators' template versions; the active one of each (profile,
-- name) replaces the default template shipped in templates/.
CREATE TABLE templates (
    id         INTEGER PRIMARY KEY,
    profile    TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    content    TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    comment    TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (profile, name, version)
);
CREATE UNIQUE INDEX templates_one_active ON templates (profile, name) WHERE active = 1;
