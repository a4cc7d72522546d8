"""auth-api's internal endpoints through the running cluster (issue 19): every caller holds its
own credential and is refused outside its scopes (a projector's cannot destroy a key or mint a
code, chat-api's cannot destroy keys, ...), a refused call changes nothing, a destruction is
audit-logged, and nothing internal is reachable through nginx (:8080) or on auth-api's public
port: only on its internal port, which nginx never proxies."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from parley_auth.callers import (
    CODES_MINT,
    KEYS_CREATE,
    KEYS_DESTROY,
    KEYS_READ,
    STANDARD_CALLERS,
)
from parley_testing.privacy import caller_credential, keys_url, state_dir

# scope -> (method, path, body); {subject} is filled in per call
ROUTES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    KEYS_READ: ("GET", "/internal/v1/keys/{subject}", None),
    KEYS_CREATE: ("POST", "/internal/v1/keys/{subject}", None),
    KEYS_DESTROY: ("DELETE", "/internal/v1/keys/{subject}", None),
    CODES_MINT: ("POST", "/internal/v1/verification-codes", {"user_id": "{subject}"}),
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth_public_url() -> str:
    host = os.environ.get("PARLEY_HOST", "127.0.0.1")
    return f"http://{host}:{int(os.environ.get('PARLEY_SERVICE_PORT_BASE', '8100')) + 2}"


async def call(
    client: httpx.AsyncClient, scope: str, token: str | None, subject: str
) -> httpx.Response:
    method, path, body = ROUTES[scope]
    payload = {k: v.format(subject=subject) for k, v in body.items()} if body else None
    return await client.request(
        method,
        path.format(subject=subject),
        json=payload,
        headers=bearer(token) if token else {},
    )


@pytest.fixture
async def internal() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=keys_url(), timeout=10) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[bool]], wait_s: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + wait_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.2)


async def test_every_caller_is_refused_outside_its_scope(internal: httpx.AsyncClient) -> None:
    for caller, scopes in STANDARD_CALLERS.items():
        token = caller_credential(caller)
        for scope in ROUTES:
            if scope in scopes:
                continue  # what it may do is exercised by the services' own flows
            subject = str(uuid.uuid4())
            refused = await call(internal, scope, token, subject)
            assert refused.status_code == 403, (caller, scope, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            assert scope in refused.json()["detail"]


async def test_a_projector_cannot_destroy_a_key_or_mint_a_code_and_changes_nothing(
    internal: httpx.AsyncClient,
) -> None:
    subject = str(uuid.uuid4())
    made = await call(internal, KEYS_CREATE, caller_credential("chat-api"), subject)
    assert made.status_code == 200, made.text
    projectors = (
        "projector-users",
        "projector-chat",
        "projector-notifications",
        "projector-search",
    )
    for projector in projectors:
        token = caller_credential(projector)
        assert (await call(internal, KEYS_DESTROY, token, subject)).status_code == 403
        assert (await call(internal, CODES_MINT, token, subject)).status_code == 403
        assert (await call(internal, KEYS_CREATE, token, str(uuid.uuid4()))).status_code == 403
        read = await call(internal, KEYS_READ, token, subject)
        assert read.status_code == 200 and read.json()["kid"] == made.json()["kid"]
    # chat-api, notifications-api and the realtime gateway cannot destroy keys either
    for caller in ("chat-api", "notifications-api", "realtime-gateway"):
        refused = await call(internal, KEYS_DESTROY, caller_credential(caller), subject)
        assert refused.status_code == 403, (caller, refused.text)
    still = await call(internal, KEYS_READ, caller_credential("realtime-gateway"), subject)
    assert still.status_code == 200 and still.json()["key"] == made.json()["key"]


async def test_no_credential_another_callers_secret_or_the_retired_token_is_401(
    internal: httpx.AsyncClient,
) -> None:
    users_secret = caller_credential("users-api").partition(".")[2]
    retired = state_dir() / "internal-token"  # the shared token before issue 19, if any
    tokens: list[str | None] = [None, f"projector-chat.{users_secret}", users_secret]
    if retired.exists():
        tokens.append(retired.read_text().strip())
    for token in tokens:
        for scope in ROUTES:
            refused = await call(internal, scope, token, str(uuid.uuid4()))
            assert refused.status_code == 401, (scope, refused.text)


async def test_only_users_api_destroys_a_key_and_the_destruction_is_audit_logged(
    internal: httpx.AsyncClient,
) -> None:
    subject = str(uuid.uuid4())
    correlation = f"e2e-{uuid.uuid4()}"
    token = caller_credential("users-api")
    assert (await call(internal, KEYS_CREATE, token, subject)).status_code == 200
    destroyed = await internal.delete(
        f"/internal/v1/keys/{subject}",
        headers={**bearer(token), "X-Correlation-Id": correlation, "X-Parley-Actor": "e2e"},
    )
    assert destroyed.status_code == 204, destroyed.text
    gone = await call(internal, KEYS_READ, caller_credential("projector-users"), subject)
    assert gone.status_code == 410
    log = state_dir() / "logs" / "auth-api.log"

    async def logged() -> bool:
        for line in log.read_text(errors="replace").splitlines()[-2000:]:
            if subject in line and "key destroyed" in line:
                entry = json.loads(line)
                assert entry["caller"] == "users-api" and entry["actor"] == "e2e"
                assert entry["correlation_id"] == correlation
                assert token.partition(".")[2] not in line  # never the secret
                return True
        return False

    await eventually(logged)


@pytest.mark.parametrize("scope", list(ROUTES))
async def test_nothing_internal_is_reachable_through_nginx_or_the_public_port(
    gateway_url: str, scope: str
) -> None:
    token = caller_credential("users-api")  # the most powerful credential there is
    subject = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as gateway:
        answer = await call(gateway, scope, token, subject)
        assert answer.status_code == 404, answer.text
        method, path, _ = ROUTES[scope]
        target = path.format(subject=subject)
        for spelling in (
            f"/{target}",
            target.replace("/internal/", "/%69nternal/"),
            f"/v1/auth/..{target}",
            f"/v1/auth/%2e%2e{target}",
            f"/v1/users/%2e%2e/%2e%2e{target}",
        ):
            tried = await gateway.request(method, spelling, headers=bearer(token))
            assert tried.status_code in (400, 404, 405), (spelling, tried.status_code)
    async with httpx.AsyncClient(base_url=auth_public_url(), timeout=10) as public:
        direct = await call(public, scope, token, subject)
        assert direct.status_code in (404, 405), direct.text
    if scope == KEYS_DESTROY:  # and nothing was destroyed on the way
        async with httpx.AsyncClient(base_url=keys_url(), timeout=10) as internal:
            read = await call(internal, KEYS_READ, caller_credential("projector-users"), subject)
            assert read.status_code == 404, read.text
