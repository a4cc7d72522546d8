"""Issue 20's pushes without servers: an edit reaches the participants with its text opened
(redacted once the sender is forgotten), reactions reach the conversation's participants as
Members knows them, and reports reach no client."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from parley_messaging.envelope import ce_type
from parley_privacy.fields import REDACTED
from parley_realtime.feed import Translator
from parley_realtime.mappings import TOPICS, Meta, rules_by_source
from parley_realtime.members import Members

CHAT, _ = TOPICS
RULE = rules_by_source()
META = Meta("c1", datetime(2026, 12, 6, tzinfo=UTC), 7)


def edited(**extra: Any) -> dict[str, Any]:
    return {
        "conversation_id": "c1",
        "message_id": "m1",
        "seq": 2,
        "sender_id": "ada",
        "content": "fixed",
        "participant_ids": ["ada", "bob"],
        "last_seq": 2,
        **extra,
    }


def test_an_edit_goes_to_the_participants_with_its_text_opened() -> None:
    rule = RULE[(CHAT, "MessageEdited")]
    assert rule.personal, "the new text is sealed like a message's: open it before the view"
    assert list(rule.recipients(edited())) == ["ada", "bob"]
    view = rule.view(edited(), "bob", META)
    assert view["content"] == "fixed" and view["edited_at"] == META.time.isoformat()
    gone = rule.view(edited(content="[redacted]", **{REDACTED: ["content"]}), "bob", META)
    assert gone["content"] is None and gone["redacted"] is True


def test_reports_are_never_pushed() -> None:
    assert (CHAT, "MessageReported") not in RULE
    assert (CHAT, "ReportResolved") not in RULE


class Cipher:
    """Plaintext in, plaintext out: these tests are about the pushes, not the sealing."""

    def require_sealed(self, event_name: str, data: Any) -> None:
        pass

    async def decrypt(self, event_name: str, data: Any, **_: Any) -> dict[str, Any]:
        return dict(data)


def record(name: str, data: dict[str, Any]) -> ConsumerRecord[Any, Any]:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"e1"),
        ("ce_source", b"/parley/chat"),
        ("ce_type", ce_type("chat", name, 1).encode()),
        ("ce_subject", b"c1"),
        ("ce_time", b"2026-12-06T00:00:00Z"),
        ("ce_aggregateversion", b"7"),
        ("content-type", b"application/json"),
    ]
    return ConsumerRecord(CHAT, 0, 1, 0, 0, None, json.dumps(data).encode(), None, 0, 0, headers)


async def test_a_reaction_goes_to_the_conversations_participants_as_members_knows_them() -> None:
    members = Members(None)
    members.remember("c1", ["ada", "bob", "cy"])
    translator = Translator(Cipher(), members=members)
    data = {"conversation_id": "c1", "message_id": "m1", "seq": 2, "user_id": "bob", "emoji": "👍"}
    for name in ("ReactionAdded", "ReactionRemoved"):
        decoded = translator.decode(record(name, data))
        assert decoded is not None, name
        assert decoded.recipients == []  # the event names nobody
        addressed = await translator.addressed(decoded)
        assert addressed.recipients == ["ada", "bob", "cy"]
        view = addressed.rule.view(data, "ada", addressed.meta)
        assert view["emoji"] == "👍" and view["user_id"] == "bob" and view["seq"] == 2
    members.remember("c1", ["ada", "bob"])  # cy was removed
    decoded = translator.decode(record("ReactionAdded", data))
    assert decoded is not None
    assert "cy" not in (await translator.addressed(decoded)).recipients
