"""Idempotent batch apply: replaying a topic over a live read model changes nothing.

Every document keeps, per source stream, the last aggregate version it applied:
`_v.<stream id>`. Before writing a batch the runtime reads those versions for the touched
documents (one find per collection) and drops events already applied; the remaining writes
set the new version in the same update. Counters ($inc) are therefore exact, and views
that fold many streams (a per-user counter over many conversations) are covered by the same
per-stream map. No duplicate-key errors inside a bulk (FerretDB aborts the rest of a bulk on the
first failing write); a write that matched nothing raises and the batch is retried.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from parley_projection.projection import Write


@dataclass(frozen=True)
class Versioned:
    """A write with the source stream and aggregate version of the event that caused it."""

    write: Write
    stream_id: str
    version: int


BULK = 50  # updates per bulk_write command


class LostRace(RuntimeError):
    """A guarded write matched nothing: another writer moved the document; retry the batch."""


def _field(stream_id: str) -> str:
    # dots would be read as paths; aggregate ids are uuids or simple keys
    return "_v." + stream_id.replace(".", "_")


async def stored_versions(
    db: AsyncDatabase[dict[str, Any]], items: list[Versioned]
) -> dict[tuple[str, str, str], int]:
    """(collection, doc id, stream id) -> version already applied (absent = none)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for item in items:
        wanted[item.write.collection].add(item.write.doc_id)
    found: dict[tuple[str, str, str], int] = {}
    for collection, ids in wanted.items():
        async for doc in db[collection].find({"_id": {"$in": sorted(ids)}}, {"_v": 1}):
            for stream, version in (doc.get("_v") or {}).items():
                found[(collection, doc["_id"], stream)] = int(version)
    return found


def guarded_updates(
    items: list[Versioned], stored: dict[tuple[str, str, str], int]
) -> dict[str, list[UpdateOne]]:
    """Per collection, the compare-and-set updates for the events not applied yet, in order."""
    current = dict(stored)
    ops: dict[str, list[UpdateOne]] = defaultdict(list)
    for item in items:
        stream = item.stream_id.replace(".", "_")
        key = (item.write.collection, item.write.doc_id, stream)
        previous = current.get(key)
        if previous is not None and item.version <= previous:
            continue  # already applied: a replay or a duplicate delivery
        # `_id` only: FerretDB pushes nothing else down, and a version condition in the filter
        # made every update scan the collection (quadratic). The skip above is the guard: one
        # consumer owns a partition at a time (eager rebalancing: the old owner finishes its
        # batch before it rejoins), so the versions read at the batch start are current.
        guard: dict[str, Any] = {"_id": item.write.doc_id}
        update = {op: dict(fields) for op, fields in item.write.update.items()}
        update.setdefault("$set", {})[_field(item.stream_id)] = item.version
        # a document is only ever created by the first event it sees from a stream it lacks
        ops[item.write.collection].append(UpdateOne(guard, update, upsert=previous is None))
        current[key] = item.version
    return ops


async def apply_batch(db: AsyncDatabase[dict[str, Any]], items: list[Versioned]) -> int:
    """Write the batch's new effects; returns how many updates were sent."""
    if not items:
        return 0
    ops = guarded_updates(items, await stored_versions(db, items))
    sent = 0
    for collection, updates in ops.items():
        # small commands: FerretDB 1.24 holds a cursor per statement until the whole update
        # command ends, and a 500-statement command was seen to hang
        for at in range(0, len(updates), BULK):
            chunk = updates[at : at + BULK]
            result = await db[collection].bulk_write(chunk, ordered=True)
            if result.matched_count + result.upserted_count != len(chunk):
                raise LostRace(f"{collection}: {len(chunk)} updates, fewer applied")
            sent += len(chunk)
    return sent
