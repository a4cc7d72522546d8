"""The orchestrator's inputs from Kafka: UserRegistered on `auth.events` starts a saga; replies
on `registration-saga.replies` move it on. One consumer group, at-least-once: offsets are
committed after the transactions that acted on the records (a redelivered trigger finds its
saga and does nothing; a redelivered reply no longer matches the current action).

Where a new consumer group starts: at the end of both topics, pinned by a commit before the
service reports ready. Registrations older than the saga's first deployment went through the
flow before it, and replaying them would send their accounts through the saga a second time
(new codes, compensations of finished accounts); every later restart resumes from the
committed offsets, so nothing after that first moment is skipped. `make up` (and a Kubernetes
readiness probe) waits for that readiness, so no registration can slip in before the pin.

A record that cannot be read is parked on `registration-saga.dlq` with the reason and the
partition keeps flowing; other auth events are none of the saga's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from parley_messaging import dlq
from parley_messaging.envelope import Envelope, InvalidEnvelope, decode
from parley_messaging.fetching import LIVE_FETCH_MAX_WAIT_MS
from parley_messaging.inorder import InKeyOrder
from parley_messaging.saga import DECOY_NAME, reply_of
from parley_messaging.security import kafka_security
from parley_messaging.supervise import keep_running
from parley_messaging.topics import SAGA_GROUP, events_topic

from parley_registration_saga.orchestrator import Orchestrator

log = logging.getLogger("parley.saga.consumer")
TRIGGER_TOPIC = events_topic("auth")
CONCURRENCY = 16  # sagas handled at once (each holds a pooled connection for a transaction)


async def consume(
    orchestrator: Orchestrator,
    bootstrap_servers: str,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=SAGA_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=LIVE_FETCH_MAX_WAIT_MS,
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
        **kafka_security(),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", **kafka_security())

    async def apply_one(record: ConsumerRecord[bytes, bytes]) -> None:
        await apply(orchestrator, record, producer)

    # one saga's records (key = account id) in order; different sagas at once; at a rebalance
    # the saga steps in flight finish (or are left to the next owner) before the hand-over
    sagas = InKeyOrder(consumer, apply_one, max_in_flight=CONCURRENCY)
    sagas.subscribe([TRIGGER_TOPIC, orchestrator.reply_to])
    await producer.start()
    try:
        await consumer.start()
        try:
            await _pin_positions(consumer, stop)
            if ready is not None:
                ready.set()
            await sagas.run(stop)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


async def _pin_positions(consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
    """Wait for the first assignment and commit its positions (for a new group: the ends of the
    topics), so the starting point no longer depends on when the first fetch happens."""
    while not consumer.assignment() and not stop.is_set():
        # joins the group; a group that has committed before may already fetch a record here,
        # so each partition is put back to its first fetched record (it must not be skipped)
        fetched = await consumer.getmany(timeout_ms=100, max_records=1)
        for partition, records in fetched.items():
            if records:
                consumer.seek(partition, records[0].offset)
    assignment = consumer.assignment()
    positions = {tp: await consumer.position(tp) for tp in assignment}
    if positions:
        await consumer.commit(positions)


async def apply(
    orchestrator: Orchestrator,
    record: ConsumerRecord[bytes, bytes],
    producer: AIOKafkaProducer | None = None,
) -> None:
    try:
        envelope = decode(record.headers, record.value)
        if record.topic == TRIGGER_TOPIC:
            await _trigger(orchestrator, envelope)
        elif envelope.event_name == DECOY_NAME:
            await orchestrator.shadow(envelope.subject)
        else:
            await orchestrator.on_reply(reply_of(envelope))
    except (InvalidEnvelope, ValueError, KeyError, TypeError) as error:
        log.warning("parked %s/%s/%s: %s", record.topic, record.partition, record.offset, error)
        if producer is not None:
            await dlq.publish(producer, SAGA_GROUP, record, error, attempts=1)


async def _trigger(orchestrator: Orchestrator, envelope: Envelope) -> None:
    if envelope.event_name != "UserRegistered":
        return
    data = json.loads(envelope.data)
    await orchestrator.start(
        str(data["user_id"]), str(data["email"]), str(data["name"]), envelope.traceparent
    )


async def timers(orchestrator: Orchestrator, tick: float, stop: asyncio.Event) -> None:
    """Fire due deadlines every `tick` seconds (deadlines live in PostgreSQL: they survive
    restarts, and a resumed orchestrator acts on whatever fell due while it was down)."""
    while not stop.is_set():
        try:
            while await orchestrator.fire_due() > 0:
                pass
        except Exception:
            log.exception("saga timer failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=tick)


async def run_forever(
    orchestrator: Orchestrator,
    bootstrap_servers: str,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    await keep_running(
        "saga consumer",
        lambda: consume(orchestrator, bootstrap_servers, stop, ready),
        stop,
        max_pause_s=10.0,
    )
