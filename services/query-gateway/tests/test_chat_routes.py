"""The chat routes of the query gateway (in process, ASGITransport) over read models that the real
chat projection built from a real Kafka topic in a fresh database of the Mongo-wire store."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from parley_http.consistency import ConsistencyToken
from parley_projector_chat.views import chat_projection
from parley_projector_search.runtime import apply_events
from parley_query_gateway.bootstrap import bootstrap
from parley_query_gateway.config import Settings
from parley_readmodel.progress import record_progress, stream_key
from parley_testing.chat import T0, Conversation, interleaved
from parley_testing.projections import on_topic, produce, project
from parley_testing.tokens import Signer, jwks
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration
SIGNER = Signer()
SECRET = "test-consistency-secret"
MANY = 23  # alice's conversations with erin, beyond the direct and the group ones


def bearer(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id)}"}


def story() -> list[Conversation]:
    direct = Conversation("dm-ab", ["alice", "bob"], start=T0 + timedelta(hours=2))
    direct.send("alice", "Hello Bob")
    direct.send("bob", "Hi Alice")
    direct.send("alice", "Ärger im Projekt")
    direct.mark_read("bob")
    direct.send("bob", "secret plan")
    direct.send("bob", "never mind")
    direct.delete(4, "bob")
    group = Conversation("grp", ["alice", "bob", "carol"], kind="group", start=T0)
    group.send("carol", "carol says hello")
    group.remove("carol", "alice")
    group.send("bob", "after carol left")
    other = Conversation("dm-bc", ["bob", "carol"], start=T0)
    other.send("bob", "hello carol, private")
    many = []
    for i in range(MANY):
        # every third pair of conversations ties on last activity: the id breaks the tie
        c = Conversation(f"c{i:02d}", ["alice", "erin"], start=T0 + timedelta(minutes=i // 3))
        c.send("erin", f"note {i}")
        many.append(c)
    return [direct, group, other, *many]


@pytest.fixture(scope="module")
async def seeded(
    mongo_url: str, kafka_bootstrap: str, module_search_dsn: str
) -> AsyncIterator[str]:
    unique = uuid.uuid4().hex[:10]
    name = f"chatq_{unique}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    db = client[name]
    topic = f"chat.{unique}"
    # its own consumer group; the gateway reads generation 1 through the alias of
    # `projector-chat`, which is created on first read
    projection = on_topic(chat_projection(), topic, f"projector-chat-{unique}")
    records = interleaved(*story())
    await produce(kafka_bootstrap, topic, records)
    await project(db, projection, kafka_bootstrap)
    # the same events into the search model (lists' order, unread totals, message search)
    pool = await asyncpg.create_pool(module_search_dsn, min_size=1, max_size=1)
    try:
        await apply_events(pool, records)
    finally:
        await pool.close()
    yield name
    await client.drop_database(name)
    await client.close()


@pytest.fixture
async def api(
    seeded: str, mongo_url: str, kafka_bootstrap: str, module_search_dsn: str
) -> AsyncIterator[Any]:
    settings = Settings(
        mongo_url=mongo_url,
        mongo_db=seeded,
        search_dsn=module_search_dsn,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",
        kafka_bootstrap_servers=kafka_bootstrap,
        consistency_wait_s=0.3,
        consistency_secret=SECRET,
    )
    app = bootstrap(settings)
    async with app.router.lifespan_context(app):
        assert await app.state.authn.revocations.wait_ready(15)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://query") as client:
            yield client, app


async def test_the_list_is_the_callers_newest_first_with_last_message_and_unread(api: Any) -> None:
    client, _ = api
    alice = (await client.get("/v1/conversations", headers=bearer("alice"))).json()["items"]
    assert alice[0]["id"] == "dm-ab"
    assert alice[0]["unread_count"] == 2  # bob's seq 2 and 5 (his 4 was deleted)
    assert alice[0]["last_message"]["seq"] == 5
    assert alice[0]["last_message"]["content"] == "never mind"
    bob = (await client.get("/v1/conversations", headers=bearer("bob"))).json()["items"]
    by_id = {c["id"]: c for c in bob}
    assert set(by_id) == {"dm-ab", "grp", "dm-bc"}
    assert by_id["dm-ab"]["unread_count"] == 0
    assert by_id["grp"]["participant_ids"] == ["alice", "bob"]
    assert by_id["grp"]["title"] == "title grp" and by_id["grp"]["kind"] == "group"
    carol = (await client.get("/v1/conversations", headers=bearer("carol"))).json()["items"]
    assert [c["id"] for c in carol] == ["dm-bc"]  # removed from grp: hidden


async def test_pagination_has_no_duplicates_and_no_gaps(api: Any) -> None:
    client, _ = api
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (
            await client.get("/v1/conversations", params=params, headers=bearer("alice"))
        ).json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [c["id"] for c in seen]
    assert len(ids) == len(set(ids)) == MANY + 2
    assert pages == -(-(MANY + 2) // 4)
    keys = [(c["last_activity_at"], c["id"]) for c in seen]
    assert keys == sorted(keys, reverse=True)


async def test_unread_count_sums_the_callers_memberships(api: Any) -> None:
    client, _ = api
    alice = (await client.get("/v1/conversations/unread-count", headers=bearer("alice"))).json()
    # dm-ab: bob's seq 2 and 5 (4 was deleted) = 2; grp: carol's and bob's = 2; erin: 23
    assert alice == {"count": 2 + 2 + MANY, "mentions": 0}
    bob = (await client.get("/v1/conversations/unread-count", headers=bearer("bob"))).json()
    assert bob == {"count": 0 + 1, "mentions": 0}  # grp: carol's message; his own are never unread
    nobody = (await client.get("/v1/conversations/unread-count", headers=bearer("zed"))).json()
    assert nobody == {"count": 0, "mentions": 0}


async def test_messages_newest_first_keyset_and_deleted_without_text(api: Any) -> None:
    client, _ = api
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            "/v1/conversations/dm-ab/messages", params=params, headers=bearer("bob")
        )
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert [m["seq"] for m in items] == [5, 4, 3, 2, 1]
    deleted = items[1]
    assert deleted["content"] is None and deleted["deleted"] is True
    assert items[0]["content"] == "never mind" and items[0]["sender_id"] == "bob"
    assert {"id", "sender_id", "content", "sent_at", "seq"} <= set(items[0])


async def test_strangers_and_removed_participants_get_404(api: Any) -> None:
    client, _ = api
    stranger = await client.get("/v1/conversations/dm-ab/messages", headers=bearer("carol"))
    assert stranger.status_code == 404
    assert "never mind" not in stranger.text
    removed = await client.get("/v1/conversations/grp/messages", headers=bearer("carol"))
    assert removed.status_code == 404
    missing = await client.get("/v1/conversations/nope/messages", headers=bearer("alice"))
    assert missing.status_code == 404
    anonymous = await client.get("/v1/conversations")
    assert anonymous.status_code == 401


async def test_search_finds_only_the_callers_messages_by_normalised_prefix(api: Any) -> None:
    client, _ = api

    async def search(user: str, q: str) -> list[str]:
        response = await client.get("/v1/messages/search", params={"q": q}, headers=bearer(user))
        assert response.status_code == 200, response.text
        return [m["content"] for m in response.json()["items"]]

    assert await search("alice", "HEL") == ["Hello Bob", "carol says hello"]
    assert "hello carol, private" not in await search("alice", "hello")
    assert await search("bob", "hello priv") == ["hello carol, private"]
    assert await search("alice", "arger proj") == ["Ärger im Projekt"]
    assert await search("alice", "secret") == []  # deleted
    assert await search("carol", "carol says") == []  # she left that conversation
    assert await search("zed", "hello") == []


async def test_search_results_are_newest_first(api: Any) -> None:
    client, _ = api
    response = await client.get("/v1/messages/search", params={"q": "note"}, headers=bearer("erin"))
    contents = [m["content"] for m in response.json()["items"]]
    assert len(contents) == 20  # the default limit
    times = [m["sent_at"] for m in response.json()["items"]]
    assert times == sorted(times, reverse=True)


async def test_bad_cursor_is_a_400_problem(api: Any) -> None:
    client, _ = api
    for path in ("/v1/conversations", "/v1/conversations/dm-ab/messages"):
        response = await client.get(path, params={"cursor": "%%%"}, headers=bearer("alice"))
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_etag_answers_304_when_unchanged(api: Any) -> None:
    client, _ = api
    first = await client.get("/v1/conversations", headers=bearer("bob"))
    again = await client.get(
        "/v1/conversations", headers={**bearer("bob"), "If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304


async def test_a_chat_consistency_token_waits_for_projector_chat(api: Any) -> None:
    """The list reads both models (its order from the search model, its items from
    projector-chat's documents): a chat token waits until both applied the write."""
    client, app = api
    ahead = ConsistencyToken("chat", "dm-ab", 99, "alice").sign(SECRET)
    late = await client.get(
        "/v1/conversations", headers={**bearer("alice"), "X-Consistency-Token": ahead}
    )
    assert late.status_code == 503 and late.headers["Retry-After"] == "1"
    await record_progress(app.state.db, "projector-chat", 1, {stream_key("chat", "dm-ab"): 99})
    half = await client.get(
        "/v1/conversations", headers={**bearer("alice"), "X-Consistency-Token": ahead}
    )
    assert half.status_code == 503  # the search model has not applied it yet
    search = app.state.search
    await search.pool.execute(
        f"UPDATE {await search.schema()}.applied SET version = 99 WHERE stream = 'chat/dm-ab'"
    )
    fresh = await client.get(
        "/v1/conversations", headers={**bearer("alice"), "X-Consistency-Token": ahead}
    )
    assert fresh.status_code == 200
    other_context = ConsistencyToken("users", "alice", 99, "alice").sign(SECRET)
    unrelated = await client.get(
        "/v1/conversations", headers={**bearer("alice"), "X-Consistency-Token": other_context}
    )
    assert unrelated.status_code == 200  # not a chat write: nothing to wait for


def unsigned_v1(context: str, stream: str, version: int) -> str:
    """A token in the retired unsigned shape (anyone could write one)."""
    raw = json.dumps({"t": 1, "c": context, "s": stream, "v": version}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_only_the_callers_own_signed_token_makes_a_read_wait(api: Any) -> None:
    """Issue 19: a token of someone else, forged, re-signed or unsigned is read as no token:
    no wait (the projection is behind version 10**6 of dm-ab, so honouring it would be 503
    after 0.3 s) and the same answer as without one."""
    client, _ = api
    stream = ("chat", "dm-ab", 10**6)  # a version no test records
    own = ConsistencyToken(*stream, "alice").sign(SECRET)
    bobs = ConsistencyToken(*stream, "bob").sign(SECRET)
    mac = bobs.partition(".")[2]
    swapped = ConsistencyToken(*stream, "alice").sign(SECRET).partition(".")[0] + "." + mac
    ignored = {
        "bob's": bobs,
        "another secret's": ConsistencyToken(*stream, "alice").sign("not-the-secret"),
        "unsigned v1": unsigned_v1(*stream),
        "v2 without a mac": own.partition(".")[0],
        "alice's payload with bob's mac": swapped,
    }
    plain = await client.get("/v1/conversations", headers=bearer("alice"))
    assert plain.status_code == 200
    for name, token in ignored.items():
        answer = await client.get(
            "/v1/conversations", headers={**bearer("alice"), "X-Consistency-Token": token}
        )
        assert answer.status_code == 200, name
        assert answer.json() == plain.json(), name
    honoured = await client.get(
        "/v1/conversations", headers={**bearer("alice"), "X-Consistency-Token": own}
    )
    assert honoured.status_code == 503  # the same stream and version, hers: waited
    garbage = await client.get(
        "/v1/conversations", headers={**bearer("alice"), "X-Consistency-Token": "!!"}
    )
    assert garbage.status_code == 400  # not a token in any shape: a client error, as before
