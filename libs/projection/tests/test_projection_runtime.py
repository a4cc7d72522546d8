"""The projector runtime against the real Kafka and FerretDB: replays and duplicates change
nothing, poison is parked on the DLQ while the partition keeps flowing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from parley_projection.readyourwrites import wait_for_version
from projection_harness import (
    dump,
    new_topic,
    produce,
    projector,
    record,
    tally,
    wait_total,
)
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration
DB = AsyncDatabase[dict[str, Any]]


async def test_replaying_from_offset_zero_twice_changes_nothing(
    db: DB, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"proj.{unique_name}")
    events = [record(f"s{s}", v) for s in range(3) for v in range(1, 21)]
    await produce(kafka_bootstrap, topic, events)
    async with projector(db, tally(f"p1-{unique_name}", topic), kafka_bootstrap):
        await wait_total(db, 60)
    first = await dump(db)
    assert [d["count"] for d in first["per_stream"]] == [20, 20, 20]
    assert first["totals"][0]["count"] == 60

    for attempt in (2, 3):  # new consumer groups: the whole topic again, over the live model
        async with projector(db, tally(f"p{attempt}-{unique_name}", topic), kafka_bootstrap):
            await wait_total(db, 60)
            await asyncio.sleep(2.0)  # the whole topic is re-read meanwhile
        assert await dump(db) == first


async def test_duplicate_deliveries_are_not_counted_twice(
    db: DB, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"proj.{unique_name}")
    events = [record("s", v) for v in range(1, 11)]
    await produce(kafka_bootstrap, topic, events + events[3:7] + events)  # at-least-once
    async with projector(db, tally(f"dup-{unique_name}", topic), kafka_bootstrap):
        await wait_total(db, 10)
    state = await dump(db)
    assert state["per_stream"][0]["count"] == 10
    assert state["per_stream"][0]["last"] == 10
    assert state["totals"][0]["count"] == 10


async def test_poison_is_parked_and_the_partition_keeps_flowing(
    db: DB, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"proj.{unique_name}", partitions=1)
    name = f"poison-{unique_name}"
    await produce(
        kafka_bootstrap,
        topic,
        [
            record("s", 1),
            record("s", 2, value=b"{not json"),
            record("s", 3),
            record("s", 4, name="Unheard"),
            record("s", 5),
            record("s", 6, name="Boom"),
            record("s", 7),
        ],
    )
    async with projector(db, tally(name, topic), kafka_bootstrap):
        await wait_total(db, 4)
    state = await dump(db)
    assert state["per_stream"][0]["last"] == 7
    assert state["totals"][0]["count"] == 4

    consumer = AIOKafkaConsumer(
        f"{name}.dlq", bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    parked: list[dict[str, str]] = []
    deadline = time.monotonic() + 15
    try:
        while len(parked) < 3 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for r in (r for rs in batch.values() for r in rs):
                parked.append({k: v.decode() for k, v in r.headers})
    finally:
        await consumer.stop()
    assert [p["dlq_offset"] for p in parked] == ["1", "3", "5"]
    assert all(p["dlq_topic"] == topic and p["dlq_group"] == name for p in parked)
    assert "undecodable" in parked[0]["dlq_error"]
    assert "no handler" in parked[1]["dlq_error"]
    assert "handler failed 3 times" in parked[2]["dlq_error"]


async def test_wait_for_version(db: DB, kafka_bootstrap: str, unique_name: str) -> None:
    topic = await new_topic(kafka_bootstrap, f"proj.{unique_name}")
    assert await wait_for_version(db.per_stream, "s", "s", 1, timeout_s=0.2) is None
    async with projector(db, tally(f"ryw-{unique_name}", topic), kafka_bootstrap):
        await produce(kafka_bootstrap, topic, [record("s", 1), record("s", 2)])
        doc = await wait_for_version(db.per_stream, "s", "s", 2, timeout_s=15)
    assert doc is not None and doc["count"] == 2
    assert await wait_for_version(db.per_stream, "s", "s", 3, timeout_s=0.2) is None


async def test_redrive_applies_parked_records_once_the_cause_is_fixed(
    db: DB, kafka_bootstrap: str, unique_name: str
) -> None:
    from parley_projection.projection import Projection
    from parley_projection.redrive import redrive
    from parley_projection.runtime import Options
    from projection_harness import counted

    broken = {"on": True}

    def flaky(envelope: Any, data: dict[str, Any]) -> list[Any]:
        if broken["on"]:
            raise RuntimeError("downstream bug")
        return counted(envelope, data)

    topic = await new_topic(kafka_bootstrap, f"proj.{unique_name}", partitions=1)
    name = f"redrive-{unique_name}"
    projection = Projection(name=name, topics=(topic,), handlers={"Counted": flaky})
    await produce(kafka_bootstrap, topic, [record("s", 1), record("t", 1)])
    async with projector(db, projection, kafka_bootstrap):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (await dump(db))["per_stream"] == [] and await _dlq_size(kafka_bootstrap, name) >= 2:
                break
            await asyncio.sleep(0.2)
    assert (await dump(db))["per_stream"] == []

    broken["on"] = False  # the fix is deployed
    options = Options(bootstrap_servers=kafka_bootstrap, backoff_s=0.01)
    assert await redrive(db, projection, options) == 2
    state = await dump(db)
    assert [d["count"] for d in state["per_stream"]] == [1, 1]
    assert state["totals"][0]["count"] == 2
    assert await redrive(db, projection, options) == 0  # nothing applied twice
    assert (await dump(db))["totals"][0]["count"] == 2


async def _dlq_size(bootstrap: str, group: str) -> int:
    from aiokafka import TopicPartition
    from parley_messaging.topics import partitions_of

    topic = f"{group}.dlq"
    numbers = await partitions_of(bootstrap, topic)
    if not numbers:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in numbers])
        return sum(ends.values())
    finally:
        await consumer.stop()
