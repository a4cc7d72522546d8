"""How a read model is declared: a name (also its consumer group), its topics, its collections,
and one plain function per event name that turns one decoded event into document updates.

Handlers are pure ``(envelope, data) -> list[Write]``: no I/O, so a replay recomputes exactly
the same writes. The runtime adds what makes replays harmless (per-stream versions, see apply.py).

Rules a handler must follow (both MongoDB 7 and FerretDB 1.24 hold to them):
- updates use only ``$set $unset $inc $max $min $setOnInsert $addToSet $push $pull``;
- never delete a document: set a tombstone field instead (a deleted document would be
  recreated by a replay, a tombstone keeps its version);
- on FerretDB an update is a read-modify-write without a lock, so a document must have one
  writer: derive its ``_id`` from the event's stream (``f"{user}:{conversation}"`` rather than
  one per-user document folding every conversation, which consumers of several partitions
  would update concurrently). Sum such sub-documents when reading ($group/$sum works).

`versions_in` (context -> logical collection) says where a context's stream versions already
live: in that collection, the document whose `_id` is the stream id records in `_v` every
version of the stream it applied (the users context's streams and the `users` documents). The
runtime then writes no `_progress` document for a stream whose newest version in a batch is
such a write (half the writes of a batch of new users), and the read-your-writes check reads
that document first (progress.applied_version). Declare it only when no other context writes
those documents under the same ids.

`tracked` limits the `_progress` documents to the contexts whose consistency tokens the
gateway checks against this projection (chat tracks only `chat`, not the users events it
reads for `UserForgotten`).

`indexes` declares secondary indexes per logical collection (key lists, ascending 1 or
descending -1); the runtime creates them on every generation it writes (createIndexes is
idempotent), the rebuild on the generation it fills, on MongoDB. Not on FerretDB 1.24 by
default (`Options.indexes`): it accepts them but pushes only `_id` filters down (explain:
no filter or sort pushdown, a table SCAN), so there they would only slow every insert.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from parley_messaging.envelope import Envelope

Update = Mapping[str, Mapping[str, Any]]
# (event name, schema version, data) -> (schema version now, data): the event store's
# `Upcasters.upcast`, plugged in by the service's composition root.
Upcast = Callable[[str, int, dict[str, Any]], tuple[int, dict[str, Any]]]
# (event name, data) -> data with personal fields decrypted (placeholders + `_redacted` where
# the key is gone): `parley_privacy.FieldCipher.consume`, plugged in by the composition root.
Decrypt = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
ENTRY_POINT_GROUP = "parley.projections"


@dataclass(frozen=True)
class Write:
    """One upsert of one document, caused by one event."""

    collection: str  # logical name, one of Projection.collections
    doc_id: str
    update: Update


@dataclass(frozen=True)
class Sweep:
    """One update of every document matching `filter` (e.g. redact every message of a person
    who was forgotten). Applied after the batch's writes, without version guard: it must be
    idempotent ($set / $unset of fixed values), so replays and rebuilds repeat it harmlessly.
    Rare by design: on FerretDB a filter other than `_id` scans the collection."""

    collection: str
    filter: Mapping[str, Any]
    update: Update


Handler = Callable[[Envelope, dict[str, Any]], Sequence[Write | Sweep]]
IndexKeys = tuple[tuple[str, int], ...]  # e.g. (("name_key", 1), ("_id", 1))


@dataclass(frozen=True)
class Projection:
    name: str  # also the consumer group and the key of its alias document
    topics: tuple[str, ...]
    collections: tuple[str, ...]
    handlers: Mapping[str, Handler]  # event name (ce_type without context/version) -> handler
    strict: bool = False  # True: an event with no handler is poison (DLQ), not ignored
    indexes: Mapping[str, tuple[IndexKeys, ...]] = field(default_factory=dict)  # logical ->
    versions_in: Mapping[str, str] = field(default_factory=dict)  # context -> logical
    # the contexts whose streams' progress is recorded for read-your-writes (None: every topic's);
    # a projection that reads another context for one rare event (UserForgotten) and never
    # serves that context's tokens need not write a `_progress` document per foreign stream
    tracked: tuple[str, ...] | None = None

    @property
    def group(self) -> str:
        return self.name

    def tracks(self, stream_key: str) -> bool:
        """Whether progress of this stream (a `progress.stream_key`) is recorded."""
        return self.tracked is None or stream_key.partition("/")[0] in self.tracked


class UnknownEventType(LookupError):
    pass


def writes_for(
    projection: Projection, envelope: Envelope, data: dict[str, Any]
) -> list[Write | Sweep]:
    handler = projection.handlers.get(envelope.event_name)
    if handler is None:
        if projection.strict:
            raise UnknownEventType(f"{projection.name} has no handler for {envelope.type}")
        return []
    writes = list(handler(envelope, data))
    for write in writes:
        if write.collection not in projection.collections:
            raise ValueError(f"{projection.name} does not declare collection {write.collection!r}")
    return writes


def load_projection(spec: str, name: str | None = None) -> Projection:
    """`package.module:attribute` (a Projection or a no-argument factory) or the name of a
    `parley.projections` entry point. `name` renames it (another group, e.g. in tests)."""
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        target: Any = getattr(importlib.import_module(module_name), attribute)
    else:
        points = [p for p in entry_points(group=ENTRY_POINT_GROUP) if p.name == spec]
        if not points:
            raise LookupError(f"no projection {spec!r} (entry points {ENTRY_POINT_GROUP!r})")
        point = points[0]
        target = point.load()
    projection = target if isinstance(target, Projection) else target()
    if not isinstance(projection, Projection):
        raise TypeError(f"{spec} is not a Projection")
    return projection if name is None else dataclasses.replace(projection, name=name)
