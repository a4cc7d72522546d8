"""Fixtures: a migrated database with an event store writing to a private topic, a relay
(in-process or as real subprocesses) and a consumer reading the topic as another team would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from parley_eventstore.migrate import migrate
from parley_eventstore.pool import create_pool
from parley_eventstore.records import Metadata, NewEvent
from parley_eventstore.store import EventStore
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics
from parley_relay.config import Settings
from parley_relay.relay import run


@dataclass
class Bench:
    dsn: str
    bootstrap: str
    topic: str
    store: EventStore

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "name": f"relay-{self.topic}",
            "postgres_dsn": self.dsn,
            "kafka_bootstrap_servers": self.bootstrap,
            "poll_interval_s": 0.2,
            "batch_size": 50,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    async def append(self, stream_id: str, n: int, start: int = 0) -> None:
        events = [NewEvent("Counted", {"n": start + i}) for i in range(n)]
        await self.store.append(stream_id, "Counter", start, events, metadata=Metadata())


@pytest.fixture
async def bench(
    fresh_database: str, kafka_bootstrap: str, unique_name: str
) -> AsyncIterator[Bench]:
    await migrate(fresh_database)
    topic = f"relay-test.{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(topic, 3)])
    pool = await create_pool(fresh_database, min_size=1, max_size=8)
    store = EventStore(pool, topic=topic, source="/parley/test", context="test")
    yield Bench(fresh_database, kafka_bootstrap, topic, store)
    await store.close()
    await pool.close()


@pytest.fixture
async def relay_task(bench: Bench) -> AsyncIterator[Callable[..., None]]:
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def start(**overrides: object) -> None:
        state = {"postgres": False, "kafka": False, "leader": False}
        tasks.append(asyncio.create_task(run(bench.settings(**overrides), stop, state)))

    yield start
    stop.set()
    await asyncio.gather(*tasks)


def relay_process(bench: Bench, *, port: int = 0, fault: str = "") -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RELAY_NAME": f"relay-{bench.topic}",
        "RELAY_POSTGRES_DSN": bench.dsn,
        "RELAY_KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap,
        "RELAY_POLL_INTERVAL_S": "0.2",
        "RELAY_STANDBY_RETRY_S": "0.5",
        "RELAY_BATCH_SIZE": "20",
        "RELAY_PORT": str(port),
        "RELAY_FAULT": fault,
    }
    return subprocess.Popen([sys.executable, "-m", "parley_relay"], env=env)


async def read_topic(
    bench: Bench, expected: int, timeout: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on the topic from the start, waiting until at least `expected` arrived."""
    consumer = AIOKafkaConsumer(
        bench.topic,
        bootstrap_servers=bench.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_security(),
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            records += [r for rs in batch.values() for r in rs]
            if len(records) >= expected and not batch:
                break
    finally:
        await consumer.stop()
    return records


def versions_by_key(records: list[ConsumerRecord[bytes, bytes]]) -> dict[str, list[int]]:
    """Per key, the aggregate versions in the order they were first seen."""
    seen: dict[str, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        version = int(dict(record.headers)["ce_aggregateversion"])
        versions = seen.setdefault(record.key.decode(), [])
        if version not in versions:
            versions.append(version)
    return seen
