"""HTTP entry point: `POST /v1/notifications/{id}/read`, `PUT /v1/notifications/preferences`.

Command responses carry the aggregate id, its new version and an `X-Consistency-Token` a later
GET (query gateway) can present to read its own write. Reads are the query gateway's.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI
from parley_commandkit import SHARED, CommandAccepted, CommandCall, invalid, not_found
from pydantic import BaseModel, ConfigDict, Field

from parley_notifications.commands import MarkRead, UpdatePreferences
from parley_notifications.domain import (
    MAX_MUTED,
    NotificationNotFound,
    NotYourNotification,
    TooManyMuted,
)

CONTEXT = "notifications"


class PreferencesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_app: bool
    email: bool
    muted_conversations: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_MUTED
    )
    # muted conversations whose mentions of the caller are muted too (a mention in a muted
    # conversation notifies otherwise); absent: none (a whole-state PUT, like the others)
    muted_mentions: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_MUTED
    )


ERRORS = SHARED.extend(
    {
        # someone else's notification is answered like a missing one: ids are not disclosed
        NotificationNotFound: not_found("no notification {}"),
        NotYourNotification: not_found("no notification {}"),
        TooManyMuted: invalid("too many muted conversations"),
    }
)


router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.put("/preferences", response_model=CommandAccepted)
async def update_preferences(body: PreferencesBody, call: CommandCall) -> Any:
    """The caller's whole preferences (channels, muted conversations, and those of them whose
    mentions are muted too). Defaults before the first PUT: in-app on, email off, nothing
    muted. Putting the same preferences again appends nothing."""
    me = call.principal.user_id
    muted, mentions = list(body.muted_conversations), list(body.muted_mentions)
    command = UpdatePreferences(me, body.in_app, body.email, muted, mentions)
    return await call.execute(command, "preferences", me)


@router.post("/{notification_id}/read", response_model=CommandAccepted)
async def mark_read(notification_id: uuid.UUID, call: CommandCall) -> Any:
    """The recipient only (anyone else: 404). Marking a read notification again is a no-op
    (200, same version)."""
    nid = str(notification_id)
    return await call.execute(MarkRead(nid, call.principal.user_id), "read", nid)


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
