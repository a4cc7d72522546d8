"""Chat's block list against the real Kafka and PostgreSQL: the consumer of users.events
(on a topic of this test's own) keeps the `blocks` table, a block then an unblock converges,
and a redelivered or replayed older event changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from parley_chat.blocks import BlockList, run_forever
from parley_chat.migrate import migrate
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics

pytestmark = pytest.mark.integration
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def record(event: str, subject: str, version: int, /, **data: Any) -> Record:
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="/parley/users",
        type=ce_type("users", event, 1),
        subject=subject,
        time=datetime.now(UTC),
        data=json.dumps(data).encode(),
        aggregate_version=version,
    )
    return subject.encode(), envelope.data, kafka_headers(header_map(envelope))


def blocked(blocker: str, other: str, version: int) -> Record:
    return record("UserBlocked", blocker, version, user_id=blocker, blocked_user_id=other)


def unblocked(blocker: str, other: str, version: int) -> Record:
    return record("UserUnblocked", blocker, version, user_id=blocker, blocked_user_id=other)


async def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **kafka_security())
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.2)


@pytest.fixture
async def blocks(fresh_database: str) -> AsyncIterator[BlockList]:
    await migrate(fresh_database)
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=4)
    try:
        yield BlockList(pool)
    finally:
        await pool.close()


async def test_block_then_unblock_converges_and_redeliveries_change_nothing(
    blocks: BlockList, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"cb.{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(topic, 3)])
    ada, bob, cid, dan = (str(uuid.uuid4()) for _ in range(4))
    first_block = blocked(ada, bob, 2)
    await produce(
        kafka_bootstrap,
        topic,
        [
            record("UserCreated", ada, 1, user_id=ada, name="pe1.x", email="pe1.y"),  # ignored
            first_block,
            blocked(cid, bob, 5),  # another blocker's stream (maybe another partition)
            (ada.encode(), b"not json", [("ce_type", b"nonsense")]),  # poison: skipped
            unblocked(ada, bob, 3),
        ],
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_forever(blocks, kafka_bootstrap, stop, topic, unique_name))
    try:

        async def only_cid_blocks_bob() -> bool:
            return await blocks.blockers_of(bob) == {cid}

        await eventually(only_cid_blocks_bob)
        # the first block delivered again (a relay's duplicate), then a newer block of ada's on
        # the same partition: once that newer one shows, the duplicate was consumed before it
        await produce(kafka_bootstrap, topic, [first_block, blocked(ada, dan, 4)])

        async def ada_blocks_dan() -> bool:
            return await blocks.blockers_of(dan) == {ada}

        await eventually(ada_blocks_dan)
        assert await blocks.blockers_of(bob) == {cid}, "the redelivered block came back"
        assert await blocks.blockers_of(ada) == frozenset()
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 10)


async def test_apply_keeps_the_newest_version_whatever_the_order(blocks: BlockList) -> None:
    ada, bob = str(uuid.uuid4()), str(uuid.uuid4())
    await blocks.apply(ada, bob, False, 3)  # the unblock arrives first (a replay, say)
    await blocks.apply(ada, bob, True, 2)
    assert await blocks.blockers_of(bob) == frozenset()
    await blocks.apply(ada, bob, True, 4)  # blocked again later
    await blocks.apply(ada, bob, True, 4)  # and redelivered
    assert await blocks.blockers_of(bob) == {ada}
