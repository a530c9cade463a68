-- 005_tokens_actor.sql -- token management and the actor of audit events.
--
-- tokens.from_config: 1 for the tokens of the configuration file ([admin]
-- token, [pbx] token).  hotdeskd keeps exactly the ones the configuration
-- in force names (a token removed from or changed in the file stops
-- working at the next start or reload); the API may list them but not
-- rotate or revoke them (the file would bring them back).
-- tokens.rotated_at: when the secret was last replaced (NULL = never).
--
-- events.actor_token / actor_role: which token made an administrator's
-- change (its id and role, never the secret); NULL for events no token
-- caused (moves from the PBX, phones, the resync engine).  No foreign key:
-- a revoked token's id stays in the trail.
ALTER TABLE tokens ADD COLUMN from_config INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN rotated_at INTEGER;
UPDATE tokens SET from_config = 1 WHERE name IN ('config admin token', 'config pbx token');
ALTER TABLE events ADD COLUMN actor_token INTEGER;
ALTER TABLE events ADD COLUMN actor_role TEXT;
