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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parley_commandkit import CommandBus, Context
from parley_eventstore.aggregate import Repository
from parley_eventstore.codec import EventCodec
from parley_eventstore.domain import Event
from parley_eventstore.records import AppendResult, DuplicateEvent, NewEvent

from parley_chat.commands import (
    AddParticipant,
    CreateConversation,
    DeleteMessage,
    MarkMessagesAsRead,
    RemoveParticipant,
    SendMessage,
)
from parley_chat.domain import (
    Conversation,
    MessageFacts,
    deletion_event_id,
)


class ChatCodec(EventCodec):
    """Event ids that make messages findable: MessageSent's id is the message id, and
    MessageDeleted's is derived from it (one deletion per message, checked by the index)."""

    def encode(self, event: Event) -> NewEvent:
        encoded = super().encode(event)
        message_id = encoded.data.get("message_id")
        if message_id is None:
            return encoded
        if encoded.event_type == "MessageSent":
            event_id = uuid.UUID(str(message_id))
        else:
            event_id = deletion_event_id(str(message_id))
        return NewEvent(encoded.event_type, encoded.data, encoded.schema_version, event_id)


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
        return MessageFacts(message_id, int(sent.data["seq"]), str(sent.data["sender_id"]), deleted)


BUS: CommandBus[Chat] = CommandBus("chat")


def _version(conversation: Conversation) -> dict[str, Any]:
    return {"id": conversation.id, "version": conversation.next_version}


@BUS.register(CreateConversation)
async def create_conversation(
    chat: Chat, command: CreateConversation, ctx: Context
) -> AppendResult:
    created = [False]

    def decide(conversation: Conversation) -> None:
        created[0] = conversation.create(command.created_by, command.participant_ids, command.title)

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

    return await chat.execute(
        command.conversation_id,
        lambda c: c.send(
            command.message_id, command.sender_id, command.content, command.client_message_id
        ),
        ctx,
        result,
    )


@BUS.register(DeleteMessage)
async def delete_message(chat: Chat, command: DeleteMessage, ctx: Context) -> AppendResult:
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
