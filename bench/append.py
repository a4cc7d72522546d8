"""Append throughput and commit latency: Parley's event store (events + outbox + idempotency
record) against a bare asyncpg loop and the `eventsourcing` library's PostgreSQL recorder, in
the same run, on the same server, with the same ~300-byte single-event commits."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bench.common import DURATION_S, Figures, closed_loop, create_database, drop_database, payload
from bench.threaded import eventsourcing_figures

CONCURRENCY = (1, 8, 32)
INSERT = "INSERT INTO raw_events (stream_id, version, data) VALUES ($1, 1, $2)"


async def raw_asyncpg(concurrency: int, *, autocommit: bool = False) -> Figures:
    """The bare loop: one INSERT + COMMIT per event on one held connection per task.

    As specified (and as the reference figure of ~5,200/s at c8 was measured): an explicit
    transaction, BEGIN; INSERT; COMMIT. With `autocommit` the INSERT runs as its own implicit
    transaction in one round trip: the absolute floor, reported beside it."""
    dsn = await create_database("bench_raw")
    try:
        setup = await asyncpg.connect(dsn)
        await setup.execute(
            "CREATE TABLE raw_events (id bigserial PRIMARY KEY, stream_id text NOT NULL,"
            " version int NOT NULL, data jsonb NOT NULL)"
        )
        await setup.close()
        connections = [await asyncpg.connect(dsn) for _ in range(concurrency)]
        body = json.dumps(payload())

        async def make(i: int) -> Callable[[], Awaitable[None]]:
            conn = connections[i]

            async def op() -> None:
                if autocommit:
                    await conn.execute(INSERT, str(uuid.uuid4()), body)
                    return
                async with conn.transaction():
                    await conn.execute(INSERT, str(uuid.uuid4()), body)

            return op

        figures = await closed_loop(concurrency, DURATION_S, make)
        for conn in connections:
            await conn.close()
        return figures
    finally:
        await drop_database(dsn)


async def parley(concurrency: int) -> Figures:
    """Parley's append: events + outbox row + idempotency record in one transaction."""
    from parley_eventstore.bench_support import appender

    dsn = await create_database("bench_parley")
    try:
        async with appender(dsn, pool_size=concurrency) as append:

            async def make(_: int) -> Callable[[], Awaitable[None]]:
                async def op() -> None:
                    await append(str(uuid.uuid4()), payload(), str(uuid.uuid4()))

                return op

            return await closed_loop(concurrency, DURATION_S, make)
    finally:
        await drop_database(dsn)


async def eventsourcing_lib(concurrency: int) -> Figures:
    dsn = await create_database("bench_es")
    try:
        parts = urlsplit(dsn)
        return await asyncio.to_thread(
            eventsourcing_figures,
            concurrency,
            {
                "dbname": parts.path.lstrip("/"),
                "host": parts.hostname or "127.0.0.1",
                "port": parts.port or 5432,
                "user": parts.username or "parley",
                "password": parts.password or "",
            },
            json.dumps(payload()).encode(),
        )
    finally:
        await drop_database(dsn)


def summary(prefix: str, figures: Figures) -> dict[str, Any]:
    return {
        f"{prefix}.events_per_s": round(figures.per_second, 1),
        f"{prefix}.p50_ms": round(figures.pct(50), 3),
        f"{prefix}.p99_ms": round(figures.pct(99), 3),
    }


async def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for c in CONCURRENCY:
        results.update(summary(f"append.c{c}", await parley(c)))
        results.update(summary(f"append.raw_asyncpg.c{c}", await raw_asyncpg(c)))
        floor = await raw_asyncpg(c, autocommit=True)
        results.update(summary(f"append.raw_asyncpg_autocommit.c{c}", floor))
        results.update(summary(f"append.eventsourcing.c{c}", await eventsourcing_lib(c)))
    for c in CONCURRENCY:
        ours = results[f"append.c{c}.events_per_s"]
        results[f"append.vs_raw_asyncpg.c{c}.ratio"] = round(
            ours / results[f"append.raw_asyncpg.c{c}.events_per_s"], 3
        )
        results[f"append.vs_eventsourcing.c{c}.ratio"] = round(
            ours / results[f"append.eventsourcing.c{c}.events_per_s"], 3
        )
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
