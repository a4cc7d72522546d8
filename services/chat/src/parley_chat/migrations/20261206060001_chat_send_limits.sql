-- Each person's sending rate, shared by every chat-api replica (parley_chat.limits): one row
-- per person, the fixed 10-second window they last sent in and how many sends it counted.

-- migrate:up

CREATE TABLE send_limits (
    user_id      text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    sent         integer     NOT NULL
);

-- migrate:down

DROP TABLE send_limits;
