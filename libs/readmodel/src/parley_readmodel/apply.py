"""Idempotent batch apply: replaying a topic over a live read model changes nothing.

Each document keeps, per source stream, the highest aggregate version it applied
(`_v.<stream>`), and the re-driven versions it applied out of order (`_x.<stream>`, see
redrive.py). Applying a batch to one generation:

1. read the touched documents' versions: one `find({_id: {$in}})` per collection;
2. drop the events a document already applied (version <= stored), in order, so duplicate
   deliveries and replays from offset 0 are no-ops, counters included;
3. coalesce what is left per document into as few updates as the operators allow ($inc sums,
   $set keeps the last value...): FerretDB 1.24 applies only ~650 updates/s (every update is
   its own SQLite commit) but reads and inserts are cheap, so fewer, fatter updates are what
   makes a projector fast there; a busy conversation costs one update per batch, not one per
   message;
4. a document the batch creates (no stored version) is written as a plain insert of the
   document its merged update would produce: FerretDB inserts ~12,000 documents/s but upserts
   only ~400/s; on MongoDB a lost race shows up as a duplicate key either way (LostRace);
5. write in ordered bulks of `chunk` operations (a FerretDB `update` command holds one
   SQLite cursor per statement until it ends: hundreds of statements in one command slow to
   a crawl).

Concurrent writers. A partition has one owner in the group, and the runtime finishes its
in-flight batch before giving a partition up (runtime.py), so one document has one writer
(given the rule in projection.py). Against zombies (an owner expelled while writing) the
filter carries the version guard `{_id, _v.<stream>: stored}`: a guarded upsert that lost a
race either matches nothing or fails with a duplicate key, and the batch is planned again from
fresh versions (LostRace). That guard is used on MongoDB. On FerretDB it is off by default:
there a second filter field disables the `_id` pushdown (a full collection scan per update)
and the guard would not even be atomic (FerretDB checks the filter, then rewrites the
document, without a lock), so it would cost a scan per update for no safety.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from parley_readmodel.aliases import escape, physical
from parley_readmodel.projection import Update

DB = AsyncDatabase[dict[str, Any]]
T = TypeVar("T")
MERGE = {"$set", "$unset", "$inc", "$max", "$min", "$setOnInsert", "$addToSet", "$push"}


@dataclass(frozen=True)
class Change:
    """One event's update of one document."""

    collection: str  # logical
    doc_id: str
    update: Update
    stream: str
    version: int
    redrive: bool = False  # a parked event re-driven: may be older than the stored version
    topic: str = ""  # where the event came from (its context qualifies the stream's progress)


class LostRace(RuntimeError):
    """A guarded update found the document moved by another writer: plan the batch again."""


def field_key(stream: str) -> str:
    return escape(stream)


@dataclass
class Stored:
    versions: dict[str, int] = field(default_factory=dict)  # field_key(stream) -> version
    redriven: dict[str, set[int]] = field(default_factory=dict)


async def read_stored(
    db: DB, generation: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Stored]:
    wanted: dict[str, set[str]] = defaultdict(set)
    for logical, doc_id in keys:
        wanted[logical].add(doc_id)
    found: dict[tuple[str, str], Stored] = {}
    for logical, ids in wanted.items():
        # one reply for all of them (batch_size): no getMore round trip for a big batch
        cursor = db[physical(logical, generation)].find(
            {"_id": {"$in": sorted(ids)}}, {"_v": 1, "_x": 1}, batch_size=len(ids)
        )
        async for doc in cursor:
            found[(logical, doc["_id"])] = Stored(
                {k: int(v) for k, v in (doc.get("_v") or {}).items()},
                {k: {int(x) for x in v} for k, v in (doc.get("_x") or {}).items()},
            )
    return found


def _each(value: Any) -> list[Any] | None:
    if isinstance(value, Mapping):
        return list(value["$each"]) if set(value) == {"$each"} else None
    return [value]


def merge(into: dict[str, dict[str, Any]], update: Update) -> bool:
    """Fold `update` into `into` when one update document can say both; False (and `into`
    untouched) when it cannot (same path under another operator, parent/child paths, $pull,
    push modifiers): the caller then starts a new update for the document."""
    owner = {path: op for op, fields in into.items() for path in fields}
    # every proper parent of an owned path: a new path equal to one conflicts (child owned)
    parents = {path[:i] for path in owner for i, c in enumerate(path) if c == "."}
    for op, fields in update.items():
        if op not in MERGE:
            return False
        for path, value in fields.items():
            other_op = owner.get(path)
            if other_op is not None:
                if other_op != op:
                    return False
                if op in ("$addToSet", "$push") and (
                    _each(value) is None or _each(into[op][path]) is None
                ):
                    return False
            if path in parents or any(path[:i] in owner for i, c in enumerate(path) if c == "."):
                return False  # a parent or a child of an owned path
    for op, fields in update.items():
        target = into.setdefault(op, {})
        for path, value in fields.items():
            if path not in target:
                target[path] = dict(value) if isinstance(value, Mapping) else value
            elif op == "$inc":
                target[path] = target[path] + value
            elif op in ("$set", "$unset"):
                target[path] = value
            elif op == "$max":
                target[path] = max(target[path], value)
            elif op == "$min":
                target[path] = min(target[path], value)
            elif op in ("$addToSet", "$push"):
                target[path] = {"$each": [*(_each(target[path]) or []), *(_each(value) or [])]}
            # $setOnInsert: the first value wins
    return True


@dataclass
class Segment:
    """One update of one document: merged effects, and the versions it expects to find."""

    update: dict[str, dict[str, Any]]
    expects: dict[str, int | None]  # field_key(stream) -> stored version before this update
    redriven: dict[str, int] = field(default_factory=dict)  # field_key -> version, for $ne
    creates: bool = False  # the first update of a document no stored version knows of


def plan(
    changes: list[Change], stored: Mapping[tuple[str, str], Stored], parked: set[tuple[str, int]]
) -> dict[tuple[str, str], list[Segment]]:
    """Per document, the updates still to apply, in order (see the module docstring).
    `parked`: the (stream, version) pairs parked on the DLQ, which a re-drive may apply even
    though later versions were applied meanwhile."""
    state = {
        key: Stored(dict(s.versions), {k: set(v) for k, v in s.redriven.items()})
        for key, s in stored.items()
    }
    out: dict[tuple[str, str], list[Segment]] = {}
    for change in changes:
        key = (change.collection, change.doc_id)
        doc = state.setdefault(key, Stored())
        stream = field_key(change.stream)
        current = doc.versions.get(stream)
        out_of_order = False
        if current is None or change.version > current:
            extra: Update = {"$set": {f"_v.{stream}": change.version}}
        elif (
            change.redrive
            and (change.stream, change.version) in parked
            and change.version not in doc.redriven.get(stream, set())
        ):
            # parked on the DLQ while later versions were applied: apply it exactly once
            extra = {"$addToSet": {f"_x.{stream}": {"$each": [change.version]}}}
            out_of_order = True
        else:
            continue  # already applied: a replay or a duplicate delivery
        # a copy, not a merge: operators that never merge ($pull) still apply on their own
        combined = {op: dict(fields) for op, fields in change.update.items()}
        if _reserved(change.update):
            raise ValueError(f"an update of {key} conflicts with the reserved fields _v/_x")
        for op, fields in extra.items():  # no conflict possible: nothing else under _v/_x
            combined.setdefault(op, {}).update(fields)
        segments = out.setdefault(key, [])
        if not segments or not merge(segments[-1].update, combined):
            segments.append(Segment(combined, {}, creates=not segments and key not in stored))
        segment = segments[-1]
        segment.expects.setdefault(stream, current)
        if out_of_order:
            segment.redriven[stream] = change.version
            doc.redriven.setdefault(stream, set()).add(change.version)
        else:
            doc.versions[stream] = change.version
    return out


def _reserved(update: Update) -> bool:
    """Whether a handler's update touches the runtime's own fields (`_v`, `_x`)."""
    return any(
        path.partition(".")[0] in ("_v", "_x") for fields in update.values() for path in fields
    )


class NotMaterialisable(ValueError):
    pass


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    if "." not in path:  # most fields: no parents to walk
        if path in doc:
            raise NotMaterialisable(path)
        doc[path] = value
        return
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise NotMaterialisable(path)
        node = child
    if leaf in node:
        raise NotMaterialisable(path)
    node[leaf] = value


def materialise(doc_id: str, update: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The document an upsert of `update` creates when no document `doc_id` exists (MongoDB's
    rules for a new document); NotMaterialisable when that is not plain to say."""
    doc: dict[str, Any] = {"_id": doc_id}
    for op, fields in update.items():
        for path, value in fields.items():
            if op in ("$set", "$setOnInsert", "$inc", "$max", "$min"):
                _put(doc, path, value)
            elif op in ("$push", "$addToSet"):
                items = _each(value)
                if items is None:
                    raise NotMaterialisable(path)
                if op == "$addToSet":
                    items = [x for i, x in enumerate(items) if x not in items[:i]]
                _put(doc, path, items)
            elif op != "$unset":  # $unset of a field of a new document: nothing to do
                raise NotMaterialisable(op)
    return doc


Op = InsertOne[dict[str, Any]] | UpdateOne


def to_ops(segments: Mapping[tuple[str, str], list[Segment]], guard: bool) -> dict[str, list[Op]]:
    ops: dict[str, list[Op]] = defaultdict(list)
    for (logical, doc_id), items in segments.items():
        for segment in items:
            if segment.creates:
                try:
                    ops[logical].append(InsertOne(materialise(doc_id, segment.update)))
                    continue
                except NotMaterialisable:
                    pass  # an upsert says it as well, only slower
            flt: dict[str, Any] = {"_id": doc_id}
            if guard:
                for stream, version in segment.expects.items():
                    flt[f"_v.{stream}"] = {"$exists": False} if version is None else version
                for stream, version in segment.redriven.items():
                    flt[f"_x.{stream}"] = {"$ne": version}
            ops[logical].append(UpdateOne(flt, segment.update, upsert=True))
    return ops


INSERT_CHUNK = 1000


class Known:
    """Documents this process knows exist, per generation: inserted or found by it. Only a
    hint for the optimistic insert, never trusted for correctness: a key wrongly in it is
    read, found missing and planned as a creation like any other (plan: no stored version).
    Documents are never deleted (projection.py), so a key stays true once added. Bounded:
    forgotten wholesale past `limit` keys."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._keys: dict[int, set[tuple[str, str]]] = {}

    def of(self, generation: int) -> set[tuple[str, str]]:
        return self._keys.get(generation, set())

    def add(self, generation: int, keys: Iterable[tuple[str, str]]) -> None:
        current = self._keys.setdefault(generation, set())
        if len(current) > self.limit:
            current.clear()
        current.update(keys)


FERRETDB_MAX_UPDATES = 99  # inserts are one cheap statement each, even on FerretDB


async def write(db: DB, generation: int, ops: dict[str, list[Op]], chunk: int) -> int:
    """Inserts first, then updates (a document's insert is always its first operation, so
    per-document order holds); updates in bulks of `chunk` (FerretDB: see the docstring).
    Collections are written concurrently (their documents are disjoint), and every one has
    finished before an error is raised, so a re-planned batch never overlaps this one."""

    async def one(logical: str, operations: list[Op]) -> int:
        target = db[physical(logical, generation)]
        inserts: list[Op] = [op for op in operations if isinstance(op, InsertOne)]
        updates: list[Op] = [op for op in operations if not isinstance(op, InsertOne)]
        parts: list[list[Op]] = [
            inserts[i : i + INSERT_CHUNK] for i in range(0, len(inserts), INSERT_CHUNK)
        ]
        parts += [updates[i : i + chunk] for i in range(0, len(updates), chunk)]
        sent = 0
        for part in parts:
            try:
                result = await target.bulk_write(part, ordered=True)
            except (BulkWriteError, DuplicateKeyError) as error:
                raise LostRace(f"{target.name}: {error}") from error
            except OperationFailure as error:
                if error.code == 11000:  # FerretDB: a command error, not a write error
                    raise LostRace(f"{target.name}: {error}") from error
                raise
            if result.inserted_count + result.matched_count + result.upserted_count != len(part):
                raise LostRace(f"{target.name}: a guarded update matched nothing")
            sent += len(part)
        return sent

    return sum(await settled(*(one(logical, operations) for logical, operations in ops.items())))


async def settled(*work: Awaitable[T]) -> list[T]:
    """Every result, once every one of them has finished; then the first error, if any."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


async def read_stored_by_id(
    db: DB, generation: int, keys: Iterable[tuple[str, str]], parallel: int = 8
) -> dict[tuple[str, str], Stored]:
    """`read_stored` for FerretDB 1.24: it pushes only `{_id: <string>}` down to SQLite, so an
    `$in` scans the whole collection; one lookup by `_id` per document stays flat (with the
    local cluster's wrapper index: docs/decisions.md, "FerretDB: the _id index...")."""
    gate = asyncio.Semaphore(parallel)

    async def one(logical: str, doc_id: str) -> tuple[tuple[str, str], Stored] | None:
        async with gate:
            doc = await db[physical(logical, generation)].find_one(
                {"_id": doc_id}, {"_v": 1, "_x": 1}
            )
        if doc is None:
            return None
        return (logical, doc_id), Stored(
            {k: int(v) for k, v in (doc.get("_v") or {}).items()},
            {k: {int(x) for x in v} for k, v in (doc.get("_x") or {}).items()},
        )

    found = await asyncio.gather(*(one(*key) for key in sorted(set(keys))))
    return dict(item for item in found if item is not None)


async def insert_new(
    db: DB, generation: int, documents: Mapping[tuple[str, str], dict[str, Any]]
) -> set[tuple[str, str]]:
    """Insert every document as new (unordered); returns the keys that already existed
    (duplicate key), whose changes must be planned again from their stored state."""
    existing: set[tuple[str, str]] = set()
    by_collection: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (logical, _), document in documents.items():
        by_collection[logical].append(document)
    for logical, docs in by_collection.items():
        target = db[physical(logical, generation)]
        for start in range(0, len(docs), INSERT_CHUNK):
            part = docs[start : start + INSERT_CHUNK]
            try:
                await target.insert_many(part, ordered=False)
            except BulkWriteError as error:
                failed = error.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in failed):
                    raise
                existing |= {(logical, part[e["index"]]["_id"]) for e in failed}
    return existing


async def apply_changes(
    db: DB,
    generation: int,
    changes: list[Change],
    *,
    guard: bool,
    chunk: int = 50,
    parked: set[tuple[str, int]] | None = None,
    known: Known | None = None,
) -> int:
    """Apply one batch's changes to one generation; returns the number of operations sent.
    Raises LostRace (re-plan and call again) or PyMongoError (the store is unwell).

    Without the guard (FerretDB) the batch is optimistic: every document is first inserted
    as if new, with no read at all (a replay, a rebuild and a burst of new aggregates are
    mostly that); only the documents that turn out to exist are read, one indexed lookup each,
    and planned again from what they hold. Documents `known` to exist skip the insert that
    would fail (a busy conversation's documents, batch after batch)."""
    if not changes:
        return 0
    if not guard:
        # upstream FerretDB: an update command of 100 statements or more takes every connection
        # of the database's capped pool and hangs it until a restart (the local build has no
        # cap: docs/decisions.md, "FerretDB's pool deadlock"; other FerretDBs may)
        chunk = min(chunk, FERRETDB_MAX_UPDATES)
    parked = parked or set()
    if guard:
        stored = await read_stored(db, generation, {(c.collection, c.doc_id) for c in changes})
        return await write(db, generation, to_ops(plan(changes, stored, parked), guard), chunk)
    fresh = plan(changes, {}, parked)
    seen = known.of(generation) if known is not None else set()
    insertable = materialisable({k: v for k, v in fresh.items() if k not in seen})
    # the documents not tried as new are read meanwhile (disjoint from the inserted ones; a
    # read left running by a failed insert is harmless)
    existing, stored = await asyncio.gather(
        insert_new(db, generation, insertable),
        read_stored_by_id(db, generation, set(fresh) - set(insertable)),
    )
    stored.update(await read_stored_by_id(db, generation, existing))
    inserted = set(insertable) - existing
    rest = {k: v[1:] for k, v in fresh.items() if k in inserted and len(v) > 1}
    again = [c for c in changes if (c.collection, c.doc_id) not in inserted]
    rest.update(plan(again, stored, parked))
    if known is not None:  # once written below, every document of the batch exists
        known.add(generation, fresh)
    return len(inserted) + await write(db, generation, to_ops(rest, guard), chunk)


def materialisable(
    segments: Mapping[tuple[str, str], list[Segment]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """The new document of each key whose first update says it plainly (see materialise)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, items in segments.items():
        with contextlib.suppress(NotMaterialisable):  # an upsert will say it
            out[key] = materialise(key[1], items[0].update)
    return out
