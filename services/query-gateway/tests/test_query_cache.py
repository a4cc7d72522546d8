"""The list cache of the query gateway, without servers."""

import asyncio

from parley_query_gateway.reads import QueryCache


async def test_concurrent_misses_share_one_read_and_fresh_bypasses() -> None:
    cache = QueryCache(ttl_s=60)
    reads = 0

    async def load() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return reads

    values = await asyncio.gather(*(cache.get(("k",), load, fresh=False) for _ in range(20)))
    assert values == [1] * 20 and reads == 1
    assert await cache.get(("k",), load, fresh=True) == 2  # a consistency token reads anew
    assert await cache.get(("k",), load, fresh=False) == 2  # and refreshes the entry
    assert await cache.get(("other",), load, fresh=False) == 3


async def test_stale_entries_are_served_while_one_refresh_runs() -> None:
    cache = QueryCache(ttl_s=0.05, stale_s=0.2)
    reads = 0

    async def load() -> int:
        nonlocal reads
        reads += 1
        return reads

    assert await cache.get(("k",), load, fresh=False) == 1
    await asyncio.sleep(0.06)
    assert await cache.get(("k",), load, fresh=False) == 1  # stale, refresh started
    await asyncio.sleep(0.01)
    assert await cache.get(("k",), load, fresh=False) == 2
    await asyncio.sleep(0.25)  # past stale_s: wait for a fresh read
    assert await cache.get(("k",), load, fresh=False) == 3


async def test_disabled_cache_always_reads() -> None:
    cache = QueryCache(ttl_s=0)
    calls = []

    async def load() -> int:
        calls.append(1)
        return len(calls)

    assert [await cache.get(("k",), load, fresh=False) for _ in range(3)] == [1, 2, 3]


def test_stale_pages_stand_in_for_at_least_a_second_by_default() -> None:
    assert QueryCache(ttl_s=0.1).stale_s == 1.0
    assert QueryCache(ttl_s=1.0).stale_s == 4.0


async def test_a_page_is_as_old_as_the_moment_its_read_began() -> None:
    """A read slower than the TTL hands back a page already too old to be fresh: the next
    request starts a refresh at once instead of trusting it for another TTL."""
    cache = QueryCache(ttl_s=0.1)
    reads = 0

    async def slow_load() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.15)
        return reads

    assert await cache.get(("k",), slow_load, fresh=False) == 1
    assert await cache.get(("k",), slow_load, fresh=False) == 1  # stale: refresh started
    await asyncio.sleep(0.2)
    assert reads == 2
