"""Parking records on `<group>.dlq`: the original key, value and headers, plus headers saying
why and where from, so a re-drive can put the record back exactly as it was. Shared by every
consumer that parks (projectors, saga participants, the saga orchestrator)."""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import TypeAlias

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from parley_messaging.topics import dlq_topic

Record: TypeAlias = ConsumerRecord[bytes, bytes]
PREFIX = "dlq_"
H_ERROR = "dlq_error"
H_ERROR_TYPE = "dlq_error_type"
H_TOPIC = "dlq_topic"
H_PARTITION = "dlq_partition"
H_OFFSET = "dlq_offset"
H_GROUP = "dlq_group"
H_ATTEMPTS = "dlq_attempts"
H_TIME = "dlq_time"


def headers(
    record: Record, group: str, error: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    reason = "".join(traceback.format_exception_only(type(error), error)).strip()
    original = [(k, v) for k, v in record.headers if not k.startswith(PREFIX)]
    return [
        *original,
        (H_ERROR, reason[:4000].encode()),
        (H_ERROR_TYPE, type(error).__name__.encode()),
        (H_TOPIC, record.topic.encode()),
        (H_PARTITION, str(record.partition).encode()),
        (H_OFFSET, str(record.offset).encode()),
        (H_GROUP, group.encode()),
        (H_ATTEMPTS, str(attempts).encode()),
        (H_TIME, f"{time.time():.3f}".encode()),
    ]


async def publish(
    producer: AIOKafkaProducer, group: str, record: Record, error: BaseException, attempts: int
) -> None:
    await producer.send_and_wait(
        dlq_topic(group),
        key=record.key,
        value=record.value,
        headers=headers(record, group, error, attempts),
    )


def original(parked: Record) -> Record:
    """A DLQ record as it was first consumed: original topic, partition, offset, headers."""
    meta = {k: v.decode() for k, v in parked.headers if k.startswith(PREFIX)}
    return dataclasses.replace(
        parked,
        topic=meta.get(H_TOPIC, parked.topic),
        partition=int(meta.get(H_PARTITION, parked.partition)),
        offset=int(meta.get(H_OFFSET, parked.offset)),
        headers=[(k, v) for k, v in parked.headers if not k.startswith(PREFIX)],
    )
