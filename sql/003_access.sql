-- 003_access.sql -- download access control for phones (SPEC 4).

-- Per organization: how phones authenticate their configuration downloads
-- (none, one shared digest account, or one per device), and the source
-- networks allowed to download (comma-separated CIDRs; NULL = anywhere).
ALTER TABLE orgs ADD COLUMN prov_auth TEXT NOT NULL DEFAULT 'none'
    CHECK (prov_auth IN ('none', 'shared', 'device'));
ALTER TABLE orgs ADD COLUMN prov_user TEXT;
ALTER TABLE orgs ADD COLUMN prov_password TEXT;
ALTER TABLE orgs ADD COLUMN prov_networks TEXT;

-- Per device: the digest password of its downloads (user name: its MAC)
-- when its organization uses per-device credentials.
ALTER TABLE devices ADD COLUMN prov_password TEXT;
