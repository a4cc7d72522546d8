"""Queries of the notifications read model: every read is the caller's own (their
notifications, their unread count, their preferences); nobody reads another user's.

The list is newest first, keyset-paginated on (created_at, _id) descending: the cursor holds
the last item's creation time (ISO 8601) and id. The unread count is a `count_documents` of
the caller's unread notifications (each notification document has one writer; no counter
document that many streams would update).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from parley_authn import CurrentPrincipal
from parley_http.consistency import HEADER as CONSISTENCY_HEADER
from parley_http.problems import Problem
from parley_readmodel import aliases
from pydantic import BaseModel

from parley_query_gateway.consistency import ReadModel
from parley_query_gateway.pages import decode_cursor, encode_cursor
from parley_query_gateway.reads import answer, get_document

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])
Token = Annotated[str | None, Header(alias=CONSISTENCY_HEADER)]
PROJECTION = "projector-notifications"
# what these routes read; the third part is the projector's `versions_in`
READ_MODEL = ReadModel(PROJECTION, ("notifications",), {"notifications": "notifications"})
TOPICS = ("notifications.events",)
UNCHANGED: dict[int | str, dict[str, Any]] = {304: {"description": "unchanged"}}


class NotificationView(BaseModel):
    id: str
    kind: str
    mention: bool = False  # the message mentions the caller
    conversation_id: str
    message_id: str
    sender_id: str
    preview: str | None  # null once the sender was forgotten
    redacted: bool = False
    created_at: datetime
    read: bool


class NotificationPage(BaseModel):
    items: list[NotificationView]
    next_cursor: str | None = None  # absent: this is the last page


class UnreadCount(BaseModel):
    count: int


class PreferencesView(BaseModel):
    in_app: bool = True
    email: bool = False
    muted_conversations: list[str] = []
    muted_mentions: list[str] = []


def before(cursor: str) -> dict[str, Any]:
    """Items after the cursor in (created_at, _id) descending order."""
    created, last_id = decode_cursor(cursor, 2)
    try:
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is not None:
            # the driver converts to UTC: a forged "0001-01-01T00:00+14:00" overflows there
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise Problem(400, "Bad Request", "cursor is not one this service issued") from error
    return {
        "$or": [{"created_at": {"$lt": moment}}, {"created_at": moment, "_id": {"$lt": last_id}}]
    }


def to_view(doc: dict[str, Any]) -> NotificationView:
    return NotificationView(
        id=doc["_id"],
        kind=doc.get("kind", "message"),
        mention=bool(doc.get("mention", False)),
        conversation_id=doc["conversation_id"],
        message_id=doc["message_id"],
        sender_id=doc["sender_id"],
        preview=doc.get("preview"),
        redacted=bool(doc.get("redacted")),
        created_at=doc["created_at"],
        read=bool(doc.get("read", False)),
    )


@router.get("", response_model=NotificationPage, responses=UNCHANGED)
async def list_notifications(
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    token: Token = None,
) -> Any:
    """The caller's notifications, newest first; `unread=true`: only those not read yet."""
    await READ_MODEL.fresh_for(request, token, caller)
    filters: list[dict[str, Any]] = [{"user_id": caller.user_id}]
    if unread:
        filters.append({"read": False})
    if cursor is not None:
        filters.append(before(cursor))
    flt = filters[0] if len(filters) == 1 else {"$and": filters}
    notes = await aliases.collection(request.app.state.db, PROJECTION, "notifications")
    order = [("created_at", -1), ("_id", -1)]
    found = await notes.find(flt).sort(order).limit(limit + 1).to_list(None)
    page = NotificationPage(items=[to_view(doc) for doc in found[:limit]])
    if len(found) > limit:
        last = found[limit - 1]
        page.next_cursor = encode_cursor(last["created_at"].isoformat(), last["_id"])
    return answer(request, response, page)


@router.get("/unread-count", response_model=UnreadCount, responses=UNCHANGED)
async def unread_count(
    request: Request, response: Response, caller: CurrentPrincipal, token: Token = None
) -> Any:
    await READ_MODEL.fresh_for(request, token, caller)
    notes = await aliases.collection(request.app.state.db, PROJECTION, "notifications")
    count = await notes.count_documents({"user_id": caller.user_id, "read": False})
    return answer(request, response, UnreadCount(count=count))


@router.get("/preferences", response_model=PreferencesView, responses=UNCHANGED)
async def preferences(
    request: Request, response: Response, caller: CurrentPrincipal, token: Token = None
) -> Any:
    """The caller's preferences; before their first change, the defaults (in-app on, email
    off, nothing muted)."""
    fresh = await READ_MODEL.fresh_for(request, token, caller)
    doc = await get_document(request, PROJECTION, "preferences", caller.user_id, fresh)
    if doc is None:
        return answer(request, response, PreferencesView())
    view = PreferencesView(
        in_app=bool(doc["in_app"]),
        email=bool(doc["email"]),
        muted_conversations=list(doc.get("muted_conversations", [])),
        muted_mentions=list(doc.get("muted_mentions", [])),
    )
    return answer(request, response, view)
