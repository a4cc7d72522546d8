-- When the holder of a session last proved who they are with their password (the access
-- token's `auth_time`, OpenID Connect): set at login, carried unchanged by every refresh, so
-- a refreshed token is not a "fresh" authentication. NULL for sessions older than this
-- column: read as the session's start (their login).

-- migrate:up
ALTER TABLE sessions ADD COLUMN auth_time timestamptz;

-- migrate:down
ALTER TABLE sessions DROP COLUMN auth_time;
