"""Message pages read by `_id` ("<conversation>:<seq>"): a conversation interleaved with others
(one whose id extends another's), deletions, cursors, a window past seq 1, a member added after
the last message, and the fallback for holes and for a generation of the old layout. The real
chat projection fills a fresh database from a real Kafka topic; the gateway runs in process."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from parley_projector_chat.views import chat_projection
from parley_projector_chat.views import message_key as projector_key
from parley_query_gateway.bootstrap import bootstrap
from parley_query_gateway.chat import message_key
from parley_query_gateway.config import Settings
from parley_testing.chat import Conversation, interleaved
from parley_testing.projections import on_topic, produce, project
from parley_testing.tokens import Signer, jwks
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration
SIGNER = Signer()
LONG = 37
DELETED = {1, 10, 20, LONG}


def bearer(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id)}"}


def story() -> list[Conversation]:
    long = Conversation("pg-a", ["alice", "bob"])
    # the same participants, an id that extends the first one's: keys must not collide
    twin = Conversation("pg-a:1", ["alice", "bob"])
    other = Conversation("pg-b", ["bob", "carol"])
    group = Conversation("pg-g", ["alice", "bob"], kind="group")
    for seq in range(1, LONG + 1):
        long.send("alice" if seq % 3 else "bob", f"long {seq}")
        if seq <= 12:
            twin.send("bob", f"twin {seq}")
            other.send("carol", f"other {seq}")
        if seq <= 5:
            group.send("alice", f"group {seq}")
    for seq in sorted(DELETED):
        long.delete(seq, long.senders[seq])
    # dave joins after the last message: his membership has no last message
    group.participants.append("dave")
    group.emit(
        "ParticipantAdded",
        {
            "user_id": "dave",
            "added_by": "alice",
            "participant_ids": group.participants,
            "title": "title pg-g",
            "kind": "group",
        },
    )
    return [long, twin, other, group]


@pytest.fixture(scope="module")
async def seeded(mongo_url: str, kafka_bootstrap: str) -> AsyncIterator[str]:
    unique = uuid.uuid4().hex[:10]
    name = f"chatp_{unique}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    topic = f"chat.{unique}"
    projection = on_topic(chat_projection(), topic, f"projector-chat-{unique}")
    await produce(kafka_bootstrap, topic, interleaved(*story()))
    await project(client[name], projection, kafka_bootstrap, max_records=20)
    yield name
    await client.drop_database(name)
    await client.close()


@pytest.fixture
async def api(
    seeded: str, mongo_url: str, kafka_bootstrap: str, search_dsn: str
) -> AsyncIterator[Any]:
    settings = Settings(
        mongo_url=mongo_url,
        search_dsn=search_dsn,
        mongo_db=seeded,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",
        kafka_bootstrap_servers=kafka_bootstrap,
        consistency_wait_s=0.3,
        list_cache_ttl_s=0,
    )
    app = bootstrap(settings)
    async with app.router.lifespan_context(app):
        assert await app.state.authn.revocations.wait_ready(15)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://query") as client:
            yield client, app


async def every_page(client: Any, cid: str, user: str, limit: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            f"/v1/conversations/{cid}/messages", params=params, headers=bearer(user)
        )
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages


def test_the_gateway_keys_messages_like_the_projector() -> None:
    for cid, seq in (("c1", 1), ("pg-a:1", 12), ("x", 999_999_999_999)):
        assert message_key(cid, seq) == projector_key(cid, seq)


@pytest.mark.parametrize("limit", [1, 5, 10, 36, LONG, 50, 100])
async def test_pages_walk_one_conversation_newest_first_with_deletions(
    api: Any, limit: int
) -> None:
    client, _ = api
    pages = await every_page(client, "pg-a", "bob", limit)
    items = [m for page in pages for m in page["items"]]
    assert [m["seq"] for m in items] == list(range(LONG, 0, -1))
    assert len(pages) == -(-LONG // limit)
    assert all(len(page["items"]) == limit for page in pages[:-1])
    for m in items:  # never another conversation's message, the twin's included
        assert m["conversation_id"] == "pg-a"
        assert m["id"] == f"pg-a-m{m['seq']}"
        assert m["deleted"] is (m["seq"] in DELETED)
        if m["seq"] in DELETED:
            assert m["content"] is None
        else:
            assert m["content"] == f"long {m['seq']}"
            assert m["sender_id"] == ("alice" if m["seq"] % 3 else "bob")
            assert m["sent_at"] is not None


async def test_a_window_past_seq_1_and_the_twin_conversation(api: Any) -> None:
    client, _ = api
    (page,) = await every_page(client, "pg-a:1", "alice", 50)
    assert [m["seq"] for m in page["items"]] == list(range(12, 0, -1))
    assert {m["content"] for m in page["items"]} == {f"twin {s}" for s in range(1, 13)}
    assert page["next_cursor"] is None
    (page,) = await every_page(client, "pg-b", "carol", 12)  # exactly one full page
    assert [m["content"] for m in page["items"]] == [f"other {s}" for s in range(12, 0, -1)]
    # a cursor below the conversation's first message
    response = await client.get(
        "/v1/conversations/pg-a/messages",
        params={"cursor": pages_cursor(1)},
        headers=bearer("alice"),
    )
    assert response.json() == {"items": [], "next_cursor": None}


def pages_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": seq}).encode()).decode().rstrip("=")


async def test_a_member_added_after_the_last_message_sees_the_history(api: Any) -> None:
    client, _ = api
    (page,) = await every_page(client, "pg-g", "dave", 50)
    assert [m["content"] for m in page["items"]] == [f"group {s}" for s in range(5, 0, -1)]


async def test_strangers_get_404_not_a_page(api: Any) -> None:
    client, _ = api
    for cid, user in (("pg-a", "carol"), ("pg-b", "alice"), ("pg-a:1", "carol"), ("nope", "bob")):
        response = await client.get(f"/v1/conversations/{cid}/messages", headers=bearer(user))
        assert response.status_code == 404
        assert "long" not in response.text and "other" not in response.text


async def test_holes_and_the_old_layout_fall_back_to_the_filter(
    api: Any, seeded: str, mongo_url: str
) -> None:
    client, _ = api
    store: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    messages = store[seeded]["messages__g1"]
    old = await messages.find({"conversation_id": "pg-a:1"}).to_list(None)
    try:
        # a hole: message 3 of pg-b missing (its MessageSent parked on the dead-letter topic)
        hole = await messages.find_one_and_delete({"_id": message_key("pg-b", 3)})
        assert hole is not None
        items = [m for p in await every_page(client, "pg-b", "bob", 4) for m in p["items"]]
        assert [m["seq"] for m in items] == [12, 11, 10, 9, 8, 7, 6, 5, 4, 2, 1]
        await messages.insert_one(hole)
        # the old layout (`_id` = message id) in the generation read, and one message deleted
        # by this layout's projector before the rebuild: the same seq twice, merged
        await messages.delete_many({"conversation_id": "pg-a:1"})
        await messages.insert_many(
            [
                {**{k: v for k, v in d.items() if k != "message_id"}, "_id": d["message_id"]}
                for d in old
            ]
        )
        await messages.insert_one(
            {
                "_id": message_key("pg-a:1", 7),
                "message_id": "pg-a:1-m7",
                "conversation_id": "pg-a:1",
                "seq": 7,
                "content": None,
                "search": [],
                "deleted": True,
            }
        )
        items = [m for p in await every_page(client, "pg-a:1", "alice", 5) for m in p["items"]]
        assert [m["seq"] for m in items] == list(range(12, 0, -1))
        assert [m["id"] for m in items] == [f"pg-a:1-m{s}" for s in range(12, 0, -1)]
        seven = items[12 - 7]
        assert seven["deleted"] is True and seven["content"] is None
        assert seven["sender_id"] == "bob" and seven["sent_at"] is not None
        assert all(m["content"] == f"twin {m['seq']}" for m in items if m["seq"] != 7)
    finally:
        await messages.delete_many({"conversation_id": "pg-a:1"})
        await messages.insert_many(old)
        await store.close()
