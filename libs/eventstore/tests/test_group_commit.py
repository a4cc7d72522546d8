"""Group commit: many appends, one transaction, one outcome each."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from parley_eventstore import AppendResult, ConcurrencyError, EventStore, Metadata, NewEvent
from parley_eventstore.records import DuplicateEvent

pytestmark = pytest.mark.integration


def ev(by: int = 1) -> NewEvent:
    return NewEvent("Incremented", {"by": by})


async def test_mixed_group_gets_per_append_outcomes(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, topic="t.events", source="/t", context="t", group_commit=True)
    meta = Metadata(correlation_id="c")
    await store.append("stale", "C", 0, [ev()], metadata=meta)
    await store.append("partial", "C", 0, [ev()], metadata=meta)
    await store.append("keyed", "C", 0, [ev()], metadata=meta, idempotency_key="done")
    async with pool.acquire() as conn:  # a stream whose head (3) is not the expected version
        await conn.execute(
            "INSERT INTO events (stream_id, stream_type, version, event_id, event_type, data)"
            " VALUES ('partial', 'C', 3, $1, 'Incremented', '{}')",
            uuid.uuid4(),
        )
    assert store._group is not None
    groups_before = store._group.groups
    outcomes = await asyncio.gather(
        *(store.append(f"fresh-{i}", "C", 0, [ev(), ev()], metadata=meta) for i in range(20)),
        store.append("stale", "C", 0, [ev()], metadata=meta),
        store.append("partial", "C", 1, [ev(), ev(), ev()], metadata=meta, idempotency_key="p"),
        store.append("other", "C", 0, [ev()], metadata=meta, idempotency_key="done"),
        store.append("fresh-0", "C", 2, [ev()], metadata=meta),  # same stream: next group
        return_exceptions=True,
    )
    fresh, (stale, partial, repeated, follow_up) = outcomes[:20], outcomes[20:]
    assert all(isinstance(o, AppendResult) and o.version == 2 for o in fresh)
    assert isinstance(stale, ConcurrencyError) and stale.actual == 1
    assert isinstance(partial, ConcurrencyError) and partial.actual == 3
    assert isinstance(repeated, AppendResult) and repeated.already_handled
    assert repeated.stream_id == "keyed"
    assert isinstance(follow_up, AppendResult) and follow_up.version == 3
    assert store._group.groups - groups_before <= 3  # 24 appends, not 24 transactions
    async with pool.acquire() as conn:
        # nothing of the rejected append, key included
        assert await conn.fetchval("SELECT max(version) FROM events WHERE stream_id='partial'") == 3
        assert await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key='p'") == 0
        outbox = await conn.fetchval("SELECT count(*) FROM outbox")
        events = await conn.fetchval("SELECT count(*) FROM events")
    assert outbox == 3 + 20 * 2 + 1  # every event appended through the store, none other
    assert events == outbox + 1  # + the row inserted behind the store's back
    await store.close()


async def test_a_failing_group_falls_back_to_single_appends(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, topic="t.events", source="/t", context="t", group_commit=True)
    meta = Metadata()
    taken = NewEvent("Incremented", {"by": 0})
    await store.append("x", "C", 0, [taken], metadata=meta)
    # a reused event id is a caller bug: it fails its own append, not its neighbours'
    outcomes = await asyncio.gather(
        *(store.append(f"ok-{i}", "C", 0, [ev()], metadata=meta) for i in range(5)),
        store.append("y", "C", 0, [taken], metadata=meta),
        return_exceptions=True,
    )
    assert all(isinstance(o, AppendResult) for o in outcomes[:5])
    # a typed error (the store's, not the driver's): callers need no asyncpg to handle it
    assert isinstance(outcomes[5], DuplicateEvent)
    await store.close()
