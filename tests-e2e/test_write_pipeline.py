"""One write through the whole write side: HTTP through the gateway -> users command service
-> events + outbox in PostgreSQL -> relay -> `users.events`, read as another team would read it:
CloudEvents headers, key = aggregate id, JSON valid against the committed schema."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import jsonschema
from aiokafka import AIOKafkaConsumer
from parley_testing.accounts import Account
from parley_testing.kafka import consumer_at_end

SCHEMAS = Path(__file__).resolve().parents[1] / "libs" / "contracts" / "schemas"


async def records_for(consumer: AIOKafkaConsumer, key: str, count: int, timeout: float) -> list:
    found: list = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        found += [r for rs in batch.values() for r in rs if r.key == key.encode()]
    return found


async def test_command_reaches_kafka_as_a_valid_cloudevent(
    gateway_url: str, kafka_bootstrap: str, admin: Account
) -> None:
    consumer = await consumer_at_end(kafka_bootstrap, "users.events")
    try:
        user_id = str(uuid.uuid4())
        async with httpx.AsyncClient(
            base_url=gateway_url, timeout=10, headers=admin.headers
        ) as client:
            created = await client.post(
                "/v1/users", json={"user_id": user_id, "name": "Ada", "email": "ada@example.test"}
            )
            assert created.status_code == 201, created.text
            patched = await client.patch(f"/v1/users/{user_id}", json={"bio": "analyst"})
            assert patched.status_code == 200, patched.text
        records = await records_for(consumer, user_id, 2, timeout=15)
    finally:
        await consumer.stop()

    assert len(records) == 2, "both events reached users.events"
    assert records[0].partition == records[1].partition, "one aggregate, one partition"
    for record, (name, version) in zip(
        records, [("UserCreated", 1), ("UserProfileUpdated", 2)], strict=True
    ):
        headers = {k: v.decode() for k, v in record.headers}
        ce_type = f"parley.users.{name}.v1"
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_type"] == ce_type
        assert headers["ce_subject"] == user_id
        assert headers["ce_source"] == "/parley/users"
        assert headers["content-type"] == "application/json"
        assert int(headers["ce_aggregateversion"]) == version
        uuid.UUID(headers["ce_id"])
        schema = json.loads((SCHEMAS / f"{ce_type}.json").read_text())
        jsonschema.validate(json.loads(record.value), schema)


async def test_commands_under_concurrency_all_reach_kafka_in_order(
    gateway_url: str, kafka_bootstrap: str, admin: Account
) -> None:
    consumer = await consumer_at_end(kafka_bootstrap, "users.events")
    user_ids = [str(uuid.uuid4()) for _ in range(20)]
    try:
        async with httpx.AsyncClient(
            base_url=gateway_url, timeout=10, headers=admin.headers
        ) as client:

            async def life(user_id: str) -> None:
                body = {"user_id": user_id, "name": "N", "email": "n@example.test"}
                assert (await client.post("/v1/users", json=body)).status_code == 201
                for i in range(4):
                    r = await client.patch(f"/v1/users/{user_id}", json={"bio": f"b{i}"})
                    assert r.status_code == 200

            await asyncio.gather(*(life(u) for u in user_ids))
        seen: dict[str, list[int]] = {u: [] for u in user_ids}
        deadline = time.monotonic() + 20
        while any(len(v) < 5 for v in seen.values()) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for record in (r for rs in batch.values() for r in rs):
                key = record.key.decode()
                if key in seen:
                    version = int(dict(record.headers)["ce_aggregateversion"].decode())
                    if version not in seen[key]:  # at-least-once: duplicates allowed
                        seen[key].append(version)
    finally:
        await consumer.stop()
    assert all(v == [1, 2, 3, 4, 5] for v in seen.values()), seen
