"""Kafka helpers for tests that watch a topic as an outside consumer would."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from parley_messaging.security import kafka_security


async def consumer_at_end(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A started consumer (no group) positioned at the current end of every partition of
    `topic`: it sees exactly what is written after this call. The caller stops it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_security())
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
    assert partitions, f"topic {topic} has no partitions"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:  # resolve the lazy seek now, before the write happens
        await consumer.position(tp)
    return consumer
