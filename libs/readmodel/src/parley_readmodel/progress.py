"""Per (projection, generation, stream) the highest version applied, and the versions parked on
the dead-letter topic: one small document each in `_progress`.

The query gateway uses it for read-your-writes (`wait_for_version`): a command answered with
(stream id, version); a GET presenting that token waits, bounded, until the projection has
applied it. One document per stream keeps the one-writer rule (a stream lives in one
partition) and `_id`-only filters (FerretDB pushes only those down to SQLite).

A projection may say that a context's versions are already in its documents
(`Projection.versions_in`): the users document of a user records in `_v` every version of
that user's stream it applied. Those streams get a `_progress` document only when their
newest version in a batch did not write that document, and `applied_version` reads the
document first, so a batch of new users costs one insert per user, not two.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from parley_readmodel.aliases import active_generation, escape, physical

DB = AsyncDatabase[dict[str, Any]]
PROGRESS = "_progress"


def context_of(topic_or_context: str) -> str:
    return topic_or_context.removesuffix(".events")


def stream_key(topic_or_context: str, stream: str) -> str:
    """A stream as progress knows it: qualified by its context, because ids repeat across
    contexts (an account, its profile and its notification preferences all use the user id)
    and a projection reading two topics must not take one's version for the other's."""
    return f"{context_of(topic_or_context)}/{stream}"


def progress_id(projection: str, generation: int, stream: str) -> str:
    """`stream`: a `stream_key`."""
    return f"{projection}|{generation}|{stream}"


async def record_progress(
    db: DB, projection: str, generation: int, versions: Mapping[str, int], chunk: int = 50
) -> None:
    """After a batch's writes. Streams seen for the first time get a plain insert (no read:
    FerretDB scans the collection for an `$in`, and inserts are ~30x cheaper than upserts
    there); the ones that exist get `$max`, so a replay from offset 0 never moves one back."""
    ids = {progress_id(projection, generation, s): v for s, v in versions.items()}
    if not ids:
        return
    docs = [
        {"_id": i, "version": v, "projection": projection, "generation": generation}
        for i, v in sorted(ids.items())
    ]
    existing: list[str] = []
    try:
        await db[PROGRESS].insert_many(docs, ordered=False)
    except BulkWriteError as error:
        failed = error.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in failed):
            raise
        existing = [docs[e["index"]]["_id"] for e in failed]
    ops = [UpdateOne({"_id": i}, {"$max": {"version": ids[i]}}) for i in existing]
    for start in range(0, len(ops), chunk):
        await db[PROGRESS].bulk_write(ops[start : start + chunk], ordered=True)


async def mark_parked(db: DB, projection: str, generation: int, stream: str, version: int) -> None:
    """Before a record goes to the DLQ: its version may later be applied out of order."""
    await db[PROGRESS].update_one(
        {"_id": progress_id(projection, generation, stream)},
        {
            "$addToSet": {"parked": version},
            "$setOnInsert": {"projection": projection, "generation": generation, "version": 0},
        },
        upsert=True,
    )


async def parked_versions(
    db: DB, projection: str, generation: int, streams: Mapping[str, str]
) -> set[tuple[str, int]]:
    """The parked (stream, version) pairs of `streams` (stream key -> the label to answer
    with, e.g. the bare stream id the documents' version guards use)."""
    ids = {progress_id(projection, generation, key): label for key, label in streams.items()}
    if not ids:
        return set()
    found: set[tuple[str, int]] = set()
    docs = db[PROGRESS].find({"_id": {"$in": sorted(ids)}}, {"parked": 1}, batch_size=len(ids))
    async for doc in docs:
        found |= {(ids[doc["_id"]], int(v)) for v in doc.get("parked") or []}
    return found


async def applied_version(
    db: DB,
    projection: str,
    stream: str,
    in_document: tuple[str, str] | None = None,
    enough: int | None = None,
) -> int:
    """The highest version of the stream the projection applied in its active generation.
    `in_document`: (logical collection, document id) whose `_v` also records the stream's
    versions (Projection.versions_in); read first, and when it already holds `enough` the
    `_progress` document is not read at all."""
    generation = await active_generation(db, projection)
    carried = 0
    if in_document is not None:
        logical, doc_id = in_document
        doc = await db[physical(logical, generation)].find_one({"_id": doc_id}, {"_v": 1})
        carried = int(((doc or {}).get("_v") or {}).get(escape(doc_id), 0))
        if enough is not None and carried >= enough:
            return carried
    doc = await db[PROGRESS].find_one({"_id": progress_id(projection, generation, stream)})
    return max(carried, int(doc["version"]) if doc else 0)


async def wait_for_version(
    db: DB,
    projection: str,
    stream_id: str,
    version: int,
    timeout_s: float,
    in_document: tuple[str, str] | None = None,
) -> bool:
    """True once `projection` applied `version` of `stream_id` (a `stream_key`, in its active
    generation), False after `timeout_s`. Polls with a short backoff: one `_id` lookup per
    poll (two when the document is behind)."""
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    # a poll for a condition until a deadline, not a retry of a failure: it stays a loop (its
    # last poll lands on the deadline, which tenacity's stop conditions do not do, and it runs
    # for every consistent read, where tenacity would add ~20 us)
    while True:
        if await applied_version(db, projection, stream_id, in_document, version) >= version:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.1)
