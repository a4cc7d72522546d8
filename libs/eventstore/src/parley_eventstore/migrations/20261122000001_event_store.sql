-- The write-side schema every command service shares (each in its own database).
-- Applied by dbmate (see parley_eventstore.migrate); never edit an applied migration, add one.

-- migrate:up
CREATE TABLE events (
    global_position bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id       text        NOT NULL,
    stream_type     text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- optimistic concurrency: two writers of the same next version cannot both commit
    CONSTRAINT events_stream_version UNIQUE (stream_id, version)
);

-- Latest snapshot per stream; a changed aggregate bumps snapshot_schema_version and
-- stale snapshots are ignored on load.
CREATE TABLE snapshots (
    stream_id               text        PRIMARY KEY,
    stream_type             text        NOT NULL,
    version                 integer     NOT NULL,
    snapshot_schema_version integer     NOT NULL,
    state                   jsonb       NOT NULL,
    taken_at                timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A handled command's idempotency key and its first result, written in the append's transaction.
CREATE TABLE idempotency_keys (
    key         text        PRIMARY KEY,
    stream_id   text        NOT NULL,
    result      jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- BRIN: keys are inserted in time order, so a block-range index serves the purge at almost no
-- cost per append (a btree here was one more random index insert per command)
CREATE INDEX idempotency_keys_recorded_at ON idempotency_keys USING brin (recorded_at);

-- Transactional outbox: self-contained Kafka records (topic, key, CloudEvents headers, value),
-- so one relay publishes events and saga commands alike. Rows are deleted once Kafka acked them.
CREATE TABLE outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic      text        NOT NULL,
    key        text        NOT NULL,
    headers    jsonb       NOT NULL,
    payload    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- migrate:down
DROP TABLE outbox;
DROP TABLE idempotency_keys;
DROP TABLE snapshots;
DROP TABLE events;
