"""The handlers of issue 20's chat features (edits, replies, reactions, mentions, attachments,
reports), without servers: what each event writes, and that replays of the same events through
the runtime's planner stay exact."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from parley_messaging.envelope import Envelope, ce_type
from parley_projector_chat.views import (
    CONVERSATIONS,
    MEMBERSHIPS,
    MESSAGE_IDS,
    MESSAGES,
    REPORTS,
    emoji_key,
    message_deleted,
    message_edited,
    message_key,
    message_reported,
    message_sent,
    messages_read,
    reaction_added,
    reaction_removed,
    report_resolved,
    user_forgotten,
)
from parley_readmodel.apply import Change, materialise, plan
from parley_readmodel.projection import Sweep, Write

T = datetime(2026, 1, 1, tzinfo=UTC)


def envelope(name: str, version: int = 1, subject: str = "c1", ctx: str = "chat") -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        source=f"/parley/{ctx}",
        type=ce_type(ctx, name, 1),
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


def sent(seq: int, sender: str = "a", **extra: Any) -> dict[str, Any]:
    return {
        "conversation_id": "c1",
        "message_id": f"m{seq}",
        "seq": seq,
        "sender_id": sender,
        "content": f"text {seq}",
        "recipient_ids": ["b", "c"],
        **extra,
    }


def test_a_message_keeps_its_original_text_and_a_message_id_lookup() -> None:
    writes = by_doc(message_sent(envelope("MessageSent", 2), sent(1)))
    message = writes[(MESSAGES, message_key("c1", 1))]["$set"]
    assert message["texts"] == [{"content": "text 1", "at": T}]
    assert message["edited_at"] is None and message["reply_to"] is None
    assert writes[(MESSAGE_IDS, "c1:m1")]["$set"] == {"conversation_id": "c1", "seq": 1}


def test_an_edit_replaces_the_text_pushes_it_to_the_history_and_moves_the_previews() -> None:
    data = {
        "conversation_id": "c1",
        "message_id": "m3",
        "seq": 3,
        "sender_id": "a",
        "content": "fixed typo",
        "participant_ids": ["a", "b"],
        "last_seq": 3,
        "sent_at": "2026-03-01T11:59:00Z",
    }
    writes = by_doc(message_edited(envelope("MessageEdited", 7), data))
    update = writes[(MESSAGES, message_key("c1", 3))]
    assert update["$set"]["content"] == "fixed typo" and update["$set"]["edited_at"] == T
    assert "fixed" in update["$set"]["search"]
    assert update["$push"] == {"texts": {"content": "fixed typo", "at": T}}
    for key in ((MEMBERSHIPS, "a:c1"), (MEMBERSHIPS, "b:c1"), (CONVERSATIONS, "c1")):
        preview = writes[key]["$set"]["last_message"]
        assert preview["content"] == "fixed typo" and preview["seq"] == 3
        assert preview["deleted"] is False and preview["edited_at"] == T
        assert preview["sent_at"] == datetime(2026, 3, 1, 11, 59, tzinfo=UTC)  # as sent
    # an edit published before events carried `sent_at`: a preview without a send time
    del data["sent_at"]
    older = by_doc(message_edited(envelope("MessageEdited", 7), data))
    assert older[(CONVERSATIONS, "c1")]["$set"]["last_message"]["sent_at"] is None


def test_an_edit_of_an_older_message_leaves_the_previews() -> None:
    data = {"conversation_id": "c1", "message_id": "m1", "seq": 1, "sender_id": "a"}
    writes = by_doc(message_edited(envelope("MessageEdited", 7), {**data, "content": "x"}))
    assert set(writes) == {(MESSAGES, message_key("c1", 1))}


def test_a_redacted_edit_keeps_no_text_at_all() -> None:
    data = {
        "conversation_id": "c1",
        "message_id": "m1",
        "seq": 1,
        "sender_id": "a",
        "content": "[redacted]",
        "_redacted": ["content"],
    }
    (write,) = message_edited(envelope("MessageEdited", 7), data)
    assert write.update["$set"]["content"] is None and write.update["$set"]["redacted"] is True
    assert write.update["$set"]["texts"] == [] and "$push" not in write.update


def test_a_reply_counts_on_its_parent_and_the_parent_lists_it() -> None:
    writes = by_doc(
        message_sent(envelope("MessageSent", 5), sent(4, reply_to="m2", reply_to_seq=2))
    )
    reply = writes[(MESSAGES, message_key("c1", 4))]["$set"]
    assert reply["reply_to"] == {"message_id": "m2", "seq": 2}
    parent = writes[(MESSAGES, message_key("c1", 2))]
    assert parent == {"$inc": {"reply_count": 1}, "$push": {"replies": 4}}


def test_replies_to_one_parent_in_one_batch_coalesce_and_replays_count_once() -> None:
    changes = []
    for seq in (2, 3, 4):
        for w in message_sent(envelope("MessageSent", seq + 1), sent(seq, reply_to_seq=1)):
            changes.append(Change(w.collection, w.doc_id, w.update, "c1", seq + 1))
    planned = plan(changes + changes, {}, set())  # a redelivery of the whole batch
    (segment,) = planned[(MESSAGES, message_key("c1", 1))]
    assert segment.update["$inc"] == {"reply_count": 3}
    assert segment.update["$push"] == {"replies": {"$each": [2, 3, 4]}}


def test_reactions_are_sets_per_emoji_keyed_by_a_safe_field_name() -> None:
    emoji = "👍🏽.$"
    data = {"conversation_id": "c1", "message_id": "m1", "seq": 1, "user_id": "b", "emoji": emoji}
    key = emoji_key(emoji)
    assert "." not in key and not key.startswith("$") and bytes.fromhex(key).decode() == emoji
    (added,) = reaction_added(envelope("ReactionAdded", 3), data)
    assert added.doc_id == message_key("c1", 1)
    assert added.update["$addToSet"] == {f"reactions.{key}.users": "b"}
    assert added.update["$set"] == {f"reactions.{key}.emoji": emoji}
    (removed,) = reaction_removed(envelope("ReactionRemoved", 4), data)
    assert removed.update["$pull"] == {f"reactions.{key}.users": "b"}


def test_mentions_count_for_the_mentioned_recipients_only() -> None:
    writes = by_doc(message_sent(envelope("MessageSent", 2), sent(1, mentions=["b", "a"])))
    assert writes[(MEMBERSHIPS, "b:c1")]["$inc"] == {"unread_count": 1, "mention_count": 1}
    assert writes[(MEMBERSHIPS, "c:c1")]["$inc"] == {"unread_count": 1}
    assert "$inc" not in writes[(MEMBERSHIPS, "a:c1")]  # the sender mentioning themself
    assert writes[(MESSAGES, message_key("c1", 1))]["$set"]["mentions"] == ["b"]


def test_a_read_mark_sets_the_mention_counter_and_a_deletion_takes_one_off() -> None:
    (read,) = messages_read(
        envelope("MessagesRead", 5),
        {
            "conversation_id": "c1",
            "user_id": "b",
            "up_to_seq": 3,
            "unread_after": 2,
            "mentions_after": 1,
        },
    )
    assert read.update["$set"]["mention_count"] == 1
    data = {
        "conversation_id": "c1",
        "message_id": "m4",
        "seq": 4,
        "deleted_by": "a",
        "sender_id": "a",
        "participant_ids": ["a", "b", "c"],
        "last_seq": 5,
        "unread_by": ["b", "c"],
        "mention_unread_by": ["b"],
    }
    writes = by_doc(message_deleted(envelope("MessageDeleted", 6), data))
    assert writes[(MEMBERSHIPS, "b:c1")]["$inc"] == {"unread_count": -1, "mention_count": -1}
    assert writes[(MEMBERSHIPS, "c:c1")]["$inc"] == {"unread_count": -1}
    message = writes[(MESSAGES, message_key("c1", 4))]["$set"]
    assert message["texts"] == [] and message["attachments"] == []
    assert message["attachment_names"] is None


def test_attachments_carry_their_names_unless_the_sender_was_forgotten() -> None:
    attachments = [
        {"attachment_id": "f1", "content_type": "image/png", "size": 10},
        {"attachment_id": "f2", "content_type": "text/plain", "size": 3},
    ]
    names = json.dumps(["cat.png", "notes.txt"])
    data = sent(1, attachments=attachments, attachment_names=names)
    message = by_doc(message_sent(envelope("MessageSent", 2), data))[
        (MESSAGES, message_key("c1", 1))
    ]["$set"]
    assert [a["attachment_id"] for a in message["attachments"]] == ["f1", "f2"]
    assert message["attachments"][0] == {
        "attachment_id": "f1",
        "content_type": "image/png",
        "size": 10,
    }
    assert message["attachment_names"] == ["cat.png", "notes.txt"]
    redacted = {**data, "attachment_names": "[]", "_redacted": ["attachment_names"]}
    message = by_doc(message_sent(envelope("MessageSent", 2), redacted))[
        (MESSAGES, message_key("c1", 1))
    ]["$set"]
    assert message["attachment_names"] is None and len(message["attachments"]) == 2


def test_a_report_opens_and_resolves_in_one_document_per_report() -> None:
    reported = {
        "conversation_id": "c1",
        "report_id": "r1",
        "message_id": "m1",
        "seq": 1,
        "sender_id": "a",
        "reporter_id": "b",
        "reason": "spam",
    }
    (opened,) = message_reported(envelope("MessageReported", 8), reported)
    assert (opened.collection, opened.doc_id) == (REPORTS, "r1")
    doc = materialise("r1", opened.update)
    assert doc["status"] == "open" and doc["reason"] == "spam" and doc["action"] is None
    assert doc["conversation_id"] == "c1" and doc["reported_at"] == T
    gone = message_reported(envelope("MessageReported", 8), {**reported, "_redacted": ["reason"]})[
        0
    ]
    assert gone.update["$set"]["reason"] is None and gone.update["$set"]["reason_redacted"]
    (resolved,) = report_resolved(
        envelope("ReportResolved", 9),
        {
            "conversation_id": "c1",
            "report_id": "r1",
            "message_id": "m1",
            "sender_id": "a",
            "resolved_by": "admin",
            "action": "delete_message",
        },
    )
    assert resolved.doc_id == "r1"
    assert resolved.update["$set"]["status"] == "resolved"
    assert resolved.update["$set"]["action"] == "delete_message"


def test_forgetting_sweeps_every_version_attachment_names_and_report_reasons() -> None:
    sweeps = user_forgotten(envelope("UserForgotten", 3, "u1", "users"), {"user_id": "u1"})
    assert all(isinstance(s, Sweep) for s in sweeps)
    by_collection = {s.collection: s for s in sweeps if isinstance(s, Sweep)}
    message = by_collection[MESSAGES].update["$set"]
    assert message["texts"] == [] and message["attachment_names"] is None
    assert by_collection[REPORTS].filter == {"reporter_id": "u1"}
    assert by_collection[REPORTS].update["$set"]["reason"] is None
