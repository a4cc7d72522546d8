"""consume_in_key_order over the real Kafka: one key's records in order, other keys overtaking
a slow one, and the committed offset never passing a record that is not done."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from parley_messaging.inorder import Record, consume_in_key_order
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics

pytestmark = pytest.mark.integration


async def test_key_order_overtaking_and_contiguous_commits(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic, group = f"inorder-{unique_name}", f"inorder-{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(topic, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, **kafka_security())
    await producer.start()
    try:
        for i in range(30):
            key = "slow" if i == 5 else f"k{i % 3}"
            await producer.send_and_wait(topic, str(i).encode(), key=key.encode())
    finally:
        await producer.stop()

    release = asyncio.Event()
    done: list[tuple[str, int]] = []

    async def handle(record: Record) -> None:
        assert record.key is not None and record.value is not None
        key, n = record.key.decode(), int(record.value)
        if key == "slow":
            await release.wait()
        else:
            await asyncio.sleep(0.001 * (n % 4))
        done.append((key, n))

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_security(),
    )
    await consumer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(
        consume_in_key_order(consumer, [topic], handle, stop, commit_every_s=0.02)
    )
    tp = TopicPartition(topic, 0)
    try:
        async with asyncio.timeout(20):
            while len(done) < 29:  # every record but the slow one
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert await consumer.committed(tp) == 5  # stuck before the unfinished record
        release.set()
        async with asyncio.timeout(20):
            while await consumer.committed(tp) != 30:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await consumer.stop()
    for key in ("k0", "k1", "k2"):
        seen = [n for k, n in done if k == key]
        assert seen == sorted(seen) and len(seen) >= 9
    assert done[-1] == ("slow", 5)  # everything else overtook it
