-- The realtime gateway's shared state (not an event store: nothing here is a domain fact).
-- Stream tickets are single-use and die within 30 s; presence rows say which replica holds how
-- many streams of a person; replicas beat every few seconds, and the rows of a replica that
-- stopped beating are swept by the others. Typing and presence changes travel by NOTIFY.

-- migrate:up
CREATE TABLE stream_tickets (
    ticket_hash      bytea       PRIMARY KEY,
    user_id          text        NOT NULL,
    role             text        NOT NULL,
    session_id       text        NOT NULL,
    token_expires_at timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL
);
CREATE INDEX stream_tickets_expiry ON stream_tickets (expires_at);

CREATE TABLE realtime_replicas (
    replica_id text        PRIMARY KEY,
    seen_at    timestamptz NOT NULL
);

CREATE TABLE presence (
    user_id     text        NOT NULL,
    replica_id  text        NOT NULL,
    connections integer     NOT NULL CHECK (connections > 0),
    since       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, replica_id)
);
CREATE INDEX presence_by_replica ON presence (replica_id);

CREATE TABLE last_seen (
    user_id text        PRIMARY KEY,
    at      timestamptz NOT NULL
);

-- migrate:down
DROP TABLE last_seen;
DROP TABLE presence;
DROP TABLE realtime_replicas;
DROP TABLE stream_tickets;
