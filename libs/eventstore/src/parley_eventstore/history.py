"""History and time travel for any aggregate (audits, support): a page of its events as they
were recorded, and its state as it was at a version or a moment.

The state at version N is the fold of its first N events, never a snapshot: snapshots are a
cache of the present (taken every N events, possibly under an older snapshot schema), while
history must mean exactly "what these events say". It is read rarely; commands stay on the
snapshot path. The state is shown as the aggregate's own snapshot form (`snapshot()`), the
one JSON shape each aggregate already defines for itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, TypeVar

from parley_eventstore.aggregate import Repository
from parley_eventstore.domain import Aggregate
from parley_eventstore.records import RecordedEvent

A = TypeVar("A", bound=Aggregate)
VERSION = re.compile(r"^[0-9]{1,9}$")
# versions are a PostgreSQL integer: a larger one in a query fails in the driver (a 500)
MAX_VERSION = 2**31 - 1


class BadMoment(ValueError):
    """`at` is neither a version number nor an ISO 8601 timestamp with a time zone."""


def parse_moment(at: str) -> int | datetime:
    """A version number ("3") or an ISO 8601 timestamp with its zone ("2026-11-23T20:00Z")."""
    if VERSION.match(at):
        return int(at)
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError as error:
        raise BadMoment(at) from error
    if moment.tzinfo is None:
        raise BadMoment(f"{at}: a timestamp needs its time zone")
    try:
        moment.astimezone(UTC)  # what the driver does: "0001-01-01T00:00+14:00" overflows
    except OverflowError as error:
        raise BadMoment(f"{at}: out of range") from error
    return moment


def event_view(event: RecordedEvent) -> dict[str, Any]:
    return {
        "version": event.version,
        "type": event.event_type,
        "schema_version": event.schema_version,
        "id": str(event.event_id),
        "recorded_at": event.recorded_at.isoformat(),
        "data": event.data,
        "correlation_id": event.metadata.get("correlation_id"),
        "actor": event.metadata.get("actor"),
    }


async def events_page(
    repository: Repository[A], stream_id: str, after: int, limit: int
) -> dict[str, Any]:
    """`{items, next_cursor}`: up to `limit` events after version `after` (versions have no
    gaps, so a page is one indexed range read however long the stream), and the version to
    pass as `after` for the next page (None at the end)."""
    events = await repository.store.load(
        stream_id, after_version=after, up_to_version=min(after + limit, MAX_VERSION)
    )
    events = await repository.opened(events, fresh=True)  # decrypted where keys exist now
    head = await repository.store.head(stream_id)
    last = events[-1].version if events else after
    return {
        "items": [event_view(e) for e in events],
        "next_cursor": str(last) if last < head else None,
    }


async def state_at(
    repository: Repository[A], stream_id: str, moment: int | datetime
) -> dict[str, Any] | None:
    """`{id, version, state}` of the aggregate at `moment`; None when it did not exist then."""
    if isinstance(moment, int):
        aggregate = await repository.load(stream_id, up_to_version=moment)
    else:
        aggregate = await repository.load(stream_id, at=moment)
    if aggregate.version == 0:
        return None
    state = aggregate.snapshot()
    if state is None:
        raise TypeError(f"{type(aggregate).__name__} has no snapshot() form to show its state in")
    return {"id": stream_id, "version": aggregate.version, "state": dict(state)}
