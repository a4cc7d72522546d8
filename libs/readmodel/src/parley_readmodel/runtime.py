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
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from opentelemetry.trace import Span, SpanKind, StatusCode
from parley_messaging.envelope import InvalidEnvelope, decode, parse_ce_type
from parley_messaging.fetching import LIVE_FETCH_MAX_WAIT_MS
from parley_messaging.retrying import doubling, log_retry, retried, until_set
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


@dataclass
class Prepared:
    changes: list[Change] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)  # after the changes, in record order
    versions: dict[str, int] = field(default_factory=dict)  # stream -> highest version seen
    newest_event_time: float | None = None
    poison: list[tuple[Record, BaseException]] = field(default_factory=list)


async def _changes(
    projection: Projection, record: Record, options: Options, redrive: bool
) -> tuple[str, int, float, list[Change], list[Sweep]]:
    envelope = decode(record.headers, record.value)
    if envelope.aggregate_version is None or not envelope.subject:
        raise InvalidEnvelope("no ce_subject/ce_aggregateversion: cannot apply idempotently")
    moment = envelope.time.timestamp()
    stream = stream_key(record.topic, envelope.subject)
    if envelope.event_name not in projection.handlers and not projection.strict:
        # an event this projection ignores: counted as applied, its data never parsed (a
        # chat projection reads every users event for the rare UserForgotten)
        return stream, envelope.aggregate_version, moment, [], []
    data = json.loads(envelope.data)
    if not isinstance(data, dict):
        raise InvalidEnvelope("event data is not a JSON object")
    if options.upcast is not None:
        version = envelope.schema_version or parse_ce_type(envelope.type)[2]
        _, data = options.upcast(envelope.event_name, version, data)
    if options.decrypt is not None and envelope.event_name in projection.handlers:
        # only events this projection uses (a users.events reader for UserForgotten alone
        # must not fetch every person's key)
        data = await _decrypted(options, envelope.event_name, data)
    changes: list[Change] = []
    sweeps: list[Sweep] = []
    for w in writes_for(projection, envelope, data):
        if isinstance(w, Sweep):
            sweeps.append(w)
        else:
            changes.append(
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
    return stream, envelope.aggregate_version, moment, changes, sweeps


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


def _record_retrying(options: Options) -> AsyncRetrying:
    """A failing record: `options.attempts` tries in all, pauses doubling from `backoff_s`;
    KeyUnavailable (only raised when stopping) is not retried."""
    return AsyncRetrying(
        retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(KeyUnavailable),
        stop=stop_after_attempt(options.attempts),
        wait=doubling(options.backoff_s),
        reraise=True,
    )


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
            stream, version, moment, changes, sweeps = await retried(
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
        out.changes += changes
        out.sweeps += sweeps
        if projection.tracks(stream):
            out.versions[stream] = max(version, out.versions.get(stream, 0))
        out.newest_event_time = max(moment, out.newest_event_time or moment)
    return out


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


async def park(
    db: DB,
    producer: AIOKafkaProducer | None,
    projection: Projection,
    generations: Iterable[int],
    prepared: Prepared,
    options: Options,
) -> None:
    """Mark the parked versions (so a re-drive may apply them out of order), then publish
    them to the DLQ (None: the rebuild, whose poison the live projector parked already)."""
    for record, error in prepared.poison:
        key = dlq.stream_and_version(record)
        if key is not None:
            stream, version = key
            for generation in generations:
                await mark_parked(
                    db, projection.name, generation, stream_key(record.topic, stream), version
                )
        if producer is not None:
            await dlq.publish(producer, projection.group, record, error, options.attempts)
            metrics.DLQ.labels(projection.name).inc()
        log.warning("parked %s[%d]@%d: %r", record.topic, record.partition, record.offset, error)


async def apply_prepared(
    db: DB,
    projection: Projection,
    generation: int,
    prepared: Prepared,
    options: Options,
    guard: bool,
    known: Known | None = None,
) -> None:
    """Write one batch into one generation, then its progress. A lost race is planned again
    at once; a store failure is retried with backoff until it works or `stop` is set (then
    it raises: nothing gets committed)."""
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
                    await _write(db, projection, generation, prepared, options, guard, known)
                    return
                except LostRace as error:
                    log.info("lost a race (%s): planning the batch again", error)


async def _write(
    db: DB,
    projection: Projection,
    generation: int,
    prepared: Prepared,
    options: Options,
    guard: bool,
    known: Known | None,
) -> None:
    parked: set[tuple[str, int]] = set()
    redriven = {stream_key(c.topic, c.stream): c.stream for c in prepared.changes if c.redrive}
    if redriven:
        parked = await parked_versions(db, projection.name, generation, redriven)
    sent = await apply_changes(
        db,
        generation,
        prepared.changes,
        guard=guard,
        chunk=options.chunk,
        parked=parked,
        known=known,
    )
    for sweep in prepared.sweeps:
        await db[physical(sweep.collection, generation)].update_many(
            dict(sweep.filter), dict(sweep.update)
        )
    await record_progress(
        db, projection.name, generation, untracked(projection, prepared), options.chunk
    )
    metrics.UPDATES.labels(projection.name).inc(sent)


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


class _Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Give a partition up only between batches: the lock is held while a batch is written
    and committed, so the next owner starts after our commit, never beside our writes."""

    def __init__(self, lock: asyncio.Lock, joined_tps: set[tuple[int, TopicPartition]]) -> None:
        self.lock = lock
        self.joined = joined_tps

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.lock:
            gone = set(revoked)
            self.joined -= {item for item in self.joined if item[1] in gone}

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None


async def join_generations(
    db: DB,
    consumer: AIOKafkaConsumer,
    projection: Projection,
    alias: Alias,
    done: set[tuple[int, TopicPartition]],
) -> None:
    """Before writing a rebuilt generation for a partition, make sure it misses nothing: the
    rebuild filled it up to `complete[tp]`; if our position is past that, go back there (and
    commit it, so a successor starts there too) — the replay is a no-op for the other
    generation. Recorded in `_generations` so the rebuild knows when it may swap."""
    for generation in alias.targets():
        complete = alias.complete.get(generation)
        if complete is None:
            continue  # generation 1: the live projector built it from the start
        for tp in consumer.assignment():
            if (generation, tp) in done:
                continue
            key = tp_key(tp.topic, tp.partition)
            if key not in await joined(db, projection.name, generation):
                upto = complete.get(key, 0)
                if await consumer.position(tp) > upto:
                    consumer.seek(tp, upto)
                    await consumer.commit({tp: upto})
                await mark_joined(db, projection.name, generation, key)
            done.add((generation, tp))


async def run(db: DB, projection: Projection, options: Options) -> None:
    """Consume until `options.stop` is set (at-least-once, idempotent, commit after writes)."""
    await ensure_topics(
        options.bootstrap_servers, [dlq.dlq_declaration(projection.group, options.dlq_partitions)]
    )
    store = await resolve_store(db, options)
    lock = asyncio.Lock()
    done: set[tuple[int, TopicPartition]] = set()
    indexed: set[int] = set()  # generations whose declared indexes exist (or are not wanted)
    known = Known()  # documents that exist: no optimistic insert for them (apply.py)
    alias: Alias | None = None
    alias_read = 0.0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=options.bootstrap_servers,
        group_id=projection.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=options.max_records,
        fetch_max_wait_ms=options.fetch_max_wait_ms,
    )
    consumer.subscribe(list(projection.topics), listener=_Ownership(lock, done))
    producer = AIOKafkaProducer(
        bootstrap_servers=options.bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await producer.start()
    await consumer.start()
    # the batch being written and committed while the next one is fetched and decoded
    inflight: asyncio.Task[None] | None = None

    async def settle() -> None:
        nonlocal inflight
        if inflight is not None:
            task, inflight = inflight, None
            await task  # a failed write raises here: nothing after it is committed

    async def handle(
        alias: Alias, batch: Mapping[TopicPartition, list[Record]], prepared: Prepared
    ) -> None:
        async with lock:
            await _handle(
                db,
                consumer,
                producer,
                projection,
                alias,
                batch,
                done,
                options,
                store.guard,
                known,
                prepared,
            )

    try:
        while not options.stop.is_set():
            stale = alias is None or time.monotonic() - alias_read > ALIAS_REFRESH_S
            if stale or alias is None or not joined_everywhere(consumer, alias, done):
                await settle()  # a join may seek: never beside a batch in flight
                async with lock:
                    if stale or alias is None:
                        alias, alias_read = await read_alias(db, projection.name), time.monotonic()
                    metrics.GENERATION.labels(projection.name).set(alias.active)
                    for generation in set(alias.targets()) - indexed:
                        if store.indexes:
                            await ensure_indexes(db, generation, projection.indexes)
                        indexed.add(generation)
                    await join_generations(db, consumer, projection, alias, done)
            batch = await consumer.getmany(timeout_ms=options.poll_ms)
            if not batch:
                continue
            # decoded while the batch before it is still being written (handlers are pure;
            # _handle decodes again only what a rebalance left out)
            records = [r for rs in batch.values() for r in rs]
            prepared = await prepare(projection, records, options)
            await settle()  # batches are written one after the other, in order
            inflight = asyncio.create_task(handle(alias, batch, prepared))
            if len(alias.targets()) > 1:
                await settle()  # a rebuild is joining: one batch at a time, as it expects
    finally:
        try:
            await settle()
        finally:
            await consumer.stop()
            await producer.stop()


def joined_everywhere(
    consumer: AIOKafkaConsumer, alias: Alias, done: set[tuple[int, TopicPartition]]
) -> bool:
    """Whether every assigned partition has joined every generation a rebuild completed (so
    join_generations has nothing to do)."""
    waiting = [g for g in alias.targets() if alias.complete.get(g) is not None]
    return all((g, tp) in done for g in waiting for tp in consumer.assignment())


async def _handle(
    db: DB,
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    projection: Projection,
    alias: Alias,
    batch: Mapping[TopicPartition, list[Record]],
    done: set[tuple[int, TopicPartition]],
    options: Options,
    guard: bool,
    known: Known | None = None,
    prepared: Prepared | None = None,
) -> None:
    """Write one batch (`prepared`: the whole batch decoded already) into the generations
    the alias names and commit it, for the partitions still ours and joined."""
    assigned = consumer.assignment()
    ready: dict[TopicPartition, list[Record]] = {}
    for tp, records in batch.items():
        joined_all = all(
            (g, tp) in done for g in alias.targets() if alias.complete.get(g) is not None
        )
        if tp in assigned and joined_all:
            ready[tp] = records
        elif tp in assigned:
            consumer.seek(tp, records[0].offset)  # fetched before joining: read them again
    if not ready:
        return
    records = [r for rs in ready.values() for r in rs]
    if prepared is None or len(ready) < len(batch):
        prepared = await prepare(projection, records, options)
    generations = alias.targets()
    await park(db, producer, projection, generations, prepared, options)
    for generation in generations:
        await apply_prepared(db, projection, generation, prepared, options, guard, known)
    offsets = {tp: rs[-1].offset + 1 for tp, rs in ready.items()}
    await consumer.commit(offsets)
    report(consumer, projection, offsets, prepared, len(records))


def report(
    consumer: AIOKafkaConsumer,
    projection: Projection,
    offsets: Mapping[TopicPartition, int],
    prepared: Prepared,
    consumed: int,
) -> None:
    name = projection.name
    metrics.EVENTS.labels(name, "parked").inc(len(prepared.poison))
    metrics.EVENTS.labels(name, "applied").inc(consumed - len(prepared.poison))
    if prepared.newest_event_time is not None:
        metrics.LAG_SECONDS.labels(name).set(max(0.0, time.time() - prepared.newest_event_time))
    for tp, offset in offsets.items():
        labels = (name, tp.topic, str(tp.partition))
        metrics.POSITION.labels(*labels).set(offset)
        end = consumer.highwater(tp)
        if end is not None:
            metrics.CONSUMER_LAG.labels(*labels).set(max(0, end - offset))
