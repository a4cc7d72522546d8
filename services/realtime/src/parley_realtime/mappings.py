"""What each public event becomes on a person's stream: one declared rule per event type.

A rule names the topic and event it comes from, the stream event it becomes (the SSE `event:`
name), who receives it and what each receiver sees. The fan-out core knows nothing else about
chat or notifications: a new fact (an edit, a reaction) enters the stream by adding one rule to
`RULES`, never by editing the core.

Recipients come from the event itself, with one exception: a reaction does not name the
conversation's participants (the command side keeps reactions small), so its rule says
`to_participants` and the feed asks Members (the participants stated by the conversation's
latest event seen live, else the read model's `conversations` document by `_id`). Every
other chat event carries the conversation's
participants as of that event (the command side states them, see the contract), and a
conversation's events are ordered in its partition, so "who may read this" is exact per event:
a removed participant is not among the recipients of anything after their removal, and a new
one is among those of everything from their joining on. Nobody gets more than the read model
would show them: `client_message_id` goes to the sender's own devices only, and a forgotten
person's text arrives as `content: null, redacted: true`.

Pure: no I/O (the data arrives decrypted by the feed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from parley_privacy.fields import REDACTED

CHAT = "chat.events"
NOTIFICATIONS = "notifications.events"
TOPICS: tuple[str, ...] = (CHAT, NOTIFICATIONS)  # the cursor's topic order: never reorder

Data = dict[str, Any]


@dataclass(frozen=True)
class Meta:
    """The envelope facts a view may show."""

    subject: str
    time: datetime
    version: int | None


@dataclass(frozen=True)
class Rule:
    topic: str
    source: str  # the event name on the topic (`ce_type` parley.<ctx>.<source>.vN)
    event: str  # the stream's event name
    recipients: Callable[[Data], Iterable[str]]
    view: Callable[[Data, str, Meta], Data]  # (decrypted data, recipient, meta) -> payload
    personal: bool = False  # has fields sealed per person: decrypt before the view
    # the conversation's participants after this event, when the event states them (what a
    # typing signal is authorised against before the read model has caught up)
    members: Callable[[Data], list[str] | None] | None = None
    # which recipients see the same view (the fan-out serialises one body per distinct key:
    # one for a 1,000-member group, not a thousand); None: everyone sees the same
    audience: Callable[[Data, str], object] | None = None
    # the event names no recipients: they are the conversation's participants now (Members)
    to_participants: bool = False


def _ids(value: Any) -> list[str]:
    return [str(v) for v in value or ()]


def _at(meta: Meta) -> str:
    return meta.time.isoformat()


def _redacted(data: Data, field: str) -> bool:
    return field in (data.get(REDACTED) or ())


# -- chat ------------------------------------------------------------------------------------


def _conversation_created(data: Data, _: str, meta: Meta) -> Data:
    return {
        "conversation_id": data["conversation_id"],
        "kind": data["kind"],
        "title": None if _redacted(data, "title") else data.get("title"),
        "participant_ids": _ids(data["participant_ids"]),
        "created_by": data["created_by"],
        "at": _at(meta),
    }


def _participant_added(data: Data, _: str, meta: Meta) -> Data:
    return {
        "conversation_id": data["conversation_id"],
        "user_id": data["user_id"],
        "added_by": data["added_by"],
        "participant_ids": _ids(data.get("participant_ids")),
        "at": _at(meta),
    }


def _participant_removed(data: Data, _: str, meta: Meta) -> Data:
    return {
        "conversation_id": data["conversation_id"],
        "user_id": data["user_id"],
        "removed_by": data["removed_by"],
        "at": _at(meta),
    }


def _message_sent(data: Data, recipient: str, meta: Meta) -> Data:
    redacted = _redacted(data, "content")
    view: Data = {
        "conversation_id": data["conversation_id"],
        "message_id": data["message_id"],
        "seq": data["seq"],
        "sender_id": data["sender_id"],
        "content": None if redacted else data["content"],
        "redacted": redacted,
        "sent_at": _at(meta),
    }
    if recipient == data["sender_id"]:
        # the sender's own correlation id, for their other devices; nobody else's business
        gone = _redacted(data, "client_message_id")
        view["client_message_id"] = None if gone else data.get("client_message_id")
    return view


def _message_deleted(data: Data, _: str, meta: Meta) -> Data:
    return {
        "conversation_id": data["conversation_id"],
        "message_id": data["message_id"],
        "seq": data["seq"],
        "deleted_by": data["deleted_by"],
        "at": _at(meta),
    }


def _message_edited(data: Data, _: str, meta: Meta) -> Data:
    redacted = _redacted(data, "content")
    return {
        "conversation_id": data["conversation_id"],
        "message_id": data["message_id"],
        "seq": data["seq"],
        "sender_id": data["sender_id"],
        "content": None if redacted else data["content"],
        "redacted": redacted,
        "edited_at": _at(meta),
    }


def _reaction(data: Data, _: str, meta: Meta) -> Data:
    return {
        "conversation_id": data["conversation_id"],
        "message_id": data["message_id"],
        "seq": data["seq"],
        "user_id": data["user_id"],
        "emoji": data["emoji"],
        "at": _at(meta),
    }


def _nobody_named(_: Data) -> list[str]:
    return []


def _conversation_read(data: Data, _: str, meta: Meta) -> Data:
    return {
        "conversation_id": data["conversation_id"],
        "up_to_seq": data["up_to_seq"],
        "unread_count": data["unread_after"],
        "at": _at(meta),
    }


def _notification_created(data: Data, _: str, meta: Meta) -> Data:
    redacted = _redacted(data, "preview")
    return {
        "notification_id": data["notification_id"],
        "kind": data.get("kind", "message"),
        "conversation_id": data["conversation_id"],
        "message_id": data["message_id"],
        "sender_id": data["sender_id"],
        "preview": None if redacted else data["preview"],
        "redacted": redacted,
        "created_at": _at(meta),
    }


def _sender_and_recipients(data: Data) -> list[str]:
    return [str(data["sender_id"]), *_ids(data.get("recipient_ids"))]


def _participants(data: Data) -> list[str]:
    return _ids(data.get("participant_ids"))


def _participants_and_removed(data: Data) -> list[str]:
    return [*_ids(data.get("participant_ids")), str(data["user_id"])]


RULES: tuple[Rule, ...] = (
    Rule(
        CHAT,
        "ConversationCreated",
        "conversation.created",
        _participants,
        _conversation_created,
        personal=True,  # the title, sealed with the conversation's key
        members=_participants,
    ),
    Rule(
        CHAT,
        "ParticipantAdded",
        "participant.added",
        _participants,
        _participant_added,
        members=_participants,
    ),
    Rule(
        CHAT,
        "ParticipantRemoved",
        "participant.removed",
        _participants_and_removed,
        _participant_removed,
        members=_participants,
    ),
    Rule(
        CHAT,
        "MessageSent",
        "message.sent",
        _sender_and_recipients,
        _message_sent,
        personal=True,
        members=_sender_and_recipients,
        audience=lambda d, recipient: recipient == d["sender_id"],  # client_message_id
    ),
    Rule(
        CHAT,
        "MessageDeleted",
        "message.deleted",
        _participants,
        _message_deleted,
        members=_participants,
    ),
    Rule(
        CHAT,
        "MessageEdited",
        "message.edited",
        _participants,
        _message_edited,
        personal=True,  # the new text is sealed for its sender like MessageSent's
        members=_participants,
    ),
    Rule(
        CHAT,
        "ReactionAdded",
        "reaction.added",
        _nobody_named,
        _reaction,
        to_participants=True,
    ),
    Rule(
        CHAT,
        "ReactionRemoved",
        "reaction.removed",
        _nobody_named,
        _reaction,
        to_participants=True,
    ),
    # MessageReported and ReportResolved are the admins' business: never pushed to clients
    # a person's own read marks, for their other devices
    Rule(
        CHAT, "MessagesRead", "conversation.read", lambda d: [str(d["user_id"])], _conversation_read
    ),
    Rule(
        NOTIFICATIONS,
        "NotificationCreated",
        "notification.created",
        lambda d: [str(d["user_id"])],
        _notification_created,
        personal=True,
    ),
)

# ephemeral events (never on a topic, never with a cursor)
TYPING = "typing"
PRESENCE = "presence"
# control events of the stream itself
READY = "ready"
RESET = "reset"
EXPIRED = "expired"


def rules_by_source(rules: Iterable[Rule] = RULES) -> dict[tuple[str, str], Rule]:
    """(topic, event name) -> rule; two rules for one event is a programming error."""
    table: dict[tuple[str, str], Rule] = {}
    for rule in rules:
        key = (rule.topic, rule.source)
        if key in table:
            raise ValueError(f"two push rules for {key}")
        table[key] = rule
    return table
