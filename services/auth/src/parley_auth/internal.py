"""Auth's internal routes: service-to-service only (never routed by nginx: reachable inside the
cluster network), each call with the shared internal token. Verification codes for the
notifications service, and the data keys of crypto-shredding (parley_privacy's key owner)."""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from parley_http.commands import CorrelationId
from parley_http.problems import Problem
from parley_privacy.client import key_body
from parley_privacy.keys import SubjectForgotten

from parley_auth import commands
from parley_auth import handlers as h
from parley_auth.web import BEARER, Authorization, Body, auth_of, bearer_token, context, run

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
    await run(request, commands.Forget(subject), context(request, correlation_id, actor))
    return Response(status_code=204)
