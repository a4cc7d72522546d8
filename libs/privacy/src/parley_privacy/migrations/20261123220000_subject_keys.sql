-- Data keys of data subjects (crypto-shredding, parley_privacy). One row per person; the key
-- owner (the auth service) holds this table. Forgetting a person sets `secret` to NULL and
-- keeps the row as a tombstone, so the key is never created again for that id.

-- migrate:up
CREATE TABLE subject_keys (
    subject_id    text        PRIMARY KEY,
    kid           text        NOT NULL,
    secret        bytea,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    forgotten_at  timestamptz,
    CHECK ((secret IS NULL) = (forgotten_at IS NOT NULL))
);

-- migrate:down
DROP TABLE subject_keys;
