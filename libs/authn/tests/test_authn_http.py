"""The FastAPI dependencies through a tiny app: status codes, problem+json, challenges."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from parley_authn import (
    CurrentPrincipal,
    KeySet,
    OptionalPrincipal,
    Verifier,
    install_authn,
    require_role,
    require_self_or_admin,
)
from parley_http.problems import install_problem_handlers
from parley_testing.tokens import Signer, claims, hmac_signed, jwks, unsigned

SIGNER = Signer()


@dataclass
class FakeRevocations:
    ready: bool = True
    revoked: set[str] = field(default_factory=set)

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self.revoked


def make_app(revocations: FakeRevocations | None) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_authn(app, Verifier(KeySet(jwks=jwks(SIGNER))), revocations)

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"user_id": principal.user_id, "role": principal.role}

    @app.get("/maybe")
    async def maybe(principal: OptionalPrincipal) -> dict[str, str | None]:
        return {"user_id": principal.user_id if principal else None}

    @app.get("/admin")
    async def admin(principal: CurrentPrincipal) -> dict[str, bool]:
        require_role(principal, "admin")
        return {"ok": True}

    @app.get("/users/{user_id}")
    async def user(user_id: str, principal: CurrentPrincipal) -> dict[str, str]:
        require_self_or_admin(principal, user_id)
        return {"user_id": user_id}

    return app


@pytest.fixture
def revocations() -> FakeRevocations:
    return FakeRevocations()


@pytest.fixture
async def client(revocations: FakeRevocations) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(revocations))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


def assert_invalid_token(response: httpx.Response) -> None:
    assert_problem(response, 401)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge


async def test_a_valid_token_reaches_the_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=bearer(SIGNER.token(sub="u-1")))
    assert response.status_code == 200
    assert response.json() == {"user_id": "u-1", "role": "user"}


async def test_the_scheme_name_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers={"Authorization": f"bearer {SIGNER.token()}"})
    assert response.status_code == 200


async def test_no_token_is_401_with_a_bare_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert_problem(response, 401)
    # RFC 6750 3.1: no error code when the request carried no credentials at all
    assert response.headers["www-authenticate"] == 'Bearer realm="parley"'


NOW = int(time.time())


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        f"Bearer {SIGNER.token()} extra",
        f"Token {SIGNER.token()}",
        "Bearer not-a-jwt",
        f"Bearer {Signer(kid=SIGNER.kid).token()}",  # wrong key, known kid
        f"Bearer {Signer().token()}",  # unknown kid
        f"Bearer {SIGNER.token(iat=NOW - 1000, exp=NOW - 100)}",  # expired
        f"Bearer {SIGNER.token(aud='other')}",
        f"Bearer {SIGNER.token(iss='other')}",
        f"Bearer {unsigned({'alg': 'none', 'kid': SIGNER.kid}, claims())}",
        f"Bearer {hmac_signed({'alg': 'HS256', 'kid': SIGNER.kid}, claims(), SIGNER.public_raw())}",
        f"Bearer {hmac_signed({'alg': 'HS256', 'kid': SIGNER.kid}, claims(), SIGNER.public_pem())}",
    ],
    ids=[
        "basic",
        "bearer-no-token",
        "bearer-blank",
        "two-tokens",
        "other-scheme",
        "not-a-jwt",
        "wrong-key",
        "unknown-kid",
        "expired",
        "wrong-aud",
        "wrong-iss",
        "alg-none",
        "hs256-raw-public-key",
        "hs256-pem-public-key",
    ],
)
async def test_bad_credentials_are_401_invalid_token(
    client: httpx.AsyncClient, authorization: str
) -> None:
    for path in ("/me", "/maybe"):  # a bad token is never downgraded to anonymous
        assert_invalid_token(await client.get(path, headers={"Authorization": authorization}))


async def test_optional_principal_lets_anonymous_requests_through(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/maybe")).json() == {"user_id": None}
    response = await client.get("/maybe", headers=bearer(SIGNER.token(sub="u-9")))
    assert response.json() == {"user_id": "u-9"}


async def test_a_revoked_session_is_401(
    client: httpx.AsyncClient, revocations: FakeRevocations
) -> None:
    token = SIGNER.token(sid="s-gone")
    assert (await client.get("/me", headers=bearer(token))).status_code == 200
    revocations.revoked.add("s-gone")
    response = await client.get("/me", headers=bearer(token))
    assert_invalid_token(response)
    assert response.json()["detail"] == "token revoked"


async def test_requests_wait_for_the_revocation_list(
    client: httpx.AsyncClient, revocations: FakeRevocations
) -> None:
    revocations.ready = False
    response = await client.get("/me", headers=bearer(SIGNER.token()))
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"


async def test_roles(client: httpx.AsyncClient) -> None:
    user = bearer(SIGNER.token(role="user"))
    admin = bearer(SIGNER.token(role="admin"))
    body = assert_problem(await client.get("/admin", headers=user), 403)
    assert body["title"] == "Forbidden"
    assert (await client.get("/admin", headers=admin)).status_code == 200


async def test_self_or_admin(client: httpx.AsyncClient) -> None:
    alice = bearer(SIGNER.token(sub="alice"))
    admin = bearer(SIGNER.token(sub="root", role="admin"))
    assert (await client.get("/users/alice", headers=alice)).status_code == 200
    assert_problem(await client.get("/users/bob", headers=alice), 403)
    assert (await client.get("/users/bob", headers=admin)).status_code == 200


async def test_without_a_revocation_list_tokens_are_only_verified() -> None:
    transport = httpx.ASGITransport(app=make_app(None))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        assert (await http.get("/me", headers=bearer(SIGNER.token()))).status_code == 200


async def test_the_bearer_scheme_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
