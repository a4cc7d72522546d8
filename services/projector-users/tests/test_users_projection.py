"""The users projection on the real runtime, Kafka and Mongo-wire store: the documents the
query gateway reads, its indexes, and replays from offset 0 that change nothing."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_messaging.topics import Topic, ensure_topics
from parley_projector_users.views import users_projection
from parley_readmodel.aliases import active_generation, physical
from parley_testing.projections import dump, produce, project, reset_offsets
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration
DB = AsyncDatabase[dict[str, Any]]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def db(mongo_url: str) -> AsyncIterator[DB]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, socketTimeoutMS=60_000)
    database = client[f"pu_{uuid.uuid4().hex[:10]}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


class Stream:
    """One user's events, numbered like the event store numbers them."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.version = 0

    def event(
        self, event_name: str, /, **data: Any
    ) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        self.version += 1
        envelope = Envelope(
            id=str(uuid.uuid4()),
            source="/parley/users",
            type=ce_type("users", event_name, 1),
            subject=self.user_id,
            time=T0 + timedelta(seconds=self.version),
            data=json.dumps({"user_id": self.user_id, **data}).encode(),
            aggregate_version=self.version,
        )
        return self.user_id.encode(), envelope.data, kafka_headers(header_map(envelope))


async def test_users_and_contacts_documents_and_replays_change_nothing(
    db: DB, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"pu.{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(topic, 3)])
    projection = dataclasses.replace(users_projection(f"pu-{unique_name}"), topics=(topic,))
    ada, bob, eve = (Stream(str(uuid.uuid4())) for _ in range(3))
    records = [
        ada.event("UserCreated", name="Émilie Noël", email="emilie@example.test"),
        bob.event("UserCreated", name="Bob", email="bob@example.test"),
        eve.event("UserCreated", name="Eve", email="eve@example.test"),
        ada.event("UserContactAdded", contact_id=bob.user_id),
        ada.event("UserContactAdded", contact_id=eve.user_id),
        ada.event("UserContactRemoved", contact_id=bob.user_id),
        bob.event("UserContactAdded", contact_id=ada.user_id),
        ada.event("UserRoleAssigned", role="admin"),
        eve.event("UserStatusChanged", status="deactivated", reason="spam"),
        ada.event("UserProfileEmailChanged", email="Noel@Example.test"),
        ada.event("UserProfileUpdated", name="Émilie Zoë Noël"),
    ]
    await produce(kafka_bootstrap, topic, records)
    await project(db, projection, kafka_bootstrap, max_records=500, indexes=True)

    generation = await active_generation(db, projection.name, ttl_s=0)
    users = {d["_id"]: d for d in await db[physical("users", generation)].find().to_list(None)}
    first = users[ada.user_id]
    assert (first["role"], first["status"], first["email_key"]) == (
        "admin",
        "active",
        "noel@example.test",
    )
    assert first["name_key"] == "emilie zoe noel"
    assert "zoe" in first["search_name"] and "noel" in first["search_email"]
    assert (users[eve.user_id]["status"], users[eve.user_id]["status_reason"]) == (
        "deactivated",
        "spam",
    )
    contacts = {
        d["_id"]: d["removed"] for d in await db[physical("contacts", generation)].find().to_list()
    }
    assert contacts == {
        f"{ada.user_id}:{bob.user_id}": True,  # a tombstone, not a deleted document
        f"{ada.user_id}:{eve.user_id}": False,
        f"{bob.user_id}:{ada.user_id}": False,
    }
    roles = await db[physical("users", generation)].aggregate(
        [{"$group": {"_id": "$role", "n": {"$sum": 1}}}]
    )
    assert {d["_id"]: d["n"] async for d in roles} == {"admin": 1, "user": 2}
    indexed = [i["key"] async for i in await db[physical("users", generation)].list_indexes()]
    assert {"name_key": 1, "_id": 1} in [dict(k) for k in indexed]
    assert {"search_name": 1} in [dict(k) for k in indexed]
    contact_indexes = await db[physical("contacts", generation)].list_indexes()
    assert {"user_id": 1, "_id": 1} in [dict(i["key"]) async for i in contact_indexes]

    before = await dump(db, projection)
    for batch in (500, 2):  # the whole topic again, in big then tiny batches
        await reset_offsets(kafka_bootstrap, projection.group, projection.topics)
        await project(db, projection, kafka_bootstrap, max_records=batch, indexes=True)
        assert await dump(db, projection) == before
