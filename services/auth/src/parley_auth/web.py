"""What auth's routes share (public and internal): the caller's context and address, the
bearer token, running a command through the bus with the error map, the accepted response."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header, Request, Response
from parley_commandkit import SHARED, Commands, Context, conflict, forbidden, invalid
from parley_eventstore.records import AppendResult, ConcurrencyError, Metadata
from parley_http.commands import hand_out_token
from parley_http.problems import Problem
from parley_observability.tracing import current_traceparent
from pydantic import (
    BaseModel,
    ConfigDict,
)

from parley_auth import handlers as h
from parley_auth.domain import AccountDisabled, AccountNotFound
from parley_auth.tokens import AccessClaims

CONTEXT = "auth"


Authorization = Annotated[str | None, Header(max_length=8192)]


BEARER = {"WWW-Authenticate": 'Bearer realm="parley"'}
ACCOUNT_DISABLED = "/problems/account-disabled"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def auth_of(request: Request) -> h.Auth:
    auth: h.Auth = request.app.state.auth
    return auth


def client_address(request: Request) -> str | None:
    """The client as uvicorn's ProxyHeadersMiddleware resolved it: X-Forwarded-For is read
    only when the TCP peer is a trusted proxy (`FORWARDED_ALLOW_IPS`, the gateway's addresses;
    uvicorn's default is 127.0.0.1 and ::1, the local cluster's nginx), taking the last hop
    that proxy did not vouch for. Anyone else's header is ignored: their address is the peer.
    (Before, the first hop was taken from anyone who reached the service.)"""
    return request.client.host[:100] if request.client else None


def context(request: Request, correlation_id: str | None, actor: str | None = None) -> Context:
    metadata = Metadata(
        correlation_id=correlation_id or str(uuid.uuid4()),
        actor=actor,
        traceparent=current_traceparent(),
    )
    return Context(metadata, client_address=client_address(request))


def accepted(request: Request, outcome: AppendResult, response: Response) -> dict[str, Any]:
    """`{id, version}` and the consistency token, bound to the account written (its stream
    id: the person acting, or, at register and before login, the one who will sign in as it;
    no reader redeems context auth today)."""
    version = outcome.reported_version
    commands: Commands[h.Auth] = request.app.state.commands
    hand_out_token(
        response,
        CONTEXT,
        outcome.stream_id,
        max(1, version),
        caller=outcome.stream_id,
        secret=commands.consistency_secret,
    )
    return {"id": outcome.stream_id, "version": version}


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def principal(request: Request, authorization: str | None) -> AccessClaims:
    try:
        return await h.authenticate(auth_of(request), bearer_token(authorization))
    except h.NotAuthenticated as error:
        raise Problem(
            401, "Unauthorized", "a valid access token is required", headers=BEARER
        ) from error


def _unauthorized(detail: str) -> Callable[[Exception], Problem]:
    return lambda _: Problem(401, "Unauthorized", detail, headers=BEARER)


def _account_disabled(_: Exception) -> Problem:
    """The right password (or a live refresh token) of a deactivated account. Its own type,
    so a client can tell the person to contact support instead of retrying; it reveals
    nothing to enumeration: a wrong password gets the 401 of every failed login first."""
    return Problem(
        403,
        "Forbidden",
        "this account is deactivated; an administrator can reactivate it",
        type_=ACCOUNT_DISABLED,
    )


def _too_many_attempts(error: Exception) -> Problem:
    assert isinstance(error, h.TooManyAttempts)
    if error.retry_after is None:
        return Problem(
            429, "Too Many Requests", "too many attempts for this code: ask for a new one"
        )
    return _retry_later("too many wrong codes; retry later", error.retry_after)


def _throttled(error: Exception) -> Problem:
    assert isinstance(error, h.Throttled)
    return _retry_later("too many failed logins; retry later", error.retry_after)


def _retry_later(detail: str, retry_after: int) -> Problem:
    return Problem(
        429,
        "Too Many Requests",
        detail,
        headers={"Retry-After": str(retry_after)},
        retry_after=retry_after,
    )


ERRORS = SHARED.extend(
    {
        h.InvalidCredentials: _unauthorized("invalid credentials"),
        h.NotAuthenticated: _unauthorized("a valid access token is required"),
        AccountNotFound: _unauthorized("a valid access token is required"),
        AccountDisabled: _account_disabled,
        h.AccountInactive: forbidden(
            "the account is not active: verify your email address, and if you just did, "
            "retry in a moment (the registration is still completing)"
        ),
        h.WrongPassword: forbidden("the password is not correct"),
        h.InvalidCode: lambda _: Problem(400, "Bad Request", "the code is wrong or has expired"),
        h.TooManyAttempts: _too_many_attempts,
        h.Throttled: _throttled,
        h.EmailTaken: conflict("this address belongs to another account"),
        h.SameEmail: invalid("the new address is the current one", "new_email", "unchanged"),
        ConcurrencyError: conflict("the account changed meanwhile; retry"),
    }
)


async def run(request: Request, command: object, ctx: Context) -> Any:
    """Run a command through the bus, its refusals mapped by ERRORS."""
    commands: Commands[h.Auth] = request.app.state.commands
    return await commands.run(command, ctx)


async def answer(query: Awaitable[Any]) -> Any:
    """Await a query, its refusals mapped like a command's."""
    return await ERRORS.answer(query)
