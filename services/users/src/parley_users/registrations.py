"""Profiles for new accounts: `auth.events` UserRegistered -> CreateUser.

Interim until the registration saga (issue 6) sends the same command over `users.commands`:
a consumer group of its own, at-least-once (the offset is committed after the command), and
idempotent (a profile that exists already is the outcome we want). A record that cannot be
decoded is logged and skipped: it never stops the partition (the envelope codec and the
committed schemas make that a bug of the producer, not data this consumer can repair).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiokafka import AIOKafkaConsumer
from parley_eventstore.aggregate import Repository
from parley_eventstore.records import Metadata
from parley_messaging.envelope import InvalidEnvelope, decode

from parley_users.domain import User, UserAlreadyExists
from parley_users.handlers import Context, CreateUser, handle

log = logging.getLogger("parley.users.registrations")
GROUP = "users-registrations"
TOPIC = "auth.events"


def command_for(event_name: str, data: dict[str, object]) -> CreateUser | None:
    if event_name != "UserRegistered":
        return None
    return CreateUser(str(data["user_id"]), str(data["name"]), str(data["email"]))


async def consume(users: Repository[User], bootstrap_servers: str, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap_servers,
        group_id=GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=200)
            for records in batch.values():
                for record in records:
                    await apply(users, record.headers, record.value, record.key)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()


async def apply(
    users: Repository[User],
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
    value: bytes | None,
    key: bytes | None,
) -> None:
    try:
        envelope = decode(headers, value)
        command = command_for(envelope.event_name, json.loads(envelope.data))
    except (InvalidEnvelope, ValueError, KeyError, TypeError) as error:
        log.warning("skipped an undecodable auth.events record (key %r): %s", key, error)
        return
    if command is None:
        return
    metadata = Metadata(
        correlation_id=envelope.correlation_id or envelope.id, causation_id=envelope.id
    )
    # a profile created before (a redelivery, or an admin) is the outcome we want
    with contextlib.suppress(UserAlreadyExists):
        await handle(users, command, Context(metadata, f"users.from-auth:{envelope.id}"))


async def run_forever(users: Repository[User], bootstrap_servers: str, stop: asyncio.Event) -> None:
    """Keep consuming across Kafka outages (supervised by the service's lifespan)."""
    pause = 0.5
    while not stop.is_set():
        try:
            await consume(users, bootstrap_servers, stop)
        except Exception:  # Kafka away or a store error: log, back off, start again
            log.exception("registrations consumer failed; restarting in %.1fs", pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)
