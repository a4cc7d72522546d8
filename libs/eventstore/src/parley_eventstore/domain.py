"""Base types for a service's domain: events and aggregates, with no infrastructure.

Services' `domain.py` modules import only this module (and the standard library), so the
domain stays testable without a database; an import-linter contract keeps it that way.

The pattern, on purpose small and explicit:
- events are immutable values with an `event_type()` and a `schema_version` (the `Event`
  protocol): frozen dataclasses subclassing `DomainEvent`, or the public contract's frozen
  pydantic models (`parley_contracts`), which services raise directly so the published schema
  is generated from the very class that is appended; bump `schema_version` and register an
  upcaster when fields change;
- an aggregate folds events into its state in `when` (no side effects, no validation: past
  events are facts), and its command methods check invariants then `record` new events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol


class Event(Protocol):
    """What the store needs of an event: its type name and the version of its fields."""

    schema_version: ClassVar[int]

    @classmethod
    def event_type(cls) -> str: ...


@dataclass(frozen=True)
class DomainEvent:
    schema_version: ClassVar[int] = 1

    @classmethod
    def event_type(cls) -> str:
        return cls.__name__


class Aggregate:
    """Subclass with `stream_type`, `when`, command methods and (optionally) snapshots."""

    stream_type: ClassVar[str]
    # bump when the snapshot's shape or the fold's meaning changes: old snapshots are then
    # ignored and the state is rebuilt from events (and re-snapshotted on the next save)
    snapshot_schema_version: ClassVar[int] = 1

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0  # the stream version the state reflects (0 = no events yet)
        self._pending: list[Event] = []

    def when(self, event: Event) -> None:
        """Fold one event into the state."""
        raise NotImplementedError(f"{type(self).__name__} must define when()")

    def record(self, event: Event) -> None:
        """A command decided `event`: apply it now, append it on save."""
        self.when(event)
        self._pending.append(event)

    @property
    def pending(self) -> list[Event]:
        return list(self._pending)

    @property
    def next_version(self) -> int:
        """The version the stream will have once the pending events are saved."""
        return self.version + len(self._pending)

    def mark_saved(self, version: int) -> None:
        self._pending.clear()
        self.version = version

    def replay(self, events: Iterable[tuple[int, Event]]) -> None:
        """Fold stored (version, event) pairs, in order."""
        for version, event in events:
            self.when(event)
            self.version = version

    def snapshot(self) -> Mapping[str, Any] | None:
        """The state as a JSON-ready dict, or None if this aggregate takes no snapshots."""
        return None

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of `snapshot`."""
        raise NotImplementedError(f"{type(self).__name__} must define restore()")
