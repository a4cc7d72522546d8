"""`make kill S=kafka` while a producer runs: the broker comes back, the producer recovers and
every acknowledged message is on the topic."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from parley_messaging.security import kafka_security
from parley_testing import cluster

pytestmark = pytest.mark.fault


async def send_until_acked(producer: AIOKafkaProducer, topic: str, value: bytes) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            await producer.send_and_wait(topic, value, key=b"k")
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_producer_recovers_after_broker_sigkill(kafka_bootstrap: str) -> None:
    topic = f"fault.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, **kafka_security())
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=5000,
        **kafka_security(),
    )
    await producer.start()
    try:
        for i in range(50):
            await send_until_acked(producer, topic, f"{i}".encode())
        old_pid = await asyncio.to_thread(cluster.kill, "kafka")
        for i in range(50, 100):  # the first of these wait out the restart
            await send_until_acked(producer, topic, f"{i}".encode())
        new_pid = await asyncio.to_thread(cluster.wait_restarted, "kafka", old_pid)
        assert new_pid != old_pid
        await asyncio.to_thread(cluster.wait_healthy)  # the next tests start on a serving cluster
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", **kafka_security()
    )
    await consumer.start()
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while len(seen) < 100 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=2000)
            seen |= {int(r.value) for records in batch.values() for r in records if r.value}
    finally:
        await consumer.stop()
    assert seen == set(range(100)), f"lost: {sorted(set(range(100)) - seen)}"
