"""The event store on asyncpg: append with optimistic concurrency, idempotency, outbox and
snapshot in one statement; load with upcasting.

Round trips: an append is one statement in autocommit (see `sql.py`), i.e. one round trip and
one commit, with no table lock and no NOTIFY in the transaction. asyncpg prepares and caches
each statement per connection; create the pool with `parley_eventstore.pool.create_pool` so
PostgreSQL also reuses the plan (planning the append costs more than running it). With
`group_commit=True`, concurrent appends to different streams share one statement and one
commit (see `groupcommit.py`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from parley_eventstore import sql
from parley_eventstore.groupcommit import GroupCommitter, Outcome
from parley_eventstore.outbox import OutboxWaker, outbox_headers
from parley_eventstore.records import (
    AppendResult,
    ConcurrencyError,
    DuplicateEvent,
    Metadata,
    NewEvent,
    RecordedEvent,
    Snapshot,
)
from parley_eventstore.upcasting import Upcasters

STREAM_VERSION_CONSTRAINT = "events_stream_version"
EVENT_ID_CONSTRAINT = "events_event_id_key"  # PostgreSQL's name for the column's UNIQUE
_COMPACT = (",", ":")  # the Kafka value is these bytes: no padding


@dataclass(frozen=True)
class Pending:
    """One append, encoded for the statement's parallel arrays."""

    stream_id: str
    stream_type: str
    expected: int
    events: Sequence[NewEvent]
    metadata_json: str
    headers_json: Sequence[str]
    idempotency_key: str | None
    result: dict[str, Any]
    snapshot: Snapshot | None

    @property
    def new_version(self) -> int:
        return self.expected + len(self.events)


class EventStore:
    """Write and read side of one service's event streams.

    `topic` is the service's events topic ("users.events"), `source` the CloudEvents source
    ("/parley/users"), `context` the bounded context in `ce_type` ("users").
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        topic: str,
        source: str,
        context: str,
        upcasters: Upcasters | None = None,
        notify: bool = True,
        group_commit: bool = False,
        max_group: int = 64,
    ) -> None:
        self.pool = pool
        self.topic = topic
        self.source = source
        self.context = context
        self.upcasters = upcasters if upcasters is not None else Upcasters()
        self.waker = OutboxWaker(pool) if notify else None
        self._group = (
            GroupCommitter(pool, self._append_one, self._append_group, max_group=max_group)
            if group_commit
            else None
        )

    async def close(self) -> None:
        """Flush the last wake-up; the caller closes the pool."""
        if self.waker is not None:
            await self.waker.close()

    # -- write ---------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        metadata: Metadata,
        idempotency_key: str | None = None,
        result: Mapping[str, Any] | None = None,
        snapshot: Snapshot | None = None,
    ) -> AppendResult:
        """Append `events` as versions expected_version+1.. of the stream, atomically with
        their outbox rows, the idempotency record and an optional snapshot (whose `version`
        must be the new head).

        Raises ConcurrencyError when `expected_version` is not the stream's head. With an
        `idempotency_key` that was already handled, appends nothing and returns the first
        result with `already_handled=True` (also when both run at the same moment).
        """
        pending = self.encode(
            stream_id,
            stream_type,
            expected_version,
            events,
            metadata=metadata,
            idempotency_key=idempotency_key,
            result=result,
            snapshot=snapshot,
        )
        if self._group is not None:
            outcome = await self._group.submit(pending)
        else:
            async with self.pool.acquire() as conn:
                outcome = await self._append_one(conn, pending)
        if isinstance(outcome, ConcurrencyError):
            raise outcome
        if self.waker is not None and not outcome.already_handled:
            self.waker.poke()
        return outcome

    def encode(
        self,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        metadata: Metadata,
        idempotency_key: str | None = None,
        result: Mapping[str, Any] | None = None,
        snapshot: Snapshot | None = None,
    ) -> Pending:
        if not events:
            raise ValueError("an append needs at least one event")
        if expected_version < 0:
            raise ValueError("expected_version must be >= 0")
        new_version = expected_version + len(events)
        if snapshot is not None and snapshot.version != new_version:
            raise ValueError(f"snapshot version {snapshot.version} is not the new head")
        headers = [
            json.dumps(
                outbox_headers(
                    source=self.source,
                    context=self.context,
                    stream_id=stream_id,
                    version=expected_version + i,
                    event=event,
                    metadata=metadata,
                )
            )
            for i, event in enumerate(events, start=1)
        ]
        return Pending(
            stream_id=stream_id,
            stream_type=stream_type,
            expected=expected_version,
            events=events,
            metadata_json=json.dumps(metadata.as_dict()),
            headers_json=headers,
            idempotency_key=idempotency_key,
            result=dict(result)
            if result is not None
            else {"stream_id": stream_id, "version": new_version},
            snapshot=snapshot,
        )

    async def _append_one(self, conn: asyncpg.Connection, pending: Pending) -> Outcome:
        try:
            return (await self._append_group(conn, [pending]))[0]
        except asyncpg.UniqueViolationError as error:
            # a concurrent writer committed the same version after our check: the statement
            # (its own transaction) rolled back entirely
            if error.constraint_name == EVENT_ID_CONSTRAINT:
                raise DuplicateEvent(pending.stream_id) from error
            if error.constraint_name != STREAM_VERSION_CONSTRAINT:
                raise
            actual = await conn.fetchval(sql.HEAD, pending.stream_id)
            return ConcurrencyError(pending.stream_id, pending.expected, actual)

    async def _append_group(
        self, conn: asyncpg.Connection, batch: Sequence[Pending]
    ) -> list[Outcome]:
        """Many appends (to distinct streams, distinct keys), one statement, one commit, each
        with its own result. A race that raises aborts the whole group: the group committer
        then retries its appends one by one, where the race gets its own ConcurrencyError."""
        if len(batch) == 1:  # the common case under light load: the lighter statement
            rows = [await conn.fetchrow(sql.APPEND_ONE, *_params_one(batch[0], self.topic))]
        else:
            rows = await conn.fetch(sql.APPEND, *_params(batch, self.topic))
        outcomes: list[Outcome] = []
        for pending, row in zip(batch, rows, strict=True):
            decided = _outcome(pending, row)
            if decided is None:  # a twin with the same key committed while we ran
                decided = await self._first_result(conn, pending)
            outcomes.append(decided)
        return outcomes

    async def _first_result(self, conn: asyncpg.Connection, pending: Pending) -> Outcome:
        assert pending.idempotency_key is not None
        found = await self._lookup(conn, pending.idempotency_key)
        if found is None:  # purged in between: treat as a conflict, the caller reloads
            actual = await conn.fetchval(sql.HEAD, pending.stream_id)
            return ConcurrencyError(pending.stream_id, pending.expected, actual)
        return found

    async def idempotent_result(self, key: str) -> AppendResult | None:
        """The first result of a handled key, so a handler can answer a retry before even
        loading the aggregate (a retried "create" would otherwise fail its own validation)."""
        async with self.pool.acquire() as conn:
            return await self._lookup(conn, key)

    @staticmethod
    async def _lookup(conn: asyncpg.Connection, key: str) -> AppendResult | None:
        row = await conn.fetchrow(sql.IDEMPOTENT_RESULT, key)
        if row is None:
            return None
        return AppendResult(
            stream_id=row["stream_id"],
            version=row["version"] if row["version"] is not None else -1,
            result=json.loads(row["result"]),
            already_handled=True,
        )

    async def delete_snapshots(self, stream_id: str) -> int:
        """Drop every snapshot of a stream (they are a cache; the next load folds the events).
        Forgetting a person does this: a snapshot holds their state in plaintext."""
        async with self.pool.acquire() as conn:
            status = await conn.execute("DELETE FROM snapshots WHERE stream_id = $1", stream_id)
        return int(status.split()[-1])

    # -- read ----------------------------------------------------------------------------

    async def head(self, stream_id: str) -> int:
        """The stream's current version (0 when it has no events)."""
        async with self.pool.acquire() as conn:
            version: int = await conn.fetchval(sql.HEAD, stream_id)
            return version

    async def load(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        up_to_version: int | None = None,
        at: datetime | None = None,
    ) -> list[RecordedEvent]:
        """The stream's events in version order, upcast to their latest schema versions;
        `up_to_version` / `at` (recorded at or before) give a past state."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql.LOAD, stream_id, after_version, up_to_version, at)
        return [self._recorded(row) for row in rows]

    async def load_from_snapshot(
        self, stream_id: str, snapshot_schema_version: int
    ) -> tuple[Snapshot | None, list[RecordedEvent]]:
        """The latest snapshot taken with `snapshot_schema_version` (None if there is none or
        it is stale) and the events after it, in one round trip."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql.LOAD_FROM_SNAPSHOT, stream_id, snapshot_schema_version)
        snapshot = None
        if rows and rows[0]["event_id"] is None:
            first = rows[0]
            snapshot = Snapshot(
                first["version"], snapshot_schema_version, json.loads(first["data"])
            )
            rows = rows[1:]
        return snapshot, [self._recorded(row) for row in rows]

    async def events_by_id(
        self, stream_id: str, event_ids: Sequence[uuid.UUID]
    ) -> list[RecordedEvent]:
        """The stream's events with these ids, in version order (absent ids: skipped). One
        probe of the unique event-id index, whatever the stream's length."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql.EVENTS_BY_ID, list(event_ids), stream_id)
        return [self._recorded(row) for row in rows]

    async def event_by_id(self, event_id: uuid.UUID) -> RecordedEvent | None:
        """The event with this id, whatever its stream (ids derived from a business key find
        their stream this way: one probe of the unique event-id index)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(sql.EVENT_BY_ID, event_id)
        return None if row is None else self._recorded(row)

    def _recorded(self, row: asyncpg.Record) -> RecordedEvent:
        schema_version, data = self.upcasters.upcast(
            row["event_type"], row["schema_version"], json.loads(row["data"])
        )
        return RecordedEvent(
            event_id=row["event_id"],
            stream_id=row["stream_id"],
            event_type=row["event_type"],
            schema_version=schema_version,
            data=data,
            metadata=json.loads(row["metadata"]),
            version=row["version"],
            global_position=row["global_position"],
            recorded_at=row["recorded_at"],
        )


async def purge_idempotency_keys(
    pool: asyncpg.Pool, older_than: timedelta, *, batch: int = 5000
) -> int:
    """Delete idempotency records older than the retention, in short batches; returns how many.

    Run it periodically (e.g. daily, retention = the longest client/saga retry horizon): a
    retry arriving after its key was purged is handled as a new command.
    """
    total = 0
    while True:
        async with pool.acquire() as conn:
            status = await conn.execute(
                sql.PURGE_IDEMPOTENCY_KEYS, datetime.now().astimezone() - older_than, batch
            )
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch:
            return total


def _outcome(pending: Pending, row: asyncpg.Record) -> Outcome | None:
    """Read one append's row of the statement's answer; None: a twin with the same key won a
    race inside the statement (its result is fetched afterwards)."""
    if row["known_result"] is not None:
        return AppendResult(
            stream_id=row["known_stream_id"],
            version=row["known_version"] if row["known_version"] is not None else -1,
            result=json.loads(row["known_result"]),
            already_handled=True,
        )
    if not row["checked"]:
        return ConcurrencyError(pending.stream_id, pending.expected, row["actual"])
    if not row["admitted"]:
        return None
    return AppendResult(
        stream_id=pending.stream_id,
        version=pending.new_version,
        result=pending.result,
        positions=tuple(row["positions"]),
    )


def _params_one(p: Pending, topic: str) -> list[Any]:
    """APPEND_ONE's 16 parameters."""
    snap = p.snapshot
    data = [json.dumps(dict(e.data), separators=_COMPACT) for e in p.events]
    return [
        p.stream_id,
        p.stream_type,
        p.expected,
        len(p.events),
        p.idempotency_key,
        json.dumps(p.result) if p.idempotency_key is not None else None,
        json.dumps(dict(snap.state)) if snap is not None else None,
        snap.schema_version if snap is not None else None,
        [p.expected + i for i in range(1, len(p.events) + 1)],
        [e.event_id for e in p.events],
        [e.event_type for e in p.events],
        [e.schema_version for e in p.events],
        data,
        list(p.headers_json),
        p.metadata_json,
        topic,
    ]


def _params(batch: Sequence[Pending], topic: str) -> list[Any]:
    """The statement's 18 parameters: 9 per-append arrays, 8 per-event arrays, the topic."""
    appends: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    for idx, p in enumerate(batch):
        snap = p.snapshot
        appends.append(
            (
                idx,
                p.stream_id,
                p.stream_type,
                p.expected,
                len(p.events),
                p.idempotency_key,
                json.dumps(p.result) if p.idempotency_key is not None else None,
                json.dumps(dict(snap.state)) if snap is not None else None,
                snap.schema_version if snap is not None else None,
            )
        )
        events += [
            (
                idx,
                p.expected + offset,
                event.event_id,
                event.event_type,
                event.schema_version,
                json.dumps(dict(event.data), separators=_COMPACT),
                p.metadata_json,
                headers,
            )
            for offset, (event, headers) in enumerate(
                zip(p.events, p.headers_json, strict=True), start=1
            )
        ]
    return [
        *(list(column) for column in zip(*appends, strict=True)),
        *(list(column) for column in zip(*events, strict=True)),
        topic,
    ]
