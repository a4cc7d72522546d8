"""Run a real projection in a test: CloudEvents records to a fresh topic, the read-model runtime
into a fresh database, and a wait until the consumer group has committed the end of every
partition (no sleeps). The same steps as libs/readmodel/tests, for services' own tests."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import bson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics, partitions_of
from parley_readmodel.aliases import active_generation, physical
from parley_readmodel.progress import context_of
from parley_readmodel.projection import Projection
from parley_readmodel.runtime import Options, run
from pymongo.asynchronous.database import AsyncDatabase

DB = AsyncDatabase[dict[str, Any]]
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def record(
    context: str,
    subject: str,
    version: int,
    name: str,
    data: dict[str, Any],
    at: datetime | None = None,
) -> Record:
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source=f"/parley/{context}",
        type=ce_type(context, name, 1),
        subject=subject,
        time=at or datetime.now(UTC),
        data=json.dumps(data).encode(),
        aggregate_version=version,
        schema_version=1,
    )
    return envelope.key, envelope.data, kafka_headers(header_map(envelope))


async def produce(bootstrap: str, topic: str, records: list[Record], partitions: int = 3) -> None:
    await ensure_topics(bootstrap, [Topic(topic, partitions)])
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        **kafka_security(),
    )
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def on_topic(projection: Projection, topic: str, name: str) -> Projection:
    """The projection reading `topic` (in place of its first topic) under its own group `name`
    (a test's private copy)."""
    first = context_of(projection.topics[0])
    versions_in = (
        {context_of(topic): projection.versions_in[first]}
        if first in projection.versions_in
        else {}
    )
    tracked = projection.tracked
    if tracked is not None:
        tracked = (context_of(topic),) if first in tracked else ()
    return dataclasses.replace(
        projection, name=name, topics=(topic,), versions_in=versions_in, tracked=tracked
    )


async def group_committed(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    """True once the consumer's group committed `ends` (or past them) on every partition."""
    return all([(await consumer.committed(tp) or 0) >= end for tp, end in ends.items()])


async def committed_to_end(bootstrap: str, group: str, topics: tuple[str, ...]) -> bool:
    """True once `group` committed the end offset of every partition of `topics`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **kafka_security())
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in await partitions_of(bootstrap, t)]
        return await group_committed(consumer, await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


@asynccontextmanager
async def running(
    db: DB, projection: Projection, bootstrap: str, **options: Any
) -> AsyncIterator[None]:
    options.setdefault("backoff_s", 0.01)
    opts = Options(bootstrap_servers=bootstrap, **options)
    task = asyncio.create_task(run(db, projection, opts))
    try:
        yield
    finally:
        opts.stop.set()
        await asyncio.wait_for(task, 60)


async def project(
    db: DB, projection: Projection, bootstrap: str, timeout_s: float = 60, **options: Any
) -> None:
    """Run the projection until its group committed the end of every partition."""
    async with running(db, projection, bootstrap, **options):
        deadline = time.monotonic() + timeout_s
        while not await committed_to_end(bootstrap, projection.group, projection.topics):
            if time.monotonic() > deadline:
                raise AssertionError(f"{projection.group} never caught up")
            await asyncio.sleep(0.2)


async def reset_offsets(bootstrap: str, group: str, topics: tuple[str, ...]) -> None:
    """Operationally: kafka-consumer-groups --reset-offsets --to-earliest."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **kafka_security())
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in await partitions_of(bootstrap, t)]
        consumer.assign(tps)
        await consumer.commit({tp: 0 for tp in tps})
    finally:
        await consumer.stop()


async def documents(db: DB, projection: Projection, logical: str) -> dict[str, dict[str, Any]]:
    generation = await active_generation(db, projection.name, ttl_s=0)
    docs = await db[physical(logical, generation)].find({}).to_list(None)
    return {d["_id"]: d for d in docs}


async def dump(db: DB, projection: Projection) -> dict[str, list[bytes]]:
    """Every document BSON-encoded in `_id` order: equal dumps are byte-for-byte equal."""
    generation = await active_generation(db, projection.name, ttl_s=0)
    return {
        logical: [
            bson.encode(d)
            for d in await db[physical(logical, generation)].find({}).sort("_id", 1).to_list(None)
        ]
        for logical in projection.collections
    }
