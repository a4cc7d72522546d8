"""The conversation aggregate: participants, message numbering, read marks and unread counts.

Pure domain: imports only the event-store's domain base and the public event contract.

Every event of a conversation is in its one stream, but the state stays bounded whatever the
conversation's length (it is snapshotted, and the snapshot is what each command loads):
- participants, each with the seq they have read up to and their exact unread counter
  (messages from others, not deleted, with seq > their read position): O(participants);
- the last seq;
- a window of the last `WINDOW` messages as (seq, message id, sender, deleted): O(1).

Messages older than the window are not in the state. A command about one (delete it, mark
read up to it) gets its facts (`MessageFacts`) from the handler, which reads that message's
event by id; the aggregate decides as usual.

`MessagesRead.unread_after` (messages from OTHER participants, not deleted, with
seq > up_to_seq) is exact when up_to_seq is inside the window or is the reader's latest
position (the common case: "read up to the latest" gives 0), and is exact whenever the reader's
previous read position is inside the window. Only when both the previous read position and
the new mark are older than the window is the part before the window estimated, as
min(gap between mark and window, unread counter minus the window's count): an upper bound.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from parley_contracts.chat import (
    ConversationCreated,
    MessageAttachment,
    MessageDeleted,
    MessageEdited,
    MessageReported,
    MessageSent,
    MessagesRead,
    ParticipantAdded,
    ParticipantRemoved,
    ReactionAdded,
    ReactionRemoved,
    ReportAction,
    ReportResolved,
)
from parley_eventstore.domain import Aggregate, Event

WINDOW = 128  # recent messages kept in the state (and the snapshot)
MAX_PARTICIPANTS = 1000  # a large team channel (issue 17 fans one message out to 1,000)
MAX_CONTENT = 4000
MAX_TITLE = 200
MAX_MENTIONS = 50
MAX_ATTACHMENTS = 10
MAX_REASON = 1000
MAX_EMOJI = 64  # characters: one emoji with modifiers, or a short :shortcode:
# the sender may edit a message for two days (Slack and Mattermost allow edits for ever,
# Zulip for ten minutes by default; two days keeps a conversation's past mostly stable)
EDIT_WINDOW = timedelta(hours=48)
DIRECT_NAMESPACE = uuid.UUID("5b0c1d2e-7a43-4f4e-9c61-2f8f3c7d9a10")
DELETED_NAMESPACE = uuid.UUID("a3f1e0b6-52d4-4c0b-8d7e-9e2b61c4f7d2")
REACTION_NAMESPACE = uuid.UUID("0e7c9a52-31f4-4d8e-b6a9-5c2d8f1e7a34")
REPORT_NAMESPACE = uuid.UUID("7d41b2c8-9e3a-4f06-a5d7-1b8c3e9f2a60")
RESOLVED_NAMESPACE = uuid.UUID("c5a8e3f1-2b7d-4a9c-8e61-3f0d9b7c4e25")


class DomainError(Exception):
    """A command that the current state refuses."""


class ConversationNotFound(DomainError):
    pass


class NotAllowed(DomainError):
    """The caller may not do this (HTTP 403)."""


class MessageNotFound(DomainError):
    pass


class InvalidCommand(DomainError):
    """Input the domain refuses whatever the state: empty content, too many people (422)."""


class ConversationConflict(DomainError):
    """Impossible in the conversation's current state (409)."""


class ReportNotFound(DomainError):
    pass


class TooManyMessages(DomainError):
    """The sender's rate limit (HTTP 429 with Retry-After)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many messages; retry in {retry_after:.1f} s")
        self.retry_after = retry_after


def direct_conversation_id(a: str, b: str, secret: str = "") -> str:
    """The one id of the direct conversation between two people, whoever starts it.

    Keyed by the deployment's `secret` (HMAC-SHA256): a third party who knows both people's
    ids cannot compute it, so cannot even probe whether they talk. Without a secret, the
    legacy unkeyed id (uuid5 of the pair), which anyone can compute: conversations created
    before the secret was set keep that id (the handler finds them; see create_conversation).
    """
    first, second = sorted((a, b))
    name = f"direct:{first}:{second}"
    if not secret:
        return str(uuid.uuid5(DIRECT_NAMESPACE, name))
    digest = hmac.new(secret.encode(), name.encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def is_direct(people: Sequence[str], title: str | None) -> bool:
    return len(people) == 2 and not (title and title.strip())


def new_conversation_id(
    created_by: str, participant_ids: Iterable[str], title: str | None, secret: str = ""
) -> str:
    """The id a create command uses: derived for a direct conversation, random otherwise."""
    people = list(dict.fromkeys([created_by, *participant_ids]))
    if is_direct(people, title):
        return direct_conversation_id(people[0], people[1], secret)
    return str(uuid.uuid4())


def deletion_event_id(message_id: str) -> uuid.UUID:
    """The event id of a message's MessageDeleted: one deletion per message, findable by id."""
    return uuid.uuid5(DELETED_NAMESPACE, message_id)


def reaction_event_id(
    kind: str, message_id: str, user_id: str, emoji: str, round_: int
) -> uuid.UUID:
    """The event id of a ReactionAdded (`kind` "add") or ReactionRemoved ("remove"): a
    person's n-th add and n-th removal of one emoji on one message are unique, so the unique
    event-id index turns a racing duplicate into DuplicateEvent, and the handler finds the
    reaction's state by id."""
    return uuid.uuid5(REACTION_NAMESPACE, f"{kind}:{message_id}:{user_id}:{emoji}:{round_}")


def report_id_of(message_id: str, reporter_id: str) -> str:
    """A report's id (and its MessageReported's event id): one report per person per message."""
    return str(uuid.uuid5(REPORT_NAMESPACE, f"{message_id}:{reporter_id}"))


def resolution_event_id(report_id: str) -> uuid.UUID:
    """The event id of a report's ReportResolved: a report is resolved once."""
    return uuid.uuid5(RESOLVED_NAMESPACE, report_id)


def clean_emoji(emoji: str) -> str:
    text = emoji.strip()
    if not 1 <= len(text) <= MAX_EMOJI or any(c.isspace() or ord(c) < 0x20 for c in text):
        raise InvalidCommand(f"an emoji is 1..{MAX_EMOJI} characters without spaces")
    return text


def clean_reason(reason: str) -> str:
    text = reason.strip()
    if not 1 <= len(text) <= MAX_REASON:
        raise InvalidCommand(f"reason must be 1..{MAX_REASON} characters after trimming")
    return text


def clean_content(content: str) -> str:
    text = content.strip()
    if not 1 <= len(text) <= MAX_CONTENT:
        raise InvalidCommand(f"content must be 1..{MAX_CONTENT} characters after trimming")
    return text


@dataclass(frozen=True)
class MessageFacts:
    """What the aggregate needs to know of a message older than its window."""

    message_id: str
    seq: int
    sender_id: str
    deleted: bool
    mentions: tuple[str, ...] = ()
    sent_at: datetime | None = None  # known when looked up from the event store


@dataclass(frozen=True)
class ReactionState:
    """Whether a person has an emoji on a message now, and the `round` its next event takes
    (the handler reads it from the reaction events' ids: see reaction_event_id)."""

    reacted: bool
    round: int


@dataclass(frozen=True)
class ReportFacts:
    """A report's facts, looked up from its events by id."""

    report_id: str
    message_id: str
    sender_id: str
    resolved: bool


@dataclass(frozen=True)
class Attachment:
    """A file that was uploaded for this conversation, claimed for the message being sent."""

    attachment_id: str
    filename: str
    content_type: str
    size: int


@dataclass
class Recent:
    seq: int
    message_id: str
    sender_id: str
    deleted: bool = False
    mentions: tuple[str, ...] = field(default_factory=tuple)


class Conversation(Aggregate):
    stream_type: ClassVar[str] = "conversation"
    # 2: participants carry their unread-mention counter and the version they joined at
    # (a version 1 snapshot is ignored: the state is folded from the events once)
    snapshot_schema_version: ClassVar[int] = 2

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.exists = False
        self.kind: Literal["direct", "group"] = "group"
        self.title: str | None = None
        self.created_by = ""
        self.seq = 0
        self.read_pos: dict[str, int] = {}  # participant -> read up to seq
        self.unread: dict[str, int] = {}  # participant -> exact unread counter
        self.mention_unread: dict[str, int] = {}  # participant -> unread mentions of them
        self.joined: dict[str, int] = {}  # participant -> the version their membership began
        self.recent: deque[Recent] = deque(maxlen=WINDOW)

    # -- queries --------------------------------------------------------------------------

    @property
    def participants(self) -> list[str]:
        return list(self.read_pos)

    def is_participant(self, user_id: str) -> bool:
        return user_id in self.read_pos

    def joined_at(self, user_id: str) -> int | None:
        """The version at which the participant's current membership began (None: not one):
        their view of the conversation's history starts there."""
        return self.joined.get(user_id)

    def recent_message(self, message_id: str) -> Recent | None:
        for entry in self.recent:
            if entry.message_id == message_id:
                return entry
        return None

    def in_window(self, seq: int) -> bool:
        """True when every message with a higher seq than `seq` is in the window."""
        return not self.recent or seq >= self.recent[0].seq - 1

    def unread_after(self, user_id: str, up_to_seq: int, *, mentions: bool = False) -> int:
        """Messages from others, not deleted, with seq > up_to_seq (see the module doc);
        `mentions`: only those that mention `user_id` (the unread-mention counter)."""
        counted = sum(
            1
            for m in self.recent
            if m.seq > up_to_seq
            and m.sender_id != user_id
            and not m.deleted
            and (not mentions or user_id in m.mentions)
        )
        if self.in_window(up_to_seq):
            return counted
        # the reader's counter covers (read_pos, seq]; the part of it before the window is
        # the old part; (up_to_seq, window start) holds at most that many and at most its size
        counter = self.mention_unread if mentions else self.unread
        old_part = max(counter.get(user_id, 0) - counted, 0)
        before_window = self.recent[0].seq - 1 - up_to_seq
        return counted + min(old_part, before_window)

    # -- commands -------------------------------------------------------------------------

    def _require_exists(self) -> None:
        if not self.exists:
            raise ConversationNotFound(self.id)

    def _require_participant(self, user_id: str) -> None:
        self._require_exists()
        if not self.is_participant(user_id):
            # to anyone outside it, the conversation does not exist (404, not 403: a
            # stranger cannot tell an existing conversation from a made-up id)
            raise ConversationNotFound(self.id)

    def create(
        self,
        created_by: str,
        participant_ids: Iterable[str],
        title: str | None,
        *,
        blocked_by: frozenset[str] = frozenset(),
        secret: str = "",
    ) -> bool:
        """Start the conversation. A direct one (two people, no title) that exists already is
        not created again: returns False and records nothing. True when created. Nobody
        starts a direct conversation with someone who blocks them (`blocked_by`)."""
        people = list(dict.fromkeys([created_by, *participant_ids]))
        if len(people) < 2:
            raise InvalidCommand("a conversation needs at least one other participant")
        if len(people) > MAX_PARTICIPANTS:
            raise InvalidCommand(f"at most {MAX_PARTICIPANTS} participants")
        title = title.strip() if title is not None else None
        if title is not None and not 1 <= len(title) <= MAX_TITLE:
            raise InvalidCommand(f"title must be 1..{MAX_TITLE} characters")
        kind: Literal["direct", "group"] = "direct" if len(people) == 2 and not title else "group"
        if kind == "direct" and people[1] in blocked_by:
            raise NotAllowed("this person has blocked you")
        if self.exists:
            if kind == "direct" and self.kind == "direct" and set(people) == set(self.read_pos):
                return False
            raise ConversationConflict(f"conversation {self.id} exists already")
        if kind == "direct" and self.id != direct_conversation_id(people[0], people[1], secret):
            raise InvalidCommand("a direct conversation's id is derived from its two people")
        self.record(
            ConversationCreated(
                conversation_id=self.id,
                kind=kind,
                title=title,
                participant_ids=people,
                created_by=created_by,
            )
        )
        return True

    def add_participant(self, user_id: str, added_by: str, *, by_admin: bool = False) -> None:
        self._require_exists()
        if not by_admin:
            self._require_participant(added_by)
        if self.kind == "direct":
            raise ConversationConflict("a direct conversation has exactly its two people")
        if self.is_participant(user_id):
            return  # already in: nothing to record
        if len(self.read_pos) >= MAX_PARTICIPANTS:
            raise ConversationConflict(f"at most {MAX_PARTICIPANTS} participants")
        self.record(
            ParticipantAdded(
                conversation_id=self.id,
                user_id=user_id,
                added_by=added_by,
                participant_ids=sorted({*self.read_pos, user_id}),
                title=self.title,
                kind=self.kind,
            )
        )

    def remove_participant(self, user_id: str, removed_by: str, *, by_admin: bool = False) -> None:
        """Removal by the participant themself, the conversation's creator (while still a
        participant) or an admin."""
        self._require_exists()
        creator = removed_by == self.created_by and self.is_participant(removed_by)
        if not (by_admin or removed_by == user_id or self.is_participant(removed_by)):
            raise ConversationNotFound(self.id)
        if not (by_admin or removed_by == user_id or creator):
            raise NotAllowed("only the participant, the creator or an admin may remove")
        if self.kind == "direct":
            raise ConversationConflict("a direct conversation has exactly its two people")
        if not self.is_participant(user_id):
            return  # gone already: nothing to record
        self.record(
            ParticipantRemoved(
                conversation_id=self.id,
                user_id=user_id,
                removed_by=removed_by,
                participant_ids=sorted(u for u in self.read_pos if u != user_id),
            )
        )

    def other_person(self, user_id: str) -> str | None:
        """In a direct conversation, the participant who is not `user_id`."""
        if self.kind != "direct":
            return None
        return next((u for u in self.read_pos if u != user_id), None)

    def send(
        self,
        message_id: str,
        sender_id: str,
        content: str,
        client_message_id: str | None,
        *,
        reply_to: MessageFacts | None = None,
        mentions: Sequence[str] = (),
        attachments: Sequence[Attachment] = (),
        blocked_by: frozenset[str] = frozenset(),
    ) -> int:
        """Record message number seq+1; returns its seq.

        `reply_to`: the parent's facts (the handler looked it up: it must be a message of
        this conversation). `mentions`: participants only. `blocked_by`: the people who block
        the sender; in a direct conversation with one of them the sender may not send."""
        self._require_participant(sender_id)
        self._refuse_blocked(sender_id, blocked_by)
        mentioned = self._mentions(sender_id, mentions)
        if len(attachments) > MAX_ATTACHMENTS:
            raise InvalidCommand(f"at most {MAX_ATTACHMENTS} attachments")
        parent = None
        if reply_to is not None:
            parent = self.facts(reply_to.message_id, reply_to)
        self.record(
            MessageSent(
                conversation_id=self.id,
                message_id=message_id,
                seq=self.seq + 1,
                sender_id=sender_id,
                content=clean_content(content),
                client_message_id=client_message_id,
                recipient_ids=sorted(u for u in self.read_pos if u != sender_id),
                reply_to=parent.message_id if parent else None,
                reply_to_seq=parent.seq if parent else None,
                mentions=mentioned,
                attachments=[
                    MessageAttachment(
                        attachment_id=a.attachment_id, content_type=a.content_type, size=a.size
                    )
                    for a in attachments
                ],
                attachment_names=json.dumps([a.filename for a in attachments])
                if attachments
                else None,
            )
        )
        return self.seq

    def _refuse_blocked(self, sender_id: str, blocked_by: frozenset[str]) -> None:
        other = self.other_person(sender_id)
        if other is not None and other in blocked_by:
            raise NotAllowed("this person has blocked you")

    def _mentions(self, sender_id: str, mentions: Sequence[str]) -> list[str]:
        people = [m for m in dict.fromkeys(mentions) if m != sender_id]
        if len(people) > MAX_MENTIONS:
            raise InvalidCommand(f"at most {MAX_MENTIONS} mentions")
        strangers = [m for m in people if not self.is_participant(m)]
        if strangers:
            raise InvalidCommand("only participants can be mentioned")
        return sorted(people)

    def edit_message(
        self, message_id: str, editor_id: str, content: str, now: datetime, old: MessageFacts
    ) -> None:
        """The sender (still a participant) changes a message's text within EDIT_WINDOW of
        sending it; a deleted message cannot be edited. `old`: the message's facts looked
        up by id (they carry its sending time)."""
        self._require_participant(editor_id)
        facts = self.facts(message_id, old)
        if facts.sender_id != editor_id:
            raise NotAllowed("only the sender may edit a message")
        if facts.deleted:
            raise ConversationConflict("a deleted message cannot be edited")
        if old.sent_at is not None and now - old.sent_at > EDIT_WINDOW:
            hours = int(EDIT_WINDOW.total_seconds() // 3600)
            raise ConversationConflict(f"messages can be edited for {hours} hours")
        self.record(
            MessageEdited(
                conversation_id=self.id,
                message_id=message_id,
                seq=facts.seq,
                sender_id=editor_id,
                content=clean_content(content),
                participant_ids=sorted(self.read_pos),
                last_seq=self.seq,
                sent_at=facts.sent_at,
            )
        )

    def react(
        self,
        message_id: str,
        user_id: str,
        emoji: str,
        state: ReactionState,
        old: MessageFacts | None,
        *,
        add: bool,
    ) -> None:
        """Put (`add`) or take off one emoji on a message. Twice is a no-op: `state` says
        whether the person has it now. Deleted messages take no new reactions."""
        self._require_participant(user_id)
        facts = self.facts(message_id, old)
        emoji = clean_emoji(emoji)
        if add == state.reacted:
            return
        if add and facts.deleted:
            raise ConversationConflict("a deleted message takes no reactions")
        kind = ReactionAdded if add else ReactionRemoved
        self.record(
            kind(
                conversation_id=self.id,
                message_id=message_id,
                seq=facts.seq,
                user_id=user_id,
                emoji=emoji,
                round=state.round,
            )
        )

    def report(
        self, message_id: str, reporter_id: str, reason: str, old: MessageFacts | None
    ) -> str:
        """A participant reports someone else's message to the admins; returns the report's
        id (one report per person per message: the handler answers a second one with the
        first)."""
        self._require_participant(reporter_id)
        facts = self.facts(message_id, old)
        if facts.sender_id == reporter_id:
            raise InvalidCommand("you cannot report your own message")
        if facts.deleted:
            raise ConversationConflict("the message is deleted already")
        report_id = report_id_of(message_id, reporter_id)
        self.record(
            MessageReported(
                conversation_id=self.id,
                report_id=report_id,
                message_id=message_id,
                seq=facts.seq,
                sender_id=facts.sender_id,
                reporter_id=reporter_id,
                reason=clean_reason(reason),
            )
        )
        return report_id

    def resolve_report(
        self,
        report: ReportFacts,
        admin_id: str,
        action: ReportAction,
        message: MessageFacts | None,
    ) -> None:
        """An admin resolves an open report; `delete_message` deletes the message in the same
        append (this context owns it); `deactivate_user` is carried out by the users context
        when it reads ReportResolved."""
        self._require_exists()
        if report.resolved:
            raise ConversationConflict("the report is resolved already")
        self.record(
            ReportResolved(
                conversation_id=self.id,
                report_id=report.report_id,
                message_id=report.message_id,
                sender_id=report.sender_id,
                resolved_by=admin_id,
                action=action,
            )
        )
        if action == "delete_message":
            self.delete_message(report.message_id, admin_id, by_admin=True, old=message)

    def facts(self, message_id: str, old: MessageFacts | None) -> MessageFacts:
        """The message's facts from the window, else from the handler's lookup."""
        entry = self.recent_message(message_id)
        if entry is not None:
            sent_at = old.sent_at if old is not None and old.message_id == message_id else None
            return MessageFacts(
                entry.message_id, entry.seq, entry.sender_id, entry.deleted, entry.mentions, sent_at
            )
        if old is None or old.message_id != message_id or old.seq > self.seq:
            raise MessageNotFound(message_id)
        return old

    def delete_message(
        self,
        message_id: str,
        deleted_by: str,
        *,
        by_admin: bool = False,
        old: MessageFacts | None = None,
    ) -> None:
        """The sender (still a participant) or an admin deletes a message; deleting a deleted
        message records nothing."""
        self._require_exists()
        if not by_admin:
            self._require_participant(deleted_by)
        facts = self.facts(message_id, old)
        if not by_admin and facts.sender_id != deleted_by:
            raise NotAllowed("only the sender or an admin may delete a message")
        if facts.deleted:
            return
        self.record(
            MessageDeleted(
                conversation_id=self.id,
                message_id=message_id,
                seq=facts.seq,
                deleted_by=deleted_by,
                sender_id=facts.sender_id,
                participant_ids=sorted(self.read_pos),
                last_seq=self.seq,
                unread_by=sorted(
                    u
                    for u, pos in self.read_pos.items()
                    if u != facts.sender_id and pos < facts.seq and self.unread[u] > 0
                ),
                mention_unread_by=sorted(
                    u
                    for u in facts.mentions
                    if self.read_pos.get(u, facts.seq) < facts.seq
                    and self.mention_unread.get(u, 0) > 0
                ),
                sent_at=facts.sent_at,
            )
        )

    def mark_read(
        self, user_id: str, message_id: str | None = None, old: MessageFacts | None = None
    ) -> int:
        """Read up to a message (default: the latest). Read positions only move forward: a
        mark at or below the current one records nothing. Returns the reader's position."""
        self._require_participant(user_id)
        up_to = self.seq if message_id is None else self.facts(message_id, old).seq
        if up_to <= self.read_pos[user_id]:
            return self.read_pos[user_id]
        self.record(
            MessagesRead(
                conversation_id=self.id,
                user_id=user_id,
                up_to_seq=up_to,
                unread_after=self.unread_after(user_id, up_to),
                mentions_after=self.unread_after(user_id, up_to, mentions=True),
            )
        )
        return up_to

    # -- state ----------------------------------------------------------------------------

    def when(self, event: Event) -> None:
        match event:
            case ConversationCreated():
                self.exists = True
                self.kind = event.kind
                self.title = event.title
                self.created_by = event.created_by
                for user_id in event.participant_ids:
                    self.read_pos[user_id] = 0
                    self.unread[user_id] = 0
                    self.mention_unread[user_id] = 0
                    self.joined[user_id] = self.next_version + 1  # this event's version
            case ParticipantAdded(user_id=user_id):
                # a newcomer starts with everything before them read
                self.read_pos[user_id] = self.seq
                self.unread[user_id] = 0
                self.mention_unread[user_id] = 0
                self.joined[user_id] = self.next_version + 1
            case ParticipantRemoved(user_id=user_id):
                self.read_pos.pop(user_id, None)
                self.unread.pop(user_id, None)
                self.mention_unread.pop(user_id, None)
                self.joined.pop(user_id, None)
            case MessageSent():
                self.seq = event.seq
                mentions = tuple(event.mentions)
                self.recent.append(
                    Recent(event.seq, event.message_id, event.sender_id, False, mentions)
                )
                for user_id in self.unread:
                    if user_id != event.sender_id:
                        self.unread[user_id] += 1
                for user_id in mentions:
                    if user_id in self.mention_unread:
                        self.mention_unread[user_id] += 1
            case MessageDeleted():
                entry = self.recent_message(event.message_id)
                if entry is not None:
                    entry.deleted = True
                sender = event.sender_id if event.sender_id is not None else ""
                for user_id, pos in self.read_pos.items():
                    if user_id != sender and pos < event.seq and self.unread[user_id] > 0:
                        self.unread[user_id] -= 1
                for user_id in event.mention_unread_by:
                    if self.mention_unread.get(user_id, 0) > 0:
                        self.mention_unread[user_id] -= 1
            case MessagesRead():
                if event.user_id in self.read_pos:
                    self.read_pos[event.user_id] = event.up_to_seq
                    self.unread[event.user_id] = event.unread_after
                    self.mention_unread[event.user_id] = event.mentions_after

    def snapshot(self) -> Mapping[str, Any]:
        return {
            "exists": self.exists,
            "kind": self.kind,
            "title": self.title,
            "created_by": self.created_by,
            "seq": self.seq,
            "participants": [
                [u, self.read_pos[u], self.unread[u], self.mention_unread[u], self.joined[u]]
                for u in self.read_pos
            ],
            "recent": [
                [m.seq, m.message_id, m.sender_id, m.deleted, list(m.mentions)] for m in self.recent
            ],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.exists = bool(state["exists"])
        self.kind = state["kind"]
        self.title = state["title"]
        self.created_by = str(state["created_by"])
        self.seq = int(state["seq"])
        participants = state["participants"]
        self.read_pos = {str(u): int(pos) for u, pos, _, _, _ in participants}
        self.unread = {str(u): int(n) for u, _, n, _, _ in participants}
        self.mention_unread = {str(u): int(n) for u, _, _, n, _ in participants}
        self.joined = {str(u): int(v) for u, _, _, _, v in participants}
        self.recent = deque(
            (
                Recent(int(q), str(m), str(u), bool(d), tuple(n))
                for q, m, u, d, n in state["recent"]
            ),
            maxlen=WINDOW,
        )


EVENTS: tuple[type[Event], ...] = (
    ConversationCreated,
    ParticipantAdded,
    ParticipantRemoved,
    MessageSent,
    MessageDeleted,
    MessagesRead,
    MessageEdited,
    ReactionAdded,
    ReactionRemoved,
    MessageReported,
    ReportResolved,
)
