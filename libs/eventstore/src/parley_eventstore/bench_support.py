"""What `bench/append.py` drives: a migrated store and a one-call append (one ~300-byte event
+ outbox row + idempotency record per call), so the benchmark measures the real write path."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from parley_eventstore.migrate import migrate
from parley_eventstore.pool import create_pool
from parley_eventstore.records import Metadata, NewEvent
from parley_eventstore.store import EventStore

Append = Callable[[str, Mapping[str, Any], str], Awaitable[None]]


@contextlib.asynccontextmanager
async def appender(
    dsn: str, *, pool_size: int = 8, group_commit: bool = True
) -> AsyncIterator[Append]:
    await migrate(dsn)
    pool = await create_pool(dsn, min_size=pool_size, max_size=pool_size)
    store = EventStore(
        pool, topic="chat.events", source="/parley/chat", context="chat", group_commit=group_commit
    )
    meta = Metadata(correlation_id="bench", causation_id="bench")

    async def append(stream_id: str, data: Mapping[str, Any], idempotency_key: str) -> None:
        await store.append(
            stream_id,
            "Conversation",
            0,
            [NewEvent("MessagePosted", data)],
            metadata=meta,
            idempotency_key=idempotency_key,
        )

    try:
        yield append
    finally:
        await store.close()
        await pool.close()
