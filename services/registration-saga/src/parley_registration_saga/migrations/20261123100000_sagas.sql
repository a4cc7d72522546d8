-- Registration sagas: one row per account (the saga id is the user id). `state` is the saga's
-- JSON form (domain.Saga.to_json); status and deadline are columns so the timer finds the due
-- sagas through an index and the metrics count states without parsing JSON. The commands a
-- saga sends go to the event store's `outbox` table in the same transaction.

-- migrate:up
CREATE TABLE sagas (
    id         text        PRIMARY KEY,
    status     text        NOT NULL,
    deadline   timestamptz,
    state      jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_due ON sagas (deadline) WHERE deadline IS NOT NULL;

-- migrate:down
DROP TABLE sagas;
