"""Outbox rows and the relay's wake-up call.

Each event becomes one self-contained Kafka record in the `outbox` table (topic, key, CloudEvents
headers, JSON value), written by the append's own statement. The headers come from the shared
envelope codec, so the relay publishes them verbatim.

Waking the relay: a NOTIFY inside every append transaction serialises commits on PostgreSQL's
notify queue lock (measured on this box: it halves commit throughput). So appends never
notify. After a commit the store calls `OutboxWaker.poke()`; the waker sends at most one
`NOTIFY parley_outbox` per short window, on its own connection, after the data is committed.
A lost or late notify costs at most the relay's polling interval, never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime

import asyncpg
from parley_messaging.envelope import Envelope, ce_type, header_map

from parley_eventstore.records import Metadata, NewEvent

log = logging.getLogger(__name__)

CHANNEL = "parley_outbox"
_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def outbox_headers(
    *,
    source: str,
    context: str,
    stream_id: str,
    version: int,
    event: NewEvent,
    metadata: Metadata,
) -> dict[str, str]:
    """CloudEvents headers of one event's Kafka record (ce_time is replaced by the insert with
    the stored recorded_at, so the placeholder below never reaches Kafka)."""
    if not _EVENT_NAME.match(event.event_type):
        # ce_type must stay parseable by every consumer: refuse before anything is written
        raise ValueError(f"event type {event.event_type!r} is not a CloudEvents-safe name")
    envelope = Envelope(
        id=str(event.event_id),
        source=source,
        type=ce_type(context, event.event_type, event.schema_version),
        subject=stream_id,
        time=datetime.now(UTC),
        data=b"",
        aggregate_version=version,
        schema_version=event.schema_version,
        correlation_id=metadata.correlation_id,
        causation_id=metadata.causation_id,
        traceparent=metadata.traceparent,
    )
    return header_map(envelope)


async def enqueue(
    db: asyncpg.Connection | asyncpg.Pool,
    topic: str,
    key: str,
    headers: Mapping[str, str],
    payload: bytes,
) -> None:
    """One record that is not an event of this store (a saga command, a private notice) into
    the outbox: the relay publishes it like any other row. Pass the connection of an open
    transaction to write it atomically with that transaction's other changes."""
    await db.execute(
        "INSERT INTO outbox (topic, key, headers, payload) VALUES ($1, $2, $3::jsonb, $4)",
        topic,
        key,
        json.dumps(dict(headers)),
        payload,
    )


class OutboxWaker:
    """Coalesces post-commit wake-ups into at most one NOTIFY per `window` seconds."""

    def __init__(self, pool: asyncpg.Pool, *, channel: str = CHANNEL, window: float = 0.005):
        self._pool = pool
        self._sql = f"NOTIFY {channel}"
        self._window = window
        self._pending = False
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # observable by tests and metrics

    def poke(self) -> None:
        """Called after a commit; cheap and synchronous (no I/O on the caller's path)."""
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        # A poke during the sleep is absorbed by the coming NOTIFY; a poke during the NOTIFY
        # sets _pending again and earns one more round.
        while self._pending:
            await asyncio.sleep(self._window)
            self._pending = False
            try:
                async with self._pool.acquire() as conn:
                    await conn.execute(self._sql)
                self.sent += 1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                # the relay's polling fallback covers a missed wake-up; never fail an append
                log.warning("outbox notify failed: %s", error)

    async def close(self) -> None:
        """Let a pending wake-up go out (at most one window), then stop."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def pending(pool: asyncpg.Pool) -> tuple[int, float]:
    """(rows not yet published, age in seconds of the oldest one, 0 when none): the backlog
    as the database that owns it sees it, alive whether or not a relay runs."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS n,"
            " coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) AS age"
            " FROM outbox"
        )
    assert row is not None
    return int(row["n"]), float(row["age"])
