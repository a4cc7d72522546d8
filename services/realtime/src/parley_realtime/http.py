"""The realtime routes (behind nginx on :8080).

- `POST /v1/stream/tickets` -> `{ticket, expires_in}`: a single-use ticket for 30 s, for
  clients that cannot send headers (a browser's EventSource).
- `GET /v1/stream` (`Authorization: Bearer` or `?ticket=`; `Last-Event-ID` or `?since=` to
  resume): Server-Sent Events.
- `GET /v1/ws` (same authentication and resume; `?since=`): the same events as JSON text
  frames `{"event", "id", "data"}`; the client may send `{"type": "typing",
  "conversation_id": ...}`.
- `POST /v1/conversations/{id}/typing` -> 204 (participants only, else 404; 429 when sooner
  than a second after the last one).
- `GET /v1/users/{id}/presence` -> `{user_id, status, last_seen}` (self, admins, and people
  who share a conversation with them; 404 for anyone else).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Path, Query, Request, Response, WebSocket
from fastapi.responses import StreamingResponse
from parley_authn import CurrentPrincipal
from parley_authn.http import authenticate, unauthorized
from parley_http.problems import Problem, try_again_soon
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

from parley_realtime import metrics
from parley_realtime.cursor import Cursor, MalformedCursor, decode
from parley_realtime.hub import Connection, Frame
from parley_realtime.signalling import NotAParticipant, Signalling, TooSoon
from parley_realtime.signals import TICKET_TTL_S, TicketHolder, TooManyStreams
from parley_realtime.stream import Holder, Streams

router = APIRouter()

Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
TicketParam = Annotated[
    str | None, Query(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
]
SinceParam = Annotated[str | None, Query(max_length=2000)]
RETRY_MS = 2000  # EventSource's reconnection delay
MAX_WS_MESSAGE = 4096


class Ticket(BaseModel):
    ticket: str
    expires_in: int


class PresenceView(BaseModel):
    user_id: str
    status: str
    last_seen: str | None


def _streams(request: Request | WebSocket) -> Streams:
    streams: Streams = request.app.state.streams
    return streams


def _signalling(request: Request | WebSocket) -> Signalling:
    signalling: Signalling = request.app.state.signalling
    return signalling


@router.post("/v1/stream/tickets", status_code=201)
async def issue_ticket(request: Request, principal: CurrentPrincipal) -> Ticket:
    holder = TicketHolder(
        principal.user_id, principal.role, principal.session_id, principal.expires_at
    )
    ticket = await _streams(request).signals.issue_ticket(holder)
    return Ticket(ticket=ticket, expires_in=TICKET_TTL_S)


async def _holder(connection: Request | WebSocket, ticket: str | None) -> Holder:
    """The stream's owner: a bearer token, else a redeemed ticket (401 without either)."""
    # authenticate() reads only the headers and the app's authn state, which a WebSocket
    # handshake has too
    principal = await authenticate(cast(Request, connection))
    if principal is not None:
        return Holder(principal.user_id, principal.role, principal.session_id, principal.expires_at)
    if ticket is None:
        raise unauthorized(None)
    streams = _streams(connection)
    redeemed = await streams.signals.redeem_ticket(ticket)
    if redeemed is None:
        raise unauthorized("unknown, used or expired ticket")
    if streams.is_revoked(redeemed.session_id):
        raise unauthorized("token revoked")
    return Holder(redeemed.user_id, redeemed.role, redeemed.session_id, redeemed.token_expires_at)


def _cursor(streams: Streams, text: str | None) -> Cursor | None:
    if text is None or text == "":
        return None
    try:
        return decode(text, streams.hub.topics)
    except MalformedCursor as error:
        raise Problem(400, "Bad Request", f"invalid resume cursor: {error}") from None


async def _open(streams: Streams, holder: Holder) -> Connection:
    if not streams.hub.started.is_set():
        raise try_again_soon("the live feed is still starting; retry")
    try:
        return await streams.open(holder)
    except TooManyStreams:
        raise Problem(
            429,
            "Too Many Requests",
            "too many open streams for this person; close one first",
            headers={"Retry-After": "5"},
        ) from None


def _sse(frame: Frame) -> bytes:
    if frame.event is None:
        return b": heartbeat\nid: " + (frame.cursor or "").encode() + b"\n\n"
    head = f"event: {frame.event}\n"
    if frame.cursor is not None:
        head += f"id: {frame.cursor}\n"
    return head.encode() + b"data: " + frame.data + b"\n\n"


def _written(frame: Frame) -> None:
    if frame.event is None:
        return
    metrics.PUSHED.labels(frame.event).inc()
    if frame.at is not None:
        metrics.PUSH_LAG.observe(max(0.0, time.time() - frame.at))


@router.get("/v1/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    ticket: TicketParam = None,
    since: SinceParam = None,
    last_event_id: Annotated[str | None, Header(max_length=2000)] = None,
) -> StreamingResponse:
    streams = _streams(request)
    cursor = _cursor(streams, last_event_id or since)
    holder = await _holder(request, ticket)
    connection = await _open(streams, holder)

    async def body() -> AsyncIterator[bytes]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        async for frame in streams.frames(connection, cursor):
            yield _sse(frame)
            _written(frame)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.websocket("/v1/ws")
async def websocket_stream(
    websocket: WebSocket, ticket: TicketParam = None, since: SinceParam = None
) -> None:
    streams = _streams(websocket)
    try:
        cursor = _cursor(streams, since)
        holder = await _holder(websocket, ticket)
        connection = await _open(streams, holder)
    except Problem as problem:
        # before the handshake is accepted: uvicorn answers 403; the reason says why
        await websocket.close(code=1008, reason=(problem.detail or problem.title)[:120])
        return
    await websocket.accept()

    async def send() -> None:
        async for frame in streams.frames(connection, cursor):
            message = {
                "event": frame.event or "heartbeat",
                "id": frame.cursor,
                "data": json.loads(frame.data) if frame.data else None,
            }
            await websocket.send_text(json.dumps(message, separators=(",", ":")))
            _written(frame)

    async def receive() -> None:
        while True:
            text = await websocket.receive_text()
            reply = await _client_message(websocket, holder, text)
            if reply is not None:
                await websocket.send_text(json.dumps(reply, separators=(",", ":")))

    sender = asyncio.create_task(send())
    receiver = asyncio.create_task(receive())
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
        with contextlib.suppress(Exception):
            await websocket.close()


def _error(status: int, detail: str) -> dict[str, Any]:
    return {"event": "error", "id": None, "data": {"status": status, "detail": detail}}


async def _client_message(websocket: WebSocket, holder: Holder, text: str) -> dict[str, Any] | None:
    """A client's message on the socket: only typing signals are accepted."""
    if len(text) > MAX_WS_MESSAGE:
        return _error(413, f"messages are at most {MAX_WS_MESSAGE} characters")
    try:
        message = json.loads(text)
    except ValueError:
        return _error(400, "messages are JSON objects")
    if not isinstance(message, dict) or message.get("type") != "typing":
        return _error(400, 'the only message a client sends is {"type": "typing", ...}')
    conversation_id = message.get("conversation_id")
    if not isinstance(conversation_id, str) or not 1 <= len(conversation_id) <= 64:
        return _error(422, "conversation_id must be a conversation id")
    try:
        await _signalling(websocket).typing(holder.user_id, conversation_id)
    except NotAParticipant:
        return _error(404, "no such conversation")
    except TooSoon:
        return _error(429, "at most one typing signal a second per conversation")
    return None


@router.post("/v1/conversations/{conversation_id}/typing", status_code=204)
async def typing(request: Request, conversation_id: Id, principal: CurrentPrincipal) -> Response:
    try:
        await _signalling(request).typing(principal.user_id, conversation_id)
    except NotAParticipant:
        # the same answer whether the conversation exists or not
        raise Problem(404, "Not Found", "no such conversation") from None
    except TooSoon:
        raise Problem(
            429,
            "Too Many Requests",
            "at most one typing signal a second per conversation",
            headers={"Retry-After": "1"},
        ) from None
    return Response(status_code=204)


@router.get("/v1/users/{user_id}/presence")
async def presence(request: Request, user_id: Id, principal: CurrentPrincipal) -> PresenceView:
    if user_id != principal.user_id and not principal.is_admin:
        peers = await _signalling(request).members.peers(principal.user_id)
        if user_id not in peers:
            raise Problem(404, "Not Found", "no such person among your conversations")
    found = await _streams(request).signals.presence_of(user_id)
    return PresenceView(
        user_id=found.user_id,
        status=found.status,
        last_seen=found.last_seen.isoformat() if found.last_seen else None,
    )
