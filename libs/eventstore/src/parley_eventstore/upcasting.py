"""Upcasters: old event schemas keep working after a schema change.

An upcaster turns the data of one (event type, schema version) into the data of version + 1.
They chain, so a row stored as v1 is read as v3 through v1->v2 and v2->v3. The same pure
``upcast`` runs when the event store loads a stream and when a Kafka consumer reads a record,
so there is exactly one place that knows how an event evolved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]


class UpcastError(ValueError):
    """The chain for an event type has a gap, or a registration overlaps another."""


class Upcasters:
    """A registry of upcasters keyed by (event type, schema version they read)."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}
        self._latest: dict[str, int] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: ``@upcasters.register("ProfileCreated", 1)`` upgrades v1 data to v2."""

        def add(step: Upcaster) -> Upcaster:
            self.add(event_type, from_version, step)
            return step

        return add

    def add(self, event_type: str, from_version: int, step: Upcaster) -> None:
        if from_version < 1:
            raise UpcastError(f"schema versions start at 1, got {from_version}")
        if (event_type, from_version) in self._steps:
            raise UpcastError(f"{event_type} v{from_version} already has an upcaster")
        self._steps[(event_type, from_version)] = step
        self._latest[event_type] = max(self._latest.get(event_type, 1), from_version + 1)

    def latest(self, event_type: str) -> int:
        """The schema version an event type is read as (1 when it never changed)."""
        return self._latest.get(event_type, 1)

    def upcast(
        self, event_type: str, schema_version: int, data: Mapping[str, Any]
    ) -> tuple[int, Data]:
        """Pure: (type, stored version, stored data) -> (latest version, data in that schema).

        The input mapping is never mutated (each step gets a copy), so a caller may pass the
        decoded row or Kafka value directly. A gap in the chain is an error, not a silent skip:
        handing v1 data to code that expects v3 would corrupt state quietly.
        """
        latest = self.latest(event_type)
        if schema_version > latest:
            raise UpcastError(
                f"{event_type} v{schema_version} is newer than this code knows (v{latest})"
            )
        current = dict(data)
        version = schema_version
        while version < latest:
            step = self._steps.get((event_type, version))
            if step is None:
                raise UpcastError(f"no upcaster for {event_type} v{version} -> v{version + 1}")
            current = step(dict(current))
            version += 1
        return version, current
