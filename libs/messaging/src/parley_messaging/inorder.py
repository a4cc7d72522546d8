"""Consume without a batch barrier: records of one key are handled in order, records of
different keys concurrently, and each partition's offset is committed up to the first record
not yet handled (so a crash redelivers exactly the unfinished tail: at-least-once).

Why not "fetch a batch, handle it all, commit, fetch again": one slow record (an SMTP server,
an HTTP call) then holds up every record fetched after it, and each new record waits for the
whole previous batch. Here a record starts as soon as it is fetched and the one before it with
the same key is done; `max_in_flight` bounds the records held in memory.

Rebalancing: the consumer is subscribed with this loop as its rebalance listener. aiokafka
awaits `on_partitions_revoked` before it rejoins the group (with the old assignment and
generation still valid), so the hand-over happens there, and the next owner starts after it:
- no record fetched before the revocation is started afterwards (the rest of a batch in hand
  is fetched again, by whoever owns the partition next, from the committed offset);
- the revoked partitions' records in flight get `drain_s` to finish; the ones still running
  then are cancelled and not committed (the next owner handles them again: at-least-once);
- exactly the finished prefix of each revoked partition is committed, and the partition's
  bookkeeping forgotten (it may come back with another assignment, from its committed offset).
A commit the group refuses (this member was dropped, the partition is someone else's now) is
logged, not raised: whoever owns the partition starts from the last commit. Before, a commit
of a partition no longer assigned raised IllegalStateError, the loop died and its supervisor
restarted it on every rebalance, while the revoked partitions' handlers kept running beside
their next owner (the same record applied twice at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterable, Mapping
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Handler: TypeAlias = Callable[[Record], Awaitable[None]]
Order: TypeAlias = Callable[[Record], Hashable]

log = logging.getLogger("parley.messaging.inorder")


def by_key(record: Record) -> Hashable:
    """Records of one key in order, different keys at once (the default)."""
    key: bytes | None = record.key
    return key


def by_partition(record: Record) -> Hashable:
    """Records of one partition in order, partitions at once: for handlers whose records of
    different keys on a partition must not overlap (the notification policy)."""
    return (record.topic, record.partition)


def one_at_a_time(record: Record) -> Hashable:
    """Every record after the one fetched before it: for handlers that were written for a
    sequential loop (the users context's follower of auth and chat)."""
    return None


class InKeyOrder(ConsumerRebalanceListener):  # type: ignore[misc]
    """One consumer's loop and its rebalance listener (`subscribe` installs it)."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        handle: Handler,
        *,
        order: Order = by_key,
        max_in_flight: int = 64,
        commit_every_s: float = 0.05,
        poll_ms: int = 100,
        drain_s: float = 3.0,
    ) -> None:
        """`drain_s` must stay well below the consumer's `rebalance_timeout_ms` (by default its
        `session_timeout_ms`): the group waits for this member's hand-over that long at most."""
        self.consumer = consumer
        self.handle = handle
        self.order = order
        self.commit_every_s = commit_every_s
        self.poll_ms = poll_ms
        self.drain_s = drain_s
        self.revocations = 0  # rebalances that took partitions from this member
        self._slots = asyncio.Semaphore(max_in_flight)
        self._last: dict[Hashable, asyncio.Task[None]] = {}  # per order key: the newest record
        self._pending: dict[TopicPartition, deque[tuple[int, asyncio.Task[None]]]] = {}
        self._finished: dict[TopicPartition, int] = {}  # offset to commit: all before it done
        self._committed: dict[TopicPartition, int] = {}
        self._commit_lock = asyncio.Lock()
        self._epoch = 0  # bumped by every revocation: a batch in hand from before is dropped
        self._failure: BaseException | None = None

    def subscribe(self, topics: Iterable[str]) -> None:
        self.consumer.subscribe(list(topics), listener=self)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; a handler exception stops the loop (and is raised) after the
        records handled before it were committed, so nothing after it is marked done."""
        committing = asyncio.create_task(self._committer())
        try:
            while not stop.is_set():
                self._raise_failure(committing)
                await self._take(await self.consumer.getmany(timeout_ms=self.poll_ms))
            # drain: let what started finish, then commit it
            tasks = self._tasks(self._pending)
            if tasks:
                await asyncio.wait(tasks)
            await self._commit()
            self._raise_failure(committing)
        finally:
            committing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await committing
            for task in self._tasks(self._pending):  # left by a failure: never beside a restart
                task.cancel()

    async def _take(self, batch: Mapping[TopicPartition, list[Record]]) -> None:
        # getmany returns records of the assignment current when it returns; a revocation
        # while this waits for a slot takes that assignment away
        epoch = self._epoch
        for tp, records in batch.items():
            for record in records:
                await self._slots.acquire()
                if self._epoch != epoch:
                    self._slots.release()
                    return  # fetched again from the committed offset by the next owner
                key = self.order(record)
                task = asyncio.create_task(self._run(record, self._last.get(key)))
                self._last[key] = task
                self._pending.setdefault(tp, deque()).append((record.offset, task))
        for key in [k for k, t in self._last.items() if t.done()]:
            del self._last[key]

    async def _run(self, record: Record, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:
                # its failure or cancellation is this record's too: never out of order
                await asyncio.shield(before)
            await self.handle(record)
        finally:
            self._slots.release()

    def _raise_failure(self, committing: asyncio.Task[None]) -> None:
        if committing.done():
            committing.result()  # a commit the group did not refuse but Kafka failed
        if self._failure is not None:
            raise self._failure

    # -- commits ----------------------------------------------------------------------------

    async def _committer(self) -> None:
        while True:
            await asyncio.sleep(self.commit_every_s)
            await self._commit()

    def _advance(self, tp: TopicPartition) -> None:
        """Move `tp`'s finished prefix out of its queue; stop at a record not done, cancelled
        (given up at a revocation) or failed (kept as the loop's failure: never committed)."""
        queue = self._pending.get(tp)
        while queue and queue[0][1].done():
            offset, task = queue[0]
            if task.cancelled():
                return
            error = task.exception()
            if error is not None:
                self._failure = self._failure or error
                return
            queue.popleft()
            self._finished[tp] = offset + 1

    async def _commit(self, only: Collection[TopicPartition] | None = None) -> None:
        """Commit the finished offsets (of `only`) of partitions this member still owns."""
        async with self._commit_lock:
            for tp in list(self._pending):
                self._advance(tp)
            owned = self.consumer.assignment()
            offsets = {
                tp: offset
                for tp, offset in self._finished.items()
                if tp in owned
                and (only is None or tp in only)
                and self._committed.get(tp) != offset
            }
            if not offsets:
                return
            try:
                await self.consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as error:
                # the group moved on without this member (or these partitions): the owner
                # starts from the last commit and handles the rest again (at-least-once)
                log.warning("offsets not committed, the group rebalanced: %s", error)
                return
            self._committed.update(offsets)

    # -- rebalancing (awaited by aiokafka before it rejoins the group) ----------------------

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        gone = set(revoked)
        self._epoch += 1
        if not gone:
            return  # the first join
        self.revocations += 1
        tasks = self._tasks(gone)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.drain_s)
            if late:
                log.warning("cancelled %d records at a rebalance (not committed)", len(late))
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=self.drain_s)
        try:
            await self._commit(gone)
        finally:
            for tp in gone:
                self._pending.pop(tp, None)
                self._finished.pop(tp, None)
                self._committed.pop(tp, None)
            for key in [k for k, t in self._last.items() if t.done()]:
                del self._last[key]

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None  # positions start at the committed offsets

    def _tasks(self, tps: Iterable[TopicPartition]) -> list[asyncio.Task[None]]:
        return [task for tp in tps for _, task in self._pending.get(tp, ()) if not task.done()]


async def consume_in_key_order(
    consumer: AIOKafkaConsumer,
    topics: Iterable[str],
    handle: Handler,
    stop: asyncio.Event,
    *,
    order: Order = by_key,
    max_in_flight: int = 64,
    commit_every_s: float = 0.05,
    poll_ms: int = 100,
    drain_s: float = 3.0,
) -> None:
    """Subscribe `consumer` (constructed without topics) to `topics` and run an InKeyOrder
    over it until `stop` is set."""
    loop = InKeyOrder(
        consumer,
        handle,
        order=order,
        max_in_flight=max_in_flight,
        commit_every_s=commit_every_s,
        poll_ms=poll_ms,
        drain_s=drain_s,
    )
    loop.subscribe(topics)
    await loop.run(stop)
