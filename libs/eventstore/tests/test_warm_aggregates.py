"""Aggregates kept warm between commands (Repository keep_warm) over the real PostgreSQL: the
next command reuses the state without reading the store, yet every result is what a fresh
load would have given: after another writer appended (whether the kept state would have
appended, refused or done nothing), after a command that failed halfway, and once the entry
is older than its time to live."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from es_counter import Counter, Incremented, Opened
from parley_eventstore import EventCodec, EventStore, Metadata, Repository
from parley_eventstore.warm import WarmAggregates

META = Metadata(correlation_id="c")
CODEC = EventCodec(Opened, Incremented)


class CountingRepository(Repository[Counter]):
    loads = 0

    async def load(self, stream_id: str, **kwargs: object) -> Counter:  # type: ignore[override]
        self.loads += 1
        return await super().load(stream_id, **kwargs)  # type: ignore[arg-type]


def warm_repo(store: EventStore, ttl_s: float = 60.0) -> CountingRepository:
    return CountingRepository(store, Counter, CODEC, serialize=True, keep_warm=(100, ttl_s))


def bump(by: int = 1) -> Callable[[Counter], None]:
    def command(counter: Counter) -> None:
        if counter.title is None:
            counter.open("c")
        counter.increment(by)

    return command


async def total(store: EventStore, stream_id: str) -> int:
    return (await Repository(store, Counter, CODEC).load(stream_id)).total


async def kept_then_moved(store: EventStore, stream_id: str, by: int) -> CountingRepository:
    """A warm repository that keeps the stream at total 1, and another writer's `by` after
    it: the kept state is behind the stream."""
    repo = warm_repo(store)
    await repo.execute(stream_id, bump(), metadata=META)
    await Repository(store, Counter, CODEC).execute(stream_id, bump(by), metadata=META)
    return repo


@pytest.mark.integration
async def test_the_next_command_reuses_the_state(store: EventStore) -> None:
    repo = warm_repo(store)
    for _ in range(10):
        await repo.execute("w", bump(), metadata=META)
    assert repo.loads == 1
    assert await total(store, "w") == 10
    # a queue of concurrent commands on one stream shares the kept state too
    await asyncio.gather(*(repo.execute("w", bump(), metadata=META) for _ in range(10)))
    assert (repo.loads, await total(store, "w")) == (1, 20)


@pytest.mark.integration
async def test_another_writer_costs_a_reload_not_a_conflict(store: EventStore) -> None:
    repo = await kept_then_moved(store, "w", 100)  # another replica, say
    # no retries allowed: the kept state was stale, not the command's view of a race
    outcome = await repo.execute("w", bump(), metadata=META, retries=0)
    assert outcome.version == 4  # opened, +1, +100, +1
    assert repo.loads == 2
    assert await total(store, "w") == 102
    await repo.execute("w", bump(), metadata=META)
    assert (repo.loads, await total(store, "w")) == (2, 103)


@pytest.mark.integration
async def test_a_command_that_fails_halfway_leaves_no_state_behind(store: EventStore) -> None:
    repo = warm_repo(store)
    await repo.execute("w", bump(), metadata=META)

    def half(counter: Counter) -> None:
        counter.increment(1000)  # applied to the state, then the command refuses
        raise ValueError("refused")

    with pytest.raises(ValueError):
        await repo.execute("w", half, metadata=META)
    loads = repo.loads
    outcome = await repo.execute("w", bump(), metadata=META)
    assert outcome.version == 3
    assert await total(store, "w") == 2
    assert repo.loads == loads + 1  # the failed command's state was dropped, not reused


@pytest.mark.integration
async def test_a_refusal_on_a_kept_state_is_decided_again_on_a_fresh_one(store: EventStore) -> None:
    repo = await kept_then_moved(store, "w", 100)  # kept: total 1; the stream: 101

    def spend(counter: Counter) -> None:
        if counter.total < 100:
            raise ValueError("not enough")
        counter.increment(-100)

    outcome = await repo.execute("w", spend, metadata=META)  # the kept state would refuse
    assert outcome.version == 4 and await total(store, "w") == 1


@pytest.mark.integration
async def test_a_no_op_on_a_kept_state_is_decided_again_on_a_fresh_one(store: EventStore) -> None:
    repo = await kept_then_moved(store, "w", -5)  # kept: total 1; the stream: -4

    def top_up(counter: Counter) -> None:  # "at least 1": nothing to do when it already is
        if counter.total < 1:
            counter.increment(1 - counter.total)

    outcome = await repo.execute("w", top_up, metadata=META)  # the kept state: nothing to do
    assert outcome.version == 4 and await total(store, "w") == 1


@pytest.mark.integration
async def test_an_entry_lives_its_ttl_from_the_load(store: EventStore) -> None:
    repo = warm_repo(store, ttl_s=0.2)
    for _ in range(4):  # used every 0.1 s: still reloaded once its load is 0.2 s old
        await repo.execute("w", bump(), metadata=META)
        await asyncio.sleep(0.1)
    assert repo.loads == 2
    assert await total(store, "w") == 4


def test_keep_warm_needs_the_per_stream_queue() -> None:
    with pytest.raises(ValueError, match="serialize"):
        Repository(None, Counter, CODEC, keep_warm=(10, 1.0))  # type: ignore[arg-type]


def test_the_least_recently_used_entry_goes_first() -> None:
    now = [0.0]
    cache: WarmAggregates[str] = WarmAggregates(2, ttl_s=10.0, clock=lambda: now[0])
    cache.keep("a", 0.0, "A")
    cache.keep("b", 0.0, "B")
    assert cache.take("a") == (0.0, "A")  # taken out while its command runs
    cache.keep("a", 0.0, "A")
    cache.keep("c", 0.0, "C")  # "b" was used least recently
    assert (cache.take("b"), len(cache)) == (None, 2)
    now[0] = 10.0
    assert cache.take("a") is None  # as old as its time to live
