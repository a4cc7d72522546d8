-- The chat service's own table, next to the event-store tables in the `chat` database
-- (applied by parley_chat.migrate with the event store's).

-- migrate:up

-- One row per attachment a participant asked to upload; its bytes are the S3 object
-- `object_key`. `message_id` is set when a send claims it (the message's MessageSent has that
-- event id); rows no appended message refers to are deleted by the janitor after a TTL
-- counted from `created_at` or the last claim (`claimed_at`).
CREATE TABLE attachments (
    id               uuid        PRIMARY KEY,
    conversation_id  text        NOT NULL,
    uploader_id      text        NOT NULL,
    filename         text        NOT NULL,
    content_type     text        NOT NULL,
    size             bigint      NOT NULL CHECK (size >= 0),
    object_key       text        NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    message_id       uuid,
    claimed_at       timestamptz,
    -- the upload request's scoped Idempotency-Key (parley_commandkit.scoped_key)
    idempotency_key  text        UNIQUE
);

-- the janitor's two questions: what is old, and what did a forgotten person upload
CREATE INDEX attachments_created_at ON attachments (created_at);
CREATE INDEX attachments_uploader ON attachments (uploader_id);

-- migrate:down

DROP TABLE attachments;
