"""The chat view handlers and the search tokens, without servers."""

import uuid
from datetime import UTC, datetime
from typing import Any

from parley_messaging.envelope import Envelope, ce_type
from parley_projector_chat.views import (
    CONVERSATIONS,
    MEMBERSHIPS,
    MESSAGES,
    chat_projection,
    conversation_created,
    message_deleted,
    message_key,
    message_sent,
    messages_read,
    participant_added,
    participant_removed,
)
from parley_readmodel.apply import Change, materialise, plan
from parley_readmodel.projection import Write
from parley_readmodel.search import prefix_tokens, query_words

T = datetime(2026, 1, 1, tzinfo=UTC)


def envelope(name: str, version: int = 1, subject: str = "c1") -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        source="/parley/chat",
        type=ce_type("chat", name, 1),
        subject=subject,
        time=T,
        data=b"{}",
        aggregate_version=version,
    )


def by_doc(writes: list[Write]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for w in writes:
        assert (w.collection, w.doc_id) not in out, "one write per document per event"
        out[(w.collection, w.doc_id)] = dict(w.update)
    return out


def sent(seq: int, sender: str, recipients: list[str] | None, text: str = "hi") -> dict[str, Any]:
    data: dict[str, Any] = {
        "conversation_id": "c1",
        "message_id": f"m{seq}",
        "seq": seq,
        "sender_id": sender,
        "content": text,
        "client_message_id": None,
    }
    if recipients is not None:
        data["recipient_ids"] = recipients
    return data


def test_created_makes_one_membership_per_participant() -> None:
    writes = by_doc(
        conversation_created(
            envelope("ConversationCreated"),
            {
                "conversation_id": "c1",
                "kind": "group",
                "title": "Team",
                "participant_ids": ["a", "b", "a"],
                "created_by": "a",
            },
        )
    )
    assert set(writes) == {(CONVERSATIONS, "c1"), (MEMBERSHIPS, "a:c1"), (MEMBERSHIPS, "b:c1")}
    member = writes[(MEMBERSHIPS, "b:c1")]["$set"]
    assert member["user_id"] == "b" and member["conversation_id"] == "c1"
    assert member["participant_ids"] == ["a", "b"]
    assert member["unread_count"] == 0 and member["removed"] is False
    assert member["title"] == "Team" and member["last_activity_at"] == T


def test_a_message_moves_every_membership_and_counts_unread_for_the_recipients_only() -> None:
    writes = by_doc(message_sent(envelope("MessageSent", 2), sent(1, "a", ["b", "c"], "Héllo")))
    assert "$inc" not in writes[(MEMBERSHIPS, "a:c1")]
    for user in ("b", "c"):
        update = writes[(MEMBERSHIPS, f"{user}:c1")]
        assert update["$inc"] == {"unread_count": 1}
        assert update["$set"]["last_message"]["content"] == "Héllo"
        assert update["$set"]["last_activity_at"] == T
    message = writes[(MESSAGES, "c1:000000000001")]["$set"]
    assert message["message_id"] == "m1" and message["conversation_id"] == "c1"
    assert message["seq"] == 1 and message["deleted"] is False
    assert "hello" in message["search"] and "he" in message["search"]


def test_a_message_without_recipient_ids_moves_the_sender_only() -> None:
    writes = by_doc(message_sent(envelope("MessageSent", 2), sent(1, "a", None)))
    assert {k for k in writes if k[0] == MEMBERSHIPS} == {(MEMBERSHIPS, "a:c1")}


def test_the_sender_is_never_counted_even_if_listed() -> None:
    writes = by_doc(message_sent(envelope("MessageSent", 2), sent(1, "a", ["a", "b"])))
    assert "$inc" not in writes[(MEMBERSHIPS, "a:c1")]


def test_read_mark_sets_the_exact_counter() -> None:
    (write,) = messages_read(
        envelope("MessagesRead", 5),
        {"conversation_id": "c1", "user_id": "b", "up_to_seq": 3, "unread_after": 1},
    )
    assert write.doc_id == "b:c1"
    assert write.update["$set"]["unread_count"] == 1
    assert write.update["$max"] == {"read_up_to_seq": 3}


def test_deletion_drops_the_text_and_tokens_and_fixes_counters_and_last_message() -> None:
    data = {
        "conversation_id": "c1",
        "message_id": "m3",
        "seq": 3,
        "deleted_by": "a",
        "sender_id": "a",
        "participant_ids": ["a", "b"],
        "last_seq": 3,
        "unread_by": ["b"],
    }
    writes = by_doc(message_deleted(envelope("MessageDeleted", 6), data))
    message = writes[(MESSAGES, message_key("c1", 3))]["$set"]
    assert message["message_id"] == "m3" and message["seq"] == 3
    assert message["content"] is None and message["search"] == [] and message["deleted"] is True
    b = writes[(MEMBERSHIPS, "b:c1")]
    assert b["$inc"] == {"unread_count": -1}
    assert b["$set"]["last_message"]["deleted"] is True
    assert b["$set"]["last_message"]["content"] is None
    assert "$inc" not in writes[(MEMBERSHIPS, "a:c1")]


def test_deleting_an_older_message_leaves_the_last_message() -> None:
    data = {
        "conversation_id": "c1",
        "message_id": "m1",
        "seq": 1,
        "deleted_by": "a",
        "participant_ids": ["a", "b"],
        "last_seq": 3,
        "unread_by": [],
    }
    writes = by_doc(message_deleted(envelope("MessageDeleted", 6), data))
    assert all("last_message" not in u.get("$set", {}) for u in writes.values())


def test_removal_is_a_tombstone_and_updates_the_others_lists() -> None:
    writes = by_doc(
        participant_removed(
            envelope("ParticipantRemoved", 4),
            {"conversation_id": "c1", "user_id": "c", "removed_by": "a", "participant_ids": ["a"]},
        )
    )
    assert writes[(MEMBERSHIPS, "c:c1")]["$set"]["removed"] is True
    assert writes[(MEMBERSHIPS, "a:c1")]["$set"]["participant_ids"] == ["a"]
    assert writes[(CONVERSATIONS, "c1")] == {"$pull": {"participant_ids": "c"}}


def test_added_member_starts_with_no_unread_and_a_document_the_runtime_can_insert() -> None:
    writes = by_doc(
        participant_added(
            envelope("ParticipantAdded", 4),
            {"conversation_id": "c1", "user_id": "d", "added_by": "a"},  # no additions: fallback
        )
    )
    update = writes[(MEMBERSHIPS, "d:c1")]
    doc = materialise("d:c1", update)
    assert doc["unread_count"] == 0 and doc["removed"] is False
    assert doc["participant_ids"] == ["d"] and doc["kind"] == "group" and doc["title"] is None


def test_a_burst_of_messages_coalesces_into_one_update_per_membership() -> None:
    changes = []
    for seq in range(1, 6):
        for w in message_sent(envelope("MessageSent", seq + 1), sent(seq, "a", ["b"])):
            changes.append(Change(w.collection, w.doc_id, w.update, "c1", seq + 1))
    planned = plan(changes, {}, set())
    (segment,) = planned[(MEMBERSHIPS, "b:c1")]
    assert segment.update["$inc"] == {"unread_count": 5}
    assert segment.update["$set"]["last_message"]["seq"] == 5


def test_an_event_naming_another_conversation_than_its_stream_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError):
        message_sent(envelope("MessageSent", 2, subject="c2"), sent(1, "a", ["b"]))


def test_message_tokens_and_query_words_meet() -> None:
    stored = set(prefix_tokens("Ärger mit dem ﬁne Projekt"))
    assert {"a", "ar", "arger", "fi", "fine", "proj", "projekt"} <= stored
    assert query_words("  PROJ  ärg ") == ["proj", "arg"]
    assert set(query_words("projekt ÄRGER")) <= stored  # any order, any case and accents
    assert max(len(t) for t in prefix_tokens("x" * 40)) == 20
    assert query_words("x" * 40) == ["x" * 20]
    assert query_words("?!") == []


def test_projection_handles_every_chat_event() -> None:
    from parley_contracts.registry import all_events

    chat = {cls.event_name() for cls in all_events().values() if cls.context == "chat"}
    assert chat <= set(chat_projection().handlers)
    assert set(chat_projection().handlers) >= {
        "ConversationCreated",
        "ParticipantAdded",
        "ParticipantRemoved",
        "MessageSent",
        "MessageDeleted",
        "MessagesRead",
    }
