"""The notifications projection on the real runtime, Kafka and Mongo-wire store: the documents
the query gateway reads, and replays from offset 0 that change nothing (byte-identical)."""

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
from parley_projector_notifications.views import notifications_projection
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
    database = client[f"pn_{uuid.uuid4().hex[:10]}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


class Stream:
    """One aggregate's events, numbered like the event store numbers them."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.version = 0

    def event(
        self, event_name: str, /, **data: Any
    ) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        self.version += 1
        envelope = Envelope(
            id=str(uuid.uuid4()),
            source="/parley/notifications",
            type=ce_type("notifications", event_name, 1),
            subject=self.stream_id,
            time=T0 + timedelta(seconds=self.version),
            data=json.dumps(data).encode(),
            aggregate_version=self.version,
        )
        return self.stream_id.encode(), envelope.data, kafka_headers(header_map(envelope))


def created(stream: Stream, user: str, message: str, **extra: Any) -> Any:
    return stream.event(
        "NotificationCreated",
        notification_id=stream.stream_id,
        user_id=user,
        kind="message",
        conversation_id="c1",
        message_id=message,
        sender_id="ada",
        preview=f"preview of {message}",
        **extra,
    )


async def test_notifications_and_preferences_and_replays_change_nothing(
    db: DB, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"pn.{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(topic, 3)])
    projection = dataclasses.replace(notifications_projection(f"pn-{unique_name}"), topics=(topic,))
    n1, n2, n3 = (Stream(str(uuid.uuid4())) for _ in range(3))
    bob_prefs = Stream("bob")
    records = [
        created(n1, "bob", "m1"),
        created(n2, "bob", "m2"),
        created(n3, "eve", "m1"),
        n1.event("NotificationRead", notification_id=n1.stream_id, user_id="bob"),
        n2.event("NotificationEmailed", notification_id=n2.stream_id, user_id="bob"),
        bob_prefs.event(
            "NotificationPreferencesUpdated",
            user_id="bob",
            in_app=True,
            email=True,
            muted_conversations=["c9"],
        ),
        bob_prefs.event(
            "NotificationPreferencesUpdated",
            user_id="bob",
            in_app=True,
            email=False,
            muted_conversations=[],
        ),
    ]
    await produce(kafka_bootstrap, topic, records)
    await project(db, projection, kafka_bootstrap, max_records=500)

    generation = await active_generation(db, projection.name, ttl_s=0)
    notes = {
        d["_id"]: d for d in await db[physical("notifications", generation)].find().to_list(None)
    }
    assert {k: (d["user_id"], d["read"], d["emailed"]) for k, d in notes.items()} == {
        n1.stream_id: ("bob", True, False),
        n2.stream_id: ("bob", False, True),
        n3.stream_id: ("eve", False, False),
    }
    doc = notes[n2.stream_id]
    assert (doc["kind"], doc["conversation_id"], doc["message_id"], doc["sender_id"]) == (
        "message",
        "c1",
        "m2",
        "ada",
    )
    assert doc["preview"] == "preview of m2"
    assert doc["created_at"] == datetime(2026, 1, 1, 0, 0, 1)  # ce_time (stored as UTC)
    unread = await db[physical("notifications", generation)].count_documents(
        {"user_id": "bob", "read": False}
    )
    assert unread == 1
    prefs = await db[physical("preferences", generation)].find_one({"_id": "bob"})
    assert prefs is not None
    assert (prefs["in_app"], prefs["email"], prefs["muted_conversations"]) == (True, False, [])

    before = await dump(db, projection)
    for batch in (500, 2):  # the whole topic again, twice, in big then tiny batches
        await reset_offsets(kafka_bootstrap, projection.group, projection.topics)
        await project(db, projection, kafka_bootstrap, max_records=batch)
        assert await dump(db, projection) == before
