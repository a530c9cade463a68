-- 001_init.sql -- the initial hotdeskd schema.
--
-- Applied by store_open() (src/store.c) inside one transaction, then
-- recorded in schema_migrations.  Migrations are append-only: never edit a
-- released file, add sql/NNN_name.sql instead.  No BEGIN/COMMIT here.
--
-- Invariants kept by the schema itself:
--   * natural keys are unique: orgs.name, extensions(org_id, number),
--     extensions.sip_user, devices.mac, devices.parking_user,
--     devices.home_ext_id (an extension is home on at most one device);
--   * a SIP username is used by at most one account: an extension's
--     sip_user never equals a device's parking_user (triggers below);
--   * deleting a device clears virtual_on of whatever was virtualized on it
--     and drops its lockout pairs; deleting an extension clears its home
--     device's home_ext_id and drops its lockout pairs;
--   * an organization cannot be deleted while it has extensions or devices.
-- Ids are INTEGER PRIMARY KEY (rowid aliases); 0 is never used, so the C
-- side uses 0 for "none" and stores it as NULL.

CREATE TABLE orgs (
	id            INTEGER PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE
	              CHECK (length(name) BETWEEN 1 AND 63
	                     AND name GLOB '[a-z0-9]*'
	                     AND name NOT GLOB '*[^a-z0-9._-]*'),
	display_name  TEXT,
	sip_host      TEXT,
	sip_port      INTEGER NOT NULL DEFAULT 0 CHECK (sip_port BETWEEN 0 AND 65535),
	sip_transport TEXT CHECK (sip_transport IN ('udp', 'tcp', 'tls'))
);

CREATE TABLE extensions (
	id                   INTEGER PRIMARY KEY,
	org_id               INTEGER NOT NULL REFERENCES orgs(id),
	number               TEXT NOT NULL
	                     CHECK (number <> '' AND number NOT GLOB '*[^0-9]*'),
	sip_user             TEXT NOT NULL UNIQUE CHECK (sip_user <> ''),
	sip_password         TEXT,
	display_name         TEXT,
	label                TEXT,
	sip_host             TEXT,
	sip_port             INTEGER NOT NULL DEFAULT 0 CHECK (sip_port BETWEEN 0 AND 65535),
	sip_transport        TEXT CHECK (sip_transport IN ('udp', 'tcp', 'tls')),
	allow_virtualization INTEGER NOT NULL DEFAULT 0
	                     CHECK (allow_virtualization IN (0, 1)),
	secret_hash          TEXT,
	virtual_on           INTEGER REFERENCES devices(id) ON DELETE SET NULL,
	UNIQUE (org_id, number)
);
CREATE INDEX extensions_virtual_on ON extensions(virtual_on);

CREATE TABLE devices (
	id               INTEGER PRIMARY KEY,
	mac              TEXT NOT NULL UNIQUE
	                 CHECK (length(mac) = 12 AND mac NOT GLOB '*[^0-9a-f]*'),
	org_id           INTEGER NOT NULL REFERENCES orgs(id),
	profile          TEXT NOT NULL,
	model            TEXT,
	home_ext_id      INTEGER UNIQUE REFERENCES extensions(id) ON DELETE SET NULL,
	parking_user     TEXT UNIQUE CHECK (parking_user <> ''),
	parking_password TEXT,
	static_contact   TEXT
);
CREATE INDEX devices_org ON devices(org_id);
CREATE INDEX extensions_org ON extensions(org_id);

-- One SIP username, one account (SPEC I4 starts here).
CREATE TRIGGER extensions_sip_user_ins BEFORE INSERT ON extensions
WHEN EXISTS (SELECT 1 FROM devices WHERE parking_user = NEW.sip_user)
BEGIN
	SELECT RAISE(ABORT, 'UNIQUE constraint failed: sip_user is a parking account');
END;
CREATE TRIGGER extensions_sip_user_upd BEFORE UPDATE OF sip_user ON extensions
WHEN EXISTS (SELECT 1 FROM devices WHERE parking_user = NEW.sip_user)
BEGIN
	SELECT RAISE(ABORT, 'UNIQUE constraint failed: sip_user is a parking account');
END;
CREATE TRIGGER devices_parking_user_ins BEFORE INSERT ON devices
WHEN NEW.parking_user IS NOT NULL
 AND EXISTS (SELECT 1 FROM extensions WHERE sip_user = NEW.parking_user)
BEGIN
	SELECT RAISE(ABORT, 'UNIQUE constraint failed: parking_user is an extension sip_user');
END;
CREATE TRIGGER devices_parking_user_upd BEFORE UPDATE OF parking_user ON devices
WHEN NEW.parking_user IS NOT NULL
 AND EXISTS (SELECT 1 FROM extensions WHERE sip_user = NEW.parking_user)
BEGIN
	SELECT RAISE(ABORT, 'UNIQUE constraint failed: parking_user is an extension sip_user');
END;

-- Append-only audit trail.  org_id is kept as a plain number (no foreign
-- key) so that events outlive the organization they mention; extension and
-- device are the natural keys (number, MAC) as they were at the time.
CREATE TABLE events (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	at        INTEGER NOT NULL,
	type      TEXT NOT NULL CHECK (type <> ''),
	org_id    INTEGER,
	extension TEXT,
	device    TEXT,
	detail    TEXT CHECK (detail IS NULL OR json_valid(detail))
);
CREATE INDEX events_org ON events(org_id, id);
CREATE INDEX events_type ON events(type, id);
CREATE INDEX events_extension ON events(extension, id);
CREATE INDEX events_device ON events(device, id);

-- Wrong-code counts per PBX call (SPEC 2.4, per call).
CREATE TABLE call_attempts (
	call_id    TEXT PRIMARY KEY,
	failures   INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
	hung_up    INTEGER NOT NULL DEFAULT 0 CHECK (hung_up IN (0, 1)),
	updated_at INTEGER NOT NULL
);
CREATE INDEX call_attempts_updated ON call_attempts(updated_at);

-- Cross-call lockout state per (calling device, target extension).
CREATE TABLE guard_pairs (
	device_id          INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	ext_id             INTEGER NOT NULL REFERENCES extensions(id) ON DELETE CASCADE,
	failures_in_window INTEGER NOT NULL DEFAULT 0 CHECK (failures_in_window >= 0),
	window_start       INTEGER NOT NULL DEFAULT 0,
	locked_until       INTEGER NOT NULL DEFAULT 0,
	lock_level         INTEGER NOT NULL DEFAULT 0 CHECK (lock_level >= 0),
	PRIMARY KEY (device_id, ext_id)
);
CREATE INDEX guard_pairs_ext ON guard_pairs(ext_id);

-- API tokens, stored as hashes only.  An 'org' token names its organization
-- and goes away with it; 'admin' and 'pbx' tokens name none.
CREATE TABLE tokens (
	id         INTEGER PRIMARY KEY,
	hash       TEXT NOT NULL UNIQUE CHECK (hash <> ''),
	role       TEXT NOT NULL CHECK (role IN ('admin', 'org', 'pbx')),
	org_id     INTEGER REFERENCES orgs(id) ON DELETE CASCADE,
	name       TEXT,
	created_at INTEGER NOT NULL,
	CHECK ((role = 'org') = (org_id IS NOT NULL))
);

-- Where each SIP identity is registered now, as the PBX reports it.
CREATE TABLE registrations (
	sip_user   TEXT PRIMARY KEY CHECK (sip_user <> ''),
	contact    TEXT NOT NULL,
	source     TEXT,
	user_agent TEXT,
	call_id    TEXT,
	expires_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX registrations_expires ON registrations(expires_at);

-- Small named values (format versions, bootstrap markers, ...).
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
