"""HTTP entry point: validates bodies, calls the handlers, maps outcomes to responses.

Command responses carry the account id, its new version and an `X-Consistency-Token`
(context "auth"); every refusal is problem+json. Enumeration-safe commands (register with a
taken address, password reset) answer exactly as for a fresh address.
"""

from __future__ import annotations

import hmac
import json
import uuid
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from parley_eventstore.records import AppendResult, ConcurrencyError, Metadata
from parley_http.commands import CorrelationId, hand_out_token
from parley_http.problems import Problem
from parley_observability.tracing import current_traceparent
from parley_privacy.client import key_body
from parley_privacy.keys import SubjectForgotten
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


def context(request: Request, correlation_id: str | None, actor: str | None = None) -> h.Context:
    metadata = Metadata(
        correlation_id=correlation_id or str(uuid.uuid4()),
        actor=actor,
        traceparent=current_traceparent(),
    )
    return h.Context(metadata, client_address(request))


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


async def run(coroutine: Any) -> Any:
    """Await a handler, mapping its refusals to problems."""
    try:
        return await coroutine
    except h.InvalidCredentials as error:
        raise Problem(401, "Unauthorized", "invalid credentials", headers=BEARER) from error
    except h.NotAuthenticated as error:
        raise Problem(
            401, "Unauthorized", "a valid access token is required", headers=BEARER
        ) from error
    except h.AccountInactive as error:
        raise Problem(
            403,
            "Forbidden",
            "the account is not active: verify your email address, and if you just did, "
            "retry in a moment (the registration is still completing)",
        ) from error
    except h.WrongPassword as error:
        raise Problem(403, "Forbidden", "the password is not correct") from error
    except h.InvalidCode as error:
        raise Problem(400, "Bad Request", "the code is wrong or has expired") from error
    except h.TooManyAttempts as error:
        if error.retry_after is None:
            raise Problem(
                429, "Too Many Requests", "too many attempts for this code: ask for a new one"
            ) from error
        raise Problem(
            429,
            "Too Many Requests",
            "too many wrong codes; retry later",
            headers={"Retry-After": str(error.retry_after)},
            retry_after=error.retry_after,
        ) from error
    except h.Throttled as error:
        raise Problem(
            429,
            "Too Many Requests",
            "too many failed logins; retry later",
            headers={"Retry-After": str(error.retry_after)},
            retry_after=error.retry_after,
        ) from error
    except h.EmailTaken as error:
        raise Problem(409, "Conflict", "this address belongs to another account") from error
    except h.SameEmail as error:
        raise Problem(
            422,
            "Invalid request",
            "the new address is the current one",
            errors=[{"field": "new_email", "message": "unchanged", "type": "value_error"}],
        ) from error
    except AccountNotFound as error:
        raise Problem(
            401, "Unauthorized", "a valid access token is required", headers=BEARER
        ) from error
    except ConcurrencyError as error:
        raise Problem(409, "Conflict", "the account changed meanwhile; retry") from error


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
    outcome = await run(h.register(auth_of(request), body.email, body.password, body.name, ctx))
    ids = accepted(outcome, response)
    return Registered(user_id=ids["id"], **ids)


@router.post("/verify-otp", response_model=CommandAccepted)
async def verify_otp(
    body: VerifyBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    outcome = await run(h.verify_email(auth_of(request), body.email, body.code.strip(), ctx))
    return accepted(outcome, response)


@router.post("/login", response_model=TokenPair)
async def login(
    body: LoginBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    tokens = await run(h.login(auth_of(request), body.email, body.password, ctx))
    return token_pair(tokens, response)


@router.post("/refresh", response_model=TokenPair)
async def refresh(
    body: RefreshBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    tokens = await run(h.refresh(auth_of(request), body.refresh_token, ctx))
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
    outcome = await run(h.logout(auth_of(request), claims, ctx))
    return accepted(outcome, response)


@router.post("/password-reset", status_code=202, response_model=Accepted)
async def password_reset(
    body: ResetBody, request: Request, correlation_id: CorrelationId = None
) -> Any:
    h.request_password_reset(auth_of(request), body.email, context(request, correlation_id))
    return Accepted()


@router.post("/password-reset/confirm", response_model=CommandAccepted)
async def password_reset_confirm(
    body: ResetConfirmBody,
    request: Request,
    response: Response,
    correlation_id: CorrelationId = None,
) -> Any:
    ctx = context(request, correlation_id)
    outcome = await run(
        h.confirm_password_reset(
            auth_of(request), body.email, body.code.strip(), body.new_password, ctx
        )
    )
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
    await run(h.request_email_change(auth_of(request), claims, body.new_email, body.password, ctx))
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
    outcome = await run(h.confirm_email_change(auth_of(request), claims, body.code.strip(), ctx))
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
    return await run(h.me(auth_of(request), claims))


well_known = APIRouter(tags=["keys"])


@well_known.get("/.well-known/jwks.json")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    # verifiers cache it; a rotation publishes the new key before it signs (previous kept)
    response.headers["Cache-Control"] = "public, max-age=300"
    return auth_of(request).keys.jwks()


internal = APIRouter(prefix="/internal/v1", tags=["internal"], include_in_schema=False)


class CodeRequest(Body):
    user_id: uuid.UUID


def require_internal_caller(request: Request, authorization: str | None) -> None:
    """Service-to-service calls carry the shared internal token (never routed by nginx: only
    reachable inside the cluster network). No token configured: the endpoint is off."""
    expected = auth_of(request).settings.internal_token
    presented = bearer_token(authorization) or ""
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Problem(401, "Unauthorized", "an internal service token is required", headers=BEARER)


@internal.post("/verification-codes")
async def verification_code(
    body: CodeRequest, request: Request, response: Response, authorization: Authorization = None
) -> dict[str, Any]:
    """A fresh email-verification code for a registering account, for the notifications service
    to mail (the code never travels on Kafka and is stored here only as a keyed hash)."""
    require_internal_caller(request, authorization)
    response.headers["Cache-Control"] = "no-store"
    try:
        issued = await h.verification_code(auth_of(request), str(body.user_id))
    except h.AlreadyVerified as error:
        raise Problem(409, "Conflict", "the address of this account is verified already") from error
    if issued is None:
        raise Problem(404, "Not Found", "no account waiting for verification with this id")
    email, code = issued
    ttl = auth_of(request).settings.code_ttl_s
    return {"user_id": str(body.user_id), "email": email, "code": code, "expires_in": ttl}


# -- data keys (crypto-shredding, parley_privacy): the key owner's endpoint ---------------------

Subject = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")]


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


@internal.get("/keys/{subject}")
async def read_key(
    subject: Subject, request: Request, response: Response, authorization: Authorization = None
) -> dict[str, str]:
    """The subject's data key: 404 none yet, 410 forgotten."""
    require_internal_caller(request, authorization)
    auth = auth_of(request)
    _no_store(response)
    key = await auth.subject_keys.key(subject)
    if key is None:
        if await auth.subject_keys.is_forgotten(subject):
            raise Problem(410, "Gone", "this subject was forgotten")
        raise Problem(404, "Not Found", "no key for this subject")
    return key_body(key)


@internal.post("/keys/{subject}")
async def key_for_writing(
    subject: Subject, request: Request, response: Response, authorization: Authorization = None
) -> dict[str, str]:
    """The subject's data key, created on first use: 410 once forgotten."""
    require_internal_caller(request, authorization)
    auth = auth_of(request)
    _no_store(response)
    try:
        return key_body(await auth.subject_keys.key_for_writing(subject))
    except SubjectForgotten as error:
        raise Problem(410, "Gone", "this subject was forgotten") from error


@internal.delete("/keys/{subject}", status_code=204)
async def forget_subject(
    subject: Subject,
    request: Request,
    correlation_id: CorrelationId = None,
    actor: Annotated[str | None, Header(alias="X-Parley-Actor", max_length=200)] = None,
    authorization: Authorization = None,
) -> Response:
    """Forget the subject: key destroyed, account closed (idempotent). The users service
    calls this for `DELETE /v1/users/{id}` before it appends UserForgotten."""
    require_internal_caller(request, authorization)
    auth = auth_of(request)
    await run(h.forget(auth, subject, context(request, correlation_id, actor)))
    return Response(status_code=204)


def include_routes(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(well_known)
    app.include_router(internal)
