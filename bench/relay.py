"""The outbox relay: sustained outbox -> Kafka throughput on a pre-filled backlog, and the
commit-to-consumer latency of single-event commands under light load (the whole road a fresh
event travels: commit, coalesced NOTIFY, relay fetch, Kafka ack, a consumer's fetch)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from parley_eventstore.migrate import migrate
from parley_eventstore.pool import create_pool
from parley_eventstore.records import Metadata, NewEvent
from parley_eventstore.store import EventStore
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics
from parley_relay.config import Settings
from parley_relay.relay import run as run_relay

from bench.common import create_database, drop_database, kafka_bootstrap, payload, percentile

BACKLOG = 50_000
LIGHT_RATE = 100  # commands per second
LIGHT_COUNT = 1_000

FILL = """
INSERT INTO outbox (topic, key, headers, payload)
SELECT $1, 'stream-' || (i % 500), $2::jsonb, convert_to($3, 'UTF8')
FROM generate_series(1, $4) AS i
"""


async def throughput(dsn: str, topic: str) -> float:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    headers = {
        "ce_specversion": "1.0",
        "ce_id": str(uuid.uuid4()),
        "ce_source": "/parley/bench",
        "ce_type": "parley.bench.MessageSent.v1",
        "ce_time": "2026-11-22T00:00:00Z",
        "ce_subject": "stream",
        "content-type": "application/json",
    }
    async with pool.acquire() as conn:
        await conn.execute(FILL, topic, json.dumps(headers), json.dumps(payload()), BACKLOG)
    stop = asyncio.Event()
    settings = Settings(
        name="relay-bench",
        postgres_dsn=dsn,
        kafka_bootstrap_servers=kafka_bootstrap(),
        batch_size=1000,
    )
    state = {"postgres": False, "kafka": False, "leader": False}
    started = time.perf_counter()
    task = asyncio.create_task(run_relay(settings, stop, state))
    async with pool.acquire() as conn:
        while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox)"):
            await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await pool.close()
    return BACKLOG / elapsed


async def light_load_lag(dsn: str, topic: str) -> list[float]:
    pool = await create_pool(dsn, min_size=2, max_size=4)
    store = EventStore(pool, topic=topic, source="/parley/bench", context="bench")
    stop = asyncio.Event()
    settings = Settings(
        name="relay-bench", postgres_dsn=dsn, kafka_bootstrap_servers=kafka_bootstrap()
    )
    state = {"postgres": False, "kafka": False, "leader": False}
    relay = asyncio.create_task(run_relay(settings, stop, state))
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap(),
        auto_offset_reset="latest",
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        fetch_max_wait_ms=5,
        **kafka_security(),
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    committed: dict[bytes, float] = {}
    lags: list[float] = []

    async def consume() -> None:
        while len(lags) < LIGHT_COUNT:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for record in (r for rs in batch.values() for r in rs):
                if record.key in committed:
                    lags.append((now - committed.pop(record.key)) * 1000)

    reader = asyncio.create_task(consume())
    body = payload()
    for _ in range(LIGHT_COUNT):
        stream = str(uuid.uuid4())
        await store.append(stream, "Bench", 0, [NewEvent("MessageSent", body)], metadata=Metadata())
        committed[stream.encode()] = time.perf_counter()
        await asyncio.sleep(1 / LIGHT_RATE)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, 30)
    await consumer.stop()
    stop.set()
    await relay
    await store.close()
    await pool.close()
    return lags


async def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for stage in ("throughput", "lag"):
        dsn = await create_database("bench_relay")
        topic = f"bench.relay.{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka_bootstrap(), [Topic(topic, 6, {"retention.ms": "600000"})])
        try:
            await migrate(dsn)
            if stage == "throughput":
                results["relay.events_per_s"] = round(await throughput(dsn, topic), 1)
            else:
                lags = await light_load_lag(dsn, topic)
                results["relay.lag_p50_ms"] = round(percentile(lags, 50), 2)
                results["relay.lag_p99_ms"] = round(percentile(lags, 99), 2)
                results["relay.lag_samples"] = len(lags)
        finally:
            await drop_database(dsn)
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
