"""Repository: snapshot + tail loading, snapshot schema versions, idempotent execute."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from es_counter import Counter, Incremented, Opened
from parley_eventstore import ConcurrencyError, EventCodec, EventStore, Metadata, Repository

pytestmark = pytest.mark.integration

META = Metadata(correlation_id="c")
CODEC = EventCodec(Opened, Incremented)


async def grow(repo: Repository[Counter], stream_id: str, n: int, per_save: int = 7) -> None:
    counter = await repo.load(stream_id)
    counter.open("big")
    while counter.next_version < n:
        for _ in range(min(per_save, n - counter.next_version)):
            counter.increment()
        await repo.save(counter, metadata=META)


async def test_loading_reads_snapshot_and_tail_only(store: EventStore) -> None:
    repo = Repository(store, Counter, CODEC, snapshot_every=100)
    await grow(repo, "big", 1000)
    Counter.folds = 0
    counter = await repo.load("big")
    assert (counter.version, counter.total, counter.title) == (1000, 999, "big")
    # saves of 7 events crossed each multiple of 100 somewhere: the snapshot is at most 6
    # events behind a crossing, so the tail is < 100 events, never the whole stream
    assert Counter.folds < 100
    snapshot, tail = await store.load_from_snapshot("big", Counter.snapshot_schema_version)
    assert snapshot is not None and snapshot.version + len(tail) == 1000
    assert snapshot.version >= 900


async def test_stale_snapshot_schema_is_ignored(store: EventStore) -> None:
    repo = Repository(store, Counter, CODEC, snapshot_every=10)
    await grow(repo, "s", 50, per_save=1)
    async with store.pool.acquire() as conn:  # poison the snapshot: wrong state, old schema
        await conn.execute('UPDATE snapshots SET state = \'{"title": "x", "total": -1}\'')

    class CounterV2(Counter):
        snapshot_schema_version = 2

    v2 = Repository(store, CounterV2, CODEC, snapshot_every=10)
    Counter.folds = 0
    counter = await v2.load("s")
    assert (counter.total, counter.version) == (49, 50)  # rebuilt from all events
    assert Counter.folds == 50
    counter.increment()
    for _ in range(9):
        counter.increment()
    await v2.save(counter, metadata=META)  # crosses 60: snapshot with schema 2
    snapshot, tail = await store.load_from_snapshot("s", 2)
    assert snapshot is not None and (snapshot.version, tail) == (60, [])
    assert (await v2.load("s")).total == 59
    # the old code's loader now ignores the v2 snapshot in turn
    assert (await store.load_from_snapshot("s", 1))[0] is None


async def test_point_in_time_state(store: EventStore) -> None:
    repo = Repository(store, Counter, CODEC, snapshot_every=5)
    await grow(repo, "s", 20, per_save=1)
    assert (await repo.load("s", up_to_version=8)).total == 7
    events = await store.load("s")
    assert (await repo.load("s", at=events[2].recorded_at)).total == 2


async def test_execute_is_idempotent_and_retries_conflicts(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, topic="t.events", source="/t", context="t")
    repo = Repository(store, Counter, CODEC)

    def open_it(counter: Counter) -> None:
        counter.open("t")

    first = await repo.execute("c", open_it, metadata=META, idempotency_key="open-c")
    # a retried create would fail validation if it ran again ("already open" in a real domain)
    again = await repo.execute("c", open_it, metadata=META, idempotency_key="open-c")
    assert again.already_handled and again.version == first.version == 1

    def bump(counter: Counter) -> None:
        counter.increment()

    results = await asyncio.gather(
        *(repo.execute("c", bump, metadata=META, retries=100) for _ in range(20))
    )
    assert sorted(r.version for r in results) == list(range(2, 22))
    with pytest.raises(ConcurrencyError):  # without retries a loser sees the conflict
        await asyncio.gather(*(repo.execute("c", bump, metadata=META) for _ in range(20)))
    await store.close()
