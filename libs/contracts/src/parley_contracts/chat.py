"""Public events of the chat context (topic `chat.events`, key = conversation id).

Every event of a conversation, its messages and read marks included, is in the conversation's
one stream: per-conversation order on the topic and one writer per read-model document keyed
by conversation. `seq` numbers a conversation's messages 1, 2, 3... without gaps (a deleted
message keeps its number). `MessagesRead.unread_after` is computed by the write side so a read
model can set a participant's unread counter exactly, without a query (see docs/decisions.md,
"Chat (issue 5: command side)", for how and its one approximation).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from parley_contracts.base import REDACTED_TEXT, Event, personal

ConversationKind = Literal["direct", "group"]
# the key scope of what belongs to a conversation rather than to one person (its title)
CONVERSATION_KEYS = "conversation"


class ChatEvent(Event):
    context: ClassVar[str] = "chat"
    abstract: ClassVar[bool] = True


class ConversationCreated(ChatEvent):
    """A conversation started. A `direct` conversation has exactly two participants and no
    title, and its id is derived from the pair (the same two people never get two)."""

    conversation_id: str
    kind: ConversationKind
    # sealed with the conversation's own key (`conversation:<id>`), not its creator's:
    # forgetting the creator leaves it readable for the others (docs/decisions.md, 19.5)
    title: str | None = personal(
        "conversation_id", scope=CONVERSATION_KEYS, default=None, max_length=200
    )
    participant_ids: list[str]
    created_by: str


class ParticipantAdded(ChatEvent):
    """`user_id` joined the conversation (they see messages sent from now on as unread)."""

    conversation_id: str
    user_id: str
    added_by: str
    # the conversation as the newcomer finds it, so a read model can show it to them
    # without state of its own: everyone in it after the change, its title and kind
    participant_ids: list[str] = Field(default_factory=list)
    title: str | None = personal(
        "conversation_id", scope=CONVERSATION_KEYS, default=None, max_length=200
    )
    kind: Literal["direct", "group"] | None = None


class ParticipantRemoved(ChatEvent):
    """`user_id` left or was removed: they can no longer read or send."""

    conversation_id: str
    user_id: str
    removed_by: str
    participant_ids: list[str] = Field(default_factory=list)  # everyone left after the change


class MessageAttachment(BaseModel):
    """A file sent with a message; its name is in MessageSent.attachment_names."""

    attachment_id: str
    content_type: str = Field(max_length=200)
    size: int = Field(ge=0)


class MessageSent(ChatEvent):
    """A message, number `seq` of its conversation (1, 2, 3... without gaps)."""

    conversation_id: str
    message_id: str
    seq: int = Field(ge=1)
    sender_id: str
    content: str = personal("sender_id", REDACTED_TEXT, min_length=1, max_length=4000)
    # the sender's own correlation id (a client may derive it from anything): personal
    client_message_id: str | None = personal("sender_id", default=None, max_length=200)
    # the participants other than the sender when it was sent: consumers that act per
    # recipient (unread counters, notifications) need no state of their own to know them
    recipient_ids: list[str] = Field(default_factory=list)
    # a reply: the parent message (same conversation) and its seq, so a read model can count
    # the parent's replies and quote it without state of its own
    reply_to: str | None = None
    reply_to_seq: int | None = Field(default=None, ge=1)
    # participants the sender mentioned (a subset of the participants, sender excluded)
    mentions: list[str] = Field(default_factory=list)
    # files sent with the message (uploaded beforehand: POST .../attachments)
    attachments: list[MessageAttachment] = Field(default_factory=list, max_length=10)
    # the attachments' file names, a JSON array in the order of `attachments`: file names are
    # personal data, and an encrypted field is one string (see docs/decisions.md)
    attachment_names: str | None = personal("sender_id", "[]", default=None, max_length=20000)


class MessageDeleted(ChatEvent):
    """Message `seq` was deleted: read models show it as deleted and drop its text."""

    conversation_id: str
    message_id: str
    seq: int = Field(ge=1)
    deleted_by: str
    # who sent the deleted message: lets a read model take it off the other participants'
    # unread counters without looking the message up (None only if unknown)
    sender_id: str | None = None
    participant_ids: list[str] = Field(default_factory=list)  # the participants now
    last_seq: int | None = Field(default=None, ge=1)  # the conversation's newest message now
    # participants (not the sender) whose read position is below `seq`: the message was
    # counted as unread for them, and no longer is
    unread_by: list[str] = Field(default_factory=list)
    # participants whose unread-mention counter counted the message, and no longer does
    mention_unread_by: list[str] = Field(default_factory=list)
    # when the message was sent (its MessageSent's time): a preview of the deleted last
    # message keeps it (None if unknown; events before this field have none)
    sent_at: datetime | None = None


class MessagesRead(ChatEvent):
    """`user_id` read the conversation up to message `up_to_seq` (0: none). `unread_after` is
    the number of messages from other participants with seq > up_to_seq (deleted ones not
    counted) at the time of the mark: the participant's unread counter, exactly."""

    conversation_id: str
    user_id: str
    up_to_seq: int = Field(ge=0)
    unread_after: int = Field(ge=0)
    # the reader's unread mentions after the mark (messages mentioning them, from others, not
    # deleted, with seq > up_to_seq), computed like unread_after
    mentions_after: int = Field(default=0, ge=0)


class MessageEdited(ChatEvent):
    """The sender changed message `seq`'s text (`content` is the new text). Earlier texts
    stay in the conversation's history. `last_seq` and `participant_ids` let a read model
    update the conversation lists' last-message preview without state of its own."""

    conversation_id: str
    message_id: str
    seq: int = Field(ge=1)
    sender_id: str
    content: str = personal("sender_id", REDACTED_TEXT, min_length=1, max_length=4000)
    participant_ids: list[str] = Field(default_factory=list)
    last_seq: int | None = Field(default=None, ge=1)
    # when the message was sent (its MessageSent's time): an edited last message's preview
    # keeps it (None if unknown; events before this field have none)
    sent_at: datetime | None = None


class ReactionAdded(ChatEvent):
    """`user_id` reacted to message `seq` with `emoji`. One person has each emoji at most
    once on a message: adding it again records nothing. `round` counts the earlier removals
    of the same (person, message, emoji), which makes every add and remove findable by id."""

    conversation_id: str
    message_id: str
    seq: int = Field(ge=1)
    user_id: str
    emoji: str = Field(min_length=1, max_length=64)
    round: int = Field(default=0, ge=0)


class ReactionRemoved(ChatEvent):
    """`user_id` took their `emoji` reaction off message `seq`."""

    conversation_id: str
    message_id: str
    seq: int = Field(ge=1)
    user_id: str
    emoji: str = Field(min_length=1, max_length=64)
    round: int = Field(default=0, ge=0)


class MessageReported(ChatEvent):
    """A participant reported message `seq` to the admins. `report_id` is derived from the
    message and the reporter: one report per person per message. `sender_id` is who wrote
    the reported message."""

    conversation_id: str
    report_id: str
    message_id: str
    seq: int = Field(ge=1)
    sender_id: str
    reporter_id: str
    reason: str = personal("reporter_id", REDACTED_TEXT, min_length=1, max_length=1000)


ReportAction = Literal["dismiss", "delete_message", "deactivate_user"]


class ReportResolved(ChatEvent):
    """An admin resolved a report. `delete_message`: the chat context deleted the message (a
    MessageDeleted follows in the same stream); `deactivate_user`: the users context
    deactivates `sender_id` on seeing this event."""

    conversation_id: str
    report_id: str
    message_id: str
    sender_id: str
    resolved_by: str
    action: ReportAction
