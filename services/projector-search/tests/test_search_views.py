"""The search model's handlers are pure (one event -> SQL statements) and its store applies a
batch once: unit tests without a server, and the store against a fresh database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from parley_messaging.envelope import Envelope, ce_type
from parley_projector_search import views
from parley_projector_search.migrate import migrate
from parley_projector_search.runtime import apply_events, item_for
from parley_projector_search.schema import schema_of, tables
from parley_testing.projections import record

AT = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def env(context: str, name: str, subject: str) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        source=f"/parley/{context}",
        type=ce_type(context, name, 1),
        subject=subject,
        time=AT,
        data=b"{}",
        aggregate_version=1,
        schema_version=1,
    )


def message(**extra: Any) -> dict[str, Any]:
    return {
        "conversation_id": "c1",
        "message_id": "m1",
        "seq": 3,
        "sender_id": "ann",
        "content": "Grüße aus Köln, café-talk!",
        "recipient_ids": ["bob", "ann"],
        "mentions": ["bob"],
        **extra,
    }


def test_a_message_is_stored_as_its_normalised_words() -> None:
    ops = views.message_sent(env("chat", "MessageSent", "c1"), message())
    insert = next(op for op in ops if "INTO {s}.messages" in op.sql)
    assert insert.args[4] == ["grusse", "aus", "koln", "cafe", "talk"]
    preview = json.loads(next(op for op in ops if "last_message" in op.sql).args[2])
    assert preview["content"] == "Grüße aus Köln, café-talk!" and preview["seq"] == 3
    # bob (a recipient, mentioned) gets an unread and a mention; the sender neither
    counters = {op.args[0]: op.args[3:] for op in ops if "INTO {s}.inbox" in op.sql}
    assert counters == {"ann": (0, 0), "bob": (1, 1)}
    # the list's times are BSON's milliseconds, like projector-chat's documents
    assert all(op.args[2].microsecond == 123000 for op in ops if "INTO {s}.inbox" in op.sql)


def test_a_redacted_text_has_no_words_and_no_preview_text() -> None:
    ops = views.message_sent(env("chat", "MessageSent", "c1"), message(_redacted=["content"]))
    insert = next(op for op in ops if "INTO {s}.messages" in op.sql)
    assert insert.args[4] is None and insert.args[5] is True
    preview = json.loads(next(op for op in ops if "last_message" in op.sql).args[2])
    assert preview["content"] is None and preview["redacted"] is True


def test_an_event_of_another_stream_is_refused() -> None:
    with pytest.raises(ValueError):
        views.message_sent(env("chat", "MessageSent", "c2"), message())


def test_handlers_are_found_by_the_events_own_context() -> None:
    assert views.handler_for("chat", "MessageSent") is views.message_sent
    assert views.handler_for("users", "UserForgotten") is views.user_forgotten
    assert views.handler_for("auth", "UserRegistered") is views.user_registered
    assert views.handler_for("users", "UserRegistered") is None  # auth's, not users'
    assert views.handler_for("chat", "ReactionAdded") is None


async def test_an_unhandled_event_still_moves_its_streams_version() -> None:
    _key, value, headers = record("chat", "c1", 4, "ReactionAdded", {"conversation_id": "c1"})
    item = await item_for(headers, value, None)
    assert (item.stream, item.version, list(item.ops)) == ("chat/c1", 4, [])


def test_generations_are_schemas_named_by_number_only() -> None:
    assert schema_of(3) == "g3"
    assert "CREATE TABLE IF NOT EXISTS g7.messages" in tables(7)
    with pytest.raises(ValueError):
        schema_of(0)


@pytest.mark.integration
async def test_a_batch_applies_once_and_a_replay_changes_nothing(fresh_database: str) -> None:
    await migrate(fresh_database)
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=2)
    try:
        events = [
            record(
                "chat",
                "c1",
                1,
                "ConversationCreated",
                {
                    "conversation_id": "c1",
                    "kind": "group",
                    "participant_ids": ["ann", "bob"],
                    "created_by": "ann",
                },
            ),
            record("chat", "c1", 2, "MessageSent", message(seq=1)),
            record("chat", "c1", 3, "MessageSent", message(seq=2, message_id="m2")),
        ]
        first = await apply_events(pool, events)
        again = await apply_events(pool, events)  # a redelivery, or a replay from offset 0
        assert (first.applied, again.applied, again.skipped) == (3, 0, 3)
        row = await pool.fetchrow("SELECT * FROM g1.inbox WHERE user_id = 'bob'")
        assert (row["unread_count"], row["mention_count"]) == (2, 2)  # counted once
        assert await pool.fetchval("SELECT version FROM g1.applied") == 3
    finally:
        await pool.close()
