"""Crypto-shredding on the chat read model, over real Kafka topics and the Mongo-wire store:
texts are decrypted on the way in; once the sender is forgotten (key destroyed, UserForgotten
on users.events) their texts are gone for every reader, the other participant's stay, and a
rebuild from offset 0 shows the same."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from parley_privacy.fields import FieldCipher
from parley_privacy.memory import MemoryKeys
from parley_projector_chat.views import chat_projection
from parley_readmodel.rebuild import rebuild
from parley_readmodel.runtime import Options
from parley_testing.projections import documents, produce, project, record
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(mongo_url: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, socketTimeoutMS=60_000)
    database = client[f"shred_{uuid.uuid4().hex[:10]}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


async def test_forgotten_senders_texts_are_redacted_live_and_after_a_rebuild(
    db: Any, kafka_bootstrap: str, unique_name: str
) -> None:
    keys = MemoryKeys()
    cipher = FieldCipher(keys)
    alice, bob, cid = f"alice-{unique_name}", f"bob-{unique_name}", f"dm-{unique_name}"
    chat, users = f"chat.{unique_name}", f"users.{unique_name}"
    projection = chat_projection(f"projector-chat-{unique_name}")
    projection = type(projection)(**{**projection.__dict__, "topics": (chat, users)})
    created = {
        "conversation_id": cid,
        "kind": "direct",
        "participant_ids": [alice, bob],
        "created_by": alice,
    }
    texts = [(alice, "alice secret one"), (bob, "bob says hi"), (alice, "alice secret two")]
    records = [record("chat", cid, 1, "ConversationCreated", created)]
    for seq, (sender, text) in enumerate(texts, start=1):
        data = {
            "conversation_id": cid,
            "message_id": f"m{seq}-{unique_name}",
            "seq": seq,
            "sender_id": sender,
            "content": text,
            "recipient_ids": [bob if sender == alice else alice],
        }
        records.append(
            record("chat", cid, seq + 1, "MessageSent", await cipher.encrypt("MessageSent", data))
        )
    await produce(kafka_bootstrap, chat, records)
    await produce(kafka_bootstrap, users, [])
    await project(db, projection, kafka_bootstrap, decrypt=cipher.consume)
    messages = await documents(db, projection, "messages")
    assert sorted(m["content"] for m in messages.values()) == sorted(t for _, t in texts)

    await keys.forget(alice)  # the key owner destroyed alice's key
    forgotten = record("users", alice, 9, "UserForgotten", {"user_id": alice})
    await produce(kafka_bootstrap, users, [forgotten])
    await project(db, projection, kafka_bootstrap, decrypt=cipher.consume)

    def check(messages: dict[str, Any], memberships: dict[str, Any]) -> None:
        for message in messages.values():
            if message["sender_id"] == alice:
                assert message["content"] is None and message["redacted"] is True
                assert message["search"] == []
            else:
                assert message["content"] == "bob says hi" and not message.get("redacted")
        for membership in memberships.values():  # the last message was alice's
            assert membership["last_message"]["content"] is None
            assert membership["last_message"]["redacted"] is True

    check(
        await documents(db, projection, "messages"), await documents(db, projection, "memberships")
    )
    options = Options(bootstrap_servers=kafka_bootstrap, decrypt=cipher.consume)
    await rebuild(db, projection, options, join_timeout_s=0.5, drop_after_s=-1)
    rebuilt = await documents(db, projection, "messages")
    assert len(rebuilt) == 3
    check(rebuilt, await documents(db, projection, "memberships"))
