"""Auth follows the users context's account status: `users.events` `UserStatusChanged` ->
FollowUserStatus (recovery.follow_user_status): `deactivated` refuses login and refresh and
ends every session, `active` lets the person log in again.

Direction of truth: an admin changes the status in the users context (`POST
/v1/users/{id}/deactivate|reactivate`); auth enforces it. Learning it from the event rather
than from a call keeps users-api free of auth's availability, and a deactivation made while
auth is down takes effect when it is back (the consumer resumes from its committed offset).

A consumer group of its own (`auth-user-status`), at-least-once (offsets committed after the
batch's commands), idempotent by stream version: the account records the users stream
version of the last status change it applied (`ce_aggregateversion`) and ignores one it has
seen, so redeliveries and replays from the beginning change nothing. One person's events share
a partition (key = user id), so they arrive in order. Records that cannot be decoded, or name
a profile auth has no account for (an admin-made profile), are logged and skipped: they never
stop the partition. A store error restarts the consumer from the last commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer
from parley_commandkit import Context
from parley_eventstore.records import Metadata
from parley_messaging.envelope import InvalidEnvelope, decode
from parley_messaging.fetching import LIVE_FETCH_MAX_WAIT_MS
from parley_messaging.security import kafka_security
from parley_messaging.supervise import keep_running

from parley_auth import handlers as h
from parley_auth.commands import FollowUserStatus
from parley_auth.domain import AccountNotFound

log = logging.getLogger("parley.auth.statuses")
GROUP = "auth-user-status"
TOPIC = "users.events"
STATUSES = ("active", "deactivated")

Headers = Sequence[tuple[str, bytes]]


def command_for(
    event_name: str, data: object, stream_version: int | None
) -> FollowUserStatus | None:
    """The command a users event asks of auth (None: not auth's business); ValueError for a
    status change auth cannot apply (no version to be idempotent by, unknown status)."""
    if event_name != "UserStatusChanged":
        return None
    if not isinstance(data, dict):
        raise ValueError("event data is not an object")
    status = data.get("status")
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    if not stream_version or stream_version < 1:
        raise ValueError("no ce_aggregateversion")
    return FollowUserStatus(str(data["user_id"]), str(status), stream_version)


async def apply(auth: h.Auth, headers: Headers, value: bytes | None, key: bytes | None) -> None:
    try:
        envelope = decode(headers, value)
        command = command_for(
            envelope.event_name, json.loads(envelope.data), envelope.aggregate_version
        )
    except (InvalidEnvelope, ValueError, KeyError, TypeError) as error:
        log.warning("skipped an undecodable users.events record (key %r): %s", key, error)
        return
    if command is None:
        return
    metadata = Metadata(
        correlation_id=envelope.correlation_id or envelope.id,
        causation_id=envelope.id,
        actor="users-status",
        traceparent=envelope.traceparent,
    )
    try:
        await h.handle(auth, command, Context(metadata))
    except AccountNotFound:
        log.info("skipped %s for %s: no account", envelope.event_name, envelope.subject)


async def consume(auth: h.Auth, bootstrap_servers: str, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap_servers,
        group_id=GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=LIVE_FETCH_MAX_WAIT_MS,  # a deactivation should bite at once
        **kafka_security(),
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=200)
            for records in batch.values():
                for record in records:
                    await apply(auth, record.headers, record.value, record.key)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()


async def run_forever(auth: h.Auth, bootstrap_servers: str, stop: asyncio.Event) -> None:
    """Keep consuming across Kafka outages (supervised by the service's lifespan)."""
    await keep_running("user status consumer", lambda: consume(auth, bootstrap_servers, stop), stop)
