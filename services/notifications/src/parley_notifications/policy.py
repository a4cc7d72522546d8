"""The notification policy: a consumer inside the service process (group
`notifications-policy`, like the users service's registrations consumer).

- users.events UserCreated / UserProfileEmailChanged -> the `directory` table (where to mail);
- users.events UserBlocked / UserUnblocked -> the `blocks` table (whom each person blocks);
- chat.events MessageSent -> for each recipient (`recipient_ids`: the participants other than
  the sender when the message was sent, computed by the chat command side) who does not
  block the sender, unless the recipient muted the conversation (and, when the message
  mentions them, its mentions too) or turned in-app off: CreateNotification (`mention` set
  when the message's `mentions` name them); then, when the recipient turned email on, a mail
  through SMTP and NotificationEmailed.

At-least-once: an offset is committed after its record's commands, so a crash redelivers. That is
harmless: the notification id is uuid5(message id, recipient), creating an existing one is a
no-op, and a notification already marked emailed is not mailed again. The one window left: a
crash after the SMTP server took the mail and before NotificationEmailed was appended mails
twice (documented in docs/decisions.md; exactly-once across SMTP is not possible).

A record that cannot be decoded or lacks a field is logged and skipped: it never stops the
partition. A store or Kafka error restarts the consumer from the last commit (with backoff).
An SMTP server that refuses or is away is retried a few times, then the mail is given up
(logged; the in-app notification stays), so a dead SMTP server never blocks notifications.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from parley_commandkit import Context
from parley_eventstore.records import Metadata
from parley_messaging.envelope import Envelope, InvalidEnvelope, decode
from parley_messaging.fetching import LIVE_FETCH_MAX_WAIT_MS
from parley_messaging.inorder import by_partition, consume_in_key_order
from parley_messaging.retrying import doubling
from parley_messaging.security import kafka_security
from parley_messaging.supervise import keep_running
from parley_observability.tracing import child_span, current_traceparent
from parley_privacy.envelope import TamperedValue
from parley_privacy.fields import REDACTED, FieldCipher
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from parley_notifications.blocks import Blocks
from parley_notifications.commands import CreateNotification, MarkEmailed
from parley_notifications.directory import Directory
from parley_notifications.domain import (
    Notification,
    Preferences,
    decide_delivery,
    notification_id,
    preview_of,
)
from parley_notifications.handlers import Repositories, handle
from parley_notifications.mail import message_mail

log = logging.getLogger("parley.notifications.policy")
CHAT_TOPIC = "chat.events"
USERS_TOPIC = "users.events"


class Store(Protocol):
    """What the policy needs of the write side (the event store, or a fake in unit tests)."""

    async def preferences(self, user_id: str) -> Preferences: ...
    async def notification(self, notification_id: str) -> Notification: ...
    async def run(self, command: object, ctx: Context) -> None: ...


class AddressBook(Protocol):
    async def remember(self, user_id: str, email: str, version: int) -> None: ...
    async def address(self, user_id: str) -> str | None: ...
    async def forget(self, user_id: str) -> None: ...


class BlockBook(Protocol):
    async def apply(self, blocker: str, blocked: str, active: bool, version: int) -> None: ...
    async def blockers_of(self, user_id: str) -> frozenset[str]: ...


class Sender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class EventStoreBackend:
    """`Store` on the real repositories."""

    def __init__(self, repos: Repositories) -> None:
        self.repos = repos

    async def preferences(self, user_id: str) -> Preferences:
        return await self.repos.preferences.load(user_id)

    async def notification(self, notification_id: str) -> Notification:
        return await self.repos.notifications.load(notification_id)

    async def run(self, command: object, ctx: Context) -> None:
        await handle(self.repos, command, ctx)


class Poison(ValueError):
    """A record this consumer can never handle (skipped, logged)."""


@dataclass(frozen=True)
class Message:
    conversation_id: str
    message_id: str
    sender_id: str
    content: str
    recipient_ids: tuple[str, ...]
    mentions: frozenset[str] = frozenset()  # user ids the message mentions


def message_of(data: dict[str, Any]) -> Message | None:
    """The fields of a MessageSent; None when it names no recipients (an event written before
    the chat side added `recipient_ids`: whom to notify is unknown, so nobody is)."""
    try:
        recipients = data.get("recipient_ids")
        sender = str(data["sender_id"])
        message = Message(
            conversation_id=str(data["conversation_id"]),
            message_id=str(data["message_id"]),
            sender_id=sender,
            content=str(data["content"]),
            recipient_ids=tuple(dict.fromkeys(str(r) for r in recipients if str(r) != sender))
            if isinstance(recipients, list)
            else (),
            # absent in messages sent before mentions (and from older chat versions): none
            mentions=frozenset(str(m) for m in data.get("mentions") or ()),
        )
    except (KeyError, TypeError) as error:
        raise Poison(f"MessageSent without {error}") from error
    return message if isinstance(recipients, list) else None


MAIL_FAILURES = (aiosmtplib.SMTPException, OSError, TimeoutError)  # the SMTP server's


@dataclass
class Policy:
    store: Store
    directory: AddressBook
    mailer: Sender
    mail_from: str
    mail_attempts: int = 3
    mail_backoff_s: float = 0.5
    chat_topic: str = CHAT_TOPIC
    users_topic: str = USERS_TOPIC
    # decrypts personal fields (addresses, message texts); None: data taken as it is
    cipher: FieldCipher | None = None
    # who blocks whom (from users.events); None: nobody is blocked (unit tests)
    blocks: BlockBook | None = None

    async def apply(self, topic: str, envelope: Envelope) -> None:
        try:
            data = json.loads(envelope.data)
            if not isinstance(data, dict):
                raise Poison("event data is not an object")
        except ValueError as error:
            raise Poison(str(error)) from error
        name = envelope.event_name
        if self.cipher is not None and topic == self.chat_topic:
            # KeyUnavailable propagates: the consumer restarts. Addresses from users.events
            # are kept sealed as they came and opened only to send a mail (address_of): a
            # sign-up costs no key fetch here, and the directory holds no plaintext address.
            data = await self.cipher.consume(name, data)
        elif self.cipher is not None:
            self.cipher.require_sealed(name, data)  # never store a plaintext address
        redacted = data.get(REDACTED) or ()
        if topic == self.users_topic and name == "UserForgotten":
            await self.directory.forget(str(data.get("user_id")))
        elif topic == self.users_topic and name in ("UserCreated", "UserProfileEmailChanged"):
            try:
                user_id, email = str(data["user_id"]), str(data["email"])
            except KeyError as error:
                raise Poison(f"{name} without {error}") from error
            await self.directory.remember(user_id, email, envelope.aggregate_version or 0)
        elif topic == self.users_topic and name in ("UserBlocked", "UserUnblocked"):
            try:
                blocker, blocked = str(data["user_id"]), str(data["blocked_user_id"])
            except KeyError as error:
                raise Poison(f"{name} without {error}") from error
            if not envelope.aggregate_version:
                raise Poison(f"{name} without its stream version")
            if self.blocks is not None:
                active = name == "UserBlocked"
                await self.blocks.apply(blocker, blocked, active, envelope.aggregate_version)
        elif topic == self.chat_topic and name == "MessageSent":
            if "content" in redacted:
                log.info(
                    "MessageSent %s: its sender was forgotten, nobody notified",
                    data.get("message_id"),
                )
                return
            message = message_of(data)
            if message is None:
                log.warning(
                    "MessageSent %s has no recipient_ids: nobody notified", data.get("message_id")
                )
                return
            # the policy's work continues the message's trace (the relay's publish span), and
            # the notifications it records carry this span on to their own consumers
            span = child_span(
                f"notify {envelope.type}",
                envelope.traceparent,
                SpanKind.CONSUMER,
                {"messaging.system": "kafka", "messaging.destination.name": topic},
            )
            with trace.use_span(span, end_on_exit=True):
                metadata = Metadata(
                    correlation_id=envelope.correlation_id or envelope.id,
                    causation_id=envelope.id,
                    traceparent=current_traceparent(),
                )
                # whoever blocks the sender hears nothing of them, mentions included
                blockers = await self.blockers_of(message.sender_id)
                for recipient in message.recipient_ids:
                    if recipient not in blockers:
                        await self.deliver(message, recipient, metadata)

    async def blockers_of(self, sender_id: str) -> frozenset[str]:
        return frozenset() if self.blocks is None else await self.blocks.blockers_of(sender_id)

    async def address_of(self, user_id: str) -> str | None:
        """The person's address in plaintext; None when unknown or their key is gone (then
        the sealed leftover, e.g. from a replay after they were forgotten, is dropped)."""
        stored = await self.directory.address(user_id)
        if stored is None or self.cipher is None:
            return stored
        opened = await self.cipher.decrypt("UserCreated", {"user_id": user_id, "email": stored})
        if "email" in (opened.get(REDACTED) or ()):
            await self.directory.forget(user_id)
            return None
        return str(opened["email"])

    async def deliver(self, message: Message, recipient: str, metadata: Metadata) -> None:
        prefs = await self.store.preferences(recipient)
        mentioned = recipient in message.mentions
        delivery = decide_delivery(prefs, message.conversation_id, mentioned)
        if not delivery.in_app:
            return
        nid = notification_id(message.message_id, recipient)
        command = CreateNotification(
            nid,
            recipient,
            message.conversation_id,
            message.message_id,
            message.sender_id,
            message.content,
            mentioned,
        )
        await self.store.run(command, Context(metadata))
        if delivery.email:
            await self.mail(nid, recipient, message, metadata)

    async def mail(self, nid: str, recipient: str, message: Message, metadata: Metadata) -> None:
        notification = await self.store.notification(nid)
        if notification.emailed:
            return  # a redelivery: mailed before
        to = await self.address_of(recipient)
        if to is None:
            log.warning("no address for user %s: notification %s not mailed", recipient, nid)
            return
        mail = message_mail(self.mail_from, to, nid, preview_of(message.content))
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(MAIL_FAILURES),
                stop=stop_after_attempt(self.mail_attempts),
                wait=doubling(self.mail_backoff_s),
                reraise=True,
            ):
                with attempt:
                    await self.mailer.send(mail)
        except MAIL_FAILURES:
            log.exception("notification %s not mailed after %d attempts", nid, self.mail_attempts)
            return
        await self.store.run(MarkEmailed(nid), Context(metadata))


async def apply_record(
    policy: Policy,
    topic: str,
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
    value: bytes | None,
    key: bytes | None,
) -> None:
    try:
        envelope = decode(headers, value)
        await policy.apply(topic, envelope)
    except (InvalidEnvelope, Poison, TamperedValue) as error:
        log.warning("skipped a poison %s record (key %r): %s", topic, key, error)


async def consume(policy: Policy, bootstrap_servers: str, group: str, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=LIVE_FETCH_MAX_WAIT_MS,
        **kafka_security(),
    )

    async def apply_one(record: ConsumerRecord[bytes, bytes]) -> None:
        await apply_record(policy, record.topic, record.headers, record.value, record.key)

    await consumer.start()
    try:
        # partitions in parallel, each in order: a message (key = conversation) and all its
        # notifications live on one partition, a user's address changes on one users.events
        # partition, so no two tasks touch the same stream or row. At a rebalance the records
        # in flight finish (6 s at most, a mail's retries included; the group waits 10 s, the
        # session timeout) and are committed before a partition is handed over
        # (parley_messaging.inorder: a commit after it had gone restarted this consumer)
        await consume_in_key_order(
            consumer,
            [policy.chat_topic, policy.users_topic],
            apply_one,
            stop,
            order=by_partition,
            drain_s=6.0,
        )
    finally:
        await consumer.stop()


async def run_forever(
    policy: Policy, bootstrap_servers: str, group: str, stop: asyncio.Event
) -> None:
    """Keep consuming across Kafka or store outages (supervised by the service's lifespan)."""
    # Kafka away or a store error: log, back off, start again from the committed offsets
    await keep_running(
        "notification policy", lambda: consume(policy, bootstrap_servers, group, stop), stop
    )


def wired(
    repos: Repositories, pool: Any, mailer: Sender, mail_from: str, cipher: FieldCipher
) -> Policy:
    """The policy over the service's repositories and its database's address book and blocks."""
    return Policy(
        EventStoreBackend(repos),
        Directory(pool),
        mailer,
        mail_from,
        cipher=cipher,
        blocks=Blocks(pool),
    )
