"""A small sample projection and helpers shared by the projection tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_messaging.topics import Topic, ensure_topics
from parley_projection.projection import Projection, Write
from parley_projection.runtime import Options, run
from pymongo.asynchronous.database import AsyncDatabase


def counted(envelope: Envelope, data: dict[str, Any]) -> list[Write]:
    return [
        Write("per_stream", envelope.subject, {"$inc": {"count": 1}, "$set": {"last": data["n"]}}),
        # a view folding many streams: exact only because each stream's version is tracked
        Write("totals", "all", {"$inc": {"count": 1}}),
    ]


def boom(envelope: Envelope, data: dict[str, Any]) -> list[Write]:
    raise ValueError("this handler always fails")


def tally(name: str, topic: str) -> Projection:
    return Projection(
        name=name, topics=(topic,), handlers={"Counted": counted, "Boom": boom}, strict=True
    )


def record(stream: str, version: int, name: str = "Counted", value: bytes | None = None):
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="/parley/test",
        type=ce_type("test", name, 1),
        subject=stream,
        time=datetime.now(UTC),
        data=value if value is not None else f'{{"n": {version}}}'.encode(),
        aggregate_version=version,
        schema_version=1,
    )
    return envelope.key, envelope.data, kafka_headers(header_map(envelope))


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def new_topic(bootstrap: str, name: str, partitions: int = 3) -> str:
    await ensure_topics(bootstrap, [Topic(name, partitions)])
    return name


@asynccontextmanager
async def projector(
    db: AsyncDatabase[dict[str, Any]], projection: Projection, bootstrap: str
) -> AsyncIterator[None]:
    options = Options(bootstrap_servers=bootstrap, backoff_s=0.01, partitions=1)
    task = asyncio.create_task(run(db, projection, options))
    try:
        yield
    finally:
        options.stop.set()
        await task


async def wait_total(db: AsyncDatabase[dict[str, Any]], expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = await db.totals.find_one({"_id": "all"})
        if doc and doc["count"] >= expected:
            await asyncio.sleep(0.5)  # let anything extra (a double count) arrive too
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"total never reached {expected}")


async def dump(db: AsyncDatabase[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        name: await db[name].find({}).sort("_id", 1).to_list(None)
        for name in ("per_stream", "totals")
    }
