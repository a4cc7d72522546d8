"""A fresh search database (services/projector-search) for the routes it serves: the user
list and search, conversation lists, unread totals and message search."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from parley_projector_search.migrate import migrate
from parley_testing.plugin import create_database, drop_database


@pytest.fixture
async def search_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(postgres_dsn)
    await migrate(dsn)
    yield dsn
    await drop_database(dsn)


@pytest.fixture(scope="module")
async def module_search_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(postgres_dsn)
    await migrate(dsn)
    yield dsn
    await drop_database(dsn)
