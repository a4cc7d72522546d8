"""Command handlers: plain async functions, one per command, in one routing table.

A handler loads the conversation, asks it to decide, and saves the new events with their
outbox rows in one transaction (the repository does both). No HTTP here.

Concurrency: every event of a conversation goes to its one stream, so two commands on one
conversation at once conflict on the stream version. Within one process, commands on the same
conversation queue (the repository's `serialize`: no wasted round trip); across processes the
loser of a race gets ConcurrencyError and, since these commands commute (appending a message,
a read mark or a membership change decides again on the fresh state), is re-run on a fresh
load (`retries`, with a jittered pause: Repository.execute).

Messages older than the aggregate's window are looked up by id: a MessageSent event's id IS
the message id and a MessageDeleted event's id is derived from it (see `ChatCodec`), so the
lookup is one probe of the events table's unique event-id index, whatever the length
(`EventStore.events_by_id`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from parley_commandkit import CommandBus, Context
from parley_eventstore.aggregate import Repository
from parley_eventstore.codec import EventCodec
from parley_eventstore.domain import Event
from parley_eventstore.records import AppendResult, DuplicateEvent, NewEvent

from parley_chat.commands import (
    AddParticipant,
    AddReaction,
    CreateConversation,
    DeleteMessage,
    EditMessage,
    MarkMessagesAsRead,
    RemoveParticipant,
    RemoveReaction,
    ReportMessage,
    ResolveReport,
    SendMessage,
)
from parley_chat.domain import (
    Attachment,
    Conversation,
    ConversationConflict,
    InvalidCommand,
    MessageFacts,
    MessageNotFound,
    NotAllowed,
    ReactionState,
    ReportFacts,
    ReportNotFound,
    TooManyMessages,
    clean_emoji,
    deletion_event_id,
    direct_conversation_id,
    is_direct,
    reaction_event_id,
    report_id_of,
    resolution_event_id,
)

REACTION_ROUNDS_PER_PROBE = 8  # add/remove rounds looked up per query (16 ids)


def event_id_of(event_type: str, data: Mapping[str, Any]) -> uuid.UUID | None:
    """The derived id of the events found by id (None: a random id). MessageSent's id is the
    message id; MessageDeleted's, a reaction's, a report's and its resolution's are derived
    from their business keys (one deletion per message, one report per person per message,
    one resolution per report: the unique event-id index checks each)."""
    match event_type:
        case "MessageSent":
            return uuid.UUID(str(data["message_id"]))
        case "MessageDeleted":
            return deletion_event_id(str(data["message_id"]))
        case "ReactionAdded" | "ReactionRemoved":
            kind = "add" if event_type == "ReactionAdded" else "remove"
            keys = (str(data["message_id"]), str(data["user_id"]), str(data["emoji"]))
            return reaction_event_id(kind, *keys, int(data["round"]))
        case "MessageReported":
            return uuid.UUID(str(data["report_id"]))
        case "ReportResolved":
            return resolution_event_id(str(data["report_id"]))
    return None


class ChatCodec(EventCodec):
    """Event ids that make messages, reactions and reports findable (see event_id_of)."""

    def encode(self, event: Event) -> NewEvent:
        encoded = super().encode(event)
        event_id = event_id_of(encoded.event_type, encoded.data)
        if event_id is None:
            return encoded
        return NewEvent(encoded.event_type, encoded.data, encoded.schema_version, event_id)


class BlockList(Protocol):
    """Who blocks whom, as the chat context learnt it from the users context's events."""

    async def blockers_of(self, user_id: str) -> frozenset[str]: ...


class AttachmentClaims(Protocol):
    """Uploaded files, claimed by the message that sends them (see attachments.py)."""

    async def claim(
        self,
        conversation_id: str,
        sender_id: str,
        attachment_ids: Sequence[str],
        message_id: str,
    ) -> list[dict[str, Any]]: ...

    async def message_deleting(self, message_id: str) -> None: ...

    async def message_deleted(self, message_id: str) -> int: ...


async def deleting_files(
    chat: Chat, message_id: str, append: Callable[[], Awaitable[AppendResult]]
) -> AppendResult:
    """Run `append` (a command that may delete `message_id`) so that the message's
    attachments go with it: marked before, deleted after (attachments.py)."""
    if chat.attachments is None:
        return await append()
    await chat.attachments.message_deleting(message_id)
    outcome = await append()
    await chat.attachments.message_deleted(message_id)
    return outcome


class SendLimit(Protocol):
    """A person's sending rate, shared by every replica: None when one more message is
    allowed now, else the seconds until it is."""

    async def take(self, user_id: str) -> float | None: ...


class NoBlocks:
    async def blockers_of(self, user_id: str) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True)
class MessageAccepted:
    """SendMessage's result."""

    id: str
    conversation_id: str
    version: int
    seq: int


@dataclass(frozen=True)
class ReadAccepted:
    """MarkMessagesAsRead's result: the reader's position now."""

    id: str
    version: int
    up_to_seq: int


@dataclass
class Chat:
    """The handlers' dependencies: the conversations (queued per conversation in this process,
    a race with another replica retried `retries` times on a fresh load)."""

    conversations: Repository[Conversation]
    retries: int = 20
    blocks: BlockList = field(default_factory=NoBlocks)
    attachments: AttachmentClaims | None = None
    send_limit: SendLimit | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    direct_secret: str = ""  # keys direct conversations' ids (domain.direct_conversation_id)

    async def execute(
        self,
        conversation_id: str,
        command: Callable[[Conversation], Any],
        ctx: Context,
        result: Callable[[Conversation], dict[str, Any]],
    ) -> AppendResult:
        return await self.conversations.execute(
            conversation_id,
            command,
            metadata=ctx.metadata,
            idempotency_key=ctx.idempotency_key,
            result=result,
            retries=self.retries,
        )

    async def message_facts(self, conversation_id: str, message_id: str) -> MessageFacts | None:
        """A message's facts from its events (for messages older than the window)."""
        try:
            sent_id = uuid.UUID(message_id)
        except ValueError:
            return None
        events = await self.conversations.store.events_by_id(
            conversation_id, [sent_id, deletion_event_id(message_id)]
        )
        sent = next((e for e in events if e.event_type == "MessageSent"), None)
        if sent is None:
            return None
        deleted = any(e.event_type == "MessageDeleted" for e in events)
        return MessageFacts(
            message_id,
            int(sent.data["seq"]),
            str(sent.data["sender_id"]),
            deleted,
            tuple(str(m) for m in sent.data.get("mentions") or ()),
            sent.recorded_at,
        )

    async def reaction_state(
        self, conversation_id: str, message_id: str, user_id: str, emoji: str
    ) -> ReactionState:
        """Whether `user_id` has `emoji` on the message now: the n-th add exists and the n-th
        removal does not. Read from the reaction events' derived ids, a few rounds a query."""
        start = 0
        while True:
            rounds = range(start, start + REACTION_ROUNDS_PER_PROBE)
            ids = {
                reaction_event_id(kind, message_id, user_id, emoji, r): (kind, r)
                for r in rounds
                for kind in ("add", "remove")
            }
            found = {
                ids[e.event_id]
                for e in await self.conversations.store.events_by_id(conversation_id, list(ids))
                if e.event_id in ids
            }
            for r in rounds:
                if ("add", r) not in found:
                    return ReactionState(reacted=False, round=r)
                if ("remove", r) not in found:
                    return ReactionState(reacted=True, round=r)
            start += REACTION_ROUNDS_PER_PROBE

    async def report_facts(self, report_id: str) -> tuple[str, ReportFacts]:
        """A report's conversation and facts, found by the report's (event) id."""
        try:
            event_id = uuid.UUID(report_id)
        except ValueError:
            raise ReportNotFound(report_id) from None
        reported = await self.conversations.store.event_by_id(event_id)
        if reported is None or reported.event_type != "MessageReported":
            raise ReportNotFound(report_id)
        resolved = await self.conversations.store.event_by_id(resolution_event_id(report_id))
        data = reported.data
        facts = ReportFacts(
            report_id, str(data["message_id"]), str(data["sender_id"]), resolved is not None
        )
        return reported.stream_id, facts


BUS: CommandBus[Chat] = CommandBus("chat")


def _version(conversation: Conversation) -> dict[str, Any]:
    return {"id": conversation.id, "version": conversation.next_version}


@BUS.register(CreateConversation)
async def create_conversation(
    chat: Chat, command: CreateConversation, ctx: Context
) -> AppendResult:
    created = [False]

    blocked_by = await chat.blocks.blockers_of(command.created_by)
    people = list(dict.fromkeys([command.created_by, *command.participant_ids]))
    if chat.direct_secret and is_direct(people, command.title):
        # a direct conversation started before ids were keyed keeps its legacy id
        legacy = await chat.conversations.load(direct_conversation_id(people[0], people[1]))
        if legacy.exists:
            if people[1] in blocked_by:
                raise NotAllowed("this person has blocked you")
            return AppendResult(legacy.id, legacy.version, {**_version(legacy), "existing": True})

    def decide(conversation: Conversation) -> None:
        created[0] = conversation.create(
            command.created_by,
            command.participant_ids,
            command.title,
            blocked_by=blocked_by,
            secret=chat.direct_secret,
        )

    outcome = await chat.execute(command.conversation_id, decide, ctx, _version)
    if created[0] or outcome.already_handled:
        return outcome
    # an existing direct conversation: nothing appended, answered as "already there"
    return AppendResult(outcome.stream_id, outcome.version, {**outcome.result, "existing": True})


@BUS.register(SendMessage)
async def send_message(chat: Chat, command: SendMessage, ctx: Context) -> AppendResult:
    def result(conversation: Conversation) -> dict[str, Any]:
        return {
            "id": command.message_id,
            "conversation_id": conversation.id,
            "version": conversation.next_version,
            "seq": conversation.seq,
        }

    if chat.send_limit is not None:
        wait = await chat.send_limit.take(command.sender_id)
        if wait is not None:
            raise TooManyMessages(wait)
    parent = None
    if command.reply_to is not None:
        parent = await chat.message_facts(command.conversation_id, command.reply_to)
        if parent is None:  # not a message of this conversation
            raise MessageNotFound(command.reply_to)
    blocked_by = await chat.blocks.blockers_of(command.sender_id)
    attachments: list[Attachment] = []
    if command.attachment_ids:
        if chat.attachments is None:
            raise InvalidCommand("attachments are not enabled here")
        claimed = await chat.attachments.claim(
            command.conversation_id, command.sender_id, command.attachment_ids, command.message_id
        )
        attachments = [
            Attachment(
                str(a["attachment_id"]), str(a["filename"]), str(a["content_type"]), int(a["size"])
            )
            for a in claimed
        ]

    def decide(conversation: Conversation) -> None:
        conversation.send(
            command.message_id,
            command.sender_id,
            command.content,
            command.client_message_id,
            reply_to=parent,
            mentions=command.mentions,
            attachments=attachments,
            blocked_by=blocked_by,
        )

    return await chat.execute(command.conversation_id, decide, ctx, result)


@BUS.register(DeleteMessage)
async def delete_message(chat: Chat, command: DeleteMessage, ctx: Context) -> AppendResult:
    return await deleting_files(chat, command.message_id, lambda: _delete(chat, command, ctx))


async def _delete(chat: Chat, command: DeleteMessage, ctx: Context) -> AppendResult:
    for attempt in range(2):
        old = await chat.message_facts(command.conversation_id, command.message_id)

        def decide(conversation: Conversation, old: MessageFacts | None = old) -> None:
            conversation.delete_message(
                command.message_id, command.deleted_by, by_admin=command.by_admin, old=old
            )

        try:
            return await chat.execute(command.conversation_id, decide, ctx, _version)
        except DuplicateEvent:
            # the derived deletion event id exists: another request deleted this old message
            # after our lookup; look again (now it is deleted, and nothing more is recorded)
            if attempt:
                raise
    raise AssertionError("unreachable")


@BUS.register(EditMessage)
async def edit_message(chat: Chat, command: EditMessage, ctx: Context) -> AppendResult:
    old = await chat.message_facts(command.conversation_id, command.message_id)
    if old is None:
        raise MessageNotFound(command.message_id)
    now = chat.clock()
    return await chat.execute(
        command.conversation_id,
        lambda c: c.edit_message(command.message_id, command.editor_id, command.content, now, old),
        ctx,
        _version,
    )


async def _react(
    chat: Chat, command: AddReaction | RemoveReaction, ctx: Context, *, add: bool
) -> AppendResult:
    emoji = clean_emoji(command.emoji)
    for attempt in range(3):
        old = await chat.message_facts(command.conversation_id, command.message_id)
        state = await chat.reaction_state(
            command.conversation_id, command.message_id, command.user_id, emoji
        )

        def decide(
            conversation: Conversation, old: MessageFacts | None = old, state: ReactionState = state
        ) -> None:
            conversation.react(command.message_id, command.user_id, emoji, state, old, add=add)

        try:
            return await chat.execute(command.conversation_id, decide, ctx, _version)
        except DuplicateEvent:
            # the same person's same reaction raced us (another device, a retry): the round
            # is taken; look again (now it is there, and nothing more is recorded)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@BUS.register(AddReaction)
async def add_reaction(chat: Chat, command: AddReaction, ctx: Context) -> AppendResult:
    return await _react(chat, command, ctx, add=True)


@BUS.register(RemoveReaction)
async def remove_reaction(chat: Chat, command: RemoveReaction, ctx: Context) -> AppendResult:
    return await _react(chat, command, ctx, add=False)


@BUS.register(ReportMessage)
async def report_message(chat: Chat, command: ReportMessage, ctx: Context) -> AppendResult:
    old = await chat.message_facts(command.conversation_id, command.message_id)
    report_id = report_id_of(command.message_id, command.reporter_id)

    def result(conversation: Conversation) -> dict[str, Any]:
        return {**_version(conversation), "report_id": report_id}

    try:
        return await chat.execute(
            command.conversation_id,
            lambda c: c.report(command.message_id, command.reporter_id, command.reason, old),
            ctx,
            result,
        )
    except DuplicateEvent:
        # this person reported this message before: the report stands, answered again
        conversation = await chat.conversations.load(command.conversation_id)
        return AppendResult(conversation.id, conversation.version, result(conversation))


@BUS.register(ResolveReport)
async def resolve_report(chat: Chat, command: ResolveReport, ctx: Context) -> AppendResult:
    conversation_id, report = await chat.report_facts(command.report_id)
    message = await chat.message_facts(conversation_id, report.message_id)

    def result(conversation: Conversation) -> dict[str, Any]:
        return {**_version(conversation), "report_id": command.report_id}

    async def resolve() -> AppendResult:
        try:
            return await chat.execute(
                conversation_id,
                lambda c: c.resolve_report(report, command.admin_id, command.action, message),
                ctx,
                result,
            )
        except DuplicateEvent:
            raise ConversationConflict("the report is resolved already") from None

    if command.action != "delete_message":
        return await resolve()
    return await deleting_files(chat, report.message_id, resolve)


@BUS.register(AddParticipant)
async def add_participant(chat: Chat, command: AddParticipant, ctx: Context) -> AppendResult:
    return await chat.execute(
        command.conversation_id,
        lambda c: c.add_participant(command.user_id, command.added_by, by_admin=command.by_admin),
        ctx,
        _version,
    )


@BUS.register(RemoveParticipant)
async def remove_participant(chat: Chat, command: RemoveParticipant, ctx: Context) -> AppendResult:
    return await chat.execute(
        command.conversation_id,
        lambda c: c.remove_participant(
            command.user_id, command.removed_by, by_admin=command.by_admin
        ),
        ctx,
        _version,
    )


@BUS.register(MarkMessagesAsRead)
async def mark_read(chat: Chat, command: MarkMessagesAsRead, ctx: Context) -> AppendResult:
    old = None
    if command.up_to_message_id is not None:
        old = await chat.message_facts(command.conversation_id, command.up_to_message_id)
    position = [0]

    def decide(conversation: Conversation) -> None:
        position[0] = conversation.mark_read(command.user_id, command.up_to_message_id, old)

    def result(conversation: Conversation) -> dict[str, Any]:
        return {**_version(conversation), "up_to_seq": position[0]}

    return await chat.execute(command.conversation_id, decide, ctx, result)


# run one command, in its own span (parley_commandkit.CommandBus)
handle = BUS.append
