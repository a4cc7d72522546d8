"""HTTP entry point: validates bodies, turns them into commands, maps outcomes to responses.

Every command response carries `id`, the conversation's new `version` and an
`X-Consistency-Token` (context "chat", stream = the conversation id) a later GET can present
to read its own write. Every route needs a bearer token (401); a caller who is not a
participant gets 403, a conversation or message that does not exist 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from parley_authn import Principal
from parley_commandkit import (
    SHARED,
    CommandAccepted,
    CommandCall,
    conflict,
    forbidden,
    invalid,
    not_found,
    typed,
)
from parley_commandkit.history import history_routes
from parley_http.problems import Problem
from pydantic import BaseModel, ConfigDict, Field

from parley_chat.commands import (
    AddParticipant,
    CreateConversation,
    DeleteMessage,
    MarkMessagesAsRead,
    RemoveParticipant,
    SendMessage,
)
from parley_chat.domain import (
    MAX_CONTENT,
    MAX_PARTICIPANTS,
    MAX_TITLE,
    ConversationConflict,
    ConversationNotFound,
    InvalidCommand,
    MessageNotFound,
    NotAllowed,
    new_conversation_id,
)
from parley_chat.handlers import Chat, MessageAccepted, ReadAccepted

CONTEXT = "chat"


class CreateConversationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participant_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_PARTICIPANTS)
    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE)


class SendMessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # the limit (1..4000) applies after trimming; the raw text may carry some more whitespace
    content: str = Field(min_length=1, max_length=2 * MAX_CONTENT)
    client_message_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"
    )


class ParticipantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID


class ReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to_message_id: uuid.UUID | None = None


class MessageSentView(BaseModel):
    id: str = Field(description="the message id")
    conversation_id: str
    version: int = Field(description="the conversation's version")
    seq: int = Field(description="the message's number in the conversation (1, 2, 3...)")


class ReadView(BaseModel):
    id: str
    version: int
    up_to_seq: int = Field(description="the caller's read position now")


ERRORS = SHARED.extend(
    {
        ConversationNotFound: not_found("no conversation {}"),
        MessageNotFound: not_found("no message {} in this conversation"),
        NotAllowed: forbidden(),
        InvalidCommand: invalid(),
        ConversationConflict: conflict(),
    }
)


def chat(request: Request) -> Chat:
    service: Chat = request.app.state.chat
    return service


router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.post(
    "",
    status_code=201,
    response_model=CommandAccepted,
    responses={200: {"model": CommandAccepted, "description": "the direct conversation exists"}},
)
async def create_conversation(body: CreateConversationBody, call: CommandCall) -> Any:
    """Start a conversation; the caller is a participant. Two distinct people and no title
    make a direct conversation, whose id is derived from the pair: starting it again (from
    either side) answers 200 with the existing id."""
    me = call.principal.user_id
    others = tuple(str(p) for p in body.participant_ids)
    conversation_id = new_conversation_id(me, others, body.title)
    command = CreateConversation(conversation_id, me, others, body.title)
    outcome = await call.run(command, "create")
    if outcome.result.get("existing"):
        call.response.status_code = 200
    call.response.headers["Location"] = f"/v1/conversations/{outcome.stream_id}"
    return call.accept(outcome)


@router.post("/{conversation_id}/messages", status_code=201, response_model=MessageSentView)
async def send_message(conversation_id: uuid.UUID, body: SendMessageBody, call: CommandCall) -> Any:
    """Participants only. `client_message_id` (or an Idempotency-Key) makes a retry return the
    first message's id and append nothing."""
    me, cid = call.principal.user_id, str(conversation_id)
    command = SendMessage(cid, me, body.content, body.client_message_id)
    outcome = await call.run(command, "send", cid, key=body.client_message_id)
    call.accept(outcome, cid)
    sent = typed(outcome, MessageAccepted)
    return MessageSentView(id=sent.id, conversation_id=cid, version=sent.version, seq=sent.seq)


@router.delete("/{conversation_id}/messages/{message_id}", response_model=CommandAccepted)
async def delete_message(
    conversation_id: uuid.UUID, message_id: uuid.UUID, call: CommandCall
) -> Any:
    """The sender (while a participant) or an admin. Deleting a deleted message is a no-op."""
    me, cid = call.principal.user_id, str(conversation_id)
    command = DeleteMessage(cid, str(message_id), me, by_admin=call.principal.is_admin)
    return await call.execute(command, "delete", cid, str(message_id))


@router.post("/{conversation_id}/participants", response_model=CommandAccepted)
async def add_participant(
    conversation_id: uuid.UUID, body: ParticipantBody, call: CommandCall
) -> Any:
    """Any participant (or an admin) adds someone to a group conversation; adding a
    participant again is a no-op. Direct conversations keep their two people (409)."""
    me, cid = call.principal.user_id, str(conversation_id)
    command = AddParticipant(cid, str(body.user_id), me, by_admin=call.principal.is_admin)
    return await call.execute(command, "add", cid)


@router.delete("/{conversation_id}/participants/{user_id}", response_model=CommandAccepted)
async def remove_participant(
    conversation_id: uuid.UUID, user_id: uuid.UUID, call: CommandCall
) -> Any:
    """The participant themself (leaving), the conversation's creator (while a participant)
    or an admin. Removing someone who is not a participant is a no-op."""
    me, cid = call.principal.user_id, str(conversation_id)
    command = RemoveParticipant(cid, str(user_id), me, by_admin=call.principal.is_admin)
    return await call.execute(command, "remove", cid, str(user_id))


@router.post("/{conversation_id}/read", response_model=ReadView)
async def mark_read(
    conversation_id: uuid.UUID, call: CommandCall, body: ReadBody | None = None
) -> Any:
    """MarkMessagesAsRead: up to `up_to_message_id`, by default up to the latest message.
    Read positions only move forward (an older mark is a no-op)."""
    me, cid = call.principal.user_id, str(conversation_id)
    up_to = str(body.up_to_message_id) if body and body.up_to_message_id else None
    outcome = await call.run(MarkMessagesAsRead(cid, me, up_to), "read", cid)
    accepted = call.accept(outcome, cid)
    read = typed(outcome, ReadAccepted)
    return ReadView(id=cid, version=accepted.version, up_to_seq=read.up_to_seq)


# -- history (routed to this service by nginx: the event store is the command side's) -------


async def require_member(request: Request, conversation_id: str, principal: Principal) -> None:
    """History is for the conversation's current participants and admins; for anyone else
    the conversation does not exist (404, like its read routes)."""
    if principal.is_admin:
        return
    conversation = await chat(request).conversations.load(conversation_id)
    if not conversation.is_participant(principal.user_id):
        raise Problem(404, "Not Found", f"no conversation {conversation_id}")


history_routes(
    router,
    "conversation",
    lambda request: chat(request).conversations,
    require_member,
    param="conversation_id",
    empty_is_missing=False,
)


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
