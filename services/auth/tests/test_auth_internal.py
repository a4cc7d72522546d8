"""Auth's internal endpoints with a credential per caller (issue 19): the scope rules without
a server, then the real app over PostgreSQL: each standard caller is refused outside its
scopes, the public app serves no /internal route at all, key destruction is audit-logged and
rate-limited per caller, and the internal port is a real second server in the process."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from parley_auth.bootstrap import bootstrap
from parley_auth.callers import (
    CODES_MINT,
    KEYS_CREATE,
    KEYS_DESTROY,
    KEYS_READ,
    STANDARD_CALLERS,
    Callers,
    RateLimit,
    callers_json,
    credential,
    secret_sha256,
)
from parley_auth.config import Settings
from parley_auth.credentials import main as credentials_main
from parley_auth.migrate import migrate

SECRETS = {name: f"{name}-secret-{'x' * 20}" for name in STANDARD_CALLERS}
CREDENTIALS = {name: credential(name, secret) for name, secret in SECRETS.items()}
# data keys' subjects are people's ids (the account auth closes with the key)
SUBJECTS = {name: str(uuid.uuid4()) for name in ("a", "b", "c", "x")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the rules, no server -------------------------------------------------------------------


def test_a_credential_is_its_callers_name_and_secret_checked_against_the_hash() -> None:
    callers = Callers.from_json(callers_json(SECRETS, STANDARD_CALLERS))
    found = callers.authenticate(CREDENTIALS["projector-chat"])
    assert found is not None and found.name == "projector-chat"
    assert found.scopes == frozenset({KEYS_READ})
    for wrong in (
        None,
        "",
        "projector-chat",  # no secret
        "projector-chat.",
        f"projector-chat.{SECRETS['users-api']}",  # another caller's secret
        f"users-api.{SECRETS['projector-chat']}",  # a name with someone else's secret
        f"nobody.{SECRETS['users-api']}",
        SECRETS["users-api"],
        "parley-dev-internal-token",  # the retired shared token
    ):
        assert callers.authenticate(wrong) is None, wrong
    assert Callers.from_json("").authenticate(CREDENTIALS["users-api"]) is None  # fail closed


def test_the_standard_callers_hold_the_least_scope() -> None:
    holders = {
        scope: {n for n, s in STANDARD_CALLERS.items() if scope in s}
        for scope in (KEYS_READ, KEYS_CREATE, KEYS_DESTROY, CODES_MINT)
    }
    assert holders[KEYS_DESTROY] == {"users-api"}
    assert holders[CODES_MINT] == {"notifications-api"}
    assert holders[KEYS_CREATE] == {"users-api", "chat-api", "notifications-api"}
    for reader in (
        "projector-users",
        "projector-chat",
        "projector-notifications",
        "realtime-gateway",
    ):
        assert STANDARD_CALLERS[reader] == (KEYS_READ,)


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"Users_API": {"secret_sha256": "' + "a" * 64 + '", "scopes": []}}',
        '{"a.b": {"secret_sha256": "' + "a" * 64 + '", "scopes": []}}',
        '{"users-api": {"secret_sha256": "abc", "scopes": ["keys:read"]}}',
        '{"users-api": {"secret_sha256": "' + "a" * 64 + '", "scopes": ["keys:*"]}}',
        '{"users-api": {"secret_sha256": "' + "a" * 64 + '", "scopes": "keys:read"}}',
        '{"users-api": "secret"}',
    ],
)
def test_a_malformed_callers_table_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        Callers.from_json(raw)


def test_the_table_comes_from_the_variable_or_a_file_never_both(tmp_path: Path) -> None:
    path = tmp_path / "callers.json"
    path.write_text(callers_json(SECRETS, STANDARD_CALLERS))
    assert set(Callers.from_settings("", str(path)).by_name) == set(STANDARD_CALLERS)
    assert set(Callers.from_settings(path.read_text(), "").by_name) == set(STANDARD_CALLERS)
    with pytest.raises(ValueError):
        Callers.from_settings(path.read_text(), str(path))


def test_the_rate_limit_is_a_token_bucket_per_caller() -> None:
    limit = RateLimit(rate_per_s=2.0, burst=3)
    assert [limit.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.take("a", 0.0) == pytest.approx(0.5)  # one token back after half a second
    assert limit.take("b", 0.0) == 0.0  # another caller has its own bucket
    assert limit.take("a", 0.5) == 0.0
    assert limit.take("a", 0.5) > 0
    assert limit.take("a", 100.0) == 0.0  # refilled, never above the burst
    assert limit.buckets["a"].tokens == pytest.approx(2.0)


def test_the_credentials_tool_prints_each_callers_credential_and_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert credentials_main(["ops-tool=keys:read", "eraser=keys:destroy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    made = dict(line.split(" ", 1) for line in lines[:2])
    table = Callers.from_json(lines[2].removeprefix("AUTH_INTERNAL_CALLERS="))
    for name, presented in made.items():
        caller = table.authenticate(presented)
        assert caller is not None and caller.name == name
    assert table.by_name["eraser"].scopes == frozenset({KEYS_DESTROY})
    secret = made["ops-tool"].partition(".")[2]
    assert len(secret) >= 43 and secret_sha256(secret) not in lines[2].replace(
        table.by_name["ops-tool"].secret_sha256, ""
    )
    with pytest.raises(SystemExit):
        credentials_main(["ops-tool=keys:everything"])
    assert credentials_main(["--secret-literals"]) == 0
    literals = dict(
        line.removeprefix("--from-literal=").split("=", 1)
        for line in capsys.readouterr().out.splitlines()
    )
    for name in STANDARD_CALLERS:
        made_secret = literals[f"internal-credential-{name}"].removeprefix(f"{name}.")
        assert secret_sha256(made_secret) == literals[f"internal-sha256-{name}"]


# -- the real app over PostgreSQL -----------------------------------------------------------

ROUTES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    KEYS_READ: ("GET", "/internal/v1/keys/{subject}", None),
    KEYS_CREATE: ("POST", "/internal/v1/keys/{subject}", None),
    KEYS_DESTROY: ("DELETE", "/internal/v1/keys/{subject}", None),
    CODES_MINT: ("POST", "/internal/v1/verification-codes", {"user_id": str(uuid.UUID(int=7))}),
}


def settings_for(dsn: str, key_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "postgres_dsn": dsn,
        "key_dir": key_dir,
        "smtp_port": 9,  # no mail is sent here
        "internal_port": 0,  # the internal app in process
        "internal_callers": callers_json(SECRETS, STANDARD_CALLERS),
        "saga_participant": False,
        "follow_user_status": False,
        **overrides,
    }
    return Settings(**values)


async def ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def eventually(check: Callable[[], Awaitable[bool]], wait_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + wait_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clients:
    def __init__(self, public: httpx.AsyncClient, internal: httpx.AsyncClient) -> None:
        self.public, self.internal = public, internal

    async def call(
        self, scope: str, token: str | None, subject: str, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        method, path, body = ROUTES[scope]
        headers = bearer(token) if token else {}
        return await (client or self.internal).request(
            method, path.format(subject=subject), json=body, headers=headers
        )


@pytest.fixture
async def clients(fresh_database: str, tmp_path: Path) -> AsyncIterator[Clients]:
    await migrate(fresh_database)
    app = bootstrap(settings_for(fresh_database, tmp_path))
    async with app.router.lifespan_context(app):
        public = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")
        internal = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app.state.internal_app), base_url="http://a"
        )
        async with public, internal:
            yield Clients(public, internal)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.integration
async def test_each_caller_is_refused_outside_its_scope(clients: Clients) -> None:
    for caller, scopes in STANDARD_CALLERS.items():
        for scope in ROUTES:
            subject = str(uuid.uuid4())
            answer = await clients.call(scope, CREDENTIALS[caller], subject)
            if scope in scopes:
                assert answer.status_code not in (401, 403, 429), (caller, scope, answer.text)
            else:
                body = assert_problem(answer, 403)
                assert scope in body["detail"], (caller, scope)
    # what the standard callers may do, done: a key made, read, destroyed (then 410)
    subject = str(uuid.uuid4())
    assert (await clients.call(KEYS_CREATE, CREDENTIALS["chat-api"], subject)).status_code == 200
    assert (
        await clients.call(KEYS_READ, CREDENTIALS["projector-chat"], subject)
    ).status_code == 200
    assert (await clients.call(KEYS_DESTROY, CREDENTIALS["users-api"], subject)).status_code == 204
    gone = await clients.call(KEYS_READ, CREDENTIALS["realtime-gateway"], subject)
    assert gone.status_code == 410
    # codes: allowed through to the handler, which knows no such account
    unknown = await clients.call(CODES_MINT, CREDENTIALS["notifications-api"], subject)
    assert_problem(unknown, 404)


@pytest.mark.integration
async def test_no_credential_or_a_wrong_one_is_401_and_a_refusal_changes_nothing(
    clients: Clients,
) -> None:
    subject = str(uuid.uuid4())
    assert (await clients.call(KEYS_CREATE, CREDENTIALS["chat-api"], subject)).status_code == 200
    for token in (None, "parley-dev-internal-token", f"users-api.{SECRETS['chat-api']}"):
        for scope in ROUTES:
            answer = await clients.call(scope, token, subject)
            assert_problem(answer, 401)
            assert answer.headers["www-authenticate"].startswith("Bearer")
    for reader in (
        "projector-users",
        "projector-chat",
        "projector-notifications",
        "chat-api",
        "realtime-gateway",
        "notifications-api",
    ):
        assert_problem(await clients.call(KEYS_DESTROY, CREDENTIALS[reader], subject), 403)
    kept = await clients.call(KEYS_READ, CREDENTIALS["projector-users"], subject)
    assert kept.status_code == 200  # no refused destruction took the key


@pytest.mark.integration
async def test_the_public_app_serves_no_internal_route(clients: Clients) -> None:
    subject = str(uuid.uuid4())
    for scope in ROUTES:
        answer = await clients.call(scope, CREDENTIALS["users-api"], subject, clients.public)
        assert answer.status_code in (404, 405), (scope, answer.text)
    # and the internal app serves nothing public
    assert (await clients.internal.get("/.well-known/jwks.json")).status_code == 404
    listed = (await clients.public.get("/openapi.json")).json()["paths"]
    assert not [path for path in listed if path.startswith("/internal")]


@pytest.mark.integration
async def test_key_destruction_is_audit_logged_and_rate_limited_per_caller(
    fresh_database: str, tmp_path: Path
) -> None:
    await migrate(fresh_database)
    destroyers = {"users-api": SECRETS["users-api"], "second-eraser": "s" * 40}
    scopes = {"users-api": (KEYS_DESTROY,), "second-eraser": (KEYS_DESTROY,)}
    settings = settings_for(
        fresh_database,
        tmp_path,
        internal_callers=callers_json(destroyers, scopes),
        key_destroy_burst=2,
        key_destroy_rate_per_s=0.01,
    )
    app = bootstrap(settings)
    transport = httpx.ASGITransport(app=app.state.internal_app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://a") as client,
    ):
        headers = {
            **bearer(CREDENTIALS["users-api"]),
            "X-Parley-Actor": "admin-1",
            "X-Correlation-Id": "corr-1",
            "X-Request-Id": "req-1",
        }
        with structlog.testing.capture_logs() as logs:
            first = await client.delete(f"/internal/v1/keys/{SUBJECTS['a']}", headers=headers)
            second = await client.delete(f"/internal/v1/keys/{SUBJECTS['b']}", headers=headers)
            third = await client.delete(f"/internal/v1/keys/{SUBJECTS['c']}", headers=headers)
            other = await client.delete(
                f"/internal/v1/keys/{SUBJECTS['c']}", headers=bearer(f"second-eraser.{'s' * 40}")
            )
        assert (first.status_code, second.status_code) == (204, 204)
        body = assert_problem(third, 429)
        assert body["status"] == 429 and int(third.headers["retry-after"]) >= 1
        assert other.status_code == 204  # a bucket per caller
        # subject c was destroyed by the second caller only: the refused call did nothing
        destroyed = [e for e in logs if e["event"] == "key destroyed"]
        assert [(e["caller"], e["subject"]) for e in destroyed] == [
            ("users-api", SUBJECTS["a"]),
            ("users-api", SUBJECTS["b"]),
            ("second-eraser", SUBJECTS["c"]),
        ]
        assert destroyed[0]["actor"] == "admin-1"
        assert destroyed[0]["correlation_id"] == "corr-1"
        assert destroyed[0]["request_id"] == "req-1"
        refused = [e for e in logs if e["event"] == "key destruction refused"]
        assert [(e["caller"], e["subject"], e["reason"]) for e in refused] == [
            ("users-api", SUBJECTS["c"], "rate")
        ]
        assert all(SECRETS["users-api"] not in json.dumps(e, default=str) for e in logs)


@pytest.mark.integration
async def test_the_internal_routes_are_served_on_their_own_port(
    fresh_database: str, tmp_path: Path
) -> None:
    await migrate(fresh_database)
    port = free_port()
    app = bootstrap(settings_for(fresh_database, tmp_path, internal_port=port))
    async with app.router.lifespan_context(app):
        public = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")
        async with public, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as internal:
            # the server starts beside the lifespan: auth is ready once it listens
            await eventually(lambda: ready(public))
            made = await internal.post(
                f"/internal/v1/keys/{SUBJECTS['x']}", headers=bearer(CREDENTIALS["chat-api"])
            )
            assert made.status_code == 200, made.text
            assert made.headers["cache-control"] == "no-store"
            refused = await internal.delete(
                f"/internal/v1/keys/{SUBJECTS['x']}", headers=bearer(CREDENTIALS["projector-chat"])
            )
            assert_problem(refused, 403)
            public_try = await public.get(
                f"/internal/v1/keys/{SUBJECTS['x']}", headers=bearer(CREDENTIALS["chat-api"])
            )
            assert public_try.status_code == 404
    # the lifespan's end stops the internal server too
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
