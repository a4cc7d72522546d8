"""The projector loop: poll a batch, decode and compute the changes, park poison records on
`<group>.dlq`, apply the rest idempotently to the generation(s) being written, record
progress, and only then commit the offsets (at-least-once; the apply makes it exactly-once
in effect).

Why aiokafka directly rather than a faststream subscriber (faststream wraps the same
client): the runtime needs (1) the commit of exactly the offsets whose writes succeeded,
after them, per partition; (2) a rebalance listener that finishes the in-flight batch before a
partition is given up (one writer per document, see apply.py); (3) `seek` + commit of an
earlier offset when joining a rebuilt generation (rebuild.py); (4) its own retry/DLQ policy
(faststream has none, and nack without backoff redelivers forever, faststream #1488). A
faststream batch subscriber with AckPolicy.MANUAL offers (1) per poll only and none of
(2)-(4), so it would be bypassed anyway; this stays a small loop over aiokafka.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from opentelemetry.trace import Span, SpanKind, StatusCode
from parley_messaging.envelope import Envelope, InvalidEnvelope, decode, parse_ce_type
from parley_messaging.fetching import LIVE_FETCH_MAX_WAIT_MS
from parley_messaging.retrying import doubling, log_retry, retried, until_set
from parley_messaging.security import kafka_security
from parley_messaging.topics import ensure_topics
from parley_observability.tracing import child_span, tracing_enabled
from parley_privacy.keys import KeyUnavailable
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
)

from parley_readmodel import dlq, metrics
from parley_readmodel.aliases import (
    Alias,
    ensure_indexes,
    joined,
    mark_joined,
    physical,
    read_alias,
    tp_key,
)
from parley_readmodel.apply import Change, Known, LostRace, apply_changes
from parley_readmodel.dlq import Record
from parley_readmodel.progress import (
    context_of,
    mark_parked,
    parked_versions,
    record_progress,
    stream_key,
)
from parley_readmodel.projection import Decrypt, Projection, Sweep, Upcast, writes_for

log = logging.getLogger("parley.readmodel")
# how often the live projector re-reads its alias document (a rebuild's progress): noticing a
# published rebuild later is safe, join_generations seeks back to where the rebuild stopped
ALIAS_REFRESH_S = 0.5
DB = AsyncDatabase[dict[str, Any]]


@dataclass
class Options:
    bootstrap_servers: str
    max_records: int = 2000
    poll_ms: int = 200
    fetch_max_wait_ms: int = LIVE_FETCH_MAX_WAIT_MS  # parley_messaging.fetching
    attempts: int = 3  # tries of a failing record before it is parked
    backoff_s: float = 0.02  # first retry pause, doubled per attempt
    store_backoff_max_s: float = 5.0  # the store being down is retried without end
    chunk: int = 50  # updates per bulk command (FerretDB: see apply.py; at most 99 there)
    guard: bool | None = None  # version guard in filters; None: on unless FerretDB
    # the projection's declared secondary indexes; None: created unless the store is
    # FerretDB 1.24, which pushes only `_id` filters down (its explain: filterPushdown and
    # sortPushdown false, a SCAN), so there they only slow every insert (~25%)
    indexes: bool | None = None
    upcast: Upcast | None = None
    decrypt: Decrypt | None = None  # personal fields (parley_privacy); None: data as it is
    dlq_partitions: int = 1
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def is_ferretdb(db: DB) -> bool:
    info = await db.client.admin.command("buildInfo")
    return "ferretdbVersion" in info


@dataclass(frozen=True)
class Store:
    """How to write the store: version guard in filters, declared secondary indexes."""

    guard: bool
    indexes: bool


async def resolve_store(db: DB, options: Options) -> Store:
    """Each as `options` says, else on unless the store is FerretDB (asked at most once)."""
    ferretdb = None
    if options.guard is None or options.indexes is None:
        ferretdb = await is_ferretdb(db)
    return Store(
        guard=options.guard if options.guard is not None else not ferretdb,
        indexes=options.indexes if options.indexes is not None else not ferretdb,
    )


class Found(NamedTuple):
    """What one record yields: its stream and version, its event time, its writes."""

    stream: str  # stream_key: context/stream id
    version: int
    moment: float  # event time (epoch s)
    changes: list[Change]
    sweeps: list[Sweep]


@dataclass
class Prepared:
    changes: list[Change] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)  # after the changes, in record order
    versions: dict[str, int] = field(default_factory=dict)  # stream -> highest version seen
    newest_event_time: float | None = None
    poison: list[tuple[Record, BaseException]] = field(default_factory=list)

    def add(self, projection: Projection, found: Found) -> None:
        self.changes += found.changes
        self.sweeps += found.sweeps
        if projection.tracks(found.stream):
            self.versions[found.stream] = max(found.version, self.versions.get(found.stream, 0))
        self.newest_event_time = max(found.moment, self.newest_event_time or found.moment)


# -- decoding: records -> changes -------------------------------------------------------------


async def prepare(
    projection: Projection, records: Iterable[Record], options: Options, redrive: bool = False
) -> Prepared:
    """Decode and run the handlers; a record failing `options.attempts` times is poison.
    When tracing is on, each record's projection is a span continuing the record's trace
    (its `traceparent` header: the relay's publish span)."""
    out = Prepared()
    traced = tracing_enabled()
    for record in records:
        span = _record_span(projection, record) if traced else None
        try:
            found = await retried(
                partial(_changes, projection, record, options, redrive),
                partial(_record_retrying, options),
            )
        except KeyUnavailable:
            raise  # only when stopping
        except Exception as error:  # bad envelope, bad JSON, unknown type, handler bug
            out.poison.append((record, error))
            if span is not None:
                span.set_status(StatusCode.ERROR, "parked on the dead-letter topic")
                span.end()
            continue
        if span is not None:
            span.end()
        out.add(projection, found)
    return out


def _record_retrying(options: Options) -> AsyncRetrying:
    """A failing record: `options.attempts` tries in all, pauses doubling from `backoff_s`;
    KeyUnavailable (only raised when stopping) is not retried."""
    return AsyncRetrying(
        retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(KeyUnavailable),
        stop=stop_after_attempt(options.attempts),
        wait=doubling(options.backoff_s),
        reraise=True,
    )


async def _changes(
    projection: Projection, record: Record, options: Options, redrive: bool
) -> Found:
    envelope = decode(record.headers, record.value)
    if envelope.aggregate_version is None or not envelope.subject:
        raise InvalidEnvelope("no ce_subject/ce_aggregateversion: cannot apply idempotently")
    found = Found(
        stream_key(record.topic, envelope.subject),
        envelope.aggregate_version,
        envelope.time.timestamp(),
        [],
        [],
    )
    if envelope.event_name not in projection.handlers and not projection.strict:
        # an event this projection ignores: counted as applied, its data never parsed (a
        # chat projection reads every users event for the rare UserForgotten)
        return found
    data = await _data(projection, envelope, options)
    for w in writes_for(projection, envelope, data):
        if isinstance(w, Sweep):
            found.sweeps.append(w)
        else:
            found.changes.append(
                Change(
                    w.collection,
                    w.doc_id,
                    w.update,
                    envelope.subject,
                    envelope.aggregate_version,
                    redrive,
                    record.topic,
                )
            )
    return found


async def _data(projection: Projection, envelope: Envelope, options: Options) -> dict[str, Any]:
    """The event's data as the handlers take it: parsed, upcast, personal fields decrypted."""
    data: dict[str, Any] = json.loads(envelope.data)
    if not isinstance(data, dict):
        raise InvalidEnvelope("event data is not a JSON object")
    if options.upcast is not None:
        version = envelope.schema_version or parse_ce_type(envelope.type)[2]
        _, data = options.upcast(envelope.event_name, version, data)
    if options.decrypt is not None and envelope.event_name in projection.handlers:
        # only events this projection uses (a users.events reader for UserForgotten alone
        # must not fetch every person's key)
        data = await _decrypted(options, envelope.event_name, data)
    return data


async def _decrypted(options: Options, name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The key owner being unreachable is not poison: wait for it like for the store (until
    `stop`); a tampered value is (it fails the record's attempts like a handler bug)."""
    decrypt = options.decrypt
    assert decrypt is not None
    return await retried(partial(decrypt, name, data), partial(_key_retrying, options))


def _key_retrying(options: Options) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(KeyUnavailable),
        stop=until_set(options.stop),
        wait=doubling(options.backoff_s, options.store_backoff_max_s),
        before_sleep=log_retry(log, "key owner unavailable (%(error)s); retrying in %(pause).2fs"),
        reraise=True,
    )


def _record_span(projection: Projection, record: Record) -> Span:
    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
    return child_span(
        f"project {headers.get('ce_type', 'record')}",
        headers.get("traceparent"),
        SpanKind.CONSUMER,
        {
            "messaging.system": "kafka",
            "messaging.destination.name": record.topic,
            "messaging.consumer.group.name": projection.group,
        },
    )


# -- writing: changes -> the store ------------------------------------------------------------


@dataclass(frozen=True)
class Writer:
    """Writes prepared batches of one projection: parks the poison, applies the rest to a
    generation. The live projector, the rebuild and the re-drive each hold one."""

    db: DB
    projection: Projection
    options: Options
    store: Store
    known: Known | None = None  # documents that exist: no optimistic insert (live projector)

    async def park(
        self, producer: AIOKafkaProducer | None, generations: Iterable[int], prepared: Prepared
    ) -> None:
        """Mark the parked versions (so a re-drive may apply them out of order), then publish
        them to the DLQ (None: the rebuild, whose poison the live projector parked already)."""
        name = self.projection.name
        for record, error in prepared.poison:
            key = dlq.stream_and_version(record)
            if key is not None:
                stream, version = key
                for generation in generations:
                    await mark_parked(
                        self.db, name, generation, stream_key(record.topic, stream), version
                    )
            if producer is not None:
                await dlq.publish(
                    producer, self.projection.group, record, error, self.options.attempts
                )
                metrics.DLQ.labels(name).inc()
            log.warning(
                "parked %s[%d]@%d: %r", record.topic, record.partition, record.offset, error
            )

    async def apply(self, generation: int, prepared: Prepared) -> None:
        """Write one batch into one generation, then its progress. A lost race is planned again
        at once; a store failure is retried with backoff until it works or `stop` is set (then
        it raises: nothing gets committed)."""
        options = self.options
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(PyMongoError),
            stop=until_set(options.stop),
            wait=doubling(options.backoff_s, options.store_backoff_max_s),
            before_sleep=log_retry(
                log, "read-model write failed (%(error)s); retrying in %(pause).2fs"
            ),
            reraise=True,
        ):
            with attempt:
                while True:  # not a backoff: a lost race is planned again at once
                    try:
                        await self._write(generation, prepared)
                        return
                    except LostRace as error:
                        log.info("lost a race (%s): planning the batch again", error)

    async def _write(self, generation: int, prepared: Prepared) -> None:
        db, name = self.db, self.projection.name
        parked: set[tuple[str, int]] = set()
        redriven = {stream_key(c.topic, c.stream): c.stream for c in prepared.changes if c.redrive}
        if redriven:
            parked = await parked_versions(db, name, generation, redriven)
        sent = await apply_changes(
            db,
            generation,
            prepared.changes,
            guard=self.store.guard,
            chunk=self.options.chunk,
            parked=parked,
            known=self.known,
        )
        for sweep in prepared.sweeps:
            await db[physical(sweep.collection, generation)].update_many(
                dict(sweep.filter), dict(sweep.update)
            )
        progress = untracked(self.projection, prepared)
        await record_progress(db, name, generation, progress, self.options.chunk)
        metrics.UPDATES.labels(name).inc(sent)


def untracked(projection: Projection, prepared: Prepared) -> dict[str, int]:
    """The batch's stream versions that need a `_progress` document: all but those whose
    newest version in the batch wrote the stream's own document of `projection.versions_in`
    (its `_v` says the same; progress.applied_version reads it there). A change the plan
    skips as already applied is fine too: the document holds that version or a later one."""
    if not projection.versions_in:
        return dict(prepared.versions)
    carried: dict[str, int] = {}
    for change in prepared.changes:
        home = projection.versions_in.get(context_of(change.topic))
        if home == change.collection and change.doc_id == change.stream and not change.redrive:
            key = stream_key(change.topic, change.stream)
            carried[key] = max(change.version, carried.get(key, 0))
    return {s: v for s, v in prepared.versions.items() if carried.get(s) != v}


# -- the live projector -----------------------------------------------------------------------


async def run(db: DB, projection: Projection, options: Options) -> None:
    """Consume until `options.stop` is set (at-least-once, idempotent, commit after writes)."""
    await ensure_topics(
        options.bootstrap_servers, [dlq.dlq_declaration(projection.group, options.dlq_partitions)]
    )
    store = await resolve_store(db, options)
    live = _Live(Writer(db, projection, options, store, known=Known()))
    await live.start()
    try:
        await live.consume()
    finally:
        await live.stop()


@dataclass
class _Generations:
    """What the live projector knows of the generations it writes: the alias (re-read every
    ALIAS_REFRESH_S), the generations whose declared indexes exist (or are not wanted), and
    the (generation, partition) pairs that joined a rebuilt generation."""

    alias: Alias | None = None
    read_at: float = 0.0  # time.monotonic() of the alias read
    indexed: set[int] = field(default_factory=set)
    joined: set[tuple[int, TopicPartition]] = field(default_factory=set)

    def stale(self) -> bool:
        return self.alias is None or time.monotonic() - self.read_at > ALIAS_REFRESH_S

    def joined_all(self, alias: Alias, tp: TopicPartition) -> bool:
        """Whether `tp` joined every generation a rebuild completed."""
        return all(
            (g, tp) in self.joined for g in alias.targets() if alias.complete.get(g) is not None
        )


class _Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Give a partition up only between batches: the lock is held while a batch is written
    and committed, so the next owner starts after our commit, never beside our writes. A
    batch fetched before a revocation is not written after it (`epoch`): until the new
    assignment arrives the old one still looks assigned, and its commit would be refused or
    land beside the next owner's (the records are fetched again from the committed offsets)."""

    def __init__(self, lock: asyncio.Lock, joined_tps: set[tuple[int, TopicPartition]]) -> None:
        self.lock = lock
        self.joined = joined_tps
        self.epoch = 0

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.lock:
            gone = set(revoked)
            if gone:
                self.epoch += 1
            self.joined -= {item for item in self.joined if item[1] in gone}

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None


class _Live:
    """One `run`: the consumer group member and its DLQ producer, the generations it writes,
    and the batch being written and committed while the next one is fetched and decoded."""

    def __init__(self, writer: Writer) -> None:
        options = writer.options
        self.writer = writer
        self.generations = _Generations()
        # held while a batch is written and committed (and by the rebalance listener)
        self.lock = asyncio.Lock()
        self.inflight: asyncio.Task[None] | None = None
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=options.bootstrap_servers,
            group_id=writer.projection.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=options.max_records,
            fetch_max_wait_ms=options.fetch_max_wait_ms,
            **kafka_security(),
        )
        self.ownership = _Ownership(self.lock, self.generations.joined)
        self.consumer.subscribe(list(writer.projection.topics), listener=self.ownership)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=options.bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            **kafka_security(),
        )

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()

    async def stop(self) -> None:
        try:
            await self.settle()
        finally:
            await self.consumer.stop()
            await self.producer.stop()

    async def consume(self) -> None:
        options = self.writer.options
        while not options.stop.is_set():
            alias = await self.follow_alias()
            batch = await self.consumer.getmany(timeout_ms=options.poll_ms)
            if batch:
                await self.take(alias, batch)

    async def settle(self) -> None:
        """Wait for the batch in flight: a failed write raises here, nothing after it is
        committed."""
        if self.inflight is not None:
            task, self.inflight = self.inflight, None
            await task

    # -- generations ----------------------------------------------------------------------

    async def follow_alias(self) -> Alias:
        """The alias the next batch is written by: re-read when stale; a generation seen for
        the first time gets its indexes, and every partition joins a rebuilt one."""
        generations = self.generations
        stale = generations.stale()
        alias = generations.alias
        if not stale and alias is not None and self.joined_everywhere(alias):
            return alias
        await self.settle()  # a join may seek: never beside a batch in flight
        async with self.lock:
            if stale or alias is None:
                alias = await read_alias(self.writer.db, self.writer.projection.name)
                generations.alias, generations.read_at = alias, time.monotonic()
            metrics.GENERATION.labels(self.writer.projection.name).set(alias.active)
            for generation in set(alias.targets()) - generations.indexed:
                if self.writer.store.indexes:
                    await ensure_indexes(self.writer.db, generation, self.writer.projection.indexes)
                generations.indexed.add(generation)
            await self.join_generations(alias)
        return alias

    def joined_everywhere(self, alias: Alias) -> bool:
        """Whether every assigned partition has joined every generation a rebuild completed (so
        join_generations has nothing to do)."""
        return all(self.generations.joined_all(alias, tp) for tp in self.consumer.assignment())

    async def join_generations(self, alias: Alias) -> None:
        """Before writing a rebuilt generation for a partition, make sure it misses nothing: the
        rebuild filled it up to `complete[tp]`; if our position is past that, go back there (and
        commit it, so a successor starts there too) — the replay is a no-op for the other
        generation. Recorded in `_generations` so the rebuild knows when it may swap."""
        db, name, done = self.writer.db, self.writer.projection.name, self.generations.joined
        for generation in alias.targets():
            complete = alias.complete.get(generation)
            if complete is None:
                continue  # generation 1: the live projector built it from the start
            for tp in self.consumer.assignment():
                if (generation, tp) in done:
                    continue
                key = tp_key(tp.topic, tp.partition)
                if key not in await joined(db, name, generation):
                    upto = complete.get(key, 0)
                    if await self.consumer.position(tp) > upto:
                        self.consumer.seek(tp, upto)
                        await self.consumer.commit({tp: upto})
                    await mark_joined(db, name, generation, key)
                done.add((generation, tp))

    # -- batches --------------------------------------------------------------------------

    async def take(self, alias: Alias, batch: Mapping[TopicPartition, list[Record]]) -> None:
        """Decode `batch` while the one before it is still being written (handlers are pure;
        `write` decodes again only what a rebalance left out), then write it in the
        background, after the one before it."""
        epoch = self.ownership.epoch  # getmany returned `batch` under this assignment
        records = [r for rs in batch.values() for r in rs]
        prepared = await prepare(self.writer.projection, records, self.writer.options)
        await self.settle()  # batches are written one after the other, in order
        self.inflight = asyncio.create_task(self.write(alias, batch, prepared, epoch))
        if len(alias.targets()) > 1:
            await self.settle()  # a rebuild is joining: one batch at a time, as it expects

    async def write(
        self,
        alias: Alias,
        batch: Mapping[TopicPartition, list[Record]],
        prepared: Prepared,
        epoch: int,
    ) -> None:
        """Write one batch (`prepared`: the whole batch decoded) into the generations the alias
        names and commit it, for the partitions still ours and joined."""
        async with self.lock:
            if epoch != self.ownership.epoch:
                return  # fetched before a revocation: read again from the committed offsets
            ready = self.ready(alias, batch)
            if not ready:
                return
            records = [r for rs in ready.values() for r in rs]
            if len(ready) < len(batch):
                prepared = await prepare(self.writer.projection, records, self.writer.options)
            generations = alias.targets()
            await self.writer.park(self.producer, generations, prepared)
            for generation in generations:
                await self.writer.apply(generation, prepared)
            offsets = {tp: rs[-1].offset + 1 for tp, rs in ready.items()}
            try:
                await self.consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as error:
                # this member was dropped from the group meanwhile (a write outlasting the
                # session): the owner writes these records again, idempotently; no restart
                log.warning("batch written but not committed, the group rebalanced: %s", error)
                return
            self.report(offsets, prepared, len(records))

    def ready(
        self, alias: Alias, batch: Mapping[TopicPartition, list[Record]]
    ) -> dict[TopicPartition, list[Record]]:
        """The batch's partitions still assigned and joined; one assigned but not joined yet
        was fetched before joining, and is read again from its first record."""
        assigned = self.consumer.assignment()
        ready: dict[TopicPartition, list[Record]] = {}
        for tp, records in batch.items():
            if tp not in assigned:
                continue
            if self.generations.joined_all(alias, tp):
                ready[tp] = records
            else:
                self.consumer.seek(tp, records[0].offset)
        return ready

    def report(
        self, offsets: Mapping[TopicPartition, int], prepared: Prepared, consumed: int
    ) -> None:
        name = self.writer.projection.name
        metrics.EVENTS.labels(name, "parked").inc(len(prepared.poison))
        metrics.EVENTS.labels(name, "applied").inc(consumed - len(prepared.poison))
        if prepared.newest_event_time is not None:
            lag = max(0.0, time.time() - prepared.newest_event_time)
            metrics.LAG_SECONDS.labels(name).set(lag)
        for tp, offset in offsets.items():
            labels = (name, tp.topic, str(tp.partition))
            metrics.POSITION.labels(*labels).set(offset)
            end = self.consumer.highwater(tp)
            if end is not None:
                metrics.CONSUMER_LAG.labels(*labels).set(max(0, end - offset))
