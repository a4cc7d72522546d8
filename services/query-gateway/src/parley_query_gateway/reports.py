"""The admins' list of reported messages (projector-chat's `reports`: one document per report,
written by the reported conversation's stream). Admins only (403 problem for anyone else);
newest first, keyset pages over (reported_at, report id), optionally one status.

The status filter and the sort are a scan on FerretDB 1.24 (it pushes only `_id` equality
down; MongoDB answers from the declared (status, reported_at, _id) index). Reports are few
next to messages, so the scan is accepted for now: issue 21 is where a per-status layout or
another store would go. Resolving is a command (POST /v1/reports/{id}/resolve, chat-api).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from parley_authn import CurrentPrincipal
from parley_http.problems import Problem
from pydantic import BaseModel, Field
from pymongo import DESCENDING

from parley_query_gateway.chat import (
    READ_MODEL,
    Token,
    _at,
    _collection,
    _decode,
    _encode,
    _ms,
    _utc,
)
from parley_query_gateway.reads import answer

router = APIRouter(tags=["reports"])


class ReportItem(BaseModel):
    id: str
    conversation_id: str
    message_id: str
    seq: int | None
    sender_id: str | None = Field(description="who wrote the reported message")
    reporter_id: str | None
    reason: str | None = Field(description="null once the reporter was forgotten")
    status: Literal["open", "resolved"]
    action: str | None = Field(description="dismiss, delete_message or deactivate_user")
    resolved_by: str | None
    reported_at: datetime | None
    resolved_at: datetime | None


class ReportPage(BaseModel):
    items: list[ReportItem]
    next_cursor: str | None


def to_report(doc: dict[str, Any]) -> ReportItem:
    return ReportItem(
        id=doc["_id"],
        conversation_id=doc.get("conversation_id") or "",
        message_id=doc.get("message_id") or "",
        seq=doc.get("seq"),
        sender_id=doc.get("sender_id"),
        reporter_id=doc.get("reporter_id"),
        reason=None if doc.get("reason_redacted") else doc.get("reason"),
        status="resolved" if doc.get("status") == "resolved" else "open",
        action=doc.get("action"),
        resolved_by=doc.get("resolved_by"),
        reported_at=_utc(doc.get("reported_at")),
        resolved_at=_utc(doc.get("resolved_at")),
    )


def after_report(cursor: str) -> dict[str, Any]:
    value = _decode(cursor)
    if not (
        isinstance(value, dict)
        and isinstance(value.get("t"), int)
        and isinstance(value.get("r"), str)
    ):
        raise Problem(400, "Bad Request", "cursor is not one this API issued")
    try:
        at = _at(value["t"])
    except OverflowError as error:  # a forged time beyond the year 9999
        raise Problem(400, "Bad Request", "cursor is not one this API issued") from error
    return {"$or": [{"reported_at": {"$lt": at}}, {"reported_at": at, "_id": {"$lt": value["r"]}}]}


@router.get(
    "/v1/reports",
    response_model=ReportPage,
    responses={304: {"description": "unchanged"}, 403: {"description": "not an admin"}},
)
async def list_reports(
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    status: Literal["open", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    token: Token = None,
) -> Any:
    """Reported messages, newest first (admins only); `status=open` for the ones to act on."""
    if not caller.is_admin:
        raise Problem(403, "Forbidden", "only admins read reports")
    await READ_MODEL.fresh_for(request, token, caller)
    flt: dict[str, Any] = {}
    if status is not None:
        flt["status"] = status
    if cursor:
        flt.update(after_report(cursor))
    reports = await _collection(request, "reports")
    docs = (
        await reports.find(flt)
        .sort([("reported_at", DESCENDING), ("_id", DESCENDING)])
        .limit(limit + 1)
        .to_list(None)
    )
    more = len(docs) > limit
    docs = docs[:limit]
    last = docs[-1] if docs else None
    next_cursor = None
    if more and last is not None and isinstance(last.get("reported_at"), datetime):
        next_cursor = _encode({"t": _ms(last["reported_at"]), "r": last["_id"]})
    page = ReportPage(items=[to_report(d) for d in docs], next_cursor=next_cursor)
    return answer(request, response, page)
