"""The event store's data shapes: what goes in, what comes out, and the typed conflict.

Pure data (no driver imports), so handlers and tests can build and inspect them freely.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Metadata:
    """Why an append happened; copied into every event's metadata and its Kafka headers."""

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    traceparent: str | None = None

    def traced(self, traceparent: str | None) -> Metadata:
        """The same metadata under another trace parent (kept when `traceparent` is None)."""
        return dataclasses.replace(self, traceparent=traceparent or self.traceparent)

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Metadata:
        return cls(
            correlation_id=raw.get("correlation_id"),
            causation_id=raw.get("causation_id"),
            actor=raw.get("actor"),
            traceparent=raw.get("traceparent"),
        )


@dataclass(frozen=True)
class NewEvent:
    """One event to append: its type name, the schema version of `data`, and the data."""

    event_type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class RecordedEvent:
    """A stored event, its data already upcast to the latest schema version."""

    event_id: uuid.UUID
    stream_id: str
    event_type: str
    schema_version: int
    data: JsonDict
    metadata: JsonDict
    version: int
    global_position: int
    recorded_at: datetime


@dataclass(frozen=True)
class Snapshot:
    """An aggregate's folded state at `version`, valid only for `schema_version` of its code."""

    version: int
    schema_version: int
    state: Mapping[str, Any]


@dataclass(frozen=True)
class AppendResult:
    """The outcome of an append.

    `already_handled` is True when the idempotency key had been seen: nothing was appended and
    `version`/`result` are those of the first, successful command.
    """

    stream_id: str
    version: int
    result: JsonDict
    already_handled: bool = False
    positions: tuple[int, ...] = ()

    @property
    def reported_version(self) -> int:
        """The version a command answers with: the one its handler put in `result` (a
        command that appends nothing reports the aggregate's current one), else the stream's."""
        return int(self.result.get("version", self.version))


class DuplicateEvent(Exception):
    """An event id that exists already: ids derived from a fact (one deletion per message)
    make a second recording of the same fact fail here, whatever the stream's version."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r}: an event with this id exists already")
        self.stream_id = stream_id


class ConcurrencyError(Exception):
    """The stream moved on: `expected` was not its head (`actual`). HTTP maps this to 409."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r}: expected version {expected}, actual version {actual}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
