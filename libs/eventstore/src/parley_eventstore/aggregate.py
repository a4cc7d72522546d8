"""Loading and saving aggregates: latest snapshot + tail in, new events (+ snapshot) out.

The cost of a command does not grow with its stream: loading reads one snapshot row and at
most `snapshot_every` events, and a snapshot is written in the same statement as the append
that crosses the next multiple of `snapshot_every`. A snapshot whose schema version differs
from the aggregate class's is ignored (the state is rebuilt from events once and snapshotted
again at the next crossing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from parley_messaging.retrying import retried
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from parley_eventstore.codec import EventCodec
from parley_eventstore.domain import Aggregate
from parley_eventstore.locks import KeyedLocks
from parley_eventstore.records import (
    AppendResult,
    ConcurrencyError,
    Metadata,
    NewEvent,
    RecordedEvent,
    Snapshot,
)
from parley_eventstore.store import EventStore
from parley_eventstore.warm import WarmAggregates

A = TypeVar("A", bound=Aggregate)


class DataCipher(Protocol):
    """Field-level encryption of event data between the codec and the store (crypto-shredding,
    parley_privacy.FieldCipher): `seal` before the append, `open` after the load. The domain
    never sees ciphertext; the store and the outbox (so Kafka) never see plaintext."""

    async def seal(self, event_type: str, data: Mapping[str, Any]) -> dict[str, Any]: ...

    async def open(
        self, event_type: str, data: Mapping[str, Any], *, fresh: bool = False
    ) -> dict[str, Any]:
        """`fresh`: ask the key owner again instead of a cached key (history: a person
        forgotten a moment ago must not be shown decrypted by a key still in a cache)."""
        ...


class Repository(Generic[A]):
    def __init__(
        self,
        store: EventStore,
        aggregate_type: type[A],
        codec: EventCodec,
        *,
        snapshot_every: int | None = 100,
        cipher: DataCipher | None = None,
        serialize: bool = False,
        keep_warm: tuple[int, float] | None = None,
    ) -> None:
        """`serialize`: commands on one stream queue in this process (a busy stream's
        commands then cost no wasted round trip; races with other processes are retried).
        `keep_warm=(size, ttl_s)`: the last state of up to `size` streams is reused by the
        next command for `ttl_s` after its load (parley_eventstore.warm; needs `serialize`)."""
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError("snapshot_every must be >= 1 (or None for no snapshots)")
        if keep_warm is not None and not serialize:
            raise ValueError("keep_warm needs serialize (one command per stream at a time)")
        self.store = store
        self.aggregate_type = aggregate_type
        self.codec = codec
        self.snapshot_every = snapshot_every
        self.cipher = cipher
        self.locks = KeyedLocks() if serialize else None
        self.warm: WarmAggregates[A] | None = (
            WarmAggregates(*keep_warm) if keep_warm is not None else None
        )

    async def opened(
        self, events: Sequence[RecordedEvent], *, fresh: bool = False
    ) -> list[RecordedEvent]:
        """The events with their encrypted fields decrypted (or placeholders where the key is
        gone); as they are without a cipher. `fresh`: keys asked again (see DataCipher)."""
        if self.cipher is None:
            return list(events)
        return [
            dataclasses.replace(e, data=await self.cipher.open(e.event_type, e.data, fresh=fresh))
            for e in events
        ]

    async def sealed(self, events: Sequence[NewEvent]) -> list[NewEvent]:
        if self.cipher is None:
            return list(events)
        return [
            dataclasses.replace(e, data=await self.cipher.seal(e.event_type, e.data))
            for e in events
        ]

    async def load(
        self, stream_id: str, *, up_to_version: int | None = None, at: datetime | None = None
    ) -> A:
        """The aggregate's current state (snapshot + tail), or its past state at a version or
        time (folded from the first event: history is read rarely, commands often)."""
        aggregate = self.aggregate_type(stream_id)
        if up_to_version is not None or at is not None:
            events = await self.store.load(stream_id, up_to_version=up_to_version, at=at)
        else:
            snapshot, events = await self.store.load_from_snapshot(
                stream_id, self.aggregate_type.snapshot_schema_version
            )
            if snapshot is not None:
                aggregate.restore(snapshot.state)
                aggregate.version = snapshot.version
        past = up_to_version is not None or at is not None  # history: keys asked again
        events = await self.opened(events, fresh=past)
        aggregate.replay((e.version, self.codec.decode(e)) for e in events)
        return aggregate

    async def save(
        self,
        aggregate: A,
        *,
        metadata: Metadata,
        idempotency_key: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append the aggregate's pending events at its loaded version (ConcurrencyError if
        the stream moved). Nothing pending: nothing written, the current version returned."""
        pending = aggregate.pending
        if not pending:
            return AppendResult(
                aggregate.id,
                aggregate.version,
                dict(result or {"stream_id": aggregate.id, "version": aggregate.version}),
            )
        expected = aggregate.version  # as loaded; pending events are not counted in it
        new_version = aggregate.next_version
        outcome = await self.store.append(
            aggregate.id,
            self.aggregate_type.stream_type,
            expected,
            await self.sealed([self.codec.encode(event) for event in pending]),
            metadata=metadata,
            idempotency_key=idempotency_key,
            result=result,
            snapshot=self._snapshot(aggregate, expected, new_version),
        )
        if not outcome.already_handled:
            aggregate.mark_saved(outcome.version)
        return outcome

    def _snapshot(self, aggregate: A, old: int, new: int) -> Snapshot | None:
        every = self.snapshot_every
        if every is None or new // every == old // every:
            return None
        state = aggregate.snapshot()  # state after the pending events = state at `new`
        if state is None:
            return None
        return Snapshot(new, self.aggregate_type.snapshot_schema_version, state)

    async def execute(
        self,
        stream_id: str,
        command: Callable[[A], Any],
        *,
        metadata: Metadata,
        idempotency_key: str | None = None,
        result: Callable[[A], Mapping[str, Any]] | None = None,
        retries: int = 0,
    ) -> AppendResult:
        """Load, run `command` (which records events or raises a domain error), save.

        A key already handled answers with the first result before the command runs (a
        retried "create" must not fail on its own first success). `retries` re-runs the
        command on a fresh load after a ConcurrencyError, for commands that commute, after a
        short random pause that grows with the attempts: without it racers collide in
        lock-step, one winner per round.
        """
        if idempotency_key is not None:
            first = await self.store.idempotent_result(idempotency_key)
            if first is not None:
                return first

        async def save(loaded_at: float, aggregate: A) -> AppendResult:
            """Save the command's decision; the state is kept for the next command (if the
            repository keeps any) unless the key was handled already."""
            outcome = await self.save(
                aggregate,
                metadata=metadata,
                idempotency_key=idempotency_key,
                result=result(aggregate) if result is not None else None,
            )
            if self.warm is not None and not outcome.already_handled:
                self.warm.keep(stream_id, loaded_at, aggregate)
            return outcome

        async def fresh() -> AppendResult:
            loaded_at, aggregate = time.monotonic(), await self.load(stream_id)
            command(aggregate)
            return await save(loaded_at, aggregate)

        async def on_kept(loaded_at: float, aggregate: A) -> AppendResult | None:
            """The command on a kept state, when the store confirms its decision: events
            appended at the kept version. A refusal, a command with nothing to write, or a
            kept state behind the stream (another writer) proves nothing (the state may be
            stale): None, and the command is decided again on a fresh load."""
            try:
                command(aggregate)
            except Exception:
                return None
            if not aggregate.pending:
                return None
            try:
                return await save(loaded_at, aggregate)
            except ConcurrencyError:
                return None

        async def attempt() -> AppendResult:
            async with self._turn(stream_id):
                kept = self.warm.take(stream_id) if self.warm is not None else None
                if kept is not None and (outcome := await on_kept(*kept)) is not None:
                    return outcome
                return await fresh()

        def retrying() -> AsyncRetrying:
            return AsyncRetrying(
                retry=retry_if_exception_type(ConcurrencyError),
                stop=stop_after_attempt(retries + 1),
                wait=wait_random_exponential(multiplier=0.001, max=0.02),
                reraise=True,
            )

        # the first try runs bare: nearly every command succeeds at once, and tenacity's
        # bookkeeping (~20 us) is a tenth of a command's cost
        return await retried(attempt, retrying)

    @contextlib.asynccontextmanager
    async def _turn(self, stream_id: str) -> AsyncIterator[None]:
        if self.locks is None:
            yield
            return
        async with self.locks.hold(stream_id):
            yield
