"""The users command API against a real PostgreSQL: events and outbox rows land together,
retries are idempotent, conflicts and bad input get problem+json."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from parley_eventstore.migrate import migrate
from parley_http.consistency import ConsistencyToken
from parley_testing.tokens import Signer, jwks
from parley_users.bootstrap import bootstrap
from parley_users.config import Settings

pytestmark = pytest.mark.integration


SIGNER = Signer()  # plays the auth service: the app trusts its key through a static JWKS
ADMIN = {"Authorization": f"Bearer {SIGNER.token(sub=str(uuid.uuid4()), role='admin')}"}


def bearer(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id)}"}


@pytest.fixture
async def api(
    fresh_database: str, kafka_bootstrap: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    await migrate(fresh_database)
    settings = Settings(
        postgres_dsn=fresh_database,
        snapshot_every=5,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",  # the static set only: never the running auth service's keys
        kafka_bootstrap_servers=kafka_bootstrap,
        consume_registrations=False,
    )
    app = bootstrap(settings)
    async with app.router.lifespan_context(app):
        assert await app.state.authn.revocations.wait_ready(15)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://users", headers=ADMIN
        ) as client:
            yield client, fresh_database


async def rows(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_create_appends_event_and_outbox_row(api: tuple[httpx.AsyncClient, str]) -> None:
    client, dsn = api
    response = await client.post("/v1/users", json={"name": "Ada", "email": "ada@example.test"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == 1
    token = ConsistencyToken.decode(response.headers["X-Consistency-Token"])
    assert (token.context, token.stream_id, token.version) == ("users", body["id"], 1)

    events = await rows(dsn, "SELECT stream_id, event_type, version, data FROM events")
    assert [(e["stream_id"], e["event_type"], e["version"]) for e in events] == [
        (body["id"], "UserCreated", 1)
    ]
    outbox = await rows(dsn, "SELECT topic, key, headers, payload FROM outbox")
    assert len(outbox) == 1
    headers = json.loads(outbox[0]["headers"])
    assert outbox[0]["topic"] == "users.events"
    assert outbox[0]["key"] == body["id"]
    assert headers["ce_type"] == "parley.users.UserCreated.v1"
    assert headers["ce_subject"] == body["id"]
    assert json.loads(outbox[0]["payload"])["name"] == "Ada"


async def test_retried_create_with_idempotency_key_appends_once(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    client, dsn = api
    body = {"name": "Ada", "email": "ada@example.test"}
    headers = {"Idempotency-Key": "k-1"}
    responses = await asyncio.gather(
        *(client.post("/v1/users", json=body, headers=headers) for _ in range(5))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await rows(dsn, "SELECT 1 FROM events")) == 1


async def test_patch_then_conflicts_and_not_found(api: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = api
    user_id = str(uuid.uuid4())
    created = await client.post(
        "/v1/users", json={"user_id": user_id, "name": "Ada", "email": "ada@example.test"}
    )
    assert created.status_code == 201
    again = await client.post(
        "/v1/users", json={"user_id": user_id, "name": "Ada", "email": "ada@example.test"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"

    patched = await client.patch(f"/v1/users/{user_id}", json={"bio": "mathematician"})
    assert patched.status_code == 200
    assert patched.json()["version"] == 2

    missing = await client.patch(f"/v1/users/{uuid.uuid4()}", json={"bio": "x"})
    assert missing.status_code == 404


async def test_concurrent_patches_keep_a_gap_free_stream(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    client, dsn = api
    user_id = str(uuid.uuid4())
    await client.post(
        "/v1/users", json={"user_id": user_id, "name": "A", "email": "a@example.test"}
    )
    responses = await asyncio.gather(
        *(client.patch(f"/v1/users/{user_id}", json={"bio": f"bio {i}"}) for i in range(12))
    )
    assert {r.status_code for r in responses} <= {200, 409}
    versions = [
        r["version"] for r in await rows(dsn, "SELECT version FROM events ORDER BY version")
    ]
    assert versions == list(range(1, len(versions) + 1))
    accepted = sum(r.status_code == 200 for r in responses)
    assert len(versions) == 1 + accepted


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "/v1/users", {"name": "", "email": "ada@example.test"}),
        ("post", "/v1/users", {"name": "Ada", "email": "not-an-email"}),
        ("post", "/v1/users", {"name": "Ada", "email": "a@b.c", "role": "admin"}),
        ("patch", "/v1/users/not-a-uuid", {"bio": "x"}),
        ("patch", f"/v1/users/{uuid.uuid4()}", {}),
    ],
)
async def test_bad_input_is_422_problem(
    api: tuple[httpx.AsyncClient, str], method: str, path: str, payload: dict[str, object]
) -> None:
    client, _ = api
    response = await getattr(client, method)(path, json=payload)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


async def test_malformed_and_oversized_bodies(api: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = api
    malformed = await client.post(
        "/v1/users", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422
    huge = await client.post(
        "/v1/users", content=b"x" * 100_000, headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413


async def test_commands_need_a_token_and_users_edit_only_themselves(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = api
    body = {"name": "Ada", "email": "ada@example.test"}
    user_id = (await client.post("/v1/users", json=body)).json()["id"]
    other = str(uuid.uuid4())

    anonymous = await client.patch(
        f"/v1/users/{user_id}", json={"bio": "x"}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    forged = Signer().token(sub=user_id)  # right shape, key the service does not trust
    refused = await client.patch(
        f"/v1/users/{user_id}", json={"bio": "x"}, headers={"Authorization": f"Bearer {forged}"}
    )
    assert refused.status_code == 401
    stranger = await client.patch(f"/v1/users/{user_id}", json={"bio": "x"}, headers=bearer(other))
    assert stranger.status_code == 403, stranger.text
    assert (await client.post("/v1/users", json=body, headers=bearer(user_id))).status_code == 403
    mine = await client.patch(f"/v1/users/{user_id}", json={"bio": "mine"}, headers=bearer(user_id))
    assert mine.status_code == 200, mine.text
