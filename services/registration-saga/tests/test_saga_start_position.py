"""Where the saga consumer starts: it commits its first assignment's positions so that the
start no longer depends on when the first fetch happens; a record fetched while it joins the
group (a group that committed before may get one) must still be applied afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition
from parley_registration_saga.consumer import _pin_positions

TRIGGER = TopicPartition("users.events", 0)


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=TRIGGER.topic, partition=TRIGGER.partition, offset=offset, timestamp=0,
        timestamp_type=0, key=b"k", value=b"v", checksum=None, serialized_key_size=1,
        serialized_value_size=1, headers=(),
    )  # fmt: skip


class JoiningConsumer:
    """A consumer whose group has committed offset 7 and whose join completes within the first
    fetch, which returns the record at 7 (as aiokafka may)."""

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.next_offset = {TRIGGER: 7}
        self.committed: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        self.assigned = {TRIGGER}
        self.next_offset[TRIGGER] = 8
        return {TRIGGER: [record(7)]}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.next_offset[partition] = offset

    async def position(self, partition: TopicPartition) -> int:
        return self.next_offset[partition]

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)


def test_a_record_fetched_while_joining_is_not_skipped() -> None:
    consumer = JoiningConsumer()
    asyncio.run(_pin_positions(consumer, asyncio.Event()))  # type: ignore[arg-type]
    assert consumer.committed == {TRIGGER: 7}
    assert consumer.next_offset[TRIGGER] == 7, "the next fetch must return offset 7 again"
