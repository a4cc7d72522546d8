-- The stream version an idempotent command produced, so a repeated command can answer with the
-- same aggregate version without parsing the caller-defined result document.

-- migrate:up
ALTER TABLE idempotency_keys ADD COLUMN version integer;

-- migrate:down
ALTER TABLE idempotency_keys DROP COLUMN version;
