-- Saga commands a participant has answered, with the reply it sent: a retried or redelivered
-- command gets the same reply and its handler does not run again (parley_eventstore.commandlog).

-- migrate:up
CREATE TABLE saga_commands (
    command_id  text        PRIMARY KEY,
    reply       jsonb       NOT NULL,
    answered_at timestamptz NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE saga_commands;
