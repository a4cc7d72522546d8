"""The key owner and a key consumer wired as deployed, in process: auth-api's internal key
endpoint (its own database, on its own app: the internal port's) and users-api using it
through a KeyClient with users-api's own credential. A profile's personal fields are sealed
with a key auth creates; DELETE /v1/users/{id} makes auth forget the key, after which the
users events read as placeholders."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from parley_auth.bootstrap import bootstrap as auth_app
from parley_auth.callers import STANDARD_CALLERS, callers_json, credential
from parley_auth.config import Settings as AuthSettings
from parley_auth.migrate import migrate as migrate_auth
from parley_eventstore.migrate import migrate
from parley_privacy.client import KeyClient
from parley_testing.plugin import create_database, drop_database
from parley_testing.tokens import Signer, jwks
from parley_users.bootstrap import bootstrap as users_app
from parley_users.config import Settings as UsersSettings

pytestmark = pytest.mark.integration
SECRET = "wire-test-secret"
TOKEN = credential("users-api", SECRET)
CALLERS = callers_json({"users-api": SECRET}, {"users-api": STANDARD_CALLERS["users-api"]})
SIGNER = Signer()


@pytest.fixture
async def databases(postgres_dsn: str) -> AsyncIterator[tuple[str, str]]:
    auth, users = await create_database(postgres_dsn), await create_database(postgres_dsn)
    try:
        yield auth, users
    finally:
        await drop_database(auth)
        await drop_database(users)


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_users_seals_with_auths_keys_and_forgetting_goes_through_auth(
    databases: tuple[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    auth_dsn, users_dsn = databases
    await migrate_auth(auth_dsn)
    await migrate(users_dsn)
    owner = auth_app(
        AuthSettings(
            postgres_dsn=auth_dsn, key_dir=tmp_path, internal_callers=CALLERS, internal_port=0
        )
    )
    inside = owner.state.internal_app
    async with owner.router.lifespan_context(owner):
        keys = KeyClient("http://auth", TOKEN, transport=httpx.ASGITransport(app=inside))
        settings = UsersSettings(
            postgres_dsn=users_dsn,
            jwks=json.dumps(jwks(SIGNER)),
            jwks_url="",
            kafka_bootstrap_servers=kafka_bootstrap,
            consume_registrations=False,
        )
        app = users_app(settings, keys=keys)
        async with app.router.lifespan_context(app):
            assert await app.state.authn.revocations.wait_ready(15)
            admin = {"Authorization": f"Bearer {SIGNER.token(sub=str(uuid.uuid4()), role='admin')}"}
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://users", headers=admin
            ) as client:
                created = await client.post(
                    "/v1/users", json={"name": "Wire Person", "email": "wire@x.test"}
                )
                assert created.status_code == 201, created.text
                user_id = created.json()["id"]
                [key_row] = await fetch(
                    auth_dsn, "SELECT secret FROM subject_keys WHERE subject_id = $1", user_id
                )
                assert key_row["secret"] is not None  # auth made the key on first use
                events = await client.get(f"/v1/users/{user_id}/events")
                assert events.json()["items"][0]["data"]["name"] == "Wire Person"

                forgotten = await client.delete(f"/v1/users/{user_id}")
                assert forgotten.status_code == 200, forgotten.text
                [key_row] = await fetch(
                    auth_dsn,
                    "SELECT secret, forgotten_at FROM subject_keys WHERE subject_id = $1",
                    user_id,
                )
                assert key_row["secret"] is None and key_row["forgotten_at"] is not None
                events = await client.get(f"/v1/users/{user_id}/events")
                items = events.json()["items"]
                assert items[0]["data"]["name"] == "Forgotten user"
                assert items[-1]["type"] == "UserForgotten"
                stored = await fetch(users_dsn, "SELECT data::text AS d FROM events")
                assert not [r for r in stored if "Wire Person" in r["d"] or "wire@" in r["d"]]
                again = await client.post(
                    "/v1/users", json={"user_id": user_id, "name": "Back", "email": "b@x.test"}
                )
                assert again.status_code in (409, 410), again.text

            # a consumer without the token is refused: KeyUnavailable, never a redaction
            stranger = KeyClient("http://auth", "wrong", transport=httpx.ASGITransport(app=inside))
            from parley_privacy.keys import KeyUnavailable

            with pytest.raises(KeyUnavailable):
                await stranger.key(user_id)
            await stranger.close()
