"""The chat read models, shaped for the query gateway's four chat routes.

Every chat event is in its conversation's stream (key and `ce_subject` = conversation id), so
every document below derives its `_id` from one conversation: one writer per document, and the
runtime's per-stream versions (`_v.<conversation>`) make replays and redeliveries no-ops,
counters included.

- `memberships`, `_id` "<user>:<conversation>": what one participant's conversation list
  shows (title, kind, participants, last message, last activity, unread counter). A user who
  leaves keeps the document with `removed: true` (a tombstone; the routes hide it).
- `messages`, `_id` "<conversation>:<seq, 12 digits>" (`message_key`; the message id is the
  field `message_id`): one document per message, with a normalised token array for search
  (parley_readmodel.search). Keyed by conversation and seq so a page is a set of `_id`
  equalities (the only filter FerretDB 1.24 pushes down; seqs are gap-free). A deleted
  message keeps its document: `deleted: true`, `content: null`, no tokens.
- `conversations`, `_id` conversation id: the conversation as a whole (participants kept with
  `$addToSet`/`$pull`, which need no list, last message, highest seq). Nothing reads it yet but
  operators and the fallback described in docs/decisions.md.

Message texts arrive decrypted by the runtime (parley_privacy). A text whose sender was
forgotten (key gone: `content` listed in `_redacted`) is stored as `content: null,
redacted: true` with no search tokens, for every reader; `UserForgotten` (from `users.events`)
sweeps the texts already stored the same way (messages and last-message previews), so the
live model, a replay and a rebuild agree.

Handlers are pure, so they cannot look the participant list up: an event that changes every
participant's membership must name them. The command side adds (contract additions, see
docs/decisions.md "Chat (issue 5: read side)"):
- MessageSent.recipient_ids: the participants other than the sender when it was sent;
- ParticipantAdded/ParticipantRemoved.participant_ids: the participants after the change, and
  ParticipantAdded.title/kind for the new member's document;
- MessageDeleted.participant_ids, .last_seq (the conversation's highest seq when deleted) and
  .unread_by (participants whose unread counter still counted the message).
Without them the handlers fall back to what the event itself says (see each handler).

The chat features of issue 20 (docs/decisions.md, "Chat features: read side") add:
- on `messages`: `texts` (every version of the text, oldest first: the original written by
  MessageSent, one `$push` per MessageEdited, so the history is all but the last), `edited_at`,
  `reply_to` {message_id, seq} and, on a parent, `reply_count` (`$inc`) and `replies` (the
  replies' seqs, `$push`: the replies route reads the parent, then its page by `_id`),
  `reactions` {<hex of the emoji's UTF-8>: {emoji, users}} (`$addToSet`/`$pull`: a count is
  the set's size, exact under replay and racing devices), `mentions`, `attachments` and
  their file names apart in `attachment_names` (personal: one `$set` to null redacts them);
- `message_ids`, `_id` "<conversation>:<message id>": the message's seq, so a route that
  names a message finds its document with two `_id` probes;
- `reports`, `_id` report id: written by one conversation's stream only (the id is derived
  from the message and the reporter, so no other stream can name it), which keeps the rule of
  one writer per document; the admins' list filters it (a scan on FerretDB, see issue 21);
- on `memberships`: `mention_count`, kept exactly like `unread_count` (`$inc` per mention,
  `$set` to MessagesRead.mentions_after, `$inc -1` per MessageDeleted.mention_unread_by).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from parley_messaging.envelope import Envelope
from parley_readmodel.projection import Projection, Sweep, Write
from parley_readmodel.search import prefix_tokens

NAME = "projector-chat"  # the projection's name: its consumer group and alias document
MEMBERSHIPS = "memberships"
MESSAGES = "messages"
CONVERSATIONS = "conversations"
MESSAGE_IDS = "message_ids"
REPORTS = "reports"


def membership_id(user_id: str, conversation_id: str) -> str:
    return f"{user_id}:{conversation_id}"


def message_key(conversation_id: str, seq: int) -> str:
    """A message document's `_id`: fixed-width seq, so ids sort like seqs within a conversation
    and one conversation's keys never equal another's."""
    return f"{conversation_id}:{seq:012d}"


def message_id_key(conversation_id: str, message_id: str) -> str:
    """A `message_ids` document's `_id`: the message id within its conversation."""
    return f"{conversation_id}:{message_id}"


def emoji_key(emoji: str) -> str:
    """A reaction's field name under `reactions`: the hex of the emoji's UTF-8 (a field name
    may not contain '.' nor start with '$'; the hex of any text is a safe, unique name)."""
    return emoji.encode().hex()


def _conversation(env: Envelope, data: dict[str, Any]) -> str:
    conversation_id = str(data.get("conversation_id") or env.subject)
    if conversation_id != env.subject:
        # the document ids must derive from the event's stream (one writer per document)
        raise ValueError(f"event of stream {env.subject} names conversation {conversation_id}")
    return conversation_id


def _member(user_id: str, conversation_id: str, update: dict[str, dict[str, Any]]) -> Write:
    """A membership update that always (re)states whose it is, so a document created by any
    event is found by the routes' `user_id` filter."""
    fields = update.setdefault("$set", {})
    fields.update({"user_id": user_id, "conversation_id": conversation_id})
    return Write(MEMBERSHIPS, membership_id(user_id, conversation_id), update)


def _ids(value: Any) -> list[str] | None:
    if value is None:
        return None
    return list(dict.fromkeys(str(v) for v in value))


def conversation_created(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    participants = _ids(data["participant_ids"]) or []
    shared = {
        "title": data.get("title"),
        "kind": data["kind"],
        "participant_ids": participants,
        "last_message": None,
        "last_activity_at": env.time,
    }
    writes = [
        Write(
            CONVERSATIONS,
            cid,
            {
                "$set": {
                    **shared,
                    "created_by": data["created_by"],
                    "created_at": env.time,
                    "last_seq": 0,
                }
            },
        )
    ]
    for user in participants:
        member = {**shared, "unread_count": 0, "read_up_to_seq": 0, "removed": False}
        writes.append(_member(user, cid, {"$set": {**member, "joined_at": env.time}}))
    return writes


def participant_added(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    user = str(data["user_id"])
    participants = _ids(data.get("participant_ids"))
    new: dict[str, Any] = {
        "removed": False,
        "unread_count": 0,  # messages sent before joining are not unread
        "last_activity_at": env.time,
        "joined_at": env.time,
    }
    on_insert: dict[str, Any] = {"last_message": None, "read_up_to_seq": 0}
    for key, default in (("title", None), ("kind", "group")):
        if key in data:
            new[key] = data[key]
        else:  # fallback: an older event without it; keep what a re-added member had
            on_insert[key] = default
    update: dict[str, dict[str, Any]] = {"$set": new, "$setOnInsert": on_insert}
    if participants is not None:
        new["participant_ids"] = participants
    else:  # fallback: the new member's list knows at least themselves
        update["$addToSet"] = {"participant_ids": user}
    writes = [
        Write(CONVERSATIONS, cid, {"$addToSet": {"participant_ids": user}}),
        _member(user, cid, update),
    ]
    for other in participants or []:
        if other != user:
            writes.append(_member(other, cid, {"$set": {"participant_ids": participants}}))
    return writes


def participant_removed(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    user = str(data["user_id"])
    participants = _ids(data.get("participant_ids"))
    writes = [
        Write(CONVERSATIONS, cid, {"$pull": {"participant_ids": user}}),
        # a tombstone: the document stays (a replay keeps its version), the routes hide it
        _member(user, cid, {"$set": {"removed": True, "removed_at": env.time}}),
    ]
    for other in participants or []:
        if other != user:
            writes.append(_member(other, cid, {"$set": {"participant_ids": participants}}))
    return writes


def last_message(
    data: dict[str, Any], sent_at: datetime | None, content: str | None, redacted: bool = False
) -> dict[str, Any]:
    return {
        "message_id": data["message_id"],
        "seq": int(data["seq"]),
        "sender_id": data.get("sender_id"),
        "content": content,
        "deleted": content is None and not redacted,
        "redacted": redacted,
        "sent_at": sent_at,
    }


def sent_at_of(data: dict[str, Any]) -> datetime | None:
    """MessageEdited's and MessageDeleted's `sent_at` (an ISO 8601 string on the wire; absent
    from events before the field, or unknown: None), as the datetime MessageSent's preview
    stored."""
    value = data.get("sent_at")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def is_redacted(data: dict[str, Any], field: str = "content") -> bool:
    return field in (data.get("_redacted") or ())


def attachment_names(data: dict[str, Any]) -> list[str | None] | None:
    """The file names of MessageSent.attachments, in their order (None: redacted, the sender
    was forgotten). A value that is not a JSON array of strings counts as no names."""
    attachments = data.get("attachments") or []
    if is_redacted(data, "attachment_names"):
        return None
    try:
        names = json.loads(data.get("attachment_names") or "[]")
    except ValueError:
        names = []
    if not isinstance(names, list):
        names = []
    return [
        str(names[i]) if i < len(names) and isinstance(names[i], str) else None
        for i in range(len(attachments))
    ]


def message_sent(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    sender = str(data["sender_id"])
    seq = int(data["seq"])
    redacted = is_redacted(data)
    content = None if redacted else data["content"]
    last = last_message(data, env.time, content, redacted)
    activity = {"last_message": last, "last_activity_at": env.time}
    mentions = [u for u in _ids(data.get("mentions")) or [] if u != sender]
    parent_seq = data.get("reply_to_seq")
    reply_to: dict[str, Any] | None = None
    if parent_seq is not None:
        reply_to = {"message_id": str(data.get("reply_to")), "seq": int(parent_seq)}
    attachments = [
        {
            "attachment_id": str(a["attachment_id"]),
            "content_type": a.get("content_type"),
            "size": int(a.get("size") or 0),
        }
        for a in data.get("attachments") or []
    ]
    writes = [
        Write(
            MESSAGES,
            message_key(cid, seq),
            {
                "$set": {
                    "message_id": str(data["message_id"]),
                    "conversation_id": cid,
                    "seq": seq,
                    "sender_id": sender,
                    "content": content,
                    "redacted": redacted,
                    # personal (the sender's): gone with their key, like the text
                    "client_message_id": None
                    if "client_message_id" in (data.get("_redacted") or ())
                    else data.get("client_message_id"),
                    "sent_at": env.time,
                    "deleted": False,
                    "search": [] if content is None else prefix_tokens(content),
                    # the original text: every edit pushes its own (the history)
                    "texts": [] if redacted else [{"content": content, "at": env.time}],
                    "edited_at": None,
                    "reply_to": reply_to,
                    "mentions": mentions,
                    "attachments": attachments,
                    "attachment_names": attachment_names(data),
                }
            },
        ),
        Write(
            MESSAGE_IDS,
            message_id_key(cid, str(data["message_id"])),
            {"$set": {"conversation_id": cid, "seq": seq}},
        ),
        Write(CONVERSATIONS, cid, {"$set": activity, "$max": {"last_seq": seq}}),
        _member(sender, cid, {"$set": dict(activity)}),
    ]
    if parent_seq is not None and int(parent_seq) != seq:
        # the parent is an earlier message of this stream: the same writer
        parent = message_key(cid, int(parent_seq))
        writes.append(
            Write(MESSAGES, parent, {"$inc": {"reply_count": 1}, "$push": {"replies": seq}})
        )
    # fallback without recipient_ids (an event from before the field): only the sender's
    # membership moves; the others catch up at their next read mark (unread_after is exact)
    for user in _ids(data.get("recipient_ids")) or []:
        if user != sender:
            counters = {"unread_count": 1}
            if user in mentions:
                counters["mention_count"] = 1
            writes.append(_member(user, cid, {"$set": dict(activity), "$inc": counters}))
    return writes


def message_edited(env: Envelope, data: dict[str, Any]) -> list[Write]:
    """The new text becomes the message's `content` and the newest entry of `texts`. When it
    is the conversation's last message (`last_seq`), every preview follows."""
    cid = _conversation(env, data)
    seq = int(data["seq"])
    redacted = is_redacted(data)
    content = None if redacted else data["content"]
    text: dict[str, Any] = {
        "content": content,
        "redacted": redacted,
        "search": [] if content is None else prefix_tokens(content),
        "edited_at": env.time,
    }
    # a forgotten sender's edit (a replay after the key is gone): no text to keep at all, as
    # UserForgotten's sweep leaves it
    update: dict[str, dict[str, Any]] = {"$set": text}
    if redacted:
        text["texts"] = []
    else:
        update["$push"] = {"texts": {"content": content, "at": env.time}}
    writes = [Write(MESSAGES, message_key(cid, seq), update)]
    last_seq = data.get("last_seq")
    if last_seq is not None and int(last_seq) == seq:
        # the whole sub-document (a member who joined after it has none to patch); events
        # before `sent_at` was in them leave the preview without a send time
        sent_at = sent_at_of(data)
        preview = {**last_message(data, sent_at, content, redacted), "edited_at": env.time}
        writes.append(Write(CONVERSATIONS, cid, {"$set": {"last_message": preview}}))
        for user in _ids(data.get("participant_ids")) or []:
            writes.append(_member(user, cid, {"$set": {"last_message": dict(preview)}}))
    return writes


def reaction_added(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    field = f"reactions.{emoji_key(str(data['emoji']))}"
    update = {
        "$set": {f"{field}.emoji": str(data["emoji"])},
        "$addToSet": {f"{field}.users": str(data["user_id"])},
    }
    return [Write(MESSAGES, message_key(cid, int(data["seq"])), update)]


def reaction_removed(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    field = f"reactions.{emoji_key(str(data['emoji']))}"
    # the emoji is (re)stated so the field exists even for a removal alone (a document that
    # never saw the add: a parked event); an empty set shows as no reaction
    update = {
        "$set": {f"{field}.emoji": str(data["emoji"])},
        "$pull": {f"{field}.users": str(data["user_id"])},
    }
    return [Write(MESSAGES, message_key(cid, int(data["seq"])), update)]


def message_reported(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    redacted = is_redacted(data, "reason")
    return [
        Write(
            REPORTS,
            str(data["report_id"]),
            {
                "$set": {
                    "report_id": str(data["report_id"]),
                    "conversation_id": cid,
                    "message_id": str(data["message_id"]),
                    "seq": int(data["seq"]),
                    "sender_id": str(data["sender_id"]),
                    "reporter_id": str(data["reporter_id"]),
                    "reason": None if redacted else data["reason"],
                    "reason_redacted": redacted,
                    "status": "open",
                    "reported_at": env.time,
                },
                # a resolution is never undone by a redelivered report (versions guard that
                # too; this keeps a document written out of order right)
                "$setOnInsert": {"action": None, "resolved_by": None, "resolved_at": None},
            },
        )
    ]


def report_resolved(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    return [
        Write(
            REPORTS,
            str(data["report_id"]),
            {
                "$set": {
                    "report_id": str(data["report_id"]),
                    "conversation_id": cid,
                    "status": "resolved",
                    "action": data["action"],
                    "resolved_by": str(data["resolved_by"]),
                    "resolved_at": env.time,
                }
            },
        )
    ]


def message_deleted(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    seq = int(data["seq"])
    writes = [
        Write(
            MESSAGES,
            message_key(cid, seq),
            {
                "$set": {
                    "message_id": str(data["message_id"]),
                    "conversation_id": cid,
                    "seq": seq,
                    "content": None,  # the text is gone from the read model
                    "texts": [],  # earlier versions too
                    "search": [],
                    "attachments": [],
                    "attachment_names": None,
                    "deleted": True,
                    "deleted_at": env.time,
                    "deleted_by": data.get("deleted_by"),
                }
            },
        )
    ]
    decrements = {str(u) for u in data.get("unread_by") or []}
    mention_decrements = {str(u) for u in data.get("mention_unread_by") or []}
    last_seq = data.get("last_seq")
    participants = _ids(data.get("participant_ids")) or []
    is_last = last_seq is not None and int(last_seq) == seq
    if is_last:
        # the whole sub-document (a member who joined after it has none to patch)
        gone = last_message(data, sent_at_of(data), None)
        writes.append(Write(CONVERSATIONS, cid, {"$set": {"last_message": gone}}))
    for user in sorted(set(participants) | decrements | mention_decrements):
        update: dict[str, dict[str, Any]] = {}
        if is_last and user in participants:
            update["$set"] = {"last_message": last_message(data, sent_at_of(data), None)}
        counters = {}
        if user in decrements:
            counters["unread_count"] = -1
        if user in mention_decrements:
            counters["mention_count"] = -1
        if counters:
            update["$inc"] = counters
        writes.append(_member(user, cid, update))
    return writes


def messages_read(env: Envelope, data: dict[str, Any]) -> list[Write]:
    cid = _conversation(env, data)
    return [
        _member(
            str(data["user_id"]),
            cid,
            {
                # exact, computed by the command side: a replay or a lost increment cannot
                # leave the counter wrong past the next read mark
                "$set": {
                    "unread_count": int(data["unread_after"]),
                    "mention_count": int(data.get("mentions_after") or 0),
                },
                "$max": {"read_up_to_seq": int(data["up_to_seq"])},
            },
        )
    ]


def user_forgotten(env: Envelope, data: dict[str, Any]) -> list[Write | Sweep]:
    """A person was forgotten (users.events): their texts (every version), attachment names,
    client message ids and report reasons go from every document, for every reader (their
    key is gone too, so a replay writes the same)."""
    person = str(data["user_id"])
    text_gone: dict[str, Any] = {
        "content": None,
        "redacted": True,
        "search": [],
        "texts": [],
        "attachment_names": None,
        "client_message_id": None,
    }
    preview_gone = {"last_message.content": None, "last_message.redacted": True}
    reason_gone = {"reason": None, "reason_redacted": True}
    return [
        Sweep(MESSAGES, {"sender_id": person}, {"$set": text_gone}),
        Sweep(MEMBERSHIPS, {"last_message.sender_id": person}, {"$set": preview_gone}),
        Sweep(CONVERSATIONS, {"last_message.sender_id": person}, {"$set": preview_gone}),
        Sweep(REPORTS, {"reporter_id": person}, {"$set": reason_gone}),
    ]


def chat_projection(name: str = NAME) -> Projection:
    return Projection(
        name=name,
        # users.events only for UserForgotten (other users events have no handler here)
        topics=("chat.events", "users.events"),
        tracked=("chat",),  # users.events only for UserForgotten: no tokens of it here
        # a conversation's document records its stream's versions (MessageSent writes it)
        versions_in={"chat": CONVERSATIONS},
        collections=(MEMBERSHIPS, MESSAGES, CONVERSATIONS, MESSAGE_IDS, REPORTS),
        handlers={
            "ConversationCreated": conversation_created,
            "ParticipantAdded": participant_added,
            "ParticipantRemoved": participant_removed,
            "MessageSent": message_sent,
            "MessageDeleted": message_deleted,
            "MessagesRead": messages_read,
            "MessageEdited": message_edited,
            "ReactionAdded": reaction_added,
            "ReactionRemoved": reaction_removed,
            "MessageReported": message_reported,
            "ReportResolved": report_resolved,
            "UserForgotten": user_forgotten,
        },
        indexes={
            MEMBERSHIPS: ((("user_id", 1), ("last_activity_at", -1), ("conversation_id", -1)),),
            MESSAGES: ((("conversation_id", 1), ("seq", -1)), (("search", 1), ("sent_at", -1))),
            REPORTS: ((("status", 1), ("reported_at", -1), ("_id", -1)),),
        },
    )
