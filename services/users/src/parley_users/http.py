"""HTTP entry point: validates bodies, turns them into commands, maps outcomes to responses.

Command responses carry the aggregate id and new version, and an `X-Consistency-Token` a
later GET can present to read its own write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from parley_authn import CurrentPrincipal, Principal, require_role, require_self_or_admin
from parley_eventstore import history
from parley_eventstore.aggregate import Repository
from parley_eventstore.records import AppendResult, ConcurrencyError, Metadata
from parley_http.commands import CorrelationId, IdempotencyKey, hand_out_token
from parley_http.problems import Problem, try_again_soon
from parley_privacy.keys import KeyOwner, KeyUnavailable, SubjectForgotten
from pydantic import BaseModel, ConfigDict, Field, model_validator

from parley_users.domain import (
    ContactIsSelf,
    ReservedName,
    TooManyContacts,
    User,
    UserAlreadyExists,
    UserDeactivated,
    UserNotFound,
)
from parley_users.handlers import (
    AddContact,
    AssignRole,
    ContactNotFound,
    Context,
    CreateUser,
    Deactivate,
    ForgetUser,
    Reactivate,
    RemoveContact,
    UpdateProfile,
    handle,
)

CONTEXT = "users"
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


class DeactivateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class ContactBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: uuid.UUID


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "admin"]


class CommandAccepted(BaseModel):
    id: str
    version: int


class EventPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = Field(description="pass as `after` for the next page")


class PastState(BaseModel):
    id: str
    version: int
    state: dict[str, Any]


def repository(request: Request) -> Repository[User]:
    users: Repository[User] = request.app.state.users
    return users


@dataclass(frozen=True)
class Call:
    """What every command route receives besides its path and body: who calls, the HTTP
    request and response, and the optional Idempotency-Key and X-Correlation-Id headers."""

    request: Request
    response: Response
    principal: Principal
    idempotency_key: str | None
    correlation_id: str | None

    def context(self, route: str, *target: str) -> Context:
        """The command's context. The client's key is scoped to the route and its target, so
        one client key never replays another command's or another user's result."""
        key = self.idempotency_key
        scoped = ":".join((f"users.{route}", *target, key)) if key else None
        metadata = Metadata(
            correlation_id=self.correlation_id or str(uuid.uuid4()),
            causation_id=scoped,
            actor=self.principal.user_id,
        )
        return Context(metadata, scoped)

    async def run(self, command: object, route: str, *target: str) -> CommandAccepted:
        outcome = await run(self.request, command, self.context(route, *target))
        version = outcome.reported_version
        hand_out_token(self.response, CONTEXT, outcome.stream_id, version)
        return CommandAccepted(id=outcome.stream_id, version=version)


def command_call(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Call:
    return Call(request, response, principal, idempotency_key, correlation_id)


CommandCall = Annotated[Call, Depends(command_call)]


async def run(request: Request, command: object, ctx: Context) -> AppendResult:
    try:
        return await handle(repository(request), command, ctx)
    except UserNotFound as error:
        raise Problem(404, "Not Found", f"no user {error}") from error
    except ContactNotFound as error:
        raise Problem(404, "Not Found", f"no user {error} to add as a contact") from error
    except UserAlreadyExists as error:
        raise Problem(409, "Conflict", f"user {error} already exists") from error
    except ContactIsSelf as error:
        raise Problem(
            422,
            "Invalid request",
            "a user cannot be their own contact",
            errors=[
                {"field": "contact_id", "message": "is the user themselves", "type": "value_error"}
            ],
        ) from error
    except ReservedName as error:
        raise Problem(
            422,
            "Invalid request",
            "this display name is reserved",
            errors=[{"field": "name", "message": "is reserved", "type": "value_error"}],
        ) from error
    except UserDeactivated as error:
        raise Problem(409, "Conflict", f"user {error} is deactivated") from error
    except TooManyContacts as error:
        raise Problem(409, "Conflict", f"user {error} has the most contacts allowed") from error
    except SubjectForgotten as error:
        raise Problem(410, "Gone", "this person was forgotten") from error
    except KeyUnavailable as error:
        raise try_again_soon("the key service did not answer; retry") from error
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
async def create_user(body: CreateUserBody, call: CommandCall) -> Any:
    """Admins only: profiles of registered accounts are created by the registration flow."""
    require_role(call.principal, "admin")
    user_id = str(body.user_id or uuid.uuid4())
    accepted = await call.run(CreateUser(user_id, body.name, body.email), "create")
    call.response.headers["Location"] = f"/v1/users/{accepted.id}"
    return accepted


@router.patch("/{user_id}", response_model=CommandAccepted)
async def update_profile(user_id: uuid.UUID, body: ProfilePatch, call: CommandCall) -> Any:
    require_self_or_admin(call.principal, str(user_id))
    changes = body.model_dump(exclude_unset=True)
    return await call.run(UpdateProfile(str(user_id), changes), "patch", str(user_id))


@router.post("/{user_id}/deactivate", response_model=CommandAccepted)
async def deactivate(user_id: uuid.UUID, body: DeactivateBody, call: CommandCall) -> Any:
    """Admins only. Deactivating a deactivated user appends nothing (same version back)."""
    require_role(call.principal, "admin")
    return await call.run(Deactivate(str(user_id), body.reason), "deactivate", str(user_id))


@router.post("/{user_id}/reactivate", response_model=CommandAccepted)
async def reactivate(user_id: uuid.UUID, call: CommandCall) -> Any:
    """Admins only; no body. Reactivating an active user appends nothing."""
    require_role(call.principal, "admin")
    return await call.run(Reactivate(str(user_id)), "reactivate", str(user_id))


@router.post("/{user_id}/contacts", response_model=CommandAccepted)
async def add_contact(user_id: uuid.UUID, body: ContactBody, call: CommandCall) -> Any:
    """The user or an admin. 404 when the contact is not a user; adding twice is a no-op."""
    require_self_or_admin(call.principal, str(user_id))
    command = AddContact(str(user_id), str(body.contact_id))
    return await call.run(command, "contacts.add", str(user_id))


@router.delete("/{user_id}/contacts/{contact_id}", response_model=CommandAccepted)
async def remove_contact(user_id: uuid.UUID, contact_id: uuid.UUID, call: CommandCall) -> Any:
    """The user or an admin. Removing a contact that is not one is a no-op (200, same
    version): DELETE is idempotent."""
    require_self_or_admin(call.principal, str(user_id))
    command = RemoveContact(str(user_id), str(contact_id))
    return await call.run(command, "contacts.remove", str(user_id), str(contact_id))


@router.put("/{user_id}/role", response_model=CommandAccepted)
async def assign_role(user_id: uuid.UUID, body: RoleBody, call: CommandCall) -> Any:
    """Admins only. The role the users context shows; the role inside access tokens is the
    auth service's (`python -m parley_auth.admin grant-admin`), which this service mirrors."""
    require_role(call.principal, "admin")
    return await call.run(AssignRole(str(user_id), body.role), "role", str(user_id))


@router.delete("/{user_id}", response_model=CommandAccepted)
async def forget_user(user_id: uuid.UUID, call: CommandCall) -> Any:
    """Forget the person (the user themselves or an admin): the key owner (auth) destroys
    their data key and closes the account, then `UserForgotten` is published; read models
    redact them. Idempotent: again = 200 with the same version."""
    require_self_or_admin(call.principal, str(user_id))
    keys: KeyOwner = call.request.app.state.keys
    ctx = call.context("forget", str(user_id))
    try:
        await keys.forget(
            str(user_id), actor=call.principal.user_id, correlation_id=ctx.metadata.correlation_id
        )
    except KeyUnavailable as error:
        raise try_again_soon("the key service did not answer; retry") from error
    return await call.run(ForgetUser(str(user_id), call.principal.user_id), "forget", str(user_id))


# -- history (routed to this service by nginx: the event store is the command side's) -------


@router.get("/{user_id}/events", response_model=EventPage)
async def user_events(
    user_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    after: Annotated[int, Query(ge=0, le=history.MAX_VERSION)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """The user's events, oldest first (the user themselves or an admin)."""
    require_self_or_admin(principal, str(user_id))
    page = await history.events_page(repository(request), str(user_id), after, limit)
    if not page["items"] and after == 0:
        raise Problem(404, "Not Found", f"no user {user_id}")
    return page


@router.get("/{user_id}/state", response_model=PastState)
async def user_state(
    user_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    at: Annotated[str, Query(max_length=64, description="a version number or an ISO time")],
) -> Any:
    """The user as they were at a version or a moment (the fold of the events up to it)."""
    require_self_or_admin(principal, str(user_id))
    try:
        moment = history.parse_moment(at)
    except history.BadMoment as error:
        raise Problem(
            422, "Invalid request", "at: a version number or an ISO 8601 time with its zone"
        ) from error
    state = await history.state_at(repository(request), str(user_id), moment)
    if state is None:
        raise Problem(404, "Not Found", f"user {user_id} did not exist at {at}")
    return state


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
