"""The participant side of a saga: consume `<context>.commands`, run the handler, always reply.

- Idempotent by command id: a `CommandLog` (the participant's own database) keeps the reply of
  every command handled; a redelivered or retried command gets the stored reply again and its
  handler does not run twice. Handlers that append events also pass the command id as the
  event store's idempotency key, so a crash between the effect and the log entry still
  applies the effect once.
- Always replies: `Rejected` from the handler -> `rejected` (the orchestrator compensates);
  any other exception -> `failed` (the orchestrator retries with backoff); success ->
  `succeeded` with the handler's result. Only `succeeded` and `rejected` are logged as final.
- Concurrent across subjects, in order within one (parley_messaging.inorder): up to
  `concurrency` commands at once, one account's in order, none waiting for a batch, so one
  slow command (an SMTP server, an HTTP call) does not hold up the others.
- At-least-once: an offset is committed once its command was answered (replies are sent with
  acks=all before the handler's task ends). A record
  that is not a saga command at all (no reply address) cannot be answered: it is parked on
  `<group>.dlq` with the reason, and the partition keeps flowing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from parley_messaging import dlq
from parley_messaging.envelope import InvalidEnvelope
from parley_messaging.fetching import LIVE_FETCH_MAX_WAIT_MS
from parley_messaging.inorder import consume_in_key_order
from parley_messaging.saga import (
    Rejected,
    SagaCommand,
    SagaReply,
    decode_command,
    reply_record,
)
from parley_messaging.security import kafka_security
from parley_messaging.supervise import keep_running
from parley_messaging.topics import commands_topic

log = logging.getLogger("parley.saga.participant")

Handler = Callable[[SagaCommand], Awaitable[Mapping[str, Any] | None]]


class CommandLog(Protocol):
    async def reply_of(self, command_id: str) -> SagaReply | None: ...

    async def remember(self, reply: SagaReply) -> None: ...


async def handle(
    command: SagaCommand, handlers: Mapping[str, Handler], commands: CommandLog | None
) -> SagaReply:
    """The reply to one command (the stored one for a command seen before)."""
    if commands is not None:
        earlier = await commands.reply_of(command.id)
        if earlier is not None:
            return earlier
    handler = handlers.get(command.name)
    try:
        if handler is None:
            raise Rejected(f"{command.context} does not handle {command.name}")
        result = await handler(command)
        reply = _reply(command, "succeeded", result=result or {})
    except Rejected as refusal:
        reply = _reply(command, "rejected", reason=refusal.reason)
    except Exception as error:  # reported to the orchestrator, which retries; logged here
        log.exception("saga command %s %s failed", command.name, command.id)
        return _reply(command, "failed", reason=f"{type(error).__name__}: {error}"[:500])
    if commands is not None:
        await commands.remember(reply)
    return reply


def _reply(
    command: SagaCommand, outcome: Any, *, reason: str = "", result: Mapping[str, Any] = {}
) -> SagaReply:
    return SagaReply(
        command_id=command.id,
        context=command.context,
        subject=command.subject,
        saga_id=command.saga_id,
        outcome=outcome,
        reason=reason,
        result=dict(result),
    )


async def serve(
    context: str,
    handlers: Mapping[str, Handler],
    bootstrap_servers: str,
    stop: asyncio.Event,
    *,
    commands: CommandLog | None = None,
    group: str | None = None,
    session_timeout_ms: int = 6000,
    concurrency: int = 32,
) -> None:
    """Answer `<context>.commands` until `stop` is set (one consumer group per participant)."""
    group = group or f"{context}-saga-participant"
    source = f"/parley/{context}"
    consumer = AIOKafkaConsumer(  # subscribed by consume_in_key_order (its rebalance listener)
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=LIVE_FETCH_MAX_WAIT_MS,
        # a restarted participant rejoins quickly: the orchestrator's step timeout is seconds
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=min(2000, session_timeout_ms // 3),
        **kafka_security(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        **kafka_security(),
    )
    await producer.start()
    try:
        await consumer.start()
        try:

            async def answer(record: ConsumerRecord[bytes, bytes]) -> None:
                await _answer(record, handlers, commands, producer, source, group)

            # a hand-over at a rebalance waits for commands in flight at most a third of the
            # session (the group's rebalance timeout), then leaves the rest to the next owner
            await consume_in_key_order(
                consumer,
                [commands_topic(context)],
                answer,
                stop,
                max_in_flight=concurrency,
                drain_s=session_timeout_ms / 3000,
            )
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


async def _answer(
    record: ConsumerRecord[bytes, bytes],
    handlers: Mapping[str, Handler],
    commands: CommandLog | None,
    producer: AIOKafkaProducer,
    source: str,
    group: str,
) -> None:
    try:
        command = decode_command(record.headers, record.value)
    except InvalidEnvelope as error:
        log.warning(
            "parked an undecodable command at %s/%s: %s", record.topic, record.offset, error
        )
        await dlq.publish(producer, group, record, error, attempts=1)
        return
    reply = await handle(command, handlers, commands)
    key, headers, value = reply_record(reply, source)
    await producer.send_and_wait(command.reply_to, value=value, key=key, headers=headers)


async def serve_forever(
    context: str,
    handlers: Mapping[str, Handler],
    bootstrap_servers: str,
    stop: asyncio.Event,
    *,
    commands: CommandLog | None = None,
) -> None:
    """`serve`, restarted with backoff across Kafka outages (run by a service's lifespan)."""
    await keep_running(
        f"{context} saga participant",
        lambda: serve(context, handlers, bootstrap_servers, stop, commands=commands),
        stop,
        max_pause_s=10.0,
    )
