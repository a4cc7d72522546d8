"""The search model's handlers: one pure function per event name, from one decoded event to
SQL statements (`Op`s) on the generation schema being written (`{s}` in the text). No I/O
here: the runtime (store.py) runs a batch's statements in one transaction together with the
per-stream versions that make replays no-ops (docs/decisions.md, "Search and lists at scale").

Tables (schema.py has the DDL):
- `users` (one row per profile, the users stream's) and `name_tokens` / `email_tokens` (one
  row per normalised prefix of the name's words and of the whole name, or of the address's
  local part: parley_readmodel.search, the same tokens the MongoDB model keeps), each with the
  name key, so a search is one range of the btree (token, name_key, user_id): a page costs
  the same whatever the number of users. `registrations` (auth's streams): pending sign-ups.
- `messages` (conversation, seq): the sender, the send time and the words of the current
  text as a tsvector (`array_to_tsvector` of `search.query_words`: the lexemes are exactly
  the Python-normalised words, no parser or dictionary of PostgreSQL in between, so the
  stored words and the query's words come from one function). A deletion, a redaction or a
  forgotten sender empties it (NULL: never matches).
- `members`: per participant, intervals of seqs (`from_seq` exclusive, `to_seq` inclusive,
  NULL while a participant): the messages a person may find. A join opens one at the
  conversation's `last_seq` then (messages sent before joining are not found), a removal
  closes it at the `last_seq` then (messages after it are not found). `conversations` keeps
  `last_seq`; the statements read it in the same transaction, in stream order, so a replay
  computes the same intervals.
- `inbox`: per (user, conversation) what orders a conversation list and sums the unread
  counters (last activity, removed, unread and mention counts), kept like projector-chat's
  memberships (increments per message, exact values from MessagesRead). With the
  conversation's row (title, kind, participants, last message: one per conversation, not
  per member) it is the whole list item, so a list page is one query.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from parley_contracts.base import FORGOTTEN_NAME
from parley_messaging.envelope import Envelope
from parley_readmodel.search import normalise, prefix_tokens, query_words


@dataclass(frozen=True)
class Op:
    """One SQL statement; `{s}` stands for the generation's schema."""

    sql: str
    args: tuple[Any, ...] = ()


Handler = Callable[[Envelope, dict[str, Any]], Sequence[Op]]
TOPICS = ("users.events", "auth.events", "chat.events")


def redacted(data: Mapping[str, Any]) -> set[str]:
    return set(data.get("_redacted") or ())


def words(text: str | None) -> list[str] | None:
    """The lexemes of a text (None: nothing to find)."""
    found = query_words(text or "")
    return found or None


# -- users ------------------------------------------------------------------------------------

_NAME_TOKENS = (
    Op("DELETE FROM {s}.name_tokens WHERE user_id = $1"),
    Op(
        "INSERT INTO {s}.name_tokens (token, name_key, user_id)"
        " SELECT unnest($2::text[]), $3, $1 ON CONFLICT DO NOTHING"
    ),
    # the address's tokens sort by the name too
    Op("UPDATE {s}.email_tokens SET name_key = $2 WHERE user_id = $1"),
)


def _name(user_id: str, name: str) -> list[Op]:
    key = normalise(name)
    delete, insert, follow = _NAME_TOKENS
    return [
        Op(delete.sql, (user_id,)),
        Op(insert.sql, (user_id, prefix_tokens(name), key)),
        Op(follow.sql, (user_id, key)),
    ]


def _email(user_id: str, email: str | None) -> list[Op]:
    ops = [
        Op(
            "UPDATE {s}.users SET email = $2, email_key = $3 WHERE id = $1",
            (user_id, email, None if email is None else email.strip().casefold()),
        ),
        Op("DELETE FROM {s}.email_tokens WHERE user_id = $1", (user_id,)),
    ]
    if email is not None:
        local = email.rpartition("@")[0] or email
        ops.append(
            Op(
                "INSERT INTO {s}.email_tokens (token, name_key, user_id)"
                " SELECT unnest($2::text[]), u.name_key, u.id FROM {s}.users u WHERE u.id = $1"
                " ON CONFLICT DO NOTHING",
                (user_id, prefix_tokens(local)),
            )
        )
    return ops


def _touch(user_id: str, at: datetime, **fields: Any) -> Op:
    names = list(fields)
    sets = "".join(f", {n} = ${i + 3}" for i, n in enumerate(names))
    return Op(
        f"UPDATE {{s}}.users SET updated_at = $2{sets} WHERE id = $1",
        (user_id, at, *(fields[n] for n in names)),
    )


def user_created(env: Envelope, data: dict[str, Any]) -> list[Op]:
    user = str(data["user_id"])
    name = str(data["name"])
    row = Op(
        "INSERT INTO {s}.users (id, name, name_key, role, status, created_at, updated_at)"
        " VALUES ($1, $2, $3, 'user', 'active', $4, $4)"
        " ON CONFLICT (id) DO UPDATE SET name = $2, name_key = $3, updated_at = $4",
        (user, name, normalise(name), env.time),
    )
    email = None if "email" in redacted(data) else data.get("email")
    return [row, *_name(user, name), *_email(user, email)]


def profile_updated(env: Envelope, data: dict[str, Any]) -> list[Op]:
    user = str(data["user_id"])
    gone = redacted(data)
    changes = {k: data[k] for k in ("name", "bio", "avatar_url") if data.get(k) is not None}
    for field in gone - {"name"}:
        changes[field] = None
    ops: list[Op] = []
    if "name" in changes:
        changes["name_key"] = normalise(changes["name"])
        ops = _name(user, changes["name"])
    return [_touch(user, env.time, **changes), *ops]


def status_changed(env: Envelope, data: dict[str, Any]) -> list[Op]:
    reason = None if "reason" in redacted(data) else data.get("reason")
    return [_touch(str(data["user_id"]), env.time, status=data["status"], status_reason=reason)]


def role_assigned(env: Envelope, data: dict[str, Any]) -> list[Op]:
    return [_touch(str(data["user_id"]), env.time, role=data["role"])]


def email_changed(env: Envelope, data: dict[str, Any]) -> list[Op]:
    user = str(data["user_id"])
    email = None if "email" in redacted(data) else data.get("email")
    return [_touch(user, env.time), *_email(user, email)]


def user_forgotten(env: Envelope, data: dict[str, Any]) -> list[Op]:
    """The person is forgotten: placeholder name (as projector-users shows it), no address,
    bio, avatar or reason; and none of their texts can be found any more."""
    user = str(data["user_id"])
    profile = _touch(
        user,
        env.time,
        name=FORGOTTEN_NAME,
        name_key=normalise(FORGOTTEN_NAME),
        bio=None,
        avatar_url=None,
        status_reason=None,
        forgotten=True,
    )
    texts = Op(
        "UPDATE {s}.messages SET words = NULL, redacted = true"
        " WHERE sender_id = $1 AND words IS NOT NULL",
        (user,),
    )
    previews = Op(
        "UPDATE {s}.conversations SET last_message = last_message"
        """ || '{"content": null, "redacted": true}'::jsonb"""
        " WHERE last_message->>'sender_id' = $1",
        (user,),
    )
    return [profile, *_name(user, FORGOTTEN_NAME), *_email(user, None), texts, previews]


def user_registered(env: Envelope, data: dict[str, Any]) -> list[Op]:
    return [
        Op(
            "INSERT INTO {s}.registrations (id, pending) VALUES ($1, true)"
            " ON CONFLICT (id) DO UPDATE SET pending = true",
            (str(data["user_id"]),),
        )
    ]


def email_verified(env: Envelope, data: dict[str, Any]) -> list[Op]:
    return [
        Op(
            "INSERT INTO {s}.registrations (id, pending) VALUES ($1, false)"
            " ON CONFLICT (id) DO UPDATE SET pending = false",
            (str(data["user_id"]),),
        )
    ]


# -- chat -------------------------------------------------------------------------------------


def _conversation(env: Envelope, data: Mapping[str, Any]) -> str:
    cid = str(data.get("conversation_id") or env.subject)
    if cid != env.subject:
        raise ValueError(f"event of stream {env.subject} names conversation {cid}")
    return cid


def _ids(value: Any) -> list[str]:
    return list(dict.fromkeys(str(v) for v in value or ()))


def millis(at: datetime) -> datetime:
    """A time cut to milliseconds: what projector-chat's documents hold (BSON), so the list's
    order and its cursors (integer milliseconds) agree with the documents shown."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


_LAST_SEQ = "coalesce((SELECT last_seq FROM {s}.conversations WHERE id = $1), 0)"


def _join(cid: str, user: str, at: datetime) -> list[Op]:
    """Open an interval at the conversation's newest seq (unless one is open) and (re)show the
    conversation in the person's list with nothing unread."""
    return [
        Op(
            "INSERT INTO {s}.members (conversation_id, user_id, from_seq, to_seq)"
            f" SELECT $1, $2, {_LAST_SEQ}, NULL WHERE NOT EXISTS (SELECT 1 FROM {{s}}.members"
            " WHERE conversation_id = $1 AND user_id = $2 AND to_seq IS NULL)"
            " ON CONFLICT DO NOTHING",
            (cid, user),
        ),
        Op(
            "INSERT INTO {s}.inbox (user_id, conversation_id, last_activity_at, removed,"
            " unread_count, mention_count) VALUES ($1, $2, $3, false, 0, 0)"
            " ON CONFLICT (user_id, conversation_id) DO UPDATE SET last_activity_at = $3,"
            " removed = false, unread_count = 0, mention_count = 0",
            (user, cid, millis(at)),
        ),
    ]


def conversation_created(env: Envelope, data: dict[str, Any]) -> list[Op]:
    cid = _conversation(env, data)
    ops = [
        Op(
            "INSERT INTO {s}.conversations (id, last_seq, title, kind, participant_ids)"
            " VALUES ($1, 0, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET title = $2, kind = $3,"
            " participant_ids = $4",
            (cid, data.get("title"), data.get("kind"), _ids(data.get("participant_ids"))),
        )
    ]
    for user in _ids(data.get("participant_ids")):
        ops += _join(cid, user, env.time)
    return ops


def _participants(cid: str, user: str, data: Mapping[str, Any], joined: bool) -> Op:
    """The participants after the change (the event's list; without it, the user added or
    taken off the list kept here)."""
    if data.get("participant_ids"):
        after = _ids(data.get("participant_ids"))
        return Op(
            "INSERT INTO {s}.conversations (id, participant_ids) VALUES ($1, $2)"
            " ON CONFLICT (id) DO UPDATE SET participant_ids = $2",
            (cid, after),
        )
    change = (
        "array_append(array_remove(coalesce({s}.conversations.participant_ids, '{}'), $2), $2)"
        if joined
        else "array_remove({s}.conversations.participant_ids, $2)"
    )
    return Op(
        "INSERT INTO {s}.conversations (id, participant_ids) VALUES ($1, $3)"
        f" ON CONFLICT (id) DO UPDATE SET participant_ids = {change}",
        (cid, user, [user] if joined else []),
    )


def participant_added(env: Envelope, data: dict[str, Any]) -> list[Op]:
    cid = _conversation(env, data)
    user = str(data["user_id"])
    ops = [_participants(cid, user, data, joined=True)]
    for key in ("title", "kind"):
        if data.get(key) is not None:
            ops.append(
                Op(f"UPDATE {{s}}.conversations SET {key} = $2 WHERE id = $1", (cid, data[key]))
            )
    return [*ops, *_join(cid, user, env.time)]


def participant_removed(env: Envelope, data: dict[str, Any]) -> list[Op]:
    cid = _conversation(env, data)
    user = str(data["user_id"])
    return [
        _participants(cid, user, data, joined=False),
        Op(
            f"UPDATE {{s}}.members SET to_seq = {_LAST_SEQ}"
            " WHERE conversation_id = $1 AND user_id = $2 AND to_seq IS NULL",
            (cid, user),
        ),
        Op(
            "UPDATE {s}.inbox SET removed = true WHERE user_id = $1 AND conversation_id = $2",
            (user, cid),
        ),
    ]


def preview(
    data: Mapping[str, Any],
    sent_at: Any,
    content: str | None,
    redacted: bool = False,
    edited_at: datetime | None = None,
) -> str:
    """A conversation's last message as the list shows it (projector-chat's `last_message`),
    as JSON."""
    return json.dumps(
        {
            "message_id": str(data["message_id"]),
            "seq": int(data["seq"]),
            "sender_id": data.get("sender_id"),
            "content": content,
            "deleted": content is None and not redacted,
            "redacted": redacted,
            "sent_at": sent_at.isoformat() if isinstance(sent_at, datetime) else sent_at,
            "edited_at": None if edited_at is None else edited_at.isoformat(),
        }
    )


def _if_last(cid: str, data: Mapping[str, Any], value: str) -> list[Op]:
    """The conversation's preview becomes `value` if the event's message is its last one."""
    last_seq = data.get("last_seq")
    if last_seq is None or int(last_seq) != int(data["seq"]):
        return []
    return [Op("UPDATE {s}.conversations SET last_message = $2::jsonb WHERE id = $1", (cid, value))]


_ACTIVITY = (
    "INSERT INTO {s}.inbox (user_id, conversation_id, last_activity_at, removed, unread_count,"
    " mention_count) VALUES ($1, $2, $3, false, $4, $5)"
    " ON CONFLICT (user_id, conversation_id) DO UPDATE SET last_activity_at = $3,"
    " unread_count = {s}.inbox.unread_count + $4, mention_count = {s}.inbox.mention_count + $5"
)


def message_sent(env: Envelope, data: dict[str, Any]) -> list[Op]:
    cid = _conversation(env, data)
    seq = int(data["seq"])
    sender = str(data["sender_id"])
    gone = "content" in redacted(data)
    ops = [
        Op(
            "INSERT INTO {s}.conversations (id, last_seq, last_message) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (id) DO UPDATE SET last_seq = greatest({s}.conversations.last_seq, $2),"
            " last_message = $3::jsonb",
            (cid, seq, preview(data, env.time, None if gone else data.get("content"), gone)),
        ),
        Op(
            "INSERT INTO {s}.messages (conversation_id, seq, sender_id, sent_at, words, redacted)"
            " VALUES ($1, $2, $3, $4, array_to_tsvector($5::text[]), $6)"
            " ON CONFLICT (conversation_id, seq) DO NOTHING",
            (cid, seq, sender, env.time, None if gone else words(data.get("content")), gone),
        ),
        Op(_ACTIVITY, (sender, cid, millis(env.time), 0, 0)),
    ]
    mentions = set(_ids(data.get("mentions"))) - {sender}
    for user in _ids(data.get("recipient_ids")):
        if user != sender:
            ops.append(Op(_ACTIVITY, (user, cid, millis(env.time), 1, int(user in mentions))))
    return ops


def message_edited(env: Envelope, data: dict[str, Any]) -> list[Op]:
    """Search finds the current text only."""
    cid = _conversation(env, data)
    gone = "content" in redacted(data)
    content = None if gone else data.get("content")
    return [
        Op(
            "UPDATE {s}.messages SET words = array_to_tsvector($3::text[]), redacted = $4"
            " WHERE conversation_id = $1 AND seq = $2 AND NOT deleted AND NOT redacted",
            (cid, int(data["seq"]), None if gone else words(content), gone),
        ),
        # the send time is not in the event: the preview shows `edited_at` (as projector-chat)
        *_if_last(cid, data, preview(data, None, content, gone, env.time)),
    ]


def message_deleted(env: Envelope, data: dict[str, Any]) -> list[Op]:
    cid = _conversation(env, data)
    ops = [
        Op(
            "INSERT INTO {s}.messages (conversation_id, seq, sender_id, sent_at, words, deleted)"
            " VALUES ($1, $2, $3, NULL, NULL, true) ON CONFLICT (conversation_id, seq)"
            " DO UPDATE SET words = NULL, deleted = true",
            (cid, int(data["seq"]), data.get("sender_id")),
        ),
        *_if_last(cid, data, preview(data, data.get("sent_at"), None)),
    ]
    unread = set(_ids(data.get("unread_by")))
    mentioned = set(_ids(data.get("mention_unread_by")))
    for user in sorted(unread | mentioned):
        ops.append(
            Op(
                "UPDATE {s}.inbox SET unread_count = unread_count - $3,"
                " mention_count = mention_count - $4 WHERE user_id = $1 AND conversation_id = $2",
                (user, cid, int(user in unread), int(user in mentioned)),
            )
        )
    return ops


def messages_read(env: Envelope, data: dict[str, Any]) -> list[Op]:
    cid = _conversation(env, data)
    return [
        Op(
            "UPDATE {s}.inbox SET unread_count = $3, mention_count = $4"
            " WHERE user_id = $1 AND conversation_id = $2",
            (
                str(data["user_id"]),
                cid,
                int(data["unread_after"]),
                int(data.get("mentions_after") or 0),
            ),
        )
    ]


HANDLERS: dict[str, dict[str, Handler]] = {
    "users": {
        "UserCreated": user_created,
        "UserProfileUpdated": profile_updated,
        "UserStatusChanged": status_changed,
        "UserRoleAssigned": role_assigned,
        "UserProfileEmailChanged": email_changed,
        "UserForgotten": user_forgotten,
    },
    "auth": {"UserRegistered": user_registered, "EmailVerified": email_verified},
    "chat": {
        "ConversationCreated": conversation_created,
        "ParticipantAdded": participant_added,
        "ParticipantRemoved": participant_removed,
        "MessageSent": message_sent,
        "MessageEdited": message_edited,
        "MessageDeleted": message_deleted,
        "MessagesRead": messages_read,
    },
}


def handler_for(context: str, event_name: str) -> Handler | None:
    return HANDLERS.get(context, {}).get(event_name)
