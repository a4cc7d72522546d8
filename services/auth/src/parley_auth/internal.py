"""Auth's internal routes: service-to-service only, on their own port (AUTH_INTERNAL_PORT)
that the gateway never proxies; the public app does not serve /internal at all. Each caller
presents its own credential and may do only what its scopes allow (parley_auth.callers):
verification codes for the notifications service, the data keys of crypto-shredding
(parley_privacy's key owner) for the services that seal or open personal fields, and key
destruction for the users service alone, audit-logged and rate-limited per caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Header, Path, Request, Response
from parley_http.commands import CorrelationId
from parley_http.edge import install_edge
from parley_http.problems import Problem
from parley_privacy.client import key_body
from parley_privacy.keys import SubjectForgotten

from parley_auth import commands
from parley_auth import handlers as h
from parley_auth.callers import (
    CODES_MINT,
    KEYS_CREATE,
    KEYS_DESTROY,
    KEYS_READ,
    TOKENS_INTROSPECT,
    Caller,
)
from parley_auth.config import Settings
from parley_auth.web import BEARER, Authorization, Body, auth_of, bearer_token, context, run

internal = APIRouter(prefix="/internal/v1", tags=["internal"], include_in_schema=False)
log = logging.getLogger("parley.auth.internal")
# one JSON line per key destruction (and per refused attempt), fields apart: who, whom, which
# request; never the credential
audit = structlog.get_logger("parley.auth.audit")


class CodeRequest(Body):
    user_id: uuid.UUID


def require_scope(request: Request, authorization: str | None, scope: str) -> Caller:
    """The caller, if its credential is valid (else 401) and grants `scope` (else 403). No
    callers configured: every call is refused (fail closed)."""
    caller = auth_of(request).callers.authenticate(bearer_token(authorization))
    if caller is None:
        raise Problem(
            401, "Unauthorized", "an internal service credential is required", headers=BEARER
        )
    if not caller.may(scope):
        log.warning(
            "internal caller %s refused: %s %s needs %s",
            caller.name,
            request.method,
            request.url.path,
            scope,
        )
        if scope == KEYS_DESTROY:
            audit.warning("key destruction refused", caller=caller.name, reason="scope")
        raise Problem(403, "Forbidden", f"this caller may not do this (needs {scope})")
    return caller


def require_internal_caller(
    request: Request, authorization: str | None, scope: str = TOKENS_INTROSPECT
) -> Caller:
    """An internal caller's credential with `scope` (RFC 7662 introspection by default: the
    one route outside the internal app that takes a service credential)."""
    return require_scope(request, authorization, scope)


@internal.post("/verification-codes")
async def verification_code(
    body: CodeRequest, request: Request, response: Response, authorization: Authorization = None
) -> dict[str, Any]:
    """A fresh email-verification code for a registering account, for the notifications service
    to mail (the code never travels on Kafka and is stored here only as a keyed hash)."""
    require_scope(request, authorization, CODES_MINT)
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
    require_scope(request, authorization, KEYS_READ)
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
    require_scope(request, authorization, KEYS_CREATE)
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
    calls this for `DELETE /v1/users/{id}` before it appends UserForgotten; nobody else may.
    At most AUTH_KEY_DESTROY_BURST at once and AUTH_KEY_DESTROY_RATE_PER_S after that per
    caller (429 with Retry-After beyond)."""
    caller = require_scope(request, authorization, KEYS_DESTROY)
    auth = auth_of(request)
    ctx = context(request, correlation_id, actor)
    who = {
        "caller": caller.name,
        "subject": subject,
        "actor": actor,
        "correlation_id": ctx.metadata.correlation_id,
        "request_id": request.headers.get("x-request-id"),
    }
    wait_s = auth.destroy_limit.take(caller.name, time.monotonic())
    if wait_s > 0:
        audit.warning("key destruction refused", reason="rate", **who)
        retry = str(max(1, math.ceil(min(wait_s, 3600.0))))
        raise Problem(
            429,
            "Too Many Requests",
            "too many key destructions; retry later",
            headers={"Retry-After": retry},
        )
    await run(request, commands.Forget(subject), ctx)
    audit.info("key destroyed", **who)
    return Response(status_code=204)


# -- the internal app and its server ----------------------------------------------------------


def internal_app(public: FastAPI, settings: Settings) -> FastAPI:
    """The internal routes as an app of their own, sharing the public app's state (the
    handlers' Auth, the command bus: both built by its lifespan, so this app has none)."""
    app = FastAPI(
        title="Parley auth (internal)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=None,
    )
    app.state = public.state
    install_edge(app, max_body_bytes=settings.max_body_bytes)
    app.include_router(internal)
    return app


class _Embedded(uvicorn.Server):
    """A second server in the main server's event loop: the main one owns the signals (its
    shutdown runs the lifespan, whose `stop` ends this one), so this one takes none."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class InternalServer:
    """Serves the internal app on AUTH_INTERNAL_PORT for as long as the public app runs (a
    job of its lifespan); `started` feeds readiness."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=3,
        )
        self.server = _Embedded(config)

    async def serve(self, stop: asyncio.Event) -> None:
        task = asyncio.create_task(self.server.serve())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        self.server.should_exit = True
        stopping.cancel()
        await task
        if not stop.is_set():  # it ended by itself (the port taken, say): say so, loudly
            log.error("the internal server stopped; internal callers are refused")

    async def ready(self) -> bool:
        return bool(self.server.started) and not self.server.should_exit
