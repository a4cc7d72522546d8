"""Queries of the users read model."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from parley_http.consistency import HEADER as CONSISTENCY_HEADER
from parley_http.problems import Problem
from pydantic import BaseModel

from parley_query_gateway.consistency import parse_token, read_after

router = APIRouter(prefix="/v1/users", tags=["users"])
Token = Annotated[str | None, Header(alias=CONSISTENCY_HEADER)]


class UserView(BaseModel):
    id: str
    name: str
    email: str
    bio: str | None = None
    avatar_url: str | None = None
    created_at: datetime
    updated_at: datetime


def to_view(doc: dict[str, Any]) -> UserView:
    return UserView(id=doc["_id"], **{k: v for k, v in doc.items() if k in UserView.model_fields})


@router.get("/{user_id}", response_model=UserView)
async def get_user(user_id: uuid.UUID, request: Request, token: Token = None) -> UserView:
    settings = request.app.state.settings
    doc = await read_after(
        request.app.state.db.users,
        str(user_id),
        parse_token(token),
        depends_on=("users", str(user_id)),
        wait_s=settings.consistency_wait_s,
    )
    if doc is None:
        raise Problem(404, "Not Found", f"no user {user_id}")
    return to_view(doc)
