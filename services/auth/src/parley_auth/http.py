"""HTTP entry point: validates bodies, calls the handlers, maps outcomes to responses.

Command responses carry the account id, its new version and an `X-Consistency-Token`
(context "auth"); every refusal is problem+json. Enumeration-safe commands (register with a
taken address, password reset) answer exactly as for a fresh address.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from parley_commandkit import SHARED, Commands, Context, conflict, forbidden, invalid
from parley_eventstore.records import AppendResult, ConcurrencyError, Metadata
from parley_http.commands import CorrelationId, hand_out_token
from parley_http.problems import Problem
from parley_observability.tracing import current_traceparent
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from parley_auth import handlers as h
from parley_auth.domain import AccountNotFound, password_problems
from parley_auth.tokens import AccessClaims

CONTEXT = "auth"
Authorization = Annotated[str | None, Header(max_length=8192)]
EMAIL = r"^\s*[^@\s]{1,64}@[^@\s]{1,255}\s*$"
Email = Annotated[str, Field(pattern=EMAIL, max_length=320)]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
Code = Annotated[str, Field(pattern=r"^\s*[0-9]{6}\s*$")]
BEARER = {"WWW-Authenticate": 'Bearer realm="parley"'}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _policy(password: str, email: str) -> str:
    problems = password_problems(password, email)
    if problems:
        raise ValueError("; ".join(problems))
    return password


class RegisterBody(Body):
    email: Email
    password: Password
    name: str = Field(min_length=1, max_length=200)

    @field_validator("password")
    @classmethod
    def strong_password(cls, value: str, info: ValidationInfo) -> str:
        return _policy(value, info.data.get("email", ""))


class VerifyBody(Body):
    email: Email
    code: Code


class LoginBody(Body):
    email: Email
    password: Password


class RefreshBody(Body):
    refresh_token: str = Field(min_length=1, max_length=200)


class ResetBody(Body):
    email: Email


class ResetConfirmBody(Body):
    email: Email
    code: Code
    new_password: Password

    @field_validator("new_password")
    @classmethod
    def strong_password(cls, value: str, info: ValidationInfo) -> str:
        return _policy(value, info.data.get("email", ""))


class ChangeEmailBody(Body):
    new_email: Email
    password: Password


class ChangeEmailConfirmBody(Body):
    code: Code


class IntrospectBody(Body):
    token: str = Field(min_length=1, max_length=8192)
    token_type_hint: str | None = Field(default=None, max_length=50)


class CommandAccepted(BaseModel):
    id: str
    version: int


class Registered(CommandAccepted):
    user_id: str
    status: str = "verification_pending"


class Accepted(BaseModel):
    status: str = "accepted"


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 (the RFC 6750 scheme name)
    expires_in: int
    user_id: str
    session_id: str
    id: str
    version: int


def auth_of(request: Request) -> h.Auth:
    auth: h.Auth = request.app.state.auth
    return auth


def client_address(request: Request) -> str | None:
    """The first hop of X-Forwarded-For (nginx appends the peer), else the TCP peer."""
    forwarded = request.headers.get("x-forwarded-for", "")
    first = forwarded.split(",")[0].strip()[:100]
    if first:
        return first
    return request.client.host if request.client else None


def context(request: Request, correlation_id: str | None, actor: str | None = None) -> Context:
    metadata = Metadata(
        correlation_id=correlation_id or str(uuid.uuid4()),
        actor=actor,
        traceparent=current_traceparent(),
    )
    return Context(metadata, client_address=client_address(request))


def accepted(outcome: AppendResult, response: Response) -> dict[str, Any]:
    version = outcome.reported_version
    hand_out_token(response, CONTEXT, outcome.stream_id, max(1, version))
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
    try:
        return await query
    except Exception as error:
        problem = ERRORS.problem(error)
        if problem is None:
            raise
        raise problem from error


def token_pair(tokens: h.Tokens, response: Response) -> TokenPair:
    ids = accepted(tokens.outcome, response)
    response.headers["Cache-Control"] = "no-store"
    return TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.claims.exp - tokens.claims.iat,
        user_id=tokens.claims.sub,
        session_id=tokens.claims.sid,
        **ids,
    )


router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/register", status_code=202, response_model=Registered)
async def register(
    body: RegisterBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    outcome = await run(request, h.Register(body.email, body.password, body.name), ctx)
    ids = accepted(outcome, response)
    return Registered(user_id=ids["id"], **ids)


@router.post("/verify-otp", response_model=CommandAccepted)
async def verify_otp(
    body: VerifyBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    outcome = await run(request, h.VerifyEmail(body.email, body.code.strip()), ctx)
    return accepted(outcome, response)


@router.post("/login", response_model=TokenPair)
async def login(
    body: LoginBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    tokens = await run(request, h.LogIn(body.email, body.password), ctx)
    return token_pair(tokens, response)


@router.post("/refresh", response_model=TokenPair)
async def refresh(
    body: RefreshBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    tokens = await run(request, h.Refresh(body.refresh_token), ctx)
    return token_pair(tokens, response)


@router.post("/logout", response_model=CommandAccepted)
async def logout(
    request: Request,
    response: Response,
    authorization: Authorization = None,
    correlation_id: CorrelationId = None,
) -> Any:
    claims = await principal(request, authorization)
    ctx = context(request, correlation_id, actor=claims.sub)
    outcome = await run(request, h.LogOut(claims), ctx)
    return accepted(outcome, response)


@router.post("/password-reset", status_code=202, response_model=Accepted)
async def password_reset(
    body: ResetBody, request: Request, correlation_id: CorrelationId = None
) -> Any:
    await run(request, h.RequestPasswordReset(body.email), context(request, correlation_id))
    return Accepted()


@router.post("/password-reset/confirm", response_model=CommandAccepted)
async def password_reset_confirm(
    body: ResetConfirmBody,
    request: Request,
    response: Response,
    correlation_id: CorrelationId = None,
) -> Any:
    ctx = context(request, correlation_id)
    command = h.ConfirmPasswordReset(body.email, body.code.strip(), body.new_password)
    outcome = await run(request, command, ctx)
    return accepted(outcome, response)


@router.post("/change-email", status_code=202, response_model=Accepted)
async def change_email(
    body: ChangeEmailBody,
    request: Request,
    authorization: Authorization = None,
    correlation_id: CorrelationId = None,
) -> Any:
    claims = await principal(request, authorization)
    ctx = context(request, correlation_id, actor=claims.sub)
    await run(request, h.RequestEmailChange(claims, body.new_email, body.password), ctx)
    return Accepted()


@router.post("/change-email/confirm", response_model=CommandAccepted)
async def change_email_confirm(
    body: ChangeEmailConfirmBody,
    request: Request,
    response: Response,
    authorization: Authorization = None,
    correlation_id: CorrelationId = None,
) -> Any:
    claims = await principal(request, authorization)
    ctx = context(request, correlation_id, actor=claims.sub)
    outcome = await run(request, h.ConfirmEmailChange(claims, body.code.strip()), ctx)
    return accepted(outcome, response)


INTROSPECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": IntrospectBody.model_json_schema()},
            "application/json": {"schema": IntrospectBody.model_json_schema()},
        },
    }
}


async def introspect_body(request: Request) -> IntrospectBody:
    """RFC 7662 sends a form; JSON is accepted too. Both go through the same model."""
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/x-www-form-urlencoded":
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
            data: Any = {k: v[0] for k, v in form.items()}
        else:
            data = json.loads(raw or b"null")
        return IntrospectBody.model_validate(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "not a form or JSON body", "type": "value_error"}]
        ) from error
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from error


@router.post("/introspect", openapi_extra=INTROSPECT_BODY)
async def introspect(request: Request, response: Response) -> dict[str, Any]:
    body = await introspect_body(request)
    response.headers["Cache-Control"] = "no-store"
    return await h.introspect(auth_of(request), body.token)


@router.get("/me")
async def me(request: Request, response: Response, authorization: Authorization = None) -> Any:
    claims = await principal(request, authorization)
    response.headers["Cache-Control"] = "no-store"
    return await answer(h.me(auth_of(request), claims))


well_known = APIRouter(tags=["keys"])


@well_known.get("/.well-known/jwks.json")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    # verifiers cache it; a rotation publishes the new key before it signs (previous kept)
    response.headers["Cache-Control"] = "public, max-age=300"
    return auth_of(request).keys.jwks()


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(well_known)
