"""HTTP entry point: validates bodies, turns them into commands, maps outcomes to responses.

Command responses carry the aggregate id and new version, and an `X-Consistency-Token` a
later GET can present to read its own write.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Request
from parley_authn import (
    Principal,
    require_fresh_authentication,
    require_role,
    require_self_or_admin,
)
from parley_commandkit import (
    SHARED,
    CommandAccepted,
    CommandCall,
    conflict,
    invalid,
    not_found,
)
from parley_commandkit.history import history_routes
from parley_eventstore.aggregate import Repository
from parley_http.problems import Problem, try_again_soon
from parley_privacy.keys import KeyOwner, KeyUnavailable
from pydantic import BaseModel, ConfigDict, Field, model_validator

from parley_users.commands import (
    AddContact,
    AssignRole,
    Block,
    CreateUser,
    Deactivate,
    ForgetUser,
    Reactivate,
    RemoveContact,
    Unblock,
    UpdateProfile,
)
from parley_users.domain import (
    MAX_BLOCKS,
    BlockIsSelf,
    ContactIsSelf,
    ReservedName,
    TooManyBlocks,
    TooManyContacts,
    User,
    UserAlreadyExists,
    UserDeactivated,
    UserNotFound,
)

CONTEXT = "users"
# deleting one's own account needs a login this recent (the token's auth_time): a stolen or
# forgotten-open session alone cannot destroy the account
FRESH_AUTH_S = 300
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


ERRORS = SHARED.extend(
    {
        UserNotFound: not_found("no user {}"),
        UserAlreadyExists: conflict("user {} already exists"),
        ContactIsSelf: invalid(
            "a user cannot be their own contact", "contact_id", "is the user themselves"
        ),
        ReservedName: invalid("this display name is reserved", "name", "is reserved"),
        UserDeactivated: conflict("user {} is deactivated"),
        TooManyContacts: conflict("user {} has the most contacts allowed"),
        BlockIsSelf: invalid("a user cannot block themselves", "other_id", "is the caller"),
        TooManyBlocks: conflict(f"user {{}} blocks the most people allowed ({MAX_BLOCKS})"),
    }
)


def repository(request: Request) -> Repository[User]:
    users: Repository[User] = request.app.state.users
    return users


router = APIRouter(prefix="/v1/users", tags=["users"])


@router.post("", status_code=201, response_model=CommandAccepted)
async def create_user(body: CreateUserBody, call: CommandCall) -> Any:
    """Admins only: profiles of registered accounts are created by the registration flow."""
    require_role(call.principal, "admin")
    user_id = str(body.user_id or uuid.uuid4())
    accepted = await call.execute(CreateUser(user_id, body.name, body.email), "create")
    call.response.headers["Location"] = f"/v1/users/{accepted.id}"
    return accepted


@router.patch("/{user_id}", response_model=CommandAccepted)
async def update_profile(user_id: uuid.UUID, body: ProfilePatch, call: CommandCall) -> Any:
    require_self_or_admin(call.principal, str(user_id))
    changes = body.model_dump(exclude_unset=True)
    return await call.execute(UpdateProfile(str(user_id), changes), "patch", str(user_id))


@router.post("/{user_id}/deactivate", response_model=CommandAccepted)
async def deactivate(user_id: uuid.UUID, body: DeactivateBody, call: CommandCall) -> Any:
    """Admins only. Deactivating a deactivated user appends nothing (same version back)."""
    require_role(call.principal, "admin")
    return await call.execute(Deactivate(str(user_id), body.reason), "deactivate", str(user_id))


@router.post("/{user_id}/reactivate", response_model=CommandAccepted)
async def reactivate(user_id: uuid.UUID, call: CommandCall) -> Any:
    """Admins only; no body. Reactivating an active user appends nothing."""
    require_role(call.principal, "admin")
    return await call.execute(Reactivate(str(user_id)), "reactivate", str(user_id))


@router.post("/{user_id}/contacts", response_model=CommandAccepted)
async def add_contact(user_id: uuid.UUID, body: ContactBody, call: CommandCall) -> Any:
    """The user or an admin; adding twice is a no-op. Any id is accepted (unknown ids are not
    told apart from users who registered a moment ago: enumeration); the contact list shows
    names of visible users only."""
    require_self_or_admin(call.principal, str(user_id))
    command = AddContact(str(user_id), str(body.contact_id))
    return await call.execute(command, "contacts.add", str(user_id))


@router.delete("/{user_id}/contacts/{contact_id}", response_model=CommandAccepted)
async def remove_contact(user_id: uuid.UUID, contact_id: uuid.UUID, call: CommandCall) -> Any:
    """The user or an admin. Removing a contact that is not one is a no-op (200, same
    version): DELETE is idempotent."""
    require_self_or_admin(call.principal, str(user_id))
    command = RemoveContact(str(user_id), str(contact_id))
    return await call.execute(command, "contacts.remove", str(user_id), str(contact_id))


# `me` or the caller's own id: a block list is the person's alone (admins included: they
# moderate by deactivating, never by editing whom someone hears from; docs/decisions.md)
SelfId = Annotated[str, Path(pattern=r"^(me|[0-9a-fA-F-]{32,36})$", max_length=36)]


def blocker(call: CommandCall, user_id: str) -> str:
    if user_id == "me":
        return call.principal.user_id
    try:
        given = str(uuid.UUID(user_id))
    except ValueError as error:
        raise Problem(422, "Unprocessable Content", "user_id is `me` or a user id") from error
    if given != call.principal.user_id:
        raise Problem(403, "Forbidden", "only the person themself may change their blocks")
    return given


@router.put("/{user_id}/blocks/{other_id}", response_model=CommandAccepted)
async def block(user_id: SelfId, other_id: uuid.UUID, call: CommandCall) -> Any:
    """The caller blocks `other_id` (`user_id`: `me` or the caller's id; anyone else's: 403,
    admins too). Blocking someone blocked already is a no-op (200, same version); oneself:
    422; more than 1,000 people: 409. Any id is accepted (whether it is a user is not
    checked)."""
    me = blocker(call, user_id)
    return await call.execute(Block(me, str(other_id)), "blocks.put", me, str(other_id))


@router.delete("/{user_id}/blocks/{other_id}", response_model=CommandAccepted)
async def unblock(user_id: SelfId, other_id: uuid.UUID, call: CommandCall) -> Any:
    """The caller unblocks `other_id`; unblocking someone not blocked is a no-op (200, same
    version)."""
    me = blocker(call, user_id)
    return await call.execute(Unblock(me, str(other_id)), "blocks.delete", me, str(other_id))


@router.put("/{user_id}/role", response_model=CommandAccepted)
async def assign_role(user_id: uuid.UUID, body: RoleBody, call: CommandCall) -> Any:
    """Admins only. The role the users context shows; the role inside access tokens is the
    auth service's (`python -m parley_auth.admin grant-admin`), which this service mirrors."""
    require_role(call.principal, "admin")
    return await call.execute(AssignRole(str(user_id), body.role), "role", str(user_id))


@router.delete("/{user_id}", response_model=CommandAccepted)
async def forget_user(user_id: uuid.UUID, call: CommandCall) -> Any:
    """Forget the person (the user themselves or an admin): the key owner (auth) destroys
    their data key and closes the account, then `UserForgotten` is published; read models
    redact them. Idempotent: again = 200 with the same version.

    The person themselves needs a fresh authentication: an access token whose login
    (`auth_time`) is under 5 minutes old, else 401 `/problems/fresh-authentication-required`.
    With the password at hand, a client logs in again (`POST /v1/auth/login`) and retries
    with the new token: the password goes to auth only. An admin deleting someone else
    needs no more than the admin role."""
    require_self_or_admin(call.principal, str(user_id))
    if call.principal.user_id == str(user_id):
        require_fresh_authentication(call.principal, FRESH_AUTH_S)
    keys: KeyOwner = call.request.app.state.keys
    ctx = call.context("forget", str(user_id))
    try:
        await keys.forget(
            str(user_id), actor=call.principal.user_id, correlation_id=ctx.metadata.correlation_id
        )
    except KeyUnavailable as error:
        raise try_again_soon("the key service did not answer; retry") from error
    return await call.execute(
        ForgetUser(str(user_id), call.principal.user_id), "forget", str(user_id)
    )


# -- history (routed to this service by nginx: the event store is the command side's) -------


async def self_or_admin(_: Request, user_id: str, principal: Principal) -> None:
    require_self_or_admin(principal, user_id)


history_routes(router, "user", repository, self_or_admin, param="user_id")


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
