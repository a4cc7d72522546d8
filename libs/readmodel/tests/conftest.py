"""Fixtures and helpers for the read-model tests (real Kafka and FerretDB/MongoDB)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import bson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics, partitions_of
from parley_readmodel.aliases import active_generation, physical
from parley_readmodel.projection import Projection
from parley_readmodel.runtime import Options, run
from parley_testing.projections import group_committed
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

DB = AsyncDatabase[dict[str, Any]]
Rec = tuple[bytes, bytes, list[tuple[str, bytes]]]


@pytest.fixture
async def db(mongo_url: str) -> AsyncIterator[DB]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, socketTimeoutMS=60_000)
    database = client[f"rm_{uuid.uuid4().hex[:10]}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


async def new_topic(bootstrap: str, name: str, partitions: int = 3) -> str:
    await ensure_topics(bootstrap, [Topic(name, partitions)])
    return name


async def produce(bootstrap: str, topic: str, records: list[Rec]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        **kafka_security(),
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def options(bootstrap: str, **kw: Any) -> Options:
    kw.setdefault("backoff_s", 0.01)
    return Options(bootstrap_servers=bootstrap, **kw)


@asynccontextmanager
async def projector(db: DB, projection: Projection, opts: Options) -> AsyncIterator[Options]:
    task = asyncio.create_task(run(db, projection, opts))
    try:
        yield opts
    finally:
        opts.stop.set()
        await asyncio.wait_for(task, 60)


async def caught_up(
    bootstrap: str, group: str, topics: tuple[str, ...], timeout: float = 60
) -> None:
    """Wait until the group's committed offsets reach the end of every partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in await partitions_of(bootstrap, t)]
        deadline = time.monotonic() + timeout
        while True:
            if await group_committed(consumer, await consumer.end_offsets(tps)):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{group} never caught up")
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


async def reset_offsets(bootstrap: str, group: str, topics: tuple[str, ...]) -> None:
    """Operationally: kafka-consumer-groups --reset-offsets --to-earliest."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in await partitions_of(bootstrap, t)]
        consumer.assign(tps)
        await consumer.commit({tp: 0 for tp in tps})
    finally:
        await consumer.stop()


async def dump(
    db: DB, projection: Projection, generation: int | None = None
) -> dict[str, list[bytes]]:
    """Every document, BSON-encoded, in _id order: equal dumps are byte-for-byte equal."""
    gen = generation or await active_generation(db, projection.name, ttl_s=0)
    return {
        logical: [
            bson.encode(d)
            for d in await db[physical(logical, gen)].find({}).sort("_id", 1).to_list(None)
        ]
        for logical in projection.collections
    }


async def docs(
    db: DB, projection: Projection, logical: str, generation: int | None = None
) -> dict[str, dict[str, Any]]:
    gen = generation or await active_generation(db, projection.name, ttl_s=0)
    return {d["_id"]: d for d in await db[physical(logical, gen)].find({}).to_list(None)}


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Any] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(timeout_ms=500)
            out += [r for rs in batch.values() for r in rs]
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()
