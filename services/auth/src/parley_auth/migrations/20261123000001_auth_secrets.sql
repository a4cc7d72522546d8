-- The auth service's secret material, next to the event-store tables in the `auth` database.
-- Applied by dbmate together with the event-store migrations (parley_auth.migrate).
-- Nothing here is ever published: events carry no secret.

-- migrate:up

-- Which account owns an address (normalised: trimmed, lowercase). The primary key makes the
-- address unique among live accounts; a cancelled account's claim is deleted. `name` is what
-- the registration appends, so an interrupted registration can be completed from this row.
CREATE TABLE email_claims (
    email       text        PRIMARY KEY,
    account_id  uuid        NOT NULL,
    name        text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX email_claims_account ON email_claims (account_id);

-- argon2id hash (PHC string: algorithm, parameters, salt and hash), one per account.
CREATE TABLE credentials (
    account_id    uuid        PRIMARY KEY,
    password_hash text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One live code per account and purpose (verify_email, password_reset, change_email): a new
-- code replaces the old one. Only a keyed hash (HMAC-SHA256) of the code is stored.
CREATE TABLE one_time_codes (
    account_id  uuid        NOT NULL,
    purpose     text        NOT NULL,
    code_hash   bytea       NOT NULL,
    new_email   text,
    attempts    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (account_id, purpose)
);

-- A login session (a refresh-token family). `access_expires_at`: expiry of the last access
-- token issued for it, published with its revocation.
CREATE TABLE sessions (
    session_id        uuid        PRIMARY KEY,
    account_id        uuid        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at        timestamptz NOT NULL,
    access_expires_at timestamptz,
    revoked_at        timestamptz,
    revoke_reason     text
);
CREATE INDEX sessions_account ON sessions (account_id) WHERE revoked_at IS NULL;

-- Every refresh token ever issued (SHA-256 of the opaque token). `rotated_at` set = used once:
-- presenting it again is reuse, and revokes the session.
CREATE TABLE refresh_tokens (
    token_hash  bytea       PRIMARY KEY,
    session_id  uuid        NOT NULL REFERENCES sessions ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Failed-login counters per key ("account:<email>", "ip:<address>"), fixed windows, shared by
-- every replica of the service.
CREATE TABLE login_throttle (
    key           text        PRIMARY KEY,
    failures      integer     NOT NULL,
    window_start  timestamptz NOT NULL
);

-- migrate:down
DROP TABLE login_throttle;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE one_time_codes;
DROP TABLE credentials;
DROP TABLE email_claims;
