"""The search database's layout: one schema per generation (`g<N>`) holding every table of
the model, and `public.search_generations` saying which generation readers use (`live`),
which one a rebuild is filling (`building`) and which are done (`retired`).

This is the readmodel runtime's generations-behind-an-alias (MongoDB: `<collection>__g<N>`
and the `_aliases` document) in PostgreSQL terms: a schema per generation instead of a
suffix per collection, a row instead of the alias document, and the swap is one transaction
(parley_projector_search.rebuild). The statements use `{s}` for the schema.

Text columns that are sorted or compared as keys use `COLLATE "C"`: byte order, as MongoDB
sorts strings, and a keyset comparison that the btree answers whatever the database's locale.
"""

from __future__ import annotations

import re

GENERATIONS = "public.search_generations"
_SCHEMA = re.compile(r"^g[1-9][0-9]{0,8}$")


def schema_of(generation: int) -> str:
    name = f"g{int(generation)}"
    if not _SCHEMA.match(name):
        raise ValueError(f"not a generation: {generation!r}")
    return name


TABLES = """
CREATE SCHEMA IF NOT EXISTS {s};
-- per source stream ("<context>/<id>") the highest version applied: replays are no-ops, and the
-- gateway's read-your-writes waits read it
CREATE TABLE IF NOT EXISTS {s}.applied (
    stream  text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.users (
    id            text COLLATE "C" PRIMARY KEY,
    name          text,
    name_key      text COLLATE "C",
    email         text,
    email_key     text,
    bio           text,
    avatar_url    text,
    role          text NOT NULL DEFAULT 'user',
    status        text NOT NULL DEFAULT 'active',
    status_reason text,
    forgotten     boolean NOT NULL DEFAULT false,
    created_at    timestamptz,
    updated_at    timestamptz
);
CREATE INDEX IF NOT EXISTS users_by_name ON {s}.users (name_key, id);
CREATE TABLE IF NOT EXISTS {s}.name_tokens (
    token    text COLLATE "C" NOT NULL,
    name_key text COLLATE "C" NOT NULL,
    user_id  text COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, token)
);
CREATE INDEX IF NOT EXISTS name_tokens_page ON {s}.name_tokens (token, name_key, user_id);
CREATE TABLE IF NOT EXISTS {s}.email_tokens (
    token    text COLLATE "C" NOT NULL,
    name_key text COLLATE "C",
    user_id  text COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, token)
);
CREATE INDEX IF NOT EXISTS email_tokens_page ON {s}.email_tokens (token, name_key, user_id);
CREATE TABLE IF NOT EXISTS {s}.registrations (
    id      text COLLATE "C" PRIMARY KEY,
    pending boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.conversations (
    id       text COLLATE "C" PRIMARY KEY,
    last_seq bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {s}.messages (
    conversation_id text COLLATE "C" NOT NULL,
    seq             bigint NOT NULL,
    sender_id       text COLLATE "C",
    sent_at         timestamptz,
    words           tsvector,
    deleted         boolean NOT NULL DEFAULT false,
    redacted        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (conversation_id, seq)
);
-- newest first within a conversation (a common word: walk back until the page is full)
CREATE INDEX IF NOT EXISTS messages_newest
    ON {s}.messages (conversation_id, sent_at DESC, seq DESC);
-- a rare word: the conversation's matches straight from the inverted index (btree_gin)
CREATE INDEX IF NOT EXISTS messages_words ON {s}.messages USING gin (conversation_id, words);
CREATE INDEX IF NOT EXISTS messages_by_sender ON {s}.messages (sender_id);
CREATE TABLE IF NOT EXISTS {s}.members (
    conversation_id text COLLATE "C" NOT NULL,
    user_id         text COLLATE "C" NOT NULL,
    from_seq        bigint NOT NULL,
    to_seq          bigint,
    PRIMARY KEY (user_id, conversation_id, from_seq)
);
CREATE TABLE IF NOT EXISTS {s}.inbox (
    user_id          text COLLATE "C" NOT NULL,
    conversation_id  text COLLATE "C" NOT NULL,
    last_activity_at timestamptz NOT NULL,
    removed          boolean NOT NULL DEFAULT false,
    unread_count     integer NOT NULL DEFAULT 0,
    mention_count    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, conversation_id)
);
CREATE INDEX IF NOT EXISTS inbox_list
    ON {s}.inbox (user_id, last_activity_at DESC, conversation_id DESC) WHERE NOT removed;
-- what a conversation list shows of a conversation (added after generation 1 was made:
-- ADD COLUMN IF NOT EXISTS reaches existing generations when the projector starts)
ALTER TABLE {s}.conversations ADD COLUMN IF NOT EXISTS title text;
ALTER TABLE {s}.conversations ADD COLUMN IF NOT EXISTS kind text;
ALTER TABLE {s}.conversations ADD COLUMN IF NOT EXISTS participant_ids text[];
ALTER TABLE {s}.conversations ADD COLUMN IF NOT EXISTS last_message jsonb;
-- an admin's lookup by address (the oldest profile first)
CREATE INDEX IF NOT EXISTS users_by_email ON {s}.users (email_key, created_at, id);
CREATE INDEX IF NOT EXISTS conversations_last_sender
    ON {s}.conversations ((last_message->>'sender_id'));
"""


def tables(generation: int) -> str:
    return TABLES.replace("{s}", schema_of(generation))
