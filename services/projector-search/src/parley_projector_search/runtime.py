"""The projector loop of the search model: one Kafka consumer per generation being written,
each in its own consumer group (`projector-search.g<N>`), polling a batch, decoding and
decrypting it, running the handlers (views.py), applying the result in one transaction
(store.py) and only then committing the offsets (at-least-once; the per-stream versions make
it exactly-once in effect).

Generations: a supervisor re-reads `search_generations` every second and runs a consumer for
every generation that is `live` or `building` and stops the ones that are `retired`. A
rebuild (rebuild.py) only adds a `building` generation, waits until its group has caught up
and swaps: no consumer ever seeks, joins or writes two generations, because each generation
has its own group and its own versions. Every replica runs the same consumers; Kafka shares
the partitions of each group among them.

Poison (an envelope that does not decode, a handler or statement that fails three times) is
parked on `projector-search.dlq` like the other projectors' records; the key owner being
unreachable or the database being down is not poison: the batch waits and is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError
from parley_messaging.dlq import Record, publish
from parley_messaging.envelope import InvalidEnvelope, decode
from parley_messaging.security import kafka_security
from parley_messaging.topics import ensure_topics
from parley_privacy.keys import KeyUnavailable
from parley_readmodel import metrics
from parley_readmodel.dlq import dlq_declaration
from parley_readmodel.progress import stream_key

from parley_projector_search import store
from parley_projector_search.schema import GENERATIONS, tables
from parley_projector_search.store import Item
from parley_projector_search.views import TOPICS, handler_for

log = logging.getLogger("parley.search")
NAME = "projector-search"
ATTEMPTS = 3
Decrypt = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def group_for(generation: int) -> str:
    return f"{NAME}.g{int(generation)}"


@dataclass
class Options:
    bootstrap_servers: str
    max_records: int = 500
    poll_ms: int = 200
    refresh_s: float = 1.0  # how often the supervisor re-reads the generations
    decrypt: Decrypt | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def item_for(
    headers: Sequence[tuple[str, bytes | None]],
    value: bytes | None,
    decrypt: Decrypt | None,
    ref: Any = None,
) -> Item:
    """A record's effect; raises on poison (KeyUnavailable: the key owner is down, retry).
    The stream's context is the event's own (`ce_type`), which is its topic's."""
    envelope = decode(headers, value)
    if envelope.aggregate_version is None or not envelope.subject:
        raise InvalidEnvelope("no ce_subject/ce_aggregateversion: cannot apply idempotently")
    stream = stream_key(envelope.context, envelope.subject)
    handler = handler_for(envelope.context, envelope.event_name)
    if handler is None:  # counted as applied: a token of this write is honoured too
        return Item(stream, envelope.aggregate_version, (), ref)
    data = json.loads(envelope.data)
    if not isinstance(data, dict):
        raise InvalidEnvelope("event data is not a JSON object")
    if decrypt is not None:
        data = await decrypt(envelope.event_name, data)
    return Item(stream, envelope.aggregate_version, handler(envelope, data), ref)


async def apply_events(
    pool: asyncpg.Pool,
    events: Iterable[tuple[Any, bytes | None, Sequence[tuple[str, bytes | None]]]],
    generation: int = 1,
    decrypt: Decrypt | None = None,
) -> store.Outcome:
    """Apply (key, value, headers) records in one batch, as the consumer does (tests and
    benchmarks feed the model without Kafka this way)."""
    items = [await item_for(headers, value, decrypt) for _, value, headers in events]
    return await store.apply(pool, generation, items)


class Consumer:
    """One generation's consumer group."""

    def __init__(self, pool: asyncpg.Pool, generation: int, options: Options) -> None:
        self.pool = pool
        self.generation = generation
        self.options = options
        self.stop = asyncio.Event()

    async def _items(self, records: list[Record]) -> tuple[list[Item], list[tuple[Record, Any]]]:
        items: list[Item] = []
        poison: list[tuple[Record, Any]] = []
        for record in records:
            for attempt in range(ATTEMPTS):
                try:
                    items.append(
                        await item_for(record.headers, record.value, self.options.decrypt, record)
                    )
                    break
                except KeyUnavailable:
                    raise
                except Exception as error:  # bad envelope or JSON, handler bug
                    if attempt == ATTEMPTS - 1:
                        poison.append((record, error))
        return items, poison

    async def _apply(self, items: list[Item]) -> tuple[int, list[tuple[Record, Any]]]:
        """Apply until it works (the database down: wait); a statement failing: once more
        item by item, the failing items parked."""
        pause = 0.05
        careful = False
        while True:
            try:
                outcome = await store.apply(self.pool, self.generation, items, careful)
                return outcome.applied, [(i.ref, e) for i, e in outcome.failed]
            except store.RETRYABLE as error:
                log.warning("search store: %s; retrying in %.2fs", error, pause)
            except asyncpg.PostgresError as error:
                if careful:
                    raise
                log.warning("a statement failed (%s): applying the batch item by item", error)
                careful = True
                continue
            if self.stopping():
                raise asyncio.CancelledError
            await asyncio.sleep(pause)
            pause = min(5.0, pause * 2)

    def stopping(self) -> bool:
        return self.stop.is_set() or self.options.stop.is_set()

    async def run(self) -> None:
        options = self.options
        consumer = AIOKafkaConsumer(
            *TOPICS,
            bootstrap_servers=options.bootstrap_servers,
            group_id=group_for(self.generation),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=options.max_records,
            **kafka_security(),
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=options.bootstrap_servers, enable_idempotence=True, **kafka_security()
        )
        await consumer.start()
        await producer.start()
        log.info("consuming for generation %d as %s", self.generation, group_for(self.generation))
        try:
            while not self.stopping():
                batch = await consumer.getmany(timeout_ms=options.poll_ms)
                if not batch:
                    continue
                records = [r for tp in sorted(batch, key=str) for r in batch[tp]]
                items, poison = await self._items(records)
                applied, failed = await self._apply(items)
                poison += failed
                metrics.EVENTS.labels(NAME, "applied").inc(applied)
                metrics.EVENTS.labels(NAME, "duplicate-or-ignored").inc(
                    len(items) - applied - len(failed)
                )
                metrics.EVENTS.labels(NAME, "parked").inc(len(poison))
                metrics.GENERATION.labels(NAME).set(self.generation)
                for record, error in poison:
                    await publish(producer, NAME, record, error, ATTEMPTS)
                    metrics.DLQ.labels(NAME).inc()
                    log.warning(
                        "parked %s[%d]@%d: %r", record.topic, record.partition, record.offset, error
                    )
                offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs}
                try:
                    await consumer.commit(offsets)
                except (CommitFailedError, IllegalStateError) as error:
                    # a rebalance took the partitions: their next owner re-reads from the last
                    # commit, and the versions drop what this batch applied already
                    log.info("commit after a rebalance failed (%s)", error)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()


async def generations(pool: asyncpg.Pool) -> dict[int, str]:
    rows = await pool.fetch(f"SELECT n, state FROM {GENERATIONS}")
    return {int(r["n"]): str(r["state"]) for r in rows}


async def supervise(pool: asyncpg.Pool, options: Options) -> None:
    """Run a consumer for every live or building generation, until `options.stop`."""
    await ensure_topics(
        options.bootstrap_servers, [dlq_declaration(NAME)], security=kafka_security()
    )
    running: dict[int, tuple[Consumer, asyncio.Task[None]]] = {}
    try:
        while not options.stop.is_set():
            try:
                states = await generations(pool)
            except (asyncpg.PostgresError, OSError) as error:
                log.warning("cannot read the generations: %s", error)
                states = {n: "live" for n in running}
            wanted = {n for n, state in states.items() if state in ("live", "building")}
            for n in wanted - set(running):
                async with pool.acquire() as conn:
                    await conn.execute(tables(n))  # additive DDL of newer code reaches it
                consumer = Consumer(pool, n, options)
                running[n] = (consumer, asyncio.create_task(consumer.run(), name=group_for(n)))
            for n in set(running):
                consumer, task = running[n]
                if n not in wanted:
                    consumer.stop.set()
                if task.done():
                    # started again on the next tick, from the group's committed offsets (a
                    # batch that could not be decrypted or written was never committed)
                    del running[n]
                    if not task.cancelled() and task.exception() is not None:
                        log.warning("generation %d's consumer stopped: %r", n, task.exception())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(options.stop.wait(), options.refresh_s)
    finally:
        for consumer, _task in running.values():
            consumer.stop.set()
        await asyncio.gather(*(t for _, t in running.values()), return_exceptions=True)
