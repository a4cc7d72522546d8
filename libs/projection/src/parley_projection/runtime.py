"""The projector loop on aiokafka: poll a batch, decode, compute writes, apply them
idempotently, park poison records on `<group>.dlq`, then commit the offsets.

Why aiokafka directly rather than faststream's subscriber: the guarantees live in per-partition
control of the commit (only after the MongoDB writes succeeded), a per-record decision between
"retry the batch" (MongoDB down: never dead-letter a healthy event) and "park this record"
(poison: bounded retries, then DLQ, partition keeps flowing); faststream has no dead-letter
support of its own and its batch acknowledgement is per poll, so the runtime would bypass it
anyway. It stays a small loop over the same client faststream wraps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from parley_messaging.envelope import Envelope, InvalidEnvelope, decode
from parley_messaging.topics import Topic, dlq_topic, ensure_topics
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from parley_projection import metrics
from parley_projection.apply import LostRace, Versioned, apply_batch
from parley_projection.projection import Projection, writes_for

log = logging.getLogger("parley.projection")

Upcast = Callable[[str, int, dict[str, Any]], tuple[int, dict[str, Any]]]
Record: TypeAlias = ConsumerRecord[bytes, bytes]


@dataclass
class Options:
    bootstrap_servers: str
    max_records: int = 500
    handler_attempts: int = 3  # a handler that keeps raising is poison after this many
    backoff_s: float = 0.05  # doubled per attempt
    upcast: Upcast | None = None
    partitions: int = 6
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class Poison(Exception):
    """A record that cannot be applied however often it is tried."""


def decode_record(record: Record, options: Options) -> tuple[Envelope, dict[str, Any]]:
    try:
        envelope = decode(record.headers, record.value)
        data = json.loads(envelope.data)
    except (InvalidEnvelope, ValueError) as error:
        raise Poison(f"undecodable: {error}") from error
    if not isinstance(data, dict):
        raise Poison("event data is not a JSON object")
    if options.upcast is not None and envelope.schema_version is not None:
        _, data = options.upcast(envelope.event_name, envelope.schema_version, data)
    return envelope, data


async def versioned_writes(
    projection: Projection, record: Record, options: Options
) -> list[Versioned]:
    """The record's writes, with bounded retries of a raising handler (then Poison)."""
    envelope, data = decode_record(record, options)
    version = envelope.aggregate_version
    if version is None:
        raise Poison("no ce_aggregateversion header: cannot apply idempotently")
    last: Exception | None = None
    for attempt in range(options.handler_attempts):
        try:
            writes = writes_for(projection, envelope, data)
            break
        except Exception as error:  # a handler bug or bad data: retried, then parked
            last = error
            await asyncio.sleep(options.backoff_s * 2**attempt)
    else:
        raise Poison(f"handler failed {options.handler_attempts} times: {last!r}") from last
    metrics.LAG_SECONDS.labels(projection.name).observe(
        max(0.0, time.time() - envelope.time.timestamp())
    )
    return [Versioned(w, envelope.subject, version) for w in writes]


def dead_letter_headers(
    record: Record, group: str, error: BaseException
) -> list[tuple[str, bytes]]:
    reason = "".join(traceback.format_exception_only(type(error), error)).strip()
    return [
        *[(k, v) for k, v in record.headers],
        ("dlq_error", reason[:2000].encode()),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
        ("dlq_group", group.encode()),
        ("dlq_time", str(time.time()).encode()),
    ]


async def park(
    producer: AIOKafkaProducer, projection: Projection, record: Record, error: BaseException
) -> None:
    await producer.send_and_wait(
        dlq_topic(projection.group),
        value=record.value,
        key=record.key,
        headers=dead_letter_headers(record, projection.group, error),
    )
    metrics.DEAD_LETTERS.labels(projection.name).inc()
    log.warning(
        "parked %s[%d]@%d on the DLQ: %s", record.topic, record.partition, record.offset, error
    )


async def apply_records(
    db: AsyncDatabase[dict[str, Any]],
    producer: AIOKafkaProducer,
    projection: Projection,
    records: list[Record],
    options: Options,
) -> None:
    """Apply one poll's records (any partitions); poison goes to the DLQ, the rest is written.
    MongoDB failures are retried without end (an outage is not poison): nothing is committed
    until this returns."""
    items: list[Versioned] = []
    for record in records:
        try:
            items += await versioned_writes(projection, record, options)
            metrics.APPLIED.labels(projection.name, "applied").inc()
        except Poison as error:
            await park(producer, projection, record, error)
            metrics.APPLIED.labels(projection.name, "parked").inc()
    backoff = options.backoff_s
    while True:
        try:
            await apply_batch(db, items)
            return
        except (LostRace, PyMongoError) as error:
            log.warning("read-model write failed (%s); retrying in %.2fs", error, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


async def run(db: AsyncDatabase[dict[str, Any]], projection: Projection, options: Options) -> None:
    """Consume until `options.stop` is set; at-least-once, idempotent, commits after writes."""
    await ensure_topics(
        options.bootstrap_servers,
        [
            Topic(
                dlq_topic(projection.group),
                options.partitions,
                {"retention.ms": str(7 * 86400_000)},
            )
        ],
    )
    consumer = AIOKafkaConsumer(
        *projection.topics,
        bootstrap_servers=options.bootstrap_servers,
        group_id=projection.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=options.max_records,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=options.bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await producer.start()
    await consumer.start()
    try:
        while not options.stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=options.max_records)
            if not batch:
                continue
            records = [r for rs in batch.values() for r in rs]
            await apply_records(db, producer, projection, records, options)
            offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items()}
            await consumer.commit(offsets)
            report_positions(consumer, projection, offsets)
    finally:
        await consumer.stop()
        await producer.stop()


def report_positions(
    consumer: AIOKafkaConsumer, projection: Projection, offsets: dict[TopicPartition, int]
) -> None:
    for tp, offset in offsets.items():
        labels = (projection.name, tp.topic, str(tp.partition))
        metrics.POSITION.labels(*labels).set(offset)
        end = consumer.highwater(tp)
        if end is not None:
            metrics.CONSUMER_LAG.labels(*labels).set(max(0, end - offset))
