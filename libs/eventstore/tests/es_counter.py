"""A tiny domain used by the tests: a counter with a rename, written like a service's domain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parley_eventstore.domain import Aggregate, DomainEvent


@dataclass(frozen=True)
class Opened(DomainEvent):
    title: str


@dataclass(frozen=True)
class Incremented(DomainEvent):
    by: int


class NotOpen(Exception):
    pass


class Counter(Aggregate):
    stream_type = "Counter"
    snapshot_schema_version = 1
    folds = 0  # class-wide count of `when` calls: how many events loading really read

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.title: str | None = None
        self.total = 0

    # commands decide
    def open(self, title: str) -> None:
        self.record(Opened(title))

    def increment(self, by: int = 1) -> None:
        if self.title is None:
            raise NotOpen(self.id)
        self.record(Incremented(by))

    # events fold
    def when(self, event: DomainEvent) -> None:
        Counter.folds += 1  # on the base class, so subclasses count too
        match event:
            case Opened(title=title):
                self.title = title
            case Incremented(by=by):
                self.total += by

    def snapshot(self) -> Mapping[str, Any] | None:
        return {"title": self.title, "total": self.total}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.title = state["title"]
        self.total = state["total"]
