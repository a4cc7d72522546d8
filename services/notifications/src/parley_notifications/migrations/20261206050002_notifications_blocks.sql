-- Who blocks whom, as the notification policy needs it (parley_notifications.blocks), next
-- to the event-store tables in the `notifications` database. Fed from users.events
-- (UserBlocked / UserUnblocked) by the policy; the users context owns the list.

-- migrate:up

-- One row per (blocker, blocked) pair ever blocked. `active` false is an unblock (kept, not
-- deleted, so a replayed older UserBlocked cannot bring the block back); `version` is the
-- blocker's users stream version of the last event applied: an older or equal one is a no-op.
CREATE TABLE blocks (
    blocker     text        NOT NULL,
    blocked     text        NOT NULL,
    active      boolean     NOT NULL,
    version     bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (blocker, blocked)
);

-- blockers_of(sender): the recipients who do not want to hear from them
CREATE INDEX blocks_blocked ON blocks (blocked) WHERE active;

-- migrate:down

DROP TABLE blocks;
