-- 010_client_cert.sql -- mutual TLS for phones (docs/PHONES.md).

-- Per organization: whether its phones must prove themselves with their
-- factory certificate over HTTPS before a per-device file is served:
-- none (not asked), optional (checked when presented), required.
ALTER TABLE orgs ADD COLUMN prov_client_cert TEXT NOT NULL DEFAULT 'none'
    CHECK (prov_client_cert IN ('none', 'optional', 'required'));
