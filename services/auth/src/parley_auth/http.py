"""HTTP entry point: validates bodies, calls the handlers, maps outcomes to responses.

Command responses carry the account id, its new version and an `X-Consistency-Token`
(context "auth"); every refusal is problem+json. Enumeration-safe commands (register with a
taken address, password reset) answer exactly as for a fresh address.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from parley_http.commands import CorrelationId
from parley_http.registration import registration_token
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from parley_auth import commands
from parley_auth import handlers as h
from parley_auth.domain import password_problems
from parley_auth.internal import require_internal_caller
from parley_auth.web import (
    Authorization,
    Body,
    accepted,
    answer,
    auth_of,
    context,
    principal,
    run,
)

EMAIL = r"^\s*[^@\s]{1,64}@[^@\s]{1,255}\s*$"


Email = Annotated[str, Field(pattern=EMAIL, max_length=320)]


Password = Annotated[str, Field(min_length=1, max_length=1024)]


Code = Annotated[str, Field(pattern=r"^\s*[0-9]{6}\s*$")]


# the password-reset link's token: 128 random bits, URL-safe base64 (22 characters)
LinkToken = Annotated[str, Field(pattern=r"^\s*[A-Za-z0-9_-]{22,64}\s*$")]


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
    token: LinkToken
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
    # present it as X-Registration-Token to GET /v1/registrations/{user_id} (the only way to
    # read that status); None when the service has no registration secret
    registration_token: str | None = None


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


def token_pair(request: Request, tokens: h.Tokens, response: Response) -> TokenPair:
    ids = accepted(request, tokens.outcome, response)
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
    outcome = await run(request, commands.Register(body.email, body.password, body.name), ctx)
    ids = accepted(request, outcome, response)
    # the decoy id of a taken address gets its token too: the answers stay alike
    secret = auth_of(request).settings.registration_secret
    token = registration_token(secret, ids["id"]) if secret else None
    return Registered(user_id=ids["id"], registration_token=token, **ids)


@router.post("/verify-otp", response_model=CommandAccepted)
async def verify_otp(
    body: VerifyBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    outcome = await run(request, commands.VerifyEmail(body.email, body.code.strip()), ctx)
    return accepted(request, outcome, response)


@router.post("/login", response_model=TokenPair)
async def login(
    body: LoginBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    tokens = await run(request, commands.LogIn(body.email, body.password), ctx)
    return token_pair(request, tokens, response)


@router.post("/refresh", response_model=TokenPair)
async def refresh(
    body: RefreshBody, request: Request, response: Response, correlation_id: CorrelationId = None
) -> Any:
    ctx = context(request, correlation_id)
    tokens = await run(request, commands.Refresh(body.refresh_token), ctx)
    return token_pair(request, tokens, response)


@router.post("/logout", response_model=CommandAccepted)
async def logout(
    request: Request,
    response: Response,
    authorization: Authorization = None,
    correlation_id: CorrelationId = None,
) -> Any:
    claims = await principal(request, authorization)
    ctx = context(request, correlation_id, actor=claims.sub)
    outcome = await run(request, commands.LogOut(claims), ctx)
    return accepted(request, outcome, response)


@router.post("/password-reset", status_code=202, response_model=Accepted)
async def password_reset(
    body: ResetBody, request: Request, correlation_id: CorrelationId = None
) -> Any:
    await run(request, commands.RequestPasswordReset(body.email), context(request, correlation_id))
    return Accepted()


@router.post("/password-reset/confirm", response_model=CommandAccepted)
async def password_reset_confirm(
    body: ResetConfirmBody,
    request: Request,
    response: Response,
    correlation_id: CorrelationId = None,
) -> Any:
    ctx = context(request, correlation_id)
    command = commands.ConfirmPasswordReset(body.email, body.token.strip(), body.new_password)
    outcome = await run(request, command, ctx)
    return accepted(request, outcome, response)


@router.post("/change-email", status_code=202, response_model=Accepted)
async def change_email(
    body: ChangeEmailBody,
    request: Request,
    authorization: Authorization = None,
    correlation_id: CorrelationId = None,
) -> Any:
    claims = await principal(request, authorization)
    ctx = context(request, correlation_id, actor=claims.sub)
    await run(request, commands.RequestEmailChange(claims, body.new_email, body.password), ctx)
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
    outcome = await run(request, commands.ConfirmEmailChange(claims, body.code.strip()), ctx)
    return accepted(request, outcome, response)


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
async def introspect(
    request: Request, response: Response, authorization: Authorization = None
) -> dict[str, Any]:
    """RFC 7662 wants the caller authenticated: the internal service token (a token holder
    decodes its own token; an open oracle of "is this session alive" is not for anyone).
    Not routed by the gateway either."""
    require_internal_caller(request, authorization)
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
    # never the internal routes: they have a port of their own (internal.internal_app)
