"""PostgreSQL event store, snapshots, upcasters, idempotent commands, transactional outbox.

Domain code imports `parley_eventstore.domain` only. Names are exported lazily (PEP 562) so
importing that pure module does not load asyncpg through this package's `__init__`.
Services wire the rest in their composition root:

    pool = await asyncpg.create_pool(dsn)
    await migrate(dsn)  # from parley_eventstore.migrate import migrate (the submodule's name)
    store = EventStore(pool, topic="users.events", source="/parley/users", context="users")
    users = Repository(store, User, EventCodec(UserRegistered, ...), snapshot_every=100)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley_eventstore.aggregate import Repository
    from parley_eventstore.codec import EventCodec, UnknownEvent
    from parley_eventstore.domain import Aggregate, DomainEvent, Event
    from parley_eventstore.outbox import OutboxWaker
    from parley_eventstore.records import (
        AppendResult,
        ConcurrencyError,
        Metadata,
        NewEvent,
        RecordedEvent,
        Snapshot,
    )
    from parley_eventstore.store import EventStore, purge_idempotency_keys
    from parley_eventstore.upcasting import UpcastError, Upcasters

_EXPORTS = {
    "Repository": "aggregate",
    "EventCodec": "codec",
    "UnknownEvent": "codec",
    "Aggregate": "domain",
    "DomainEvent": "domain",
    "Event": "domain",
    "OutboxWaker": "outbox",
    "AppendResult": "records",
    "ConcurrencyError": "records",
    "Metadata": "records",
    "NewEvent": "records",
    "RecordedEvent": "records",
    "Snapshot": "records",
    "EventStore": "store",
    "purge_idempotency_keys": "store",
    "UpcastError": "upcasting",
    "Upcasters": "upcasting",
}

__all__ = [
    "Aggregate",
    "AppendResult",
    "ConcurrencyError",
    "DomainEvent",
    "Event",
    "EventCodec",
    "EventStore",
    "Metadata",
    "NewEvent",
    "OutboxWaker",
    "RecordedEvent",
    "Repository",
    "Snapshot",
    "UnknownEvent",
    "UpcastError",
    "Upcasters",
    "purge_idempotency_keys",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'parley_eventstore' has no attribute {name!r}")
    return getattr(importlib.import_module(f"parley_eventstore.{module}"), name)
