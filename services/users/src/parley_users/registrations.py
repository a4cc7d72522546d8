"""The users context follows the auth context: `auth.events` ->
- RoleChanged -> AssignRole (the role shown by the users read model),
- UserEmailChanged -> ChangeEmail (the profile's address),
- RegistrationCancelled -> Deactivate (the profile the saga made leaves searches and contact
  lists: auth cancels a registration whose address was never verified in time, and the
  saga's own compensation, which deactivated it already, appends nothing more);
and carries out the chat context's moderation: `chat.events` ->
- ReportResolved with action `deactivate_user` -> Deactivate the reported message's sender
  (the users context owns account status; chat only records the admin's decision).

Direction of truth: auth decides who may log in and the role inside access tokens; the users
context mirrors role and address for queries (search, `GET /v1/users/...`, role stats). An
admin's `PUT /v1/users/{id}/role` changes only the mirror; the next RoleChanged wins.

Profiles themselves are created by the registration saga (`users.commands`, see saga.py).
A consumer group of its own, at-least-once (the offset is committed after
the command), idempotent: the command's idempotency key is the auth event's id, a profile that
exists already is the outcome we want, and role/address commands append nothing when nothing
changes. One account's events share a partition (key = user id), so they arrive in order. A
record that cannot be decoded, or names a user without a profile, is logged and skipped: it
never stops the partition (the envelope codec and the committed schemas make that a bug of
the producer, not data this consumer can repair).
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from parley_commandkit import Context
from parley_eventstore.aggregate import Repository
from parley_eventstore.records import Metadata
from parley_messaging.envelope import InvalidEnvelope, decode
from parley_messaging.inorder import consume_in_key_order, one_at_a_time
from parley_messaging.security import kafka_security
from parley_messaging.supervise import keep_running
from parley_privacy.fields import FieldCipher
from parley_privacy.keys import KeyUnavailable

from parley_users.commands import AssignRole, ChangeEmail, Deactivate
from parley_users.domain import User, UserNotFound
from parley_users.handlers import handle

log = logging.getLogger("parley.users.registrations")
GROUP = "users-registrations"
TOPICS = ("auth.events", "chat.events")
# the events acted on: anything else (most of chat.events) is skipped before decrypting
FOLLOWED = frozenset({"RoleChanged", "UserEmailChanged", "RegistrationCancelled", "ReportResolved"})
REGISTRATION_CANCELLED = "registration_cancelled"  # the saga's compensation's reason too


Command = AssignRole | ChangeEmail | Deactivate


def command_for(event_name: str, data: dict[str, object]) -> Command | None:
    match event_name:
        case "ReportResolved":
            if data["action"] != "deactivate_user":
                return None
            reason = f"reported message {data['message_id']} (report {data['report_id']})"
            return Deactivate(str(data["sender_id"]), reason)
        case "RoleChanged":
            role = data["role"]
            if role not in ("user", "admin"):
                raise ValueError(f"unknown role {role!r}")
            return AssignRole(str(data["user_id"]), role)
        case "UserEmailChanged":
            return ChangeEmail(str(data["user_id"]), str(data["email"]))
        case "RegistrationCancelled":
            return Deactivate(str(data["user_id"]), REGISTRATION_CANCELLED)
    return None


async def consume(
    users: Repository[User], cipher: FieldCipher, bootstrap_servers: str, stop: asyncio.Event
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_security(),
    )

    async def apply_one(record: ConsumerRecord[bytes, bytes]) -> None:
        await apply(users, cipher, record.headers, record.value, record.key)

    await consumer.start()
    try:
        # one record after the other, as fetched; at a rebalance the command in flight
        # finishes and is committed before the partitions are handed over
        # (parley_messaging.inorder: a commit after they had gone restarted this consumer)
        await consume_in_key_order(consumer, TOPICS, apply_one, stop, order=one_at_a_time)
    finally:
        await consumer.stop()


async def apply(
    users: Repository[User],
    cipher: FieldCipher,
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
    value: bytes | None,
    key: bytes | None,
) -> None:
    try:
        envelope = decode(headers, value)
        if envelope.event_name not in FOLLOWED:
            return
        # personal fields (email, name) arrive encrypted: decrypt with the subject's key
        # (a forgotten subject's come back as placeholders; KeyUnavailable restarts the
        # consumer from the last commit, as a store error does)
        # (a plaintext one is refused as tampered: skipped like an undecodable record)
        data = await cipher.consume(envelope.event_name, json.loads(envelope.data))
        if data.get("_redacted"):
            log.info("skipped %s of a forgotten subject", envelope.event_name)
            return
        command = command_for(envelope.event_name, data)
    except KeyUnavailable:
        raise
    except (InvalidEnvelope, ValueError, KeyError, TypeError) as error:
        log.warning("skipped an undecodable record (key %r): %s", key, error)
        return
    if command is None:
        return
    metadata = Metadata(
        correlation_id=envelope.correlation_id or envelope.id, causation_id=envelope.id
    )
    try:
        # the event's id keys the command: a redelivery appends nothing
        await handle(users, command, Context(metadata, f"users.from-auth:{envelope.id}"))
    except UserNotFound:
        # an account whose profile was never made (e.g. created before this consumer existed)
        log.warning("skipped %s for %s: no profile", envelope.event_name, envelope.subject)


async def run_forever(
    users: Repository[User], cipher: FieldCipher, bootstrap_servers: str, stop: asyncio.Event
) -> None:
    """Keep consuming across Kafka outages (supervised by the service's lifespan)."""
    await keep_running(
        "registrations consumer", lambda: consume(users, cipher, bootstrap_servers, stop), stop
    )
