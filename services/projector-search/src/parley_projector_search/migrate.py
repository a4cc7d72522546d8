"""The search database: its control table (dbmate migrations), then generation 1's tables
when there is no generation yet. Later generations are made by the rebuild.

`python -m parley_projector_search.migrate <dsn>` (what the local cluster and a deploy job run).
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
from parley_eventstore import migrate as eventstore

from parley_projector_search import schema


def migrations_dir() -> Path:
    return eventstore.package_migrations("parley_projector_search")


async def first_generation(dsn: str) -> None:
    """Generation 1, live, unless some generation exists; the tables of every generation in
    use (CREATE ... IF NOT EXISTS: a table or index added later reaches existing ones)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE search_generations IN EXCLUSIVE MODE")
            if not await conn.fetchval("SELECT count(*) FROM search_generations"):
                await conn.execute(schema.tables(1))
                await conn.execute("INSERT INTO search_generations (n, state) VALUES (1, 'live')")
        for row in await conn.fetch(
            "SELECT n FROM search_generations WHERE state IN ('live', 'building')"
        ):
            await conn.execute(schema.tables(row["n"]))
    finally:
        await conn.close()


async def migrate(dsn: str) -> None:
    await eventstore.migrate(dsn, migrations_dir(), event_store=False)
    await first_generation(dsn)


def main(argv: list[str] | None = None) -> int:
    return eventstore.service_main("parley_projector_search.migrate", migrate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
