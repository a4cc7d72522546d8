"""HTTP entry point: validates bodies, turns them into commands, maps outcomes to responses.

Every command response carries `id`, the conversation's new `version` and an
`X-Consistency-Token` (context "chat", stream = the conversation id) a later GET can present
to read its own write. Every route needs a bearer token (401); a caller who is not a
participant gets 403, a conversation or message that does not exist 404.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Request
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
    MAX_ATTACHMENTS,
    MAX_CONTENT,
    MAX_EMOJI,
    MAX_MENTIONS,
    MAX_PARTICIPANTS,
    MAX_REASON,
    MAX_TITLE,
    ConversationConflict,
    ConversationNotFound,
    InvalidCommand,
    MessageNotFound,
    NotAllowed,
    ReportNotFound,
    TooManyMessages,
    deletion_event_id,
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
    reply_to: uuid.UUID | None = Field(default=None, description="a message of this conversation")
    mentions: list[uuid.UUID] = Field(
        default_factory=list, max_length=MAX_MENTIONS, description="participants' user ids"
    )
    attachment_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="uploads of the caller for this conversation (POST .../attachments)",
    )


class EditMessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=2 * MAX_CONTENT)


class ReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=MAX_REASON)


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["dismiss", "delete_message", "deactivate_user"]


class ReportView(BaseModel):
    report_id: str
    conversation_id: str
    version: int = Field(description="the conversation's version")


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
        ReportNotFound: not_found("no report {}"),
        TooManyMessages: lambda e: Problem(
            429,
            "Too Many Requests",
            str(e),
            headers={"Retry-After": str(max(1, math.ceil(getattr(e, "retry_after", 1))))},
        ),
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
    secret = chat(call.request).direct_secret
    conversation_id = new_conversation_id(me, others, body.title, secret)
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
    command = SendMessage(
        cid,
        me,
        body.content,
        body.client_message_id,
        reply_to=str(body.reply_to) if body.reply_to else None,
        mentions=tuple(str(m) for m in body.mentions),
        attachment_ids=tuple(str(a) for a in body.attachment_ids),
    )
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


@router.patch("/{conversation_id}/messages/{message_id}", response_model=CommandAccepted)
async def edit_message(
    conversation_id: uuid.UUID, message_id: uuid.UUID, body: EditMessageBody, call: CommandCall
) -> Any:
    """The sender (while a participant) changes the text, within 48 hours of sending it;
    deleted messages cannot be edited (409). Earlier texts: GET .../history."""
    me, cid = call.principal.user_id, str(conversation_id)
    command = EditMessage(cid, str(message_id), me, body.content)
    return await call.execute(command, "edit", cid, str(message_id))


Emoji = Annotated[str, Path(min_length=1, max_length=MAX_EMOJI, description="the emoji itself")]


@router.put(
    "/{conversation_id}/messages/{message_id}/reactions/{emoji}", response_model=CommandAccepted
)
async def add_reaction(
    conversation_id: uuid.UUID, message_id: uuid.UUID, emoji: Emoji, call: CommandCall
) -> Any:
    """Participants react; reacting again with the same emoji is a no-op."""
    me, cid = call.principal.user_id, str(conversation_id)
    command = AddReaction(cid, str(message_id), me, emoji)
    return await call.execute(command, "react", cid, f"{message_id}:{emoji}")


@router.delete(
    "/{conversation_id}/messages/{message_id}/reactions/{emoji}", response_model=CommandAccepted
)
async def remove_reaction(
    conversation_id: uuid.UUID, message_id: uuid.UUID, emoji: Emoji, call: CommandCall
) -> Any:
    """Take one's reaction off; removing one that is not there is a no-op."""
    me, cid = call.principal.user_id, str(conversation_id)
    command = RemoveReaction(cid, str(message_id), me, emoji)
    return await call.execute(command, "unreact", cid, f"{message_id}:{emoji}")


@router.post(
    "/{conversation_id}/messages/{message_id}/report", status_code=201, response_model=ReportView
)
async def report_message(
    conversation_id: uuid.UUID, message_id: uuid.UUID, body: ReportBody, call: CommandCall
) -> Any:
    """A participant reports someone else's message to the admins. One report per person per
    message: reporting it again answers the same report."""
    me, cid = call.principal.user_id, str(conversation_id)
    command = ReportMessage(cid, str(message_id), me, body.reason)
    outcome = await call.run(command, "report", cid, str(message_id))
    accepted = call.accept(outcome, cid)
    return ReportView(
        report_id=str(outcome.result["report_id"]), conversation_id=cid, version=accepted.version
    )


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


# events a member's history never shows: who reported whom is the admins' business
ADMIN_ONLY_EVENTS = frozenset({"MessageReported", "ReportResolved"})
TEXT_EVENTS = frozenset({"MessageSent", "MessageEdited"})


@dataclass
class MemberView:
    """A participant's view of the conversation's history: from the version they (last)
    joined at, without reports, and with the text of deleted messages gone (as the read
    models show them). Admins see the history as recorded."""

    chat: Chat
    conversation_id: str
    from_version: int

    async def redact(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        shown = [item for item in items if item["type"] not in ADMIN_ONLY_EVENTS]
        texts = [item for item in shown if item["type"] in TEXT_EVENTS]
        if not texts:
            return shown
        ids = {deletion_event_id(str(item["data"]["message_id"])) for item in texts}
        found = await self.chat.conversations.store.events_by_id(self.conversation_id, list(ids))
        deleted = {str(event.data["message_id"]) for event in found}
        for item in texts:
            if str(item["data"]["message_id"]) in deleted:
                data = item["data"] = dict(item["data"])
                data.update(content=None, attachment_names=None, deleted=True)
        return shown


async def require_member(
    request: Request, conversation_id: str, principal: Principal
) -> MemberView | None:
    """History is for the conversation's current participants (from the moment they
    joined) and admins; for anyone else the conversation does not exist (404, like its read
    routes)."""
    if principal.is_admin:
        return None
    conversation = await chat(request).conversations.load(conversation_id)
    joined = conversation.joined_at(principal.user_id)
    if joined is None:
        raise Problem(404, "Not Found", f"no conversation {conversation_id}")
    return MemberView(chat(request), conversation_id, joined)


history_routes(
    router,
    "conversation",
    lambda request: chat(request).conversations,
    require_member,
    param="conversation_id",
    empty_is_missing=False,
)


reports = APIRouter(prefix="/v1/reports", tags=["reports"])


@reports.post("/{report_id}/resolve", response_model=ReportView)
async def resolve_report(report_id: uuid.UUID, body: ResolveBody, call: CommandCall) -> Any:
    """Admins only. `delete_message` deletes the reported message; `deactivate_user`
    deactivates its sender (the users context does it on seeing ReportResolved); `dismiss`
    does neither. A report is resolved once (409 after)."""
    if not call.principal.is_admin:
        raise Problem(403, "Forbidden", "only admins resolve reports")
    command = ResolveReport(str(report_id), call.principal.user_id, body.action)
    outcome = await call.run(command, "resolve", str(report_id))
    accepted = call.accept(outcome, outcome.stream_id)
    return ReportView(
        report_id=str(report_id), conversation_id=outcome.stream_id, version=accepted.version
    )


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(reports)
