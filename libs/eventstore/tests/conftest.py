"""Integration fixtures: a migrated fresh database, a pool, and the store under test.

`store` runs every store test twice: appends one statement at a time, and with group commit,
so both paths honour the same contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from parley_eventstore import EventStore
from parley_eventstore.migrate import migrate
from parley_eventstore.pool import create_pool


@pytest.fixture
async def migrated(fresh_database: str) -> str:
    await migrate(fresh_database)
    return fresh_database


@pytest.fixture
async def pool(migrated: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(migrated, min_size=2, max_size=60)
    yield pool
    await pool.close()


@pytest.fixture(params=[False, True], ids=["single", "group"])
async def store(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> AsyncIterator[EventStore]:
    store = EventStore(
        pool,
        topic="users.events",
        source="/parley/users",
        context="users",
        group_commit=request.param,
    )
    yield store
    await store.close()
