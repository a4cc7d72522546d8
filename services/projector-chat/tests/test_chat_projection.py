"""The chat projection over a real Kafka topic into a fresh database of the Mongo-wire store:
two users writing both ways, unread counters on each side, read marks, a deletion, a removal,
and replays that change nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from parley_projector_chat.views import chat_projection, message_key
from parley_readmodel.rebuild import rebuild
from parley_readmodel.runtime import Options
from parley_testing.chat import Conversation, interleaved
from parley_testing.projections import (
    documents,
    dump,
    on_topic,
    produce,
    project,
    reset_offsets,
)
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(mongo_url: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, socketTimeoutMS=60_000)
    database = client[f"chat_{uuid.uuid4().hex[:10]}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


def story() -> tuple[Conversation, Conversation]:
    direct = Conversation("dm-ab", ["alice", "bob"])
    direct.send("alice", "Hello Bob")
    direct.send("bob", "Hi Alice, wie geht's?")
    direct.send("alice", "Ärger mit dem Projekt")
    direct.mark_read("bob")  # bob: 0 unread
    direct.send("bob", "secret plan")
    direct.send("bob", "never mind")
    direct.delete(5, "bob")  # the last message, unread by alice: her counter drops
    group = Conversation("grp", ["alice", "bob", "carol"], kind="group")
    group.send("carol", "carol was here")
    group.send("alice", "welcome")
    group.remove("carol", "alice")
    group.send("bob", "after carol left")
    return direct, group


async def test_two_users_unread_read_marks_deletion_removal_and_exact_replays(
    db: Any, kafka_bootstrap: str, unique_name: str
) -> None:
    direct, group = story()
    topic = f"chat.{unique_name}"
    projection = on_topic(chat_projection(), topic, f"projector-chat-{unique_name}")
    events = interleaved(direct, group)
    # at-least-once upstream: some records twice
    await produce(kafka_bootstrap, topic, events + events[3:9])
    await project(db, projection, kafka_bootstrap, max_records=5)

    members = await documents(db, projection, "memberships")
    messages = await documents(db, projection, "messages")
    alice, bob = members["alice:dm-ab"], members["bob:dm-ab"]
    # alice: bob's 2 and 4 (5 deleted); bob: read up to 3, then only his own
    assert (alice["unread_count"], bob["unread_count"]) == (2, 0)
    assert direct.unread("alice") == 2
    for doc in (alice, bob):
        assert doc["last_message"]["seq"] == 5
        assert doc["last_message"]["deleted"] is True
        assert doc["last_message"]["content"] is None
        assert doc["participant_ids"] == ["alice", "bob"]
        assert doc["kind"] == "direct" and doc["removed"] is False
    m3, m4, m5 = (messages[message_key("dm-ab", seq)] for seq in (3, 4, 5))
    assert m5["content"] is None and m5["search"] == []
    assert m5["deleted"] is True and m5["message_id"] == "dm-ab-m5"
    assert m4["content"] == "secret plan" and m4["message_id"] == "dm-ab-m4"
    assert m4["sender_id"] == "bob" and m4["seq"] == 4 and m4["conversation_id"] == "dm-ab"
    assert "arger" in m3["search"] and "pro" in m3["search"]
    assert len(messages) == 5 + 3  # one document per message, keyed by conversation and seq

    carol = members["carol:grp"]
    assert carol["removed"] is True
    assert carol["last_message"]["seq"] == 2  # she got nothing after she left
    assert members["alice:grp"]["participant_ids"] == ["alice", "bob"]
    assert members["alice:grp"]["unread_count"] == 2  # carol's and bob's
    assert members["bob:grp"]["unread_count"] == 2  # carol's and alice's
    assert members["bob:grp"]["last_message"]["content"] == "after carol left"
    conversations = await documents(db, projection, "conversations")
    assert conversations["grp"]["participant_ids"] == ["alice", "bob"]
    assert conversations["grp"]["last_seq"] == 3

    first = await dump(db, projection)
    for _ in range(2):  # the whole topic again over the populated model: byte-identical
        await reset_offsets(kafka_bootstrap, projection.group, projection.topics)
        await project(db, projection, kafka_bootstrap, max_records=7)
        assert await dump(db, projection) == first


async def test_declared_indexes_exist_on_the_generation_written(
    db: Any, kafka_bootstrap: str, unique_name: str
) -> None:
    direct = Conversation("dm-x", ["x", "y"])
    direct.send("x", "hello")
    topic = f"chat.{unique_name}"
    projection = on_topic(chat_projection(), topic, f"projector-chat-{unique_name}")
    await produce(kafka_bootstrap, topic, direct.records)
    # on FerretDB they are skipped by default (it cannot use them): ask for them
    await project(db, projection, kafka_bootstrap, indexes=True)
    # a restart creates them again (FerretDB once dropped the connection on that)
    await reset_offsets(kafka_bootstrap, projection.group, projection.topics)
    await project(db, projection, kafka_bootstrap, indexes=True)
    names = {i["name"] async for i in await db["messages__g1"].list_indexes()}
    assert {"conversation_id_1_seq_-1", "search_1_sent_at_-1"} <= names
    names = {i["name"] async for i in await db["memberships__g1"].list_indexes()}
    assert "user_id_1_last_activity_at_-1_conversation_id_-1" in names


async def test_edits_replies_reactions_mentions_and_reports_stay_exact_under_replays(
    db: Any, kafka_bootstrap: str, unique_name: str
) -> None:
    """Issue 20: rebuilding the chat projections from offset 0 (and redeliveries) leaves every
    edit, reaction count, reply count and mention count identical."""
    group = Conversation("feat", ["alice", "bob", "carol"], kind="group")
    group.send("alice", "first draft")  # 1
    group.edit(1, "second draft")
    group.edit(1, "final text")
    group.send("bob", "@alice @carol look", mentions=["alice", "carol"])  # 2
    group.send("carol", "a reply", reply_to=1)  # 3
    group.send("bob", "another reply", reply_to=1, mentions=["alice"])  # 4
    for user in ("alice", "bob", "carol"):
        group.react(1, user, "👍")
    group.react(1, "carol", "👍", remove=True)
    group.react(1, "bob", "🎉")
    group.react(1, "bob", "🎉", remove=True)
    group.react(1, "bob", "🎉")  # round 1: back again
    group.mark_read("carol")  # carol: 0 mentions
    group.send("bob", "ping carol", mentions=["carol"])  # 5
    group.edit(5, "ping carol (edited)")  # the last message: previews follow
    report = group.report(2, "carol", "rude")
    group.resolve(report, 2, "admin", "dismiss")
    group.delete(4, "bob")  # mentioned alice, unread by her: her mention counter drops

    topic = f"chat.{unique_name}"
    projection = on_topic(chat_projection(), topic, f"projector-chat-{unique_name}")
    records = group.records
    await produce(kafka_bootstrap, topic, records + records[5:14])  # some redelivered
    await project(db, projection, kafka_bootstrap, max_records=4)

    messages = await documents(db, projection, "messages")
    first = messages[message_key("feat", 1)]
    assert first["content"] == "final text" and first["edited_at"] is not None
    assert [t["content"] for t in first["texts"]] == ["first draft", "second draft", "final text"]
    assert first["reply_count"] == 2 and first["replies"] == [3, 4]
    reactions = {r["emoji"]: sorted(r["users"]) for r in first["reactions"].values()}
    assert reactions == {"👍": ["alice", "bob"], "🎉": ["bob"]}
    assert messages[message_key("feat", 3)]["reply_to"] == {"message_id": "feat-m1", "seq": 1}
    assert messages[message_key("feat", 2)]["mentions"] == ["alice", "carol"]
    assert messages[message_key("feat", 4)]["texts"] == []  # deleted: every version gone
    members = await documents(db, projection, "memberships")
    # alice: mentioned by 2 and 4 (deleted); carol: read up to 4, then mentioned by 5
    assert members["alice:feat"]["mention_count"] == group.unread("alice", mentions=True) == 1
    assert members["carol:feat"]["mention_count"] == group.unread("carol", mentions=True) == 1
    assert members["bob:feat"].get("mention_count", 0) == 0
    sent = messages[message_key("feat", 5)]["sent_at"]
    for doc in members.values():
        assert doc["last_message"]["content"] == "ping carol (edited)"
        assert doc["last_message"]["sent_at"] == sent is not None  # kept through the edit
    ids = await documents(db, projection, "message_ids")
    assert ids["feat:feat-m3"]["seq"] == 3
    reports = await documents(db, projection, "reports")
    assert reports[report]["status"] == "resolved" and reports[report]["reason"] == "rude"
    assert reports[report]["action"] == "dismiss" and reports[report]["seq"] == 2

    before = await dump(db, projection)
    for _ in range(2):  # the whole topic again over the populated model: byte-identical
        await reset_offsets(kafka_bootstrap, projection.group, projection.topics)
        await project(db, projection, kafka_bootstrap, max_records=6)
        assert await dump(db, projection) == before
    # and a rebuild into a new generation from offset 0 shows the same documents
    options = Options(bootstrap_servers=kafka_bootstrap)
    await rebuild(db, projection, options, join_timeout_s=0.5, drop_after_s=-1)
    rebuilt = {name: await documents(db, projection, name) for name in projection.collections}
    assert rebuilt["messages"] == messages
    assert rebuilt["memberships"] == members
    assert rebuilt["reports"] == reports
