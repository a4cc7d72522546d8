"""Issue 20's chat read routes in process (ASGITransport), over read models the real chat
projection built from a real Kafka topic: edits and their history, replies with the quoted
parent and the replies page, reactions with `me`, mentions in the list and the unread count,
attachments, and the admins' report list."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from parley_projector_chat.views import chat_projection
from parley_projector_search.runtime import apply_events
from parley_query_gateway.bootstrap import bootstrap
from parley_query_gateway.config import Settings
from parley_readmodel import aliases
from parley_testing.chat import Conversation
from parley_testing.projections import on_topic, produce, project
from parley_testing.tokens import Signer, jwks
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration
SIGNER = Signer()
LONG = "x" * 150


def bearer(user_id: str, role: str | None = None) -> dict[str, str]:
    claims = {"role": role} if role else {}
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id, **claims)}"}


def story() -> tuple[Conversation, str, str]:
    c = Conversation("feat", ["dan", "fay", "gus"], kind="group")
    c.send("dan", "first draft")  # 1
    c.edit(1, "second draft")
    c.edit(1, "final text")
    c.send("fay", LONG)  # 2
    c.send("gus", "a reply to dan", reply_to=1, mentions=["dan"])  # 3
    c.send("dan", "a reply to fay", reply_to=2, mentions=["fay", "gus"])  # 4
    c.send("gus", "another reply to dan", reply_to=1)  # 5
    c.send("fay", "reply to a doomed one", reply_to=5)  # 6
    c.delete(5, "gus")
    for user in ("dan", "fay", "gus"):
        c.react(1, user, "👍")
    c.react(1, "gus", "👍", remove=True)
    c.react(1, "fay", "🎉")
    c.mark_read("gus")  # gus: 0 mentions
    c.send("fay", "@gus again", mentions=["gus"])  # 7
    keep = c.report(2, "dan", "rude")
    done = c.report(4, "gus", "spam")
    c.resolve(done, 4, "admin-1", "dismiss")
    c.remove("gus", "dan")
    return c, keep, done


@pytest.fixture(scope="module")
async def seeded(
    mongo_url: str, kafka_bootstrap: str, module_search_dsn: str
) -> AsyncIterator[tuple[str, str, str]]:
    unique = uuid.uuid4().hex[:10]
    name = f"chatf_{unique}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    db = client[name]
    topic = f"chat.{unique}"
    projection = on_topic(chat_projection(), topic, f"projector-chat-{unique}")
    conversation, keep, done = story()
    await produce(kafka_bootstrap, topic, conversation.records)
    await project(db, projection, kafka_bootstrap)
    # the same events into the search model (lists' order, unread totals, message search)
    pool = await asyncpg.create_pool(module_search_dsn, min_size=1, max_size=1)
    try:
        await apply_events(pool, conversation.records)
    finally:
        await pool.close()
    yield name, keep, done
    await client.drop_database(name)
    await client.close()


@pytest.fixture
async def api(
    seeded: tuple[str, str, str], mongo_url: str, kafka_bootstrap: str, module_search_dsn: str
) -> AsyncIterator[Any]:
    settings = Settings(
        mongo_url=mongo_url,
        mongo_db=seeded[0],
        search_dsn=module_search_dsn,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",
        kafka_bootstrap_servers=kafka_bootstrap,
        consistency_wait_s=0.3,
    )
    app = bootstrap(settings)
    async with app.router.lifespan_context(app):
        assert await app.state.authn.revocations.wait_ready(15)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://query") as client:
            yield client, seeded


async def page(client: Any, user: str) -> dict[int, dict[str, Any]]:
    response = await client.get("/v1/conversations/feat/messages", headers=bearer(user))
    assert response.status_code == 200, response.text
    return {m["seq"]: m for m in response.json()["items"]}


async def test_an_edited_message_shows_its_text_and_its_history(api: Any) -> None:
    client, _ = api
    first = (await page(client, "fay"))[1]
    assert first["content"] == "final text" and first["edited_at"] is not None
    history = await client.get(
        "/v1/conversations/feat/messages/feat-m1/history", headers=bearer("fay")
    )
    assert history.status_code == 200, history.text
    body = history.json()
    assert body["content"] == "final text" and body["sender_id"] == "dan"
    assert [v["content"] for v in body["versions"]] == ["first draft", "second draft"]
    never = await client.get(
        "/v1/conversations/feat/messages/feat-m2/history", headers=bearer("fay")
    )
    assert never.json()["versions"] == [] and never.json()["edited_at"] is None
    deleted = await client.get(
        "/v1/conversations/feat/messages/feat-m5/history", headers=bearer("fay")
    )
    assert deleted.json()["deleted"] is True and deleted.json()["content"] is None


async def test_history_and_replies_are_for_participants_only(api: Any) -> None:
    client, _ = api
    for path in ("history", "replies"):
        for user in ("gus", "stranger"):  # gus was removed
            response = await client.get(
                f"/v1/conversations/feat/messages/feat-m1/{path}", headers=bearer(user)
            )
            assert response.status_code == 404, (path, user)
            assert "draft" not in response.text
        missing = await client.get(
            f"/v1/conversations/feat/messages/nope/{path}", headers=bearer("dan")
        )
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")


async def test_a_message_id_is_looked_up_by_id_only(api: Any, mongo_url: str) -> None:
    """A message id the `message_ids` collection does not know is a 404, never a filter over
    every message (a scan on FerretDB: a request for made-up ids each read the whole
    collection, and a few at once stalled the store for minutes)."""
    client, (name, _, _) = api
    found = await client.get(
        "/v1/conversations/feat/messages/feat-m7/history", headers=bearer("dan")
    )
    assert found.status_code == 200, found.text
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        ids = await aliases.collection(mongo[name], "projector-chat", "message_ids")
        assert (await ids.delete_one({"_id": "feat:feat-m7"})).deleted_count == 1
    finally:
        await mongo.close()
    for path in ("history", "replies"):
        unknown = await client.get(
            f"/v1/conversations/feat/messages/feat-m7/{path}", headers=bearer("dan")
        )
        assert unknown.status_code == 404, (path, unknown.text)


async def test_replies_quote_their_parent_as_it_is_now_and_parents_count_them(api: Any) -> None:
    client, _ = api
    messages = await page(client, "dan")
    assert messages[1]["reply_count"] == 2 and messages[2]["reply_count"] == 1
    quote = messages[3]["reply_to"]
    assert quote == {
        "message_id": "feat-m1",
        "seq": 1,
        "sender_id": "dan",
        "excerpt": "final text",  # the edited text
        "deleted": False,
        "redacted": False,
    }
    assert messages[4]["reply_to"]["excerpt"] == LONG[:100]
    gone = messages[6]["reply_to"]  # its parent was deleted
    assert gone["deleted"] is True and gone["excerpt"] is None
    replies = await client.get(
        "/v1/conversations/feat/messages/feat-m1/replies",
        params={"limit": 1},
        headers=bearer("fay"),
    )
    assert replies.status_code == 200, replies.text
    assert [m["seq"] for m in replies.json()["items"]] == [3]
    rest = await client.get(
        "/v1/conversations/feat/messages/feat-m1/replies",
        params={"limit": 1, "cursor": replies.json()["next_cursor"]},
        headers=bearer("fay"),
    )
    assert [m["seq"] for m in rest.json()["items"]] == [5]
    assert rest.json()["items"][0]["deleted"] is True and rest.json()["next_cursor"] is None


async def test_reactions_count_people_and_say_whether_the_caller_is_one(api: Any) -> None:
    client, _ = api
    for user, mine in (("dan", {"👍"}), ("fay", {"👍", "🎉"})):
        reactions = (await page(client, user))[1]["reactions"]
        assert {r["emoji"]: r["count"] for r in reactions} == {"👍": 2, "🎉": 1}
        assert {r["emoji"] for r in reactions if r["me"]} == mine


async def test_mentions_on_messages_in_the_list_and_in_the_unread_count(api: Any) -> None:
    client, _ = api
    assert (await page(client, "dan"))[4]["mentions"] == ["fay", "gus"]
    lists = {}
    for user in ("dan", "fay"):
        response = await client.get("/v1/conversations", headers=bearer(user))
        lists[user] = response.json()["items"][0]
    assert lists["dan"]["mention_count"] == 1  # seq 3
    assert lists["fay"]["mention_count"] == 1  # seq 4 (7 is her own)
    count = await client.get("/v1/conversations/unread-count", headers=bearer("fay"))
    assert count.json() == {"count": 3, "mentions": 1}  # 1, 3 and 4 (5 was deleted)


async def test_reports_are_listed_to_admins_newest_first_by_status(api: Any) -> None:
    client, (_, keep, done) = api
    refused = await client.get("/v1/reports", headers=bearer("dan"))
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    admin = bearer("admin-1", role="admin")
    opened = await client.get("/v1/reports", params={"status": "open"}, headers=admin)
    assert opened.status_code == 200, opened.text
    (item,) = [r for r in opened.json()["items"] if r["conversation_id"] == "feat"]
    assert item["id"] == keep and item["reason"] == "rude" and item["status"] == "open"
    assert item["message_id"] == "feat-m2" and item["sender_id"] == "fay" and item["seq"] == 2
    everything = await client.get("/v1/reports", params={"limit": 1}, headers=admin)
    assert [r["id"] for r in everything.json()["items"]] == [done]  # newest first
    older = await client.get(
        "/v1/reports",
        params={"limit": 1, "cursor": everything.json()["next_cursor"]},
        headers=admin,
    )
    assert [r["id"] for r in older.json()["items"]] == [keep]
    resolved = (
        await client.get("/v1/reports", params={"status": "resolved"}, headers=admin)
    ).json()
    assert [(r["id"], r["action"], r["resolved_by"]) for r in resolved["items"]] == [
        (done, "dismiss", "admin-1")
    ]
    bad = await client.get("/v1/reports", params={"status": "nope"}, headers=admin)
    assert bad.status_code == 422
