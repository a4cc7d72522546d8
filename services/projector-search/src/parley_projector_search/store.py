"""Applying a batch to one generation: every statement of the batch and the per-stream
versions in one transaction, so a batch is in or not at all and a redelivery, a replay from
offset 0 or two consumers overlapping during a rebalance change nothing twice.

The versions (`applied`, one row per source stream) are locked first, in stream order, for
the whole transaction: two transactions carrying the same stream apply it one after the
other, the second skipping what the first applied (no deadlock between batches on them).
Events are applied only above the stream's version; an event of a stream this model has no
handler for still moves the version (a consistency token of any write of the stream is then
honoured).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from parley_projector_search.schema import schema_of
from parley_projector_search.views import Op

log = logging.getLogger("parley.search")


@dataclass
class Item:
    """One record's effect: its stream ("<context>/<id>"), version and statements."""

    stream: str
    version: int
    ops: Sequence[Op]
    ref: Any = None  # what to park if its statements fail (the Kafka record)


@dataclass
class Outcome:
    applied: int = 0
    skipped: int = 0
    failed: list[tuple[Item, BaseException]] = field(default_factory=list)


# connection trouble and lost lock races are retried by the caller; anything else a statement
# raises is a problem of the record (parked when the batch is replayed item by item)
RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    OSError,
)


async def _run(conn: asyncpg.Connection, schema: str, op: Op) -> None:
    await conn.execute(op.sql.replace("{s}", schema), *op.args)


async def _lock_versions(
    conn: asyncpg.Connection, schema: str, streams: list[str]
) -> dict[str, int]:
    await conn.execute(
        f"INSERT INTO {schema}.applied (stream, version) SELECT unnest($1::text[]), 0"
        " ON CONFLICT DO NOTHING",
        streams,
    )
    rows = await conn.fetch(
        f"SELECT stream, version FROM {schema}.applied WHERE stream = ANY($1::text[])"
        " ORDER BY stream FOR UPDATE",
        streams,
    )
    return {r["stream"]: int(r["version"]) for r in rows}


async def _save_versions(
    conn: asyncpg.Connection, schema: str, before: dict[str, int], after: dict[str, int]
) -> None:
    moved = sorted(s for s in after if after[s] > before.get(s, 0))
    if moved:
        await conn.execute(
            f"UPDATE {schema}.applied a SET version = v.version"
            " FROM unnest($1::text[], $2::bigint[]) AS v(stream, version)"
            " WHERE a.stream = v.stream",
            moved,
            [after[s] for s in moved],
        )


async def apply(
    pool: asyncpg.Pool, generation: int, items: Sequence[Item], careful: bool = False
) -> Outcome:
    """Apply `items` (in record order) to `generation` in one transaction. `careful`: each
    item in its own savepoint, a failing item reported in `failed` instead of failing the
    batch (the runtime's second try of a batch a statement failed)."""
    schema = schema_of(generation)
    out = Outcome()
    if not items:
        return out
    streams = sorted({i.stream for i in items})
    async with pool.acquire() as conn, conn.transaction():
        versions = await _lock_versions(conn, schema, streams)
        before = dict(versions)
        for item in items:
            if item.version <= versions.get(item.stream, 0):
                out.skipped += 1
                continue
            if careful:
                try:
                    async with conn.transaction():  # a savepoint
                        for op in item.ops:
                            await _run(conn, schema, op)
                except RETRYABLE:
                    raise
                except asyncpg.PostgresError as error:
                    out.failed.append((item, error))
                    continue
            else:
                for op in item.ops:
                    await _run(conn, schema, op)
            versions[item.stream] = item.version
            out.applied += 1
        await _save_versions(conn, schema, before, versions)
    return out


async def applied_version(
    conn: asyncpg.Connection | asyncpg.Pool, generation: int, stream: str
) -> int:
    """The highest version of `stream` the generation applied (0: none)."""
    schema = schema_of(generation)
    found = await conn.fetchval(f"SELECT version FROM {schema}.applied WHERE stream = $1", stream)
    return int(found or 0)
