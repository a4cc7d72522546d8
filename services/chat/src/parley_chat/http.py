"""HTTP entry point: validates bodies, turns them into commands, maps outcomes to responses.

Every command response carries `id`, the conversation's new `version` and an
`X-Consistency-Token` (context "chat", stream = the conversation id) a later GET can present
to read its own write. Every route needs a bearer token (401); a caller who is not a
participant gets 403, a conversation or message that does not exist 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from parley_authn import CurrentPrincipal, Principal
from parley_eventstore import history
from parley_eventstore.records import AppendResult, ConcurrencyError, Metadata
from parley_http.commands import CorrelationId, IdempotencyKey, hand_out_token
from parley_http.problems import Problem, try_again_soon
from parley_privacy.keys import KeyUnavailable, SubjectForgotten
from pydantic import BaseModel, ConfigDict, Field

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
from parley_chat.handlers import (
    AddParticipant,
    Chat,
    Context,
    CreateConversation,
    DeleteMessage,
    MarkMessagesAsRead,
    RemoveParticipant,
    SendMessage,
    handle,
)

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


class CommandAccepted(BaseModel):
    id: str
    version: int


class MessageAccepted(BaseModel):
    id: str = Field(description="the message id")
    conversation_id: str
    version: int = Field(description="the conversation's version")
    seq: int = Field(description="the message's number in the conversation (1, 2, 3...)")


class ReadAccepted(BaseModel):
    id: str
    version: int
    up_to_seq: int = Field(description="the caller's read position now")


def chat(request: Request) -> Chat:
    service: Chat = request.app.state.chat
    return service


def command_context(
    idempotency_key: str | None, correlation_id: str | None, principal: Principal
) -> Context:
    metadata = Metadata(
        correlation_id=correlation_id or str(uuid.uuid4()),
        causation_id=idempotency_key,
        actor=principal.user_id,
    )
    return Context(metadata, idempotency_key)


def scoped(key: str | None, *parts: str) -> str | None:
    """Keys are scoped to the route, the target and the caller, so one client's key cannot
    replay another command's result."""
    return ":".join([*parts, key]) if key else None


def token(outcome: AppendResult, response: Response) -> int:
    version = outcome.reported_version
    conversation_id = str(outcome.result.get("conversation_id", outcome.stream_id))
    hand_out_token(response, CONTEXT, conversation_id, version)
    return version


async def run(request: Request, command: object, ctx: Context) -> AppendResult:
    try:
        return await handle(chat(request), command, ctx)
    except ConversationNotFound as error:
        raise Problem(404, "Not Found", f"no conversation {error}") from error
    except MessageNotFound as error:
        raise Problem(404, "Not Found", f"no message {error} in this conversation") from error
    except NotAllowed as error:
        raise Problem(403, "Forbidden", str(error)) from error
    except InvalidCommand as error:
        raise Problem(422, "Unprocessable Content", str(error), errors=[str(error)]) from error
    except ConversationConflict as error:
        raise Problem(409, "Conflict", str(error)) from error
    except SubjectForgotten as error:
        raise Problem(410, "Gone", "this person was forgotten") from error
    except KeyUnavailable as error:
        raise try_again_soon("the key service did not answer; retry") from error
    except ConcurrencyError as error:
        raise Problem(
            409,
            "Conflict",
            "the conversation is too busy right now; retry",
            expected_version=error.expected,
            actual_version=error.actual,
        ) from error


router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.post(
    "",
    status_code=201,
    response_model=CommandAccepted,
    responses={200: {"model": CommandAccepted, "description": "the direct conversation exists"}},
)
async def create_conversation(
    body: CreateConversationBody,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    """Start a conversation; the caller is a participant. Two distinct people and no title
    make a direct conversation, whose id is derived from the pair: starting it again (from
    either side) answers 200 with the existing id."""
    me = principal.user_id
    others = tuple(str(p) for p in body.participant_ids)
    conversation_id = new_conversation_id(me, others, body.title)
    key = scoped(idempotency_key, "chat.create", me)
    ctx = command_context(key, correlation_id, principal)
    outcome = await run(request, CreateConversation(conversation_id, me, others, body.title), ctx)
    if outcome.result.get("existing"):
        response.status_code = 200
    response.headers["Location"] = f"/v1/conversations/{outcome.stream_id}"
    return CommandAccepted(id=outcome.stream_id, version=token(outcome, response))


@router.post("/{conversation_id}/messages", status_code=201, response_model=MessageAccepted)
async def send_message(
    conversation_id: uuid.UUID,
    body: SendMessageBody,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    """Participants only. `client_message_id` (or an Idempotency-Key) makes a retry return the
    first message's id and append nothing."""
    me, cid = principal.user_id, str(conversation_id)
    client_key = body.client_message_id or idempotency_key
    key = scoped(client_key, "chat.send", cid, me)
    ctx = command_context(key, correlation_id, principal)
    command = SendMessage(cid, me, body.content, body.client_message_id)
    outcome = await run(request, command, ctx)
    version = token(outcome, response)
    return MessageAccepted(
        id=str(outcome.result["id"]),
        conversation_id=cid,
        version=version,
        seq=int(outcome.result["seq"]),
    )


@router.delete("/{conversation_id}/messages/{message_id}", response_model=CommandAccepted)
async def delete_message(
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    """The sender (while a participant) or an admin. Deleting a deleted message is a no-op."""
    me, cid = principal.user_id, str(conversation_id)
    key = scoped(idempotency_key, "chat.delete", cid, str(message_id), me)
    ctx = command_context(key, correlation_id, principal)
    command = DeleteMessage(cid, str(message_id), me, by_admin=principal.is_admin)
    outcome = await run(request, command, ctx)
    return CommandAccepted(id=cid, version=token(outcome, response))


@router.post("/{conversation_id}/participants", response_model=CommandAccepted)
async def add_participant(
    conversation_id: uuid.UUID,
    body: ParticipantBody,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    """Any participant (or an admin) adds someone to a group conversation; adding a
    participant again is a no-op. Direct conversations keep their two people (409)."""
    me, cid = principal.user_id, str(conversation_id)
    key = scoped(idempotency_key, "chat.add", cid, me)
    ctx = command_context(key, correlation_id, principal)
    command = AddParticipant(cid, str(body.user_id), me, by_admin=principal.is_admin)
    outcome = await run(request, command, ctx)
    return CommandAccepted(id=cid, version=token(outcome, response))


@router.delete("/{conversation_id}/participants/{user_id}", response_model=CommandAccepted)
async def remove_participant(
    conversation_id: uuid.UUID,
    user_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    """The participant themself (leaving), the conversation's creator (while a participant)
    or an admin. Removing someone who is not a participant is a no-op."""
    me, cid = principal.user_id, str(conversation_id)
    key = scoped(idempotency_key, "chat.remove", cid, str(user_id), me)
    ctx = command_context(key, correlation_id, principal)
    command = RemoveParticipant(cid, str(user_id), me, by_admin=principal.is_admin)
    outcome = await run(request, command, ctx)
    return CommandAccepted(id=cid, version=token(outcome, response))


@router.post("/{conversation_id}/read", response_model=ReadAccepted)
async def mark_read(
    conversation_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    body: ReadBody | None = None,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    """MarkMessagesAsRead: up to `up_to_message_id`, by default up to the latest message.
    Read positions only move forward (an older mark is a no-op)."""
    me, cid = principal.user_id, str(conversation_id)
    up_to = str(body.up_to_message_id) if body and body.up_to_message_id else None
    key = scoped(idempotency_key, "chat.read", cid, me)
    ctx = command_context(key, correlation_id, principal)
    outcome = await run(request, MarkMessagesAsRead(cid, me, up_to), ctx)
    return ReadAccepted(
        id=cid, version=token(outcome, response), up_to_seq=int(outcome.result["up_to_seq"])
    )


# -- history (routed to this service by nginx: the event store is the command side's) -------


class EventPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = Field(description="pass as `after` for the next page")


class PastState(BaseModel):
    id: str
    version: int
    state: dict[str, Any]


async def require_member(request: Request, conversation_id: str, principal: Principal) -> None:
    """History is for the conversation's current participants and admins; for anyone else
    the conversation does not exist (404, like its read routes)."""
    if principal.is_admin:
        return
    conversation = await chat(request).conversations.load(conversation_id)
    if not conversation.is_participant(principal.user_id):
        raise Problem(404, "Not Found", f"no conversation {conversation_id}")


@router.get("/{conversation_id}/events", response_model=EventPage)
async def conversation_events(
    conversation_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    after: Annotated[int, Query(ge=0, le=history.MAX_VERSION)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """The conversation's events, oldest first."""
    await require_member(request, str(conversation_id), principal)
    return await history.events_page(
        chat(request).conversations, str(conversation_id), after, limit
    )


@router.get("/{conversation_id}/state", response_model=PastState)
async def conversation_state(
    conversation_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    at: Annotated[str, Query(max_length=64, description="a version number or an ISO time")],
) -> Any:
    """The conversation as it was at a version or a moment (the fold of its events up to it)."""
    await require_member(request, str(conversation_id), principal)
    try:
        moment = history.parse_moment(at)
    except history.BadMoment as error:
        raise Problem(
            422, "Invalid request", "at: a version number or an ISO 8601 time with its zone"
        ) from error
    state = await history.state_at(chat(request).conversations, str(conversation_id), moment)
    if state is None:
        raise Problem(404, "Not Found", f"conversation {conversation_id} did not exist at {at}")
    return state


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
