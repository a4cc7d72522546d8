"""The notifications queries through the gateway app against the real Mongo-wire store, seeded
by the notifications projection's own handlers and the read-model library's apply (the
documents the projector writes): the caller's own notifications only, newest first without
duplicates or gaps across pages, the unread filter and count, preferences with defaults."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from parley_http.consistency import ConsistencyToken
from parley_messaging.envelope import Envelope, ce_type
from parley_projector_notifications.views import notifications_projection
from parley_query_gateway.bootstrap import bootstrap
from parley_query_gateway.config import Settings
from parley_readmodel.aliases import read_alias
from parley_readmodel.apply import Change, apply_changes
from parley_readmodel.progress import record_progress, stream_key
from parley_readmodel.projection import writes_for
from parley_testing.tokens import Signer, jwks
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration
DB = AsyncDatabase[dict[str, Any]]
SIGNER = Signer()
PROJECTION = notifications_projection()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BOB, EVE = str(uuid.uuid4()), str(uuid.uuid4())
SECRET = "test-consistency-secret"


def bearer(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id)}"}


class Seeder:
    """Events -> the projection's writes -> the active generation (as the projector does)."""

    def __init__(self, db: DB) -> None:
        self.db = db
        self.versions: dict[str, int] = {}
        self.clock = 0

    async def __call__(self, stream: str, event_name: str, /, **data: Any) -> int:
        version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        self.clock += 1
        envelope = Envelope(
            id=str(uuid.uuid4()),
            source="/parley/notifications",
            type=ce_type("notifications", event_name, 1),
            subject=stream,
            # two notifications share each second: the keyset's tie-break on _id matters
            time=T0 + timedelta(seconds=self.clock // 2),
            data=b"{}",
            aggregate_version=version,
        )
        writes = writes_for(PROJECTION, envelope, data)
        changes = [Change(w.collection, w.doc_id, w.update, stream, version) for w in writes]
        generation = (await read_alias(self.db, PROJECTION.name)).active
        await apply_changes(self.db, generation, changes, guard=False)
        await record_progress(
            self.db, PROJECTION.name, generation, {stream_key("notifications", stream): version}
        )
        return version

    async def notification(self, user: str, n: int) -> str:
        nid = str(uuid.uuid4())
        await self(
            nid,
            "NotificationCreated",
            notification_id=nid,
            user_id=user,
            kind="message",
            conversation_id="c1",
            message_id=f"m{n}",
            sender_id="ada",
            preview=f"message {n}",
        )
        return nid


@pytest.fixture
async def env(
    mongo_url: str, kafka_bootstrap: str, search_dsn: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Seeder]]:
    name = f"qn_{uuid.uuid4().hex[:10]}"
    settings = Settings(
        mongo_url=mongo_url,
        search_dsn=search_dsn,
        mongo_db=name,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",
        kafka_bootstrap_servers=kafka_bootstrap,
        consistency_wait_s=0.3,
        consistency_secret=SECRET,
        cache_ttl_s=0,
    )
    app = bootstrap(settings)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        async with app.router.lifespan_context(app):
            assert await app.state.authn.revocations.wait_ready(15)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://query") as http:
                yield http, Seeder(client[name])
    finally:
        await client.drop_database(name)
        await client.close()


async def pages(http: httpx.AsyncClient, user: str, query: str) -> list[list[dict[str, Any]]]:
    found, cursor = [], None
    while True:
        url = f"/v1/notifications?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await http.get(url, headers=bearer(user))
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body["items"])
        cursor = body.get("next_cursor")
        if cursor is None:
            return found


async def test_list_newest_first_keyset_and_only_the_callers(
    env: tuple[httpx.AsyncClient, Seeder],
) -> None:
    http, seed = env
    bobs = [await seed.notification(BOB, n) for n in range(11)]
    eves = [await seed.notification(EVE, 100)]
    for nid in bobs[:4]:
        await seed(nid, "NotificationRead", notification_id=nid, user_id=BOB)

    got = await pages(http, BOB, "limit=3")
    assert [len(p) for p in got] == [3, 3, 3, 2]
    items = [i for p in got for i in p]
    newest_first = sorted(items, key=lambda i: (i["created_at"], i["id"]), reverse=True)
    assert items == newest_first
    assert {i["id"] for i in items} == set(bobs)  # no duplicates, no gaps, no eve's
    # messages 9 and 10 share the newest second (their order is the _id tie-break)
    assert {i["preview"] for i in items[:2]} == {"message 9", "message 10"}
    assert items[0]["kind"] == "message"

    unread = [i for p in await pages(http, BOB, "unread=true&limit=2") for i in p]
    assert {i["id"] for i in unread} == set(bobs[4:])
    assert all(not i["read"] for i in unread)

    count = await http.get("/v1/notifications/unread-count", headers=bearer(BOB))
    assert count.json() == {"count": 7}
    eve_count = await http.get("/v1/notifications/unread-count", headers=bearer(EVE))
    assert eve_count.json() == {"count": 1}
    eve_list = (await http.get("/v1/notifications", headers=bearer(EVE))).json()["items"]
    assert [i["id"] for i in eve_list] == eves

    assert (await http.get("/v1/notifications")).status_code == 401
    bad = await http.get("/v1/notifications?cursor=nonsense", headers=bearer(BOB))
    assert bad.status_code == 400


async def test_read_your_write_with_a_consistency_token(
    env: tuple[httpx.AsyncClient, Seeder],
) -> None:
    http, seed = env
    nid = await seed.notification(BOB, 1)
    ahead = ConsistencyToken("notifications", nid, 2, BOB).sign(SECRET)
    late = await http.get(
        "/v1/notifications/unread-count",
        headers={**bearer(BOB), "X-Consistency-Token": ahead},
    )
    assert late.status_code == 503  # the read is not caught up: said so, never stale
    await seed(nid, "NotificationRead", notification_id=nid, user_id=BOB)
    fresh = await http.get(
        "/v1/notifications/unread-count",
        headers={**bearer(BOB), "X-Consistency-Token": ahead},
    )
    assert fresh.json() == {"count": 0}


async def test_preferences_default_then_projected(env: tuple[httpx.AsyncClient, Seeder]) -> None:
    http, seed = env
    default = await http.get("/v1/notifications/preferences", headers=bearer(BOB))
    assert default.status_code == 200
    assert default.json() == {
        "in_app": True,
        "email": False,
        "muted_conversations": [],
        "muted_mentions": [],
    }
    await seed(
        BOB,
        "NotificationPreferencesUpdated",
        user_id=BOB,
        in_app=False,
        email=True,
        muted_conversations=["c1"],
    )
    mine = await http.get("/v1/notifications/preferences", headers=bearer(BOB))
    assert mine.json() == {
        "in_app": False,
        "email": True,
        "muted_conversations": ["c1"],
        "muted_mentions": [],
    }
    theirs = await http.get("/v1/notifications/preferences", headers=bearer(EVE))
    assert theirs.json()["in_app"] is True
