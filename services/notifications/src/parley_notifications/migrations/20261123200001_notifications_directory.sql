-- The notifications service's own table, next to the event-store tables in the
-- `notifications` database (applied by parley_notifications.migrate with the event store's).

-- migrate:up

-- Where to mail a user: fed by the policy from users.events (UserCreated,
-- UserProfileEmailChanged). `version` is the users stream's version of the last event
-- applied, so a redelivered or older event never overwrites a newer address.
CREATE TABLE directory (
    user_id     text        PRIMARY KEY,
    email       text        NOT NULL,
    version     bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- migrate:down

DROP TABLE directory;
