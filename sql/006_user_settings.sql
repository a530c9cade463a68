-- 006_user_settings.sql -- what follows a user onto any phone, and what a
-- site gives every phone of an organization.
--
-- Per extension: the voicemail / MWI number, the language (a locale code
-- such as 'fr_FR') and the line keys (speed dial and BLF of other numbers,
-- with labels), stored as lines "type<TAB>value<TAB>label" written and
-- read by src/world.c (hd_keys_format, hd_keys_parse): values are digits,
-- '*', '#', '+'; labels can hold no control character (the API refuses
-- them), so TAB and LF cannot occur inside a field.
-- Per organization (site settings): the UTC offset in minutes, the
-- daylight saving rule ('none', 'eu', 'us'), the NTP server and the
-- default language of its phones.
ALTER TABLE extensions ADD COLUMN voicemail TEXT
	CHECK (voicemail IS NULL OR (voicemail <> '' AND voicemail NOT GLOB '*[^0-9*#+]*'));
ALTER TABLE extensions ADD COLUMN language TEXT;
ALTER TABLE extensions ADD COLUMN keys TEXT;
ALTER TABLE orgs ADD COLUMN utc_offset INTEGER NOT NULL DEFAULT 0
	CHECK (utc_offset BETWEEN -720 AND 840);
ALTER TABLE orgs ADD COLUMN dst TEXT NOT NULL DEFAULT 'none'
	CHECK (dst IN ('none', 'eu', 'us'));
ALTER TABLE orgs ADD COLUMN ntp_server TEXT;
ALTER TABLE orgs ADD COLUMN language TEXT;
