"""How a read model is declared: a name, its topics, and one small function per event type
that says which documents the event touches and how (MongoDB update documents).

Handlers are pure: (event, data) -> writes. The runtime adds the version guard that makes
replays and duplicate deliveries change nothing (see apply.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from parley_messaging.envelope import Envelope


@dataclass(frozen=True)
class Write:
    """One update of one document, caused by one event of one source stream.

    `update` uses only operators both MongoDB 7 and FerretDB 1.24 support ($set, $inc,
    $setOnInsert, $unset, $push, $pull, $addToSet).
    """

    collection: str
    doc_id: str
    update: Mapping[str, Any]


Handler = Callable[[Envelope, dict[str, Any]], list[Write]]


@dataclass(frozen=True)
class Projection:
    name: str  # also the consumer group: "projector-users"
    topics: tuple[str, ...]
    handlers: Mapping[str, Handler]  # event name -> handler
    # an event type with no handler: ignore it (False) or park it on the DLQ (True)
    strict: bool = False
    collections: tuple[str, ...] = field(default=())

    @property
    def group(self) -> str:
        return self.name


class UnknownEventType(LookupError):
    pass


def writes_for(projection: Projection, envelope: Envelope, data: dict[str, Any]) -> list[Write]:
    handler = projection.handlers.get(envelope.event_name)
    if handler is None:
        if projection.strict:
            raise UnknownEventType(f"{projection.name} has no handler for {envelope.type}")
        return []
    return handler(envelope, data)
