-- Data keys at rest are wrapped by a master key held outside the database (issue 19.5):
-- `secret` holds nonce | AES-256-GCM(master key, data key) | tag, and `wrap_kid` names the
-- master key that wrapped it. NULL: a key stored before this change, in the clear; the key
-- owner wraps those (and re-wraps rows of a previous master key) at its next start
-- (parley_privacy.store.rewrap: idempotent, row by row). SQL cannot do it: the master key
-- is not in the database, which is the point.

-- migrate:up
ALTER TABLE subject_keys ADD COLUMN wrap_kid text;

-- migrate:down
ALTER TABLE subject_keys DROP COLUMN wrap_kid;
