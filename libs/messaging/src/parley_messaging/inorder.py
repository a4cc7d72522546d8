"""Consume without a batch barrier: records of one key are handled in order, records of
different keys concurrently, and each partition's offset is committed up to the first record
not yet handled (so a crash redelivers exactly the unfinished tail: at-least-once).

Why not "fetch a batch, handle it all, commit, fetch again": one slow record (an SMTP server,
an HTTP call) then holds up every record fetched after it, and each new record waits for the
whole previous batch. Here a record starts as soon as it is fetched and the one before it with
the same key is done; `max_in_flight` bounds the records held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

Record: TypeAlias = ConsumerRecord[bytes, bytes]


async def consume_in_key_order(
    consumer: AIOKafkaConsumer,
    handle: Callable[[Record], Awaitable[None]],
    stop: asyncio.Event,
    *,
    max_in_flight: int = 64,
    commit_every_s: float = 0.05,
    poll_ms: int = 100,
) -> None:
    """Run until `stop` is set; a handler exception stops the loop (and is raised) after the
    records handled before it were committed, so nothing after it is marked done."""
    slots = asyncio.Semaphore(max_in_flight)
    last_of_key: dict[bytes | None, asyncio.Task[None]] = {}
    pending: dict[TopicPartition, deque[tuple[int, asyncio.Task[None]]]] = {}

    async def run(record: Record, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:
                await asyncio.shield(before)
            await handle(record)
        finally:
            slots.release()

    async def commit_done() -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, queue in pending.items():
            last = None
            while queue and queue[0][1].done():
                offset, task = queue.popleft()
                task.result()  # a failed handler raises here: its offset is never committed
                last = offset
            if last is not None:
                offsets[tp] = OffsetAndMetadata(last + 1, "")
        if offsets:
            await consumer.commit(offsets)

    async def committer() -> None:
        while True:
            await asyncio.sleep(commit_every_s)
            await commit_done()

    committing = asyncio.create_task(committer())
    try:
        while not stop.is_set():
            if committing.done():
                committing.result()  # surfaces a handler's failure
            batch = await consumer.getmany(timeout_ms=poll_ms)
            for tp, records in batch.items():
                queue = pending.setdefault(tp, deque())
                for record in records:
                    await slots.acquire()
                    task = asyncio.create_task(run(record, last_of_key.get(record.key)))
                    last_of_key[record.key] = task
                    queue.append((record.offset, task))
            for key in [k for k, t in last_of_key.items() if t.done()]:
                del last_of_key[key]
        # drain: let what started finish, then commit it
        for queue in pending.values():
            for _, task in queue:
                with contextlib.suppress(Exception):
                    await task
        await commit_done()
    finally:
        committing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await committing
