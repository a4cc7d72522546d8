"""Readers' cache of the active generation: fresh for a TTL, then served stale while one
background read refreshes it, so an expiry never makes every concurrent reader wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from parley_readmodel.aliases import ALIASES, active_generation

pytestmark = pytest.mark.integration


async def test_an_expired_generation_is_served_stale_while_it_refreshes(db: Any) -> None:
    await db[ALIASES].insert_one({"_id": "p", "active": 1, "latest": 1})
    assert await active_generation(db, "p", ttl_s=0.2) == 1
    await db[ALIASES].update_one({"_id": "p"}, {"$set": {"active": 2}})  # a rebuild swapped
    assert await active_generation(db, "p", ttl_s=0.2) == 1  # fresh still
    await asyncio.sleep(0.25)
    # stale, the refresh under way: answered without waiting for it (which would say 2)
    assert await active_generation(db, "p", ttl_s=0.2) == 1
    deadline = time.monotonic() + 5
    while await active_generation(db, "p", ttl_s=0.2) != 2:
        assert time.monotonic() < deadline, "the refresh never landed"
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)  # past four TTLs: the next reader waits for a fresh read
    await db[ALIASES].update_one({"_id": "p"}, {"$set": {"active": 3}})
    assert await active_generation(db, "p", ttl_s=0.2) == 3
