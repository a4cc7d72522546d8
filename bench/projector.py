"""Projector throughput into the Mongo-wire store, against raw PyMongo async `bulk_write` of
the same documents into the same store.

Two workloads through the real users projection and the real runtime (parley_readmodel):
- `projector.events_per_s`: N UserCreated events (every event creates a document: a replay,
  a rebuild, a sign-up burst), 6 partitions, batches of up to 2,000 records, from offset 0
  until the group has committed the end of every partition (group join included);
- `projector.updates.events_per_s`: then one UserProfileUpdated per user for a slice of the
  users (every event rewrites an existing document: FerretDB 1.24's slow path, reported as
  is).
The raw baseline writes the documents the first workload ends with (`_v` included), in bulks
of 1,000 inserts, with nothing else: no Kafka, no decoding, no version reads, no progress.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics, partitions_of
from parley_projector_users.views import users_projection
from parley_readmodel.aliases import physical
from parley_readmodel.runtime import Options
from parley_readmodel.runtime import run as run_projector
from parley_testing.infra import Server, locate
from parley_testing.projections import group_committed, on_topic
from pymongo import AsyncMongoClient, InsertOne

from bench.common import kafka_bootstrap

CREATES = 20_000
UPDATES = 1_000  # FerretDB 1.24 rewrites existing documents at a few hundred per second


def mongo_url() -> str:
    return locate(Server.MONGO).address


def envelope(name: str, user_id: str, version: int, data: dict[str, Any]) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        source="/parley/users",
        type=ce_type("users", name, 1),
        subject=user_id,
        time=datetime.now(UTC),
        data=json.dumps(data).encode(),
        aggregate_version=version,
        schema_version=1,
    )


async def produce(topic: str, envelopes: list[Envelope]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap(),
        acks="all",
        linger_ms=20,
        max_batch_size=262144,
        **kafka_security(),
    )
    await producer.start()
    try:
        for e in envelopes:
            await producer.send(topic, e.data, key=e.key, headers=kafka_headers(header_map(e)))
        await producer.flush()
    finally:
        await producer.stop()


async def timed_projection(db: Any, topic: str, name: str, produced: list[Envelope]) -> float:
    await produce(topic, produced)
    projection = on_topic(users_projection(name), topic, name)
    options = Options(bootstrap_servers=kafka_bootstrap(), max_records=2000)
    # one watcher for the whole run: a consumer started per check would take CPU from the
    # projector it measures (same event loop, same two cores)
    watcher = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap(), group_id=name, **kafka_security()
    )
    await watcher.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in await partitions_of(kafka_bootstrap(), topic)
        ]
        ends = await watcher.end_offsets(partitions)
        started = time.perf_counter()
        task = asyncio.create_task(run_projector(db, projection, options))
        while not await group_committed(watcher, ends):
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        await watcher.stop()
    options.stop.set()
    await task
    return len(produced) / elapsed


def created(i: int) -> tuple[str, dict[str, Any]]:
    user_id = str(uuid.uuid4())
    return user_id, {"user_id": user_id, "name": f"user {i}", "email": f"u{i}@example.test"}


async def run() -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url())
    suffix = uuid.uuid4().hex[:8]
    topic = f"bench.users.{suffix}"
    await ensure_topics(kafka_bootstrap(), [Topic(topic, 6, {"retention.ms": "600000"})])
    db = client[f"bench_proj_{suffix}"]
    raw_db = client[f"bench_raw_{suffix}"]
    try:
        users = [created(i) for i in range(CREATES)]
        creates = [envelope("UserCreated", uid, 1, data) for uid, data in users]
        ours = await timed_projection(db, topic, f"bench-projector-{suffix}", creates)
        edits = [
            envelope("UserProfileUpdated", uid, 2, {"user_id": uid, "bio": "edited"})
            for uid, _ in users[:UPDATES]
        ]
        # a second group over a fresh topic holding only the edits, into the same database
        topic2 = f"{topic}.edits"
        await ensure_topics(kafka_bootstrap(), [Topic(topic2, 6, {"retention.ms": "600000"})])
        name = f"bench-projector-{suffix}"
        updates = await timed_projection(db, topic2, name, edits)

        docs = await db[physical("users", 1)].find({}).to_list(None)
        for doc in docs:  # the documents as the create workload left them
            doc.pop("bio", None)
        started = time.perf_counter()
        for at in range(0, len(docs), 1000):
            await raw_db.users.bulk_write([InsertOne(d) for d in docs[at : at + 1000]])
        raw = len(docs) / (time.perf_counter() - started)
        return {
            "projector.events_per_s": round(ours, 1),
            "projector.updates.events_per_s": round(updates, 1),
            "projector.raw_bulk_write.events_per_s": round(raw, 1),
            "projector.vs_raw_bulk_write.ratio": round(ours / raw, 3),
        }
    finally:
        await client.drop_database(db.name)
        await client.drop_database(raw_db.name)
        await client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
