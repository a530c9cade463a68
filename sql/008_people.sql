-- 008_people.sql -- self-service web passwords and their brute-force state.
--
-- web_passwords: the Argon2id string of each extension's web password
-- (set by an administrator, changed by the user on /me/); it goes with
-- the extension.  web_guard: failed sign-ins per (source network,
-- extension), the same sliding window and backoff as secret codes
-- (guard.c); a row is kept only while it matters.

CREATE TABLE web_passwords (
	ext_id     INTEGER PRIMARY KEY REFERENCES extensions(id) ON DELETE CASCADE,
	hash       TEXT NOT NULL CHECK (hash LIKE '$argon2id$%'),
	updated_at INTEGER NOT NULL
);

CREATE TABLE web_guard (
	source             TEXT NOT NULL CHECK (source <> ''),
	ext_id             INTEGER NOT NULL REFERENCES extensions(id) ON DELETE CASCADE,
	failures_in_window INTEGER NOT NULL DEFAULT 0 CHECK (failures_in_window >= 0),
	window_start       INTEGER NOT NULL DEFAULT 0,
	locked_until       INTEGER NOT NULL DEFAULT 0,
	lock_level         INTEGER NOT NULL DEFAULT 0 CHECK (lock_level >= 0),
	PRIMARY KEY (source, ext_id)
);
CREATE INDEX web_guard_ext ON web_guard(ext_id);
