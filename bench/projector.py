"""Projector throughput into the Mongo-wire store (batches on) against a raw PyMongo async
`bulk_write` of the same documents into the same store.

(The query gateway's GET-by-id load test belongs in a separate process with a real load
generator against the running gateway; an in-process client shares the server's event loop
and measures itself. Not written yet.)"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from parley_messaging.topics import Topic, ensure_topics
from parley_projection.runtime import Options
from parley_projection.runtime import run as run_projector
from parley_projector_users.views import users_projection
from parley_testing.infra import Server, locate
from pymongo import AsyncMongoClient, UpdateOne

from bench.common import kafka_bootstrap

EVENTS = 2_000  # FerretDB 1.24 applies a few hundred updates per second: keep the run short


def mongo_url() -> str:
    return locate(Server.MONGO).address


async def produce_users(topic: str, count: int) -> None:
    from datetime import UTC, datetime

    from aiokafka import AIOKafkaProducer
    from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap(), acks="all", linger_ms=5)
    await producer.start()
    try:
        for i in range(count):
            user_id = str(uuid.uuid4())
            data = {"user_id": user_id, "name": f"user {i}", "email": f"u{i}@example.test"}
            envelope = Envelope(
                id=str(uuid.uuid4()),
                source="/parley/users",
                type=ce_type("users", "UserCreated", 1),
                subject=user_id,
                time=datetime.now(UTC),
                data=json.dumps(data).encode(),
                aggregate_version=1,
                schema_version=1,
            )
            await producer.send(
                topic, envelope.data, key=envelope.key, headers=kafka_headers(header_map(envelope))
            )
        await producer.flush()
    finally:
        await producer.stop()


async def projector_rate(client: AsyncMongoClient[dict[str, Any]]) -> float:
    topic = f"bench.users.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap(), [Topic(topic, 6, {"retention.ms": "600000"})])
    await produce_users(topic, EVENTS)
    db = client[f"bench_proj_{uuid.uuid4().hex[:6]}"]
    projection = users_projection(f"bench-projector-{uuid.uuid4().hex[:6]}")
    projection = type(projection)(projection.name, (topic,), projection.handlers)
    options = Options(bootstrap_servers=kafka_bootstrap(), max_records=500)
    started = time.perf_counter()
    task = asyncio.create_task(run_projector(db, projection, options))
    while await db.users.count_documents({}) < EVENTS:
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started
    options.stop.set()
    await task
    await client.drop_database(db.name)
    return EVENTS / elapsed


async def raw_bulk_rate(client: AsyncMongoClient[dict[str, Any]]) -> float:
    db = client[f"bench_raw_{uuid.uuid4().hex[:6]}"]
    docs = [(str(uuid.uuid4()), i) for i in range(EVENTS)]
    started = time.perf_counter()
    for at in range(0, EVENTS, 500):
        ops = [
            UpdateOne(
                {"_id": d},
                {"$set": {"name": f"user {i}", "email": f"u{i}@example.test"}},
                upsert=True,
            )
            for d, i in docs[at : at + 500]
        ]
        await db.users.bulk_write(ops, ordered=True)
    elapsed = time.perf_counter() - started
    await client.drop_database(db.name)
    return EVENTS / elapsed


async def run() -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url())
    try:
        ours = await projector_rate(client)
        raw = await raw_bulk_rate(client)
        results: dict[str, Any] = {
            "projector.events_per_s": round(ours, 1),
            "projector.raw_bulk_write.events_per_s": round(raw, 1),
            "projector.vs_raw_bulk_write.ratio": round(ours / raw, 3),
        }
        return results
    finally:
        await client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
