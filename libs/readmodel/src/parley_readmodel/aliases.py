"""Generations and the alias document: how a projection is rebuilt beside the live one and
swapped in without downtime.

A projection's collections are physical `<logical>__g<N>`; the `_aliases` document
`{_id: projection, active: N, pending: M | None, complete: {"M": {"topic|partition": offset}}}`
says which generation readers use. Readers resolve names through it (cached briefly), so the
swap is one single-document update: atomic on MongoDB and on FerretDB alike, unlike
renameCollection (FerretDB 1.24 has it, but a rename cannot replace a collection in use).

Writers of the alias document: the rebuild (one at a time) updates it; a projector only ever
inserts it when missing. FerretDB applies updates as unlocked read-modify-writes, so two
updaters of one document could undo each other: the per-partition "joined" marks the live
projector leaves for a rebuild therefore live in separate documents (`_generations`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

DB = AsyncDatabase[dict[str, Any]]
ALIASES = "_aliases"
GENERATIONS = "_generations"


def physical(logical: str, generation: int) -> str:
    return f"{logical}__g{generation}"


def escape(name: str) -> str:
    """A name usable as a field name: no dots (paths) and no leading $ (operators)."""
    return name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def tp_key(topic: str, partition: int) -> str:
    return f"{escape(topic)}|{partition}"


@dataclass(frozen=True)
class Alias:
    projection: str
    active: int
    pending: int | None = None
    # generation -> {"topic|partition": offset}: everything below the offset is in that
    # generation (published by the rebuild once it stopped writing it)
    complete: dict[int, dict[str, int]] = field(default_factory=dict)

    def targets(self) -> list[int]:
        """The generations the live projector writes: the active one, and a rebuilt one from
        the moment the rebuild has published where it stopped."""
        if self.pending is not None and self.pending in self.complete:
            return [self.active, self.pending]
        return [self.active]


def _from_doc(doc: dict[str, Any]) -> Alias:
    complete = {int(gen): dict(offsets) for gen, offsets in (doc.get("complete") or {}).items()}
    return Alias(doc["_id"], int(doc["active"]), doc.get("pending"), complete)


async def read_alias(db: DB, projection: str) -> Alias:
    """The alias document, created (generation 1) on first use."""
    doc = await db[ALIASES].find_one({"_id": projection})
    if doc is None:
        with contextlib.suppress(DuplicateKeyError):  # another member created it first
            await db[ALIASES].insert_one({"_id": projection, "active": 1, "latest": 1})
        doc = await db[ALIASES].find_one({"_id": projection})
        assert doc is not None
    return _from_doc(doc)


_cache: dict[tuple[str, str], tuple[float, int]] = {}
_inflight: dict[tuple[str, str], asyncio.Task[int]] = {}


async def active_generation(db: DB, projection: str, ttl_s: float = 1.0) -> int:
    """The generation readers should use, cached for `ttl_s`, then served stale for up to
    three more TTLs while one background read refreshes it (a rebuild keeps the old
    generation readable for 10 s after the swap). Without that, every expiry made every
    concurrent request of the query gateway wait for the same read of the alias document:
    once a second, a stall of all 50 connections in the GET-by-id benchmark, enough to be its
    p99. Single-flight: concurrent readers share one read."""
    key = (db.name, projection)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < ttl_s:
        return hit[1]
    loop = asyncio.get_running_loop()
    refresh = _inflight.get(key)
    if refresh is None or refresh.get_loop() is not loop:  # (tests: a loop per test)
        refresh = loop.create_task(_read_active(db, projection, key))
        _inflight[key] = refresh
        refresh.add_done_callback(lambda task: _settled(key, task))
    if hit is not None and now - hit[0] < 4 * ttl_s:
        return hit[1]
    return await asyncio.shield(refresh)


async def _read_active(db: DB, projection: str, key: tuple[str, str]) -> int:
    generation = (await read_alias(db, projection)).active
    _cache[key] = (time.monotonic(), generation)
    return generation


def _settled(key: tuple[str, str], task: asyncio.Task[int]) -> None:
    if _inflight.get(key) is task:
        del _inflight[key]
    if not task.cancelled():
        task.exception()  # retrieved: a failed refresh is retried by the next reader


async def collection(
    db: DB, projection: str, logical: str, ttl_s: float = 1.0
) -> AsyncCollection[dict[str, Any]]:
    """The collection a reader (the query gateway) should query for `logical` now."""
    return db[physical(logical, await active_generation(db, projection, ttl_s))]


async def ensure_indexes(
    db: DB, generation: int, indexes: Mapping[str, tuple[tuple[tuple[str, int], ...], ...]]
) -> None:
    """Create a projection's declared indexes in one generation, the missing ones only and one
    per command: FerretDB 1.24 drops the connection when one createIndexes names several
    indexes that all exist already (one existing index per command is answered normally)."""
    for logical, wanted in indexes.items():
        target = db[physical(logical, generation)]
        existing = {tuple(i["key"].items()) async for i in await target.list_indexes()}
        for keys in wanted:
            if tuple(keys) not in existing:
                await target.create_indexes([IndexModel(list(keys))])


async def mark_joined(db: DB, projection: str, generation: int, tp: str) -> None:
    """The live projector writes `generation` for this partition from now on (see rebuild)."""
    await db[GENERATIONS].update_one(
        {"_id": f"{projection}|{generation}|{tp}"},
        {"$set": {"projection": projection, "generation": generation, "tp": tp}},
        upsert=True,
    )


async def joined(db: DB, projection: str, generation: int) -> set[str]:
    prefix = f"{projection}|{generation}|"
    docs = db[GENERATIONS].find({"projection": projection, "generation": generation})
    return {doc["_id"][len(prefix) :] async for doc in docs}
