"""Every route of the auth API with hostile input (parley_testing.hostile): a 4xx problem,
never a 5xx, and no hostile value reaches PostgreSQL or the mail server. No server: the
service is built as bootstrap builds it, over a Boundary stand-in for the pool, with a
signing key generated into a temporary directory and a Boundary for the mailer. A NUL in
login's email was a 500 (PostgreSQL refused it: CharacterNotInRepertoireError)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
from parley_auth import web
from parley_auth.admin import build
from parley_auth.bootstrap import bootstrap
from parley_auth.callers import SCOPES, callers_json
from parley_auth.config import Settings
from parley_auth.handlers import BUS
from parley_commandkit import Commands
from parley_testing.hostile import Boundary, BoundaryLog, operations_from_app, walk

PASSWORD = "correct-horse-42"
SAMPLES = {
    "email": "ada@example.test",
    "new_email": "ada2@example.test",
    "password": PASSWORD,
    "new_password": "another-horse-43",
    "name": "Ada",
    "code": "123456",
    "refresh_token": "r" * 40,
    "token": "t" * 40,
    "subject": "user-1",
}


async def test_every_route_answers_hostile_input_with_a_4xx_problem(tmp_path: Path) -> None:
    settings = Settings(
        key_dir=tmp_path,
        internal_callers=callers_json({"tests": "internal-test-token"}, {"tests": tuple(SCOPES)}),
        saga_participant=False,
        argon2_time_cost=1,
        argon2_memory_kib=8,
    )
    app = bootstrap(settings)
    log = BoundaryLog()
    pool = Boundary("postgres", log)
    auth, _ = await build(settings, pool)
    app.state.pool = pool
    app.state.auth = dataclasses.replace(auth, mailer=Boundary("smtp", log))
    app.state.commands = Commands("auth", BUS, app.state.auth, web.ERRORS)
    operations = operations_from_app(app)
    inside = operations_from_app(app.state.internal_app)  # the internal port's app
    assert {op.name for op in operations} >= {
        "POST /v1/auth/login",
        "POST /v1/auth/verify-otp",
        "POST /v1/auth/password-reset",
        "POST /v1/auth/password-reset/confirm",
        "POST /v1/auth/introspect",
        "GET /.well-known/jwks.json",
    }
    assert not [op for op in operations if "/internal/" in op.name]  # never on the public port
    assert {op.name for op in inside} >= {
        "GET /internal/v1/keys/{subject}",
        "POST /internal/v1/keys/{subject}",
        "DELETE /internal/v1/keys/{subject}",
        "POST /internal/v1/verification-codes",
    }
    # internal callers carry their credential (one holding every scope here), everyone else a
    # (bogus) bearer token
    headers = {"Authorization": "Bearer tests.internal-test-token"}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        report = await walk(client, operations, headers, SAMPLES, boundary=log)
    transport = httpx.ASGITransport(app=app.state.internal_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        internal = await walk(client, inside, headers, SAMPLES, boundary=log)
        await app.state.auth.background.drain()  # password resets run after the 202

    assert report.failures == [], "\n".join(report.failures[:50])
    assert internal.failures == [], "\n".join(internal.failures[:50])
    assert internal.reached > 0, internal.summary()
    assert log.flawed() == []
    assert report.sent > 1200, report.summary()
    assert report.reached > 0, report.summary()  # clean requests do get through
