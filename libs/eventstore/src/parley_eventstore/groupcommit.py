"""Application-level group commit: concurrent appends share one transaction.

This box is CPU-bound, and much of the cost of an append is per statement and per commit
(parse/bind, snapshot, WAL flush, round trips), not per row. So while one group is being
committed, new appends queue up; the next group takes them all (at most one per stream and
per idempotency key, so the appends of one group cannot conflict with each other) and writes
them with one statement and one commit. An append to a stream or key of a group still in
flight waits for that group's commit, so one stream's appends are written in the order they
were submitted (with two groups in flight, the second would otherwise read the stream's head
before the first committed and refuse a follow-up that is in fact next). Each append still
gets its own outcome: a stale expected version or a handled key is answered per append by the
statement itself. A race the statement cannot see coming (a concurrent writer commits the
same version mid-statement) aborts the whole group, which is then retried one append at a
time: rare, and correct.

No timer: a group is whatever arrived while the previous one was in flight, so a lone writer
pays no added latency (a group of one takes the plain one-statement path).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from parley_eventstore.records import AppendResult, ConcurrencyError

if TYPE_CHECKING:
    from parley_eventstore.store import Pending

log = logging.getLogger(__name__)

Outcome: TypeAlias = AppendResult | ConcurrencyError
OneFn = Callable[[asyncpg.Connection, "Pending"], Awaitable[Outcome]]
GroupFn = Callable[[asyncpg.Connection, Sequence["Pending"]], Awaitable[list[Outcome]]]
_Item = tuple["Pending", "asyncio.Future[Outcome]"]


class GroupCommitter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        one: OneFn,
        group: GroupFn,
        *,
        max_group: int = 64,
        max_inflight: int = 2,
    ) -> None:
        self._pool = pool
        self._one = one
        self._group = group
        self._max_group = max_group
        # two groups in flight: one is being committed while the next is being built/sent
        self._max_inflight = max_inflight
        self._inflight = 0
        self._queue: deque[_Item] = deque()
        # streams and idempotency keys of the groups in flight
        self._busy_streams: set[str] = set()
        self._busy_keys: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.groups = 0  # number of transactions, for tests and metrics

    async def submit(self, pending: Pending) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((pending, future))
        if self._inflight < self._max_inflight:
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                if not batch:
                    return  # all queued appends wait for the group in flight; its task takes them
                try:
                    await self._commit(batch)
                finally:
                    for pending, _ in batch:
                        self._busy_streams.discard(pending.stream_id)
                        if pending.idempotency_key is not None:
                            self._busy_keys.discard(pending.idempotency_key)
        finally:
            self._inflight -= 1

    def _take(self) -> list[_Item]:
        """FIFO, skipping (not dropping) an append to a stream or key already taken, by this
        group or one in flight."""
        batch: list[_Item] = []
        rest: deque[_Item] = deque()
        streams, keys = self._busy_streams, self._busy_keys
        while self._queue and len(batch) < self._max_group:
            item = self._queue.popleft()
            pending = item[0]
            key = pending.idempotency_key
            if pending.stream_id in streams or (key is not None and key in keys):
                rest.append(item)
                continue
            streams.add(pending.stream_id)
            if key is not None:
                keys.add(key)
            batch.append(item)
        rest.extend(self._queue)
        self._queue = rest
        return batch

    async def _commit(self, batch: list[_Item]) -> None:
        self.groups += 1
        try:
            async with self._pool.acquire() as conn:
                if len(batch) == 1:
                    outcomes = [await self._one(conn, batch[0][0])]
                else:
                    outcomes = await self._group(conn, [pending for pending, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0][1], error)
                return
            # a race with another writer, a deadlock with another process's group, or one bad
            # event: nothing of the group committed; give every append its own chance and error
            log.warning("group of %d failed (%s); retrying one by one", len(batch), error)
            for item in batch:
                await self._commit([item])
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)


def _settle(future: asyncio.Future[Outcome], outcome: Outcome | BaseException) -> None:
    if future.done():  # the caller was cancelled; its append's fate is in the database
        return
    if isinstance(outcome, (AppendResult, ConcurrencyError)):
        future.set_result(outcome)
    else:
        future.set_exception(outcome)
