"""FastAPI wiring: bearer-token dependencies and authorisation checks answering problem+json.

    install_authn(app, verifier, revocations)      # once, in the service's bootstrap()

    @router.get("/users/{user_id}")
    async def get_user(user_id: str, principal: CurrentPrincipal) -> ...:
        require_self_or_admin(principal, user_id)

401 (``WWW-Authenticate: Bearer ...``) for a missing, malformed, invalid, expired or revoked
token; 403 for a valid principal that may not do this; 503 while the revocation list has not
caught up yet (fail closed: a logged-out token must never pass because the service just
started). The app must have ``parley_http.problems.install_problem_handlers``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPBearer
from parley_http.problems import Problem, try_again_soon

from parley_authn.tokens import InvalidToken, Principal, Role, Verifier

REALM = "parley"
# RFC 6750 2.1: "Bearer" 1*SP b64token
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)

# declares the scheme in the OpenAPI document; the header itself is parsed below
_openapi_scheme = HTTPBearer(auto_error=False, description="Parley access token (EdDSA JWT)")


class Revocations(Protocol):
    """What the dependencies need from :class:`parley_authn.revocation.RevocationList`."""

    @property
    def ready(self) -> bool: ...

    def is_revoked(self, session_id: str) -> bool: ...


@dataclass(frozen=True)
class Authn:
    verifier: Verifier
    revocations: Revocations | None


def install_authn(app: FastAPI, verifier: Verifier, revocations: Revocations | None) -> None:
    """Make the dependencies below work in ``app`` (stored as ``app.state.authn``).

    ``revocations=None`` turns the revocation check off (tests; never in a deployment). The
    service's lifespan starts and stops the list (``async with revocations:``).
    """
    app.state.authn = Authn(verifier, revocations)


def unauthorized(reason: str | None) -> Problem:
    """401 with the RFC 6750 challenge: no error code when no token was sent at all."""
    if reason is None:
        challenge = f'Bearer realm="{REALM}"'
        detail = "this request needs an access token (Authorization: Bearer ...)"
    else:
        challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{reason}"'
        detail = reason
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail)


async def authenticate(request: Request) -> Principal | None:
    """The principal of the request's bearer token, None without an Authorization header;
    raises a 401/503 :class:`Problem` for a token that does not pass."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    match = _BEARER.match(header)
    if match is None:
        raise unauthorized("malformed Authorization header")
    authn: Authn | None = getattr(request.app.state, "authn", None)
    if authn is None:
        raise RuntimeError("install_authn(app, ...) was not called")
    try:
        principal = await authn.verifier.verify(match.group(1))
    except InvalidToken as error:
        raise unauthorized(error.reason) from None
    if authn.revocations is not None:
        if not authn.revocations.ready:
            raise try_again_soon("the session revocation list is still loading; retry")
        if authn.revocations.is_revoked(principal.session_id):
            raise unauthorized("token revoked")
    return principal


async def optional_principal(
    request: Request, _scheme: object = Depends(_openapi_scheme)
) -> Principal | None:
    """Dependency: the principal, or None for an anonymous request. A token that is present
    but does not pass still gets 401 (never silently treated as anonymous)."""
    return await authenticate(request)


async def require_principal(
    request: Request, _scheme: object = Depends(_openapi_scheme)
) -> Principal:
    """Dependency: the principal; 401 without a valid token."""
    principal = await authenticate(request)
    if principal is None:
        raise unauthorized(None)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def require_role(principal: Principal, role: Role) -> None:
    """403 unless the principal has ``role`` (``admin`` also passes a ``user`` check)."""
    if principal.role != role and not principal.is_admin:
        raise forbidden(f"this needs the {role} role")


FRESH_AUTHENTICATION = "/problems/fresh-authentication-required"


def require_fresh_authentication(principal: Principal, max_age_s: int) -> None:
    """401 unless the principal gave their password less than ``max_age_s`` ago (the token's
    ``auth_time``; a refresh keeps the login's). The answer is RFC 9470's step-up challenge
    (``insufficient_user_authentication`` with ``max_age``): the client logs in again with
    the password (``POST /v1/auth/login``) and retries with the new access token."""
    if principal.authenticated_within(max_age_s):
        return
    challenge = (
        f'Bearer realm="{REALM}", error="insufficient_user_authentication", '
        f'error_description="a fresh authentication is required", max_age={max_age_s}'
    )
    raise Problem(
        401,
        "Unauthorized",
        f"this needs a login (your password) less than {max_age_s // 60} minutes old: "
        "log in again and retry with the new access token",
        type_=FRESH_AUTHENTICATION,
        headers={"WWW-Authenticate": challenge},
        max_age=max_age_s,
    )


def require_self_or_admin(principal: Principal, user_id: str) -> None:
    """403 unless the principal is that user or an admin."""
    if principal.user_id != user_id and not principal.is_admin:
        raise forbidden("only the user themself or an admin may do this")
