"""HTTP entry point: `POST /v1/notifications/{id}/read`, `PUT /v1/notifications/preferences`.

Command responses carry the aggregate id, its new version and an `X-Consistency-Token` a later
GET (query gateway) can present to read its own write. Reads are the query gateway's.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request, Response
from parley_authn import CurrentPrincipal, Principal
from parley_eventstore.records import AppendResult, ConcurrencyError, Metadata
from parley_http.commands import CorrelationId, IdempotencyKey, hand_out_token
from parley_http.problems import Problem
from pydantic import BaseModel, ConfigDict, Field

from parley_notifications.domain import (
    MAX_MUTED,
    NotificationNotFound,
    NotYourNotification,
    TooManyMuted,
)
from parley_notifications.handlers import Context, MarkRead, UpdatePreferences, handle

CONTEXT = "notifications"


class PreferencesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_app: bool
    email: bool
    muted_conversations: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_MUTED
    )


class CommandAccepted(BaseModel):
    id: str
    version: int


def command_context(
    idempotency_key: str | None, correlation_id: str | None, principal: Principal
) -> Context:
    metadata = Metadata(
        correlation_id=correlation_id or str(uuid.uuid4()),
        causation_id=idempotency_key,
        actor=principal.user_id,
    )
    return Context(metadata, idempotency_key)


def accepted(outcome: AppendResult, response: Response) -> CommandAccepted:
    version = outcome.reported_version
    hand_out_token(response, CONTEXT, outcome.stream_id, version)
    return CommandAccepted(id=outcome.stream_id, version=version)


async def run(request: Request, command: object, ctx: Context) -> AppendResult:
    try:
        return await handle(request.app.state.repos, command, ctx)
    except (NotificationNotFound, NotYourNotification) as error:
        # someone else's notification is answered like a missing one: ids are not disclosed
        raise Problem(404, "Not Found", f"no notification {error}") from error
    except TooManyMuted as error:
        raise Problem(422, "Invalid request", "too many muted conversations") from error
    except ConcurrencyError as error:
        raise Problem(
            409,
            "Conflict",
            "the notification changed meanwhile; retry",
            expected_version=error.expected,
            actual_version=error.actual,
        ) from error


def keyed(route: str, caller: str, target: str, key: str | None) -> str | None:
    """An Idempotency-Key scoped to the route, the caller and the target: the same client key
    never replays another command's or another caller's result."""
    return f"notifications.{route}:{caller}:{target}:{key}" if key else None


router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.put("/preferences", response_model=CommandAccepted)
async def update_preferences(
    body: PreferencesBody,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    """The caller's whole preferences (channels and muted conversations). Defaults before the
    first PUT: in-app on, email off. Putting the same preferences again appends nothing."""
    ctx = command_context(
        keyed("preferences", principal.user_id, principal.user_id, idempotency_key),
        correlation_id,
        principal,
    )
    command = UpdatePreferences(
        principal.user_id, body.in_app, body.email, list(body.muted_conversations)
    )
    return accepted(await run(request, command, ctx), response)


@router.post("/{notification_id}/read", response_model=CommandAccepted)
async def mark_read(
    notification_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    """The recipient only (anyone else: 404). Marking a read notification again is a no-op
    (200, same version)."""
    nid = str(notification_id)
    ctx = command_context(
        keyed("read", principal.user_id, nid, idempotency_key), correlation_id, principal
    )
    return accepted(await run(request, MarkRead(nid, principal.user_id), ctx), response)


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
