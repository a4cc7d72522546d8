"""The rebuild's bookkeeping against a real PostgreSQL: a rebuild that died leaves a generation
`building`; running the command again takes that generation over (it never refuses for ever),
and of two rebuilds waiting for the same generation only one swaps it and drops the old one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from parley_projector_search.migrate import migrate
from parley_projector_search.rebuild import start, swap
from parley_projector_search.schema import GENERATIONS
from parley_testing.plugin import create_database, drop_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def conn(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    dsn = await create_database(postgres_dsn)
    await migrate(dsn)
    connection = await asyncpg.connect(dsn)
    yield connection
    await connection.close()
    await drop_database(dsn)


async def states(conn: asyncpg.Connection) -> dict[int, str]:
    rows = await conn.fetch(f"SELECT n, state FROM {GENERATIONS} ORDER BY n")
    return {int(r["n"]): r["state"] for r in rows}


async def test_a_second_rebuild_takes_over_the_generation_being_built(
    conn: asyncpg.Connection,
) -> None:
    live = next(n for n, state in (await states(conn)).items() if state == "live")
    building = await start(conn)  # the first rebuild, which then dies before its swap
    assert building == live + 1
    assert await start(conn) == building  # run again: the same generation, no new one
    assert await states(conn) == {live: "live", building: "building"}

    assert await swap(conn, building) == (True, live)
    # a second waiter for the same generation finds it swapped: it must not swap (or drop)
    assert await swap(conn, building) == (False, None)
    assert await states(conn) == {live: "retired", building: "live"}
    assert await start(conn) == building + 1  # the next rebuild is a new generation again
