"""The relay loop: lead, fetch the oldest outbox rows, publish, wait for every ack, delete.

Guarantees (DESIGN.md 3):
- nothing lost: rows are deleted only after Kafka acknowledged all of them (acks=all,
  idempotent producer); a crash anywhere before the delete re-publishes them (duplicates,
  removed downstream by event id / aggregate version);
- nothing uncommitted: only committed rows are visible to the SELECT;
- order per aggregate: rows are read oldest id first and one aggregate's rows are committed in
  version order, so its records enter its partition in version order; a failed batch is sent
  again whole;
- no skipped rows: every fetch takes the lowest remaining ids, never "id > last seen", so a
  transaction that commits late with a lower id is picked up by the next fetch;
- one publisher per database: a session advisory lock held on the same connection that reads
  and deletes; if that connection dies the lock is gone and so is this relay's ability to
  delete, so a stale leader cannot keep going.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from functools import partial

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind
from parley_messaging.envelope import kafka_headers
from parley_messaging.retrying import doubling, log_retry
from parley_messaging.security import kafka_security
from parley_observability.tracing import child_span, traceparent_of, tracing_enabled
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from parley_relay import metrics
from parley_relay.config import Settings
from parley_relay.faults import Faults

log = logging.getLogger("parley.relay")

CHANNEL = "parley_outbox"
# one leader per database: advisory locks are scoped to the database, so every service
# database can use the same key
LOCK_KEY = 0x50_61_72_6C_65_79  # "Parley"
FETCH = """
SELECT id, topic, key, headers::text AS headers, payload, created_at
FROM outbox ORDER BY id LIMIT $1
"""
DELETE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
# planner estimate: exact counts of a busy queue table cost a scan for a number that is
# stale when it arrives
BACKLOG = "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE relname = 'outbox'"


def new_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=settings.name,
        enable_idempotence=True,  # retries inside the producer never duplicate or reorder
        acks="all",
        linger_ms=settings.linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=10_000,
        **kafka_security(),
    )


async def publish_batch(
    conn: asyncpg.Connection, producer: AIOKafkaProducer, settings: Settings, faults: Faults
) -> int:
    """Publish the oldest rows; returns how many were published and deleted."""
    rows = await conn.fetch(FETCH, settings.batch_size)
    if not rows:
        return 0
    faults.hit("crash_before_send")
    traced = tracing_enabled()  # decided once a batch: no per-record cost when off
    spans = []
    acks = []
    for row in rows:
        headers = json.loads(row["headers"])
        if traced and headers.get("traceparent"):
            # the publish continues the command's trace; consumers continue the publish
            span = child_span(
                f"publish {row['topic']}",
                headers["traceparent"],
                SpanKind.PRODUCER,
                {"messaging.system": "kafka", "messaging.destination.name": row["topic"]},
            )
            headers["traceparent"] = traceparent_of(span) or headers["traceparent"]
            spans.append(span)
        acks.append(
            await producer.send(
                row["topic"],
                value=row["payload"],
                key=row["key"].encode(),
                headers=kafka_headers(headers),
            )
        )
    try:
        await asyncio.gather(*acks)  # every record acknowledged by the broker, or an exception
    finally:
        for span in spans:
            span.end()
    acked_at = time.time()
    faults.hit("crash_after_ack")
    await conn.execute(DELETE, [row["id"] for row in rows])
    for row in rows:
        metrics.LAG_SECONDS.labels(settings.name).observe(acked_at - row["created_at"].timestamp())
    metrics.PUBLISHED.labels(settings.name).inc(len(rows))
    metrics.BATCH_SIZE.labels(settings.name).observe(len(rows))
    return len(rows)


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True if asked to stop meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


class _Kafka:
    """The leader's producer: started before a batch when there is none, dropped after a batch
    Kafka did not acknowledge (the same rows then go again, whole, on a fresh one)."""

    def __init__(self, settings: Settings, state: dict[str, bool]) -> None:
        self.settings = settings
        self.state = state
        self.producer: AIOKafkaProducer | None = None

    async def started(self) -> AIOKafkaProducer:
        if self.producer is None:
            self.producer = new_producer(self.settings)
            await self.producer.start()
            self.state["kafka"] = True
        return self.producer

    async def failed(self, retry: RetryCallState) -> None:
        """tenacity's `before_sleep`: nothing was deleted; count and log the failure, drop the
        producer."""
        metrics.FAILURES.labels(self.settings.name).inc()
        _log_unacknowledged(retry)
        self.state["kafka"] = False
        await self.close()

    async def close(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            await producer.stop()


_log_unacknowledged = log_retry(
    log, "Kafka did not acknowledge a batch (%(error)s); retrying in %(pause).1fs"
)


async def publish_next(
    conn: asyncpg.Connection,
    kafka: _Kafka,
    faults: Faults,
    stop: asyncio.Event,
    wake: asyncio.Event,
) -> int | None:
    """Publish the oldest rows (`publish_batch`); a batch Kafka did not acknowledge goes again
    after a pause doubling from 0.1 s to 5 s (with jitter), cut short by `stop`. Returns how
    many rows went, None if stopped meanwhile; failing to start a producer is raised (`run`
    reconnects). `wake` (set by NOTIFY) is cleared before each fetch."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(KafkaError),
        wait=doubling(0.1, 5.0),
        sleep=partial(_pause, stop),
        before_sleep=kafka.failed,
        reraise=True,
    ):
        if stop.is_set():
            return None
        producer = await kafka.started()
        wake.clear()  # before the fetch: a NOTIFY during the publish is not lost
        with attempt:
            return await publish_batch(conn, producer, kafka.settings, faults)
    raise AssertionError("tenacity ends with a result or an exception")


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    await wait_or_stop(stop, seconds)


async def lead(
    settings: Settings, stop: asyncio.Event, faults: Faults, state: dict[str, bool]
) -> None:
    """Become leader (or wait as a standby), then publish until stopped or disconnected."""
    conn = await asyncpg.connect(settings.postgres_dsn)
    kafka = _Kafka(settings, state)
    try:
        state["postgres"] = True
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
            metrics.LEADER.labels(settings.name).set(0)
            if await wait_or_stop(stop, settings.standby_retry_s):
                return
        metrics.LEADER.labels(settings.name).set(1)
        state["leader"] = True
        log.info("%s leads the outbox", settings.name)
        wake = asyncio.Event()
        await conn.add_listener(CHANNEL, lambda *_: wake.set())
        last_backlog = 0.0
        while not stop.is_set():
            published = await publish_next(conn, kafka, faults, stop, wake)
            if published is None:
                return
            if time.monotonic() - last_backlog > 1.0:
                metrics.BACKLOG.labels(settings.name).set(await conn.fetchval(BACKLOG))
                last_backlog = time.monotonic()
            if published < settings.batch_size:  # drained: sleep until a NOTIFY or the poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), settings.poll_interval_s)
    finally:
        metrics.LEADER.labels(settings.name).set(0)
        state["postgres"] = state["kafka"] = state["leader"] = False
        await kafka.close()
        await conn.close()  # releases the advisory lock


async def run(settings: Settings, stop: asyncio.Event, state: dict[str, bool]) -> None:
    """Lead or stand by until stopped; reconnect after PostgreSQL or Kafka outages."""
    faults = Faults.parse(settings.fault)
    # a supervision loop, not a retry of one operation: each `lead` is a whole leadership (or
    # standby) that ends when its connection does, and a fixed second, cut short by `stop`,
    # separates them; tenacity would only hide that (its retries: `publish_next`)
    while not stop.is_set():
        try:
            await lead(settings, stop, faults, state)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as error:
            log.warning("relay connection lost (%s); reconnecting", error)
            await wait_or_stop(stop, 1.0)
