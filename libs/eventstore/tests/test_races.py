"""Deterministic races: a twin's transaction is held open between the racer's check and its
insert, so the paths that only concurrency reaches are exercised every run (alone and in a
group commit)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import pytest
from parley_eventstore import AppendResult, ConcurrencyError, EventStore, Metadata, NewEvent
from parley_eventstore.sql import APPEND
from parley_eventstore.store import _params

pytestmark = pytest.mark.integration
META = Metadata()


def ev() -> NewEvent:
    return NewEvent("Incremented", {"by": 1})


class HeldTwin:
    """A twin append whose statement ran inside a transaction we keep open."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def start(self, stream_id: str, expected: int, key: str | None) -> None:
        self.conn = await self.store.pool.acquire()
        self.tx = self.conn.transaction()
        await self.tx.start()
        pending = self.store.encode(
            stream_id, "C", expected, [ev()], metadata=META, idempotency_key=key
        )
        await self.conn.fetch(APPEND, *_params([pending], self.store.topic))

    async def race(self, racer: Awaitable[AppendResult], commit: bool) -> AppendResult:
        """Start the racer (with company, so in group mode it travels in a real group), let
        it block on the twin's uncommitted rows, then end the twin."""
        task = asyncio.ensure_future(racer)
        fillers = [
            asyncio.ensure_future(
                self.store.append(f"filler-{uuid.uuid4()}", "C", 0, [ev()], metadata=META)
            )
            for _ in range(3)
        ]
        await asyncio.sleep(0.3)
        assert not task.done(), "the racer should wait for the twin's uncommitted row"
        await (self.tx.commit() if commit else self.tx.rollback())
        await self.store.pool.release(self.conn)
        await asyncio.gather(*fillers)
        return await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("same_stream", [True, False], ids=["same-stream", "new-stream"])
async def test_twin_with_same_key_commits_first(store: EventStore, same_stream: bool) -> None:
    await store.append("s", "C", 0, [ev()], metadata=META)
    twin = HeldTwin(store)
    await twin.start("s", 1, "key")
    stream, expected = ("s", 1) if same_stream else ("t", 0)
    racer = store.append(stream, "C", expected, [ev()], metadata=META, idempotency_key="key")
    result = await twin.race(racer, commit=True)
    assert result.already_handled and (result.stream_id, result.version) == ("s", 2)
    assert await store.head("t") == 0 and await store.head("s") == 2


async def test_twin_with_same_key_rolls_back(store: EventStore) -> None:
    twin = HeldTwin(store)
    await twin.start("s", 0, "key")
    racer = store.append("t", "C", 0, [ev()], metadata=META, idempotency_key="key")
    result = await twin.race(racer, commit=False)
    assert not result.already_handled and (result.stream_id, result.version) == ("t", 1)
    assert await store.idempotent_result("key") is not None


async def test_concurrent_writer_of_the_same_version(store: EventStore) -> None:
    await store.append("s", "C", 0, [ev()], metadata=META)
    twin = HeldTwin(store)
    await twin.start("s", 1, None)
    racer = store.append("s", "C", 1, [ev(), ev()], metadata=META, idempotency_key="racer")
    with pytest.raises(ConcurrencyError) as conflict:
        await twin.race(racer, commit=True)
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    assert await store.head("s") == 2
    assert await store.idempotent_result("racer") is None  # its key went with it
    async with store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE key = 's'") == 2
