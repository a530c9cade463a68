-- 017_publish_key.sql -- what a clean restart needs to take a device's
-- published files as they are, without rendering them.
--
-- input_key: a hash of everything the device's files are rendered from
-- (its render input, its profile's templates, the hotdeskd build); when a
-- restart finds the same key, the files in the TFTP root are what a render
-- would give.  file_hash: the hash of the files as published (with their
-- version stamp), checked when they are read back from the TFTP root.
-- NULL: not known yet (the device is rendered at the next start).
ALTER TABLE device_config ADD COLUMN input_key TEXT;
ALTER TABLE device_config ADD COLUMN file_hash TEXT;
