"""HTTP entry point: validates bodies, turns them into commands, maps outcomes to responses.

Command responses carry the aggregate id and new version, and an `X-Consistency-Token` a
later GET can present to read its own write.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request, Response
from parley_authn import CurrentPrincipal, Principal, require_role, require_self_or_admin
from parley_eventstore.aggregate import Repository
from parley_eventstore.records import AppendResult, ConcurrencyError, Metadata
from parley_http.consistency import HEADER as CONSISTENCY_HEADER
from parley_http.consistency import ConsistencyToken
from parley_http.problems import Problem
from parley_observability.tracing import current_traceparent
from pydantic import BaseModel, ConfigDict, Field, model_validator

from parley_users.domain import User, UserAlreadyExists, UserNotFound
from parley_users.handlers import Context, CreateUser, UpdateProfile, handle

CONTEXT = "users"
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-Id", max_length=200)]
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}$"


class CreateUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID | None = None
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL, max_length=320)


class ProfilePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    bio: str | None = Field(default=None, max_length=2000)
    avatar_url: str | None = Field(default=None, max_length=2000, pattern=r"^(https://\S+)?$")

    @model_validator(mode="after")
    def not_empty(self) -> ProfilePatch:
        if not self.model_fields_set:
            raise ValueError("give at least one of name, bio, avatar_url")
        return self


class CommandAccepted(BaseModel):
    id: str
    version: int


def repository(request: Request) -> Repository[User]:
    users: Repository[User] = request.app.state.users
    return users


def command_context(
    idempotency_key: str | None, correlation_id: str | None, principal: Principal
) -> Context:
    metadata = Metadata(
        correlation_id=correlation_id or str(uuid.uuid4()),
        causation_id=idempotency_key,
        actor=principal.user_id,
        traceparent=current_traceparent(),
    )
    # keys are scoped to the route so one client key cannot replay another command's result
    return Context(metadata, idempotency_key)


def accepted(outcome: AppendResult, response: Response) -> CommandAccepted:
    version = int(outcome.result.get("version", outcome.version))
    token = ConsistencyToken(CONTEXT, outcome.stream_id, version).encode()
    response.headers[CONSISTENCY_HEADER] = token
    return CommandAccepted(id=outcome.stream_id, version=version)


async def run(request: Request, command: object, ctx: Context) -> AppendResult:
    try:
        return await handle(repository(request), command, ctx)
    except UserNotFound as error:
        raise Problem(404, "Not Found", f"no user {error}") from error
    except UserAlreadyExists as error:
        raise Problem(409, "Conflict", f"user {error} already exists") from error
    except ConcurrencyError as error:
        raise Problem(
            409,
            "Conflict",
            "the user changed meanwhile; reload and retry",
            expected_version=error.expected,
            actual_version=error.actual,
        ) from error


router = APIRouter(prefix="/v1/users", tags=["users"])


@router.post("", status_code=201, response_model=CommandAccepted)
async def create_user(
    body: CreateUserBody,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    """Admins only: profiles of registered accounts are created by the registration flow."""
    require_role(principal, "admin")
    user_id = str(body.user_id or uuid.uuid4())
    key = f"users.create:{idempotency_key}" if idempotency_key else None
    ctx = command_context(key, correlation_id, principal)
    outcome = await run(request, CreateUser(user_id, body.name, body.email), ctx)
    response.headers["Location"] = f"/v1/users/{outcome.stream_id}"
    return accepted(outcome, response)


@router.patch("/{user_id}", response_model=CommandAccepted)
async def update_profile(
    user_id: uuid.UUID,
    body: ProfilePatch,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Any:
    require_self_or_admin(principal, str(user_id))
    key = f"users.patch:{user_id}:{idempotency_key}" if idempotency_key else None
    ctx = command_context(key, correlation_id, principal)
    changes = body.model_dump(exclude_unset=True)
    outcome = await run(request, UpdateProfile(str(user_id), changes), ctx)
    return accepted(outcome, response)


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
