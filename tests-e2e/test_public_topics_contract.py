"""The public Kafka contract, checked as another team would consume it (DESIGN.md 4): on every
event topic, the latest records carry the CloudEvents binary-binding headers, the key equals
`ce_subject` (the aggregate id), `ce_type` names a committed JSON Schema, and the value is
valid against it. Topics that earlier tests of this run wrote to must not be empty."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from parley_messaging.security import kafka_security
from parley_messaging.topics import CONTEXTS, events_topic, partitions_of
from parley_testing.accounts import Account

SCHEMAS = Path(__file__).resolve().parents[1] / "libs" / "contracts" / "schemas"
CE_TYPE = re.compile(r"^parley\.(?P<context>[a-z]+)\.(?P<name>[A-Za-z]+)\.v(?P<version>[0-9]+)$")
LATEST = 300  # records per partition, from the end
MUST_HAVE_RECORDS = {"auth", "users"}  # the admin fixture alone writes to both


async def latest_records(bootstrap: str, topic: str) -> list:  # type: ignore[type-arg]
    parts = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    records = []
    try:
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        for tp in parts:
            consumer.seek(tp, max(starts[tp], ends[tp] - LATEST))
        wanted = sum(ends[tp] - max(starts[tp], ends[tp] - LATEST) for tp in parts)
        while len(records) < wanted:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                break
            records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return records


@pytest.mark.parametrize("context", CONTEXTS)
async def test_event_topic_records_honour_the_public_contract(
    context: str, kafka_bootstrap: str, admin: Account
) -> None:
    records = await latest_records(kafka_bootstrap, events_topic(context))
    if context in MUST_HAVE_RECORDS:
        assert records, f"{events_topic(context)} is empty"
    schemas: dict[str, dict] = {}  # type: ignore[type-arg]
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        assert headers.get("ce_specversion") == "1.0", where
        for name in ("ce_id", "ce_source", "ce_type", "ce_time", "ce_subject"):
            assert headers.get(name), f"{where}: no {name}"
        assert headers.get("content-type") == "application/json", where
        match = CE_TYPE.match(headers["ce_type"])
        assert match and match["context"] == context, f"{where}: {headers['ce_type']}"
        assert headers["ce_source"] == f"/parley/{context}", where
        assert record.key is not None and record.key.decode() == headers["ce_subject"], where
        assert int(headers["ce_aggregateversion"]) >= 1, where
        schema_file = SCHEMAS / f"{headers['ce_type']}.json"
        assert schema_file.exists(), f"{where}: no committed schema for {headers['ce_type']}"
        schema = schemas.setdefault(headers["ce_type"], json.loads(schema_file.read_text()))
        jsonschema.validate(json.loads(record.value), schema)
