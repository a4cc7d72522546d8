"""Rebuild the search model without downtime: `python -m parley_projector_search.rebuild`.

1. A new generation N+1: its schema and tables, and a `building` row. The running
   projectors (every replica) start its consumer group `projector-search.g<N+1>` from offset
   0 beside the live generation's (runtime.supervise), so it fills while live writes go on.
2. Once that group has caught up (no lag on any partition, twice in a row a moment apart),
   one transaction makes N+1 `live` and the old generation `retired`: readers switch at their
   next look at the pointer (the gateway caches it for a second), consumers of the old one
   stop.
3. The old schema is dropped `--keep` seconds later (10 by default): a reader that still
   holds the old pointer finishes its query first.

The MongoDB read models do the same with `<collection>__g<N>` and the `_aliases` document
(parley_readmodel.rebuild); here each generation has its own consumer group and versions, so
the live projector never joins or dual-writes a generation being built.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import asyncpg
from parley_readmodel.lag import LagMonitor

from parley_projector_search.config import Settings
from parley_projector_search.schema import GENERATIONS, schema_of, tables
from parley_projector_search.views import TOPICS

log = logging.getLogger("parley.search.rebuild")


async def start(conn: asyncpg.Connection) -> int:
    """The new generation's tables and `building` row; its number. A generation still
    `building` (a rebuild that died, or one running now) is taken over instead: the projectors
    go on filling it whether or not a rebuild process waits for it, so running the command
    again after a crash finishes that generation rather than refusing for ever."""
    async with conn.transaction():
        await conn.execute(f"LOCK TABLE {GENERATIONS} IN EXCLUSIVE MODE")
        building = await conn.fetchval(f"SELECT n FROM {GENERATIONS} WHERE state = 'building'")
        if building is not None:
            log.info("generation %d is being built already: waiting for it", building)
            return int(building)
        n = int(await conn.fetchval(f"SELECT coalesce(max(n), 0) + 1 FROM {GENERATIONS}"))
        await conn.execute(tables(n))
        await conn.execute(f"INSERT INTO {GENERATIONS} (n, state) VALUES ($1, 'building')", n)
    return n


async def swap(conn: asyncpg.Connection, n: int) -> tuple[bool, int | None]:
    """Make `n` live: whether this call did (another rebuild waiting for the same generation
    may have swapped it first), and the generation it replaced (None: there was none)."""
    async with conn.transaction():
        await conn.execute(f"LOCK TABLE {GENERATIONS} IN EXCLUSIVE MODE")
        state = await conn.fetchval(f"SELECT state FROM {GENERATIONS} WHERE n = $1", n)
        if state != "building":
            return False, None
        old = await conn.fetchval(f"SELECT n FROM {GENERATIONS} WHERE state = 'live'")
        await conn.execute(
            f"UPDATE {GENERATIONS} SET state = 'retired', swapped_at = now() WHERE state = 'live'"
        )
        await conn.execute(
            f"UPDATE {GENERATIONS} SET state = 'live', swapped_at = now() WHERE n = $1", n
        )
    return True, None if old is None else int(old)


async def drop(conn: asyncpg.Connection, n: int) -> None:
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema_of(n)} CASCADE")


async def caught_up(lag: LagMonitor, group: str, checks: int = 2, pause_s: float = 0.5) -> bool:
    for i in range(checks):
        if any((await lag.lag(group)).values()):
            return False
        if i < checks - 1:
            await asyncio.sleep(pause_s)
    return True


async def rebuild(dsn: str, bootstrap_servers: str, keep_s: float, timeout_s: float) -> int:
    from parley_projector_search.runtime import group_for

    conn = await asyncpg.connect(dsn)
    try:
        n = await start(conn)
        group = group_for(n)
        log.info("generation %d created; the projectors fill it as %s", n, group)
        lag = LagMonitor(bootstrap_servers, {group: TOPICS})
        began = time.monotonic()
        try:
            while not await caught_up(lag, group):
                if time.monotonic() - began > timeout_s:
                    raise TimeoutError(f"generation {n} did not catch up in {timeout_s:.0f}s")
                await asyncio.sleep(0.5)
        finally:
            await lag.close()
        swapped, old = await swap(conn, n)
        if not swapped:
            log.info("generation %d was made live by another rebuild", n)
            return n
        log.info("generation %d is live (was %s)", n, old)
        if old is not None:
            await asyncio.sleep(keep_s)
            await drop(conn, old)
            log.info("generation %d dropped", old)
        return n
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley_projector_search.rebuild")
    parser.add_argument("--keep", type=float, default=10.0, help="seconds before the old drop")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    n = asyncio.run(
        rebuild(settings.postgres_dsn, settings.kafka_bootstrap_servers, args.keep, args.timeout)
    )
    print(f"generation {n} is live")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
