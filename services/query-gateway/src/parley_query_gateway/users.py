"""Queries of the users read model. Every read needs a signed-in caller; the email address
is personal data and is shown only to its owner and to admins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from parley_authn import CurrentPrincipal, Principal
from parley_http.consistency import HEADER as CONSISTENCY_HEADER
from parley_http.problems import Problem
from pydantic import BaseModel

from parley_query_gateway.consistency import caught_up, parse_token
from parley_query_gateway.reads import get_document, not_modified

router = APIRouter(prefix="/v1/users", tags=["users"])
Token = Annotated[str | None, Header(alias=CONSISTENCY_HEADER)]
PROJECTION = "projector-users"
CONTEXTS = ("users",)


class UserView(BaseModel):
    id: str
    name: str
    email: str | None = None  # only for the user themselves and admins
    bio: str | None = None
    avatar_url: str | None = None
    created_at: datetime
    updated_at: datetime


def to_view(doc: dict[str, Any], caller: Principal) -> UserView:
    fields = {k: v for k, v in doc.items() if k in UserView.model_fields}
    if not (caller.is_admin or caller.user_id == doc["_id"]):
        fields.pop("email", None)
    return UserView(id=doc["_id"], **fields)


async def user_view(
    user_id: str, request: Request, response: Response, caller: Principal, token: str | None
) -> Any:
    settings = request.app.state.settings
    fresh = await caught_up(
        request.app.state.db, PROJECTION, CONTEXTS, parse_token(token), settings.consistency_wait_s
    )
    doc = await get_document(request, PROJECTION, "users", user_id, fresh)
    if doc is None:
        raise Problem(404, "Not Found", f"no user {user_id}")
    view = to_view(doc, caller)
    if not_modified(request, response, view.model_dump(mode="json")):
        return Response(status_code=304, headers=dict(response.headers))
    return view


@router.get("/me", response_model=UserView, responses={304: {"description": "unchanged"}})
async def get_me(
    request: Request, response: Response, caller: CurrentPrincipal, token: Token = None
) -> Any:
    return await user_view(caller.user_id, request, response, caller, token)


@router.get("/{user_id}", response_model=UserView, responses={304: {"description": "unchanged"}})
async def get_user(
    user_id: uuid.UUID,
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    token: Token = None,
) -> Any:
    return await user_view(str(user_id), request, response, caller, token)
