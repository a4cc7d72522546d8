"""Re-drive parked records: read `<group>.dlq` up to its end as seen at the start, put each
record back through the projection (once its cause is fixed), and commit the re-drive
group's offsets, so a second run does not apply them again. A record that still fails is
parked again (a new DLQ entry, re-drivable later); the idempotent apply makes a record that
was meanwhile applied some other way harmless.

Each projector service exposes it as `python -m parley_projector_<context>.redrive`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from parley_messaging.topics import dlq_topic, partitions_of
from pymongo.asynchronous.database import AsyncDatabase

from parley_projection.projection import Projection
from parley_projection.runtime import Options, Record, apply_records

DLQ_PREFIX = "dlq_"


def original(record: Record) -> Record:
    """The record as it was before it was parked: original topic, partition, offset, headers."""
    meta = {k: v.decode() for k, v in record.headers if k.startswith(DLQ_PREFIX)}
    return dataclasses.replace(
        record,
        topic=meta.get("dlq_topic", record.topic),
        partition=int(meta.get("dlq_partition", record.partition)),
        offset=int(meta.get("dlq_offset", record.offset)),
        headers=[(k, v) for k, v in record.headers if not k.startswith(DLQ_PREFIX)],
    )


async def redrive(
    db: AsyncDatabase[dict[str, Any]],
    projection: Projection,
    options: Options,
    limit: int | None = None,
) -> int:
    """Re-apply parked records; returns how many were taken off the DLQ."""
    topic = dlq_topic(projection.group)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=options.bootstrap_servers,
        group_id=f"{projection.group}.redrive",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=options.bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await consumer.start()
    await producer.start()
    taken = 0
    try:
        numbers = await partitions_of(options.bootstrap_servers, topic)
        partitions = [TopicPartition(topic, p) for p in numbers]
        if not partitions:
            return 0
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        while limit is None or taken < limit:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= end[tp] for tp in partitions):
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=options.max_records)
            records = [r for tp, rs in batch.items() for r in rs if r.offset < end[tp]][
                : None if limit is None else limit - taken
            ]
            if not records:
                continue
            await apply_records(db, producer, projection, [original(r) for r in records], options)
            offsets: dict[TopicPartition, int] = {}
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            await consumer.commit(offsets)
            for tp, offset in offsets.items():
                consumer.seek(tp, offset)
            taken += len(records)
    finally:
        await consumer.stop()
        await producer.stop()
    return taken
