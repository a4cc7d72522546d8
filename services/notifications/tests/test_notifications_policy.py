"""The policy's decisions on fakes (no Kafka, no database, no SMTP): who is notified, who is
mailed, and that a redelivered message changes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_notifications.domain import Notification, Preferences, notification_id
from parley_notifications.handlers import (
    Context,
    CreateNotification,
    MarkEmailed,
    UpdatePreferences,
)
from parley_notifications.policy import Policy, apply_record


class FakeStore:
    def __init__(self) -> None:
        self.prefs: dict[str, Preferences] = {}
        self.notes: dict[str, Notification] = {}
        self.appended: list[object] = []

    async def preferences(self, user_id: str) -> Preferences:
        return self.prefs.get(user_id) or Preferences(user_id)

    async def notification(self, nid: str) -> Notification:
        return self.notes.get(nid) or Notification(nid)

    async def run(self, command: object, ctx: Context) -> None:
        match command:
            case CreateNotification() as c:
                n = self.notes.setdefault(c.notification_id, Notification(c.notification_id))
                n.create(
                    c.user_id, c.conversation_id, c.message_id, c.sender_id, c.content, c.mention
                )
            case MarkEmailed() as c:
                n = self.notes[c.notification_id]
                n.mark_emailed()
            case UpdatePreferences() as c:
                n = self.prefs.setdefault(c.user_id, Preferences(c.user_id))
                n.update(c.in_app, c.email, c.muted_conversations, c.muted_mentions)
        self.appended.extend(n.pending)
        n.mark_saved(n.next_version)


class FakeDirectory:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, int]] = {}

    async def remember(self, user_id: str, email: str, version: int) -> None:
        if user_id not in self.rows or self.rows[user_id][1] < version:
            self.rows[user_id] = (email, version)

    async def address(self, user_id: str) -> str | None:
        row = self.rows.get(user_id)
        return row[0] if row else None

    async def forget(self, user_id: str) -> None:
        self.rows.pop(user_id, None)


class FakeMailer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[EmailMessage] = []
        self.failures = failures

    async def send(self, message: EmailMessage) -> None:
        if self.failures:
            self.failures -= 1
            raise aiosmtplib.SMTPServerDisconnected("away")
        self.sent.append(message)


def record(context: str, event: str, subject: str, version: int, /, **data: Any) -> Any:
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source=f"/parley/{context}",
        type=ce_type(context, event, 1),
        subject=subject,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        data=json.dumps(data).encode(),
        aggregate_version=version,
    )
    return kafka_headers(header_map(envelope)), envelope.data


def message(recipients: list[str] | None = None, content: str = "hello bob") -> Any:
    data: dict[str, Any] = dict(
        conversation_id="c1", message_id="m1", seq=1, sender_id="ada", content=content
    )
    if recipients is not None:
        data["recipient_ids"] = recipients
    return record("chat", "MessageSent", "c1", 2, **data)


@pytest.fixture
def world() -> tuple[Policy, FakeStore, FakeDirectory, FakeMailer]:
    store, directory, mailer = FakeStore(), FakeDirectory(), FakeMailer()
    policy = Policy(store, directory, mailer, "Parley <p@x.test>", mail_backoff_s=0)
    return policy, store, directory, mailer


async def feed(policy: Policy, topic: str, rec: Any) -> None:
    headers, value = rec
    await apply_record(policy, topic, headers, value, b"k")


async def with_address(policy: Policy, user: str, email: str) -> None:
    await feed(
        policy,
        "users.events",
        record("users", "UserCreated", user, 1, user_id=user, name=user, email=email),
    )


async def set_prefs(store: FakeStore, user: str, **prefs: Any) -> None:
    p = dict(in_app=True, email=False, muted_conversations=[]) | prefs
    await store.run(UpdatePreferences(user, **p), None)  # type: ignore[arg-type]


async def test_each_recipient_gets_one_in_app_notification_by_default(world: Any) -> None:
    policy, store, _, mailer = world
    await feed(policy, "chat.events", message(["bob", "eve", "ada"]))
    assert {n.user_id for n in store.notes.values()} == {"bob", "eve"}  # never the sender
    assert notification_id("m1", "bob") in store.notes
    assert mailer.sent == []  # email is off by default


async def test_redelivery_creates_and_mails_nothing_new(world: Any) -> None:
    policy, store, _, mailer = world
    await with_address(policy, "bob", "bob@x.test")
    await set_prefs(store, "bob", email=True)
    store.appended.clear()
    for _ in range(3):
        await feed(policy, "chat.events", message(["bob"]))
    assert [type(e).__name__ for e in store.appended] == [
        "NotificationCreated",
        "NotificationEmailed",
    ]
    assert len(mailer.sent) == 1
    assert mailer.sent[0]["To"] == "bob@x.test"
    assert "hello bob" in mailer.sent[0].get_content()


async def test_muted_conversation_and_in_app_off_notify_nobody(world: Any) -> None:
    policy, store, _, mailer = world
    await with_address(policy, "bob", "bob@x.test")
    await set_prefs(store, "bob", email=True, muted_conversations=["c1"])
    await set_prefs(store, "eve", in_app=False, email=True)
    await feed(policy, "chat.events", message(["bob", "eve"]))
    assert store.notes == {}
    assert mailer.sent == []


async def test_email_goes_to_the_latest_address(world: Any) -> None:
    policy, store, _, mailer = world
    await with_address(policy, "bob", "old@x.test")
    await feed(
        policy,
        "users.events",
        record("users", "UserProfileEmailChanged", "bob", 3, user_id="bob", email="new@x.test"),
    )
    await with_address(policy, "bob", "old@x.test")  # a redelivered older event
    await set_prefs(store, "bob", email=True)
    await feed(policy, "chat.events", message(["bob"]))
    assert [m["To"] for m in mailer.sent] == ["new@x.test"]


async def test_email_without_an_address_is_skipped_and_in_app_kept(world: Any) -> None:
    policy, store, _, mailer = world
    await set_prefs(store, "bob", email=True)
    await feed(policy, "chat.events", message(["bob"]))
    assert len(store.notes) == 1 and not next(iter(store.notes.values())).emailed
    assert mailer.sent == []


async def test_smtp_failures_are_retried_then_given_up(world: Any) -> None:
    policy, store, _, _ = world
    await with_address(policy, "bob", "bob@x.test")
    await set_prefs(store, "bob", email=True)
    policy.mailer = flaky = FakeMailer(failures=2)
    await feed(policy, "chat.events", message(["bob"]))
    assert len(flaky.sent) == 1  # the third attempt went through
    policy.mailer = dead = FakeMailer(failures=99)
    await feed(
        policy,
        "chat.events",
        record(
            "chat",
            "MessageSent",
            "c1",
            3,
            conversation_id="c1",
            message_id="m2",
            seq=2,
            sender_id="ada",
            content="again",
            recipient_ids=["bob"],
        ),
    )
    assert dead.sent == []
    assert not store.notes[notification_id("m2", "bob")].emailed


async def test_message_without_recipient_ids_is_skipped(world: Any) -> None:
    policy, store, _, _ = world
    await feed(policy, "chat.events", message(None))
    assert store.notes == {}


async def test_poison_records_are_skipped(world: Any) -> None:
    policy, store, _, _ = world
    await apply_record(policy, "chat.events", [], b"not an event", b"k")
    headers, _ = message(["bob"])
    await apply_record(policy, "chat.events", headers, b"{not json", b"k")
    await apply_record(policy, "chat.events", headers, b'{"conversation_id": "c1"}', b"k")
    await feed(policy, "chat.events", message(["bob"]))  # and the next record still works
    assert len(store.notes) == 1


async def test_a_message_sent_as_the_chat_contract_serialises_it(world: Any) -> None:
    """The policy reads the very fields chat's published MessageSent carries."""
    from parley_contracts.chat import MessageSent

    policy, store, _, _ = world
    event = MessageSent(
        conversation_id="c9",
        message_id="m9",
        seq=1,
        sender_id="ada",
        content="from the contract",
        recipient_ids=["bob", "eve"],
    )
    headers, _ = record("chat", "MessageSent", "c9", 1)
    await apply_record(policy, "chat.events", headers, event.model_dump_json().encode(), b"c9")
    assert {n.user_id for n in store.notes.values()} == {"bob", "eve"}
    assert notification_id("m9", "bob") in store.notes


async def test_a_forgotten_persons_address_and_messages_are_dropped(world: Any) -> None:
    """With encrypted fields: the directory keeps addresses sealed and opens them with the
    person's key only to mail; texts are decrypted with the sender's key; once a key is gone
    (forgotten) the address goes and their messages notify nobody."""
    from parley_privacy.fields import FieldCipher
    from parley_privacy.memory import MemoryKeys

    policy, store, directory, _ = world
    keys = MemoryKeys()
    policy.cipher = cipher = FieldCipher(keys)
    created = await cipher.encrypt(
        "UserCreated", {"user_id": "bob", "name": "Bob", "email": "bob@x.test"}
    )
    await feed(policy, "users.events", record("users", "UserCreated", "bob", 1, **created))
    assert await directory.address("bob") == created["email"] != "bob@x.test"  # sealed
    assert await policy.address_of("bob") == "bob@x.test"
    sent = await cipher.encrypt(
        "MessageSent",
        dict(conversation_id="c1", message_id="m1", seq=1, sender_id="ada", content="hi bob"),
    )
    await keys.forget("ada")
    await feed(
        policy, "chat.events", record("chat", "MessageSent", "c1", 2, recipient_ids=["bob"], **sent)
    )
    assert store.notes == {}
    await keys.forget("bob")
    await feed(policy, "users.events", record("users", "UserForgotten", "bob", 2, user_id="bob"))
    assert await directory.address("bob") is None
    await feed(policy, "users.events", record("users", "UserCreated", "bob", 1, **created))
    assert await policy.address_of("bob") is None  # a replay cannot bring it back
    assert await directory.address("bob") is None  # and its sealed leftover is dropped


# -- blocks and mentions ----------------------------------------------------------------------


class FakeBlocks:
    """The blocks table's rule: the newest version of a (blocker, blocked) pair wins."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[bool, int]] = {}

    async def apply(self, blocker: str, blocked: str, active: bool, version: int) -> None:
        row = self.rows.get((blocker, blocked))
        if row is None or row[1] < version:
            self.rows[(blocker, blocked)] = (active, version)

    async def blockers_of(self, user_id: str) -> frozenset[str]:
        return frozenset(b for (b, x), (on, _) in self.rows.items() if x == user_id and on)


@pytest.fixture
def blocking(world: Any) -> tuple[Policy, FakeStore, FakeBlocks]:
    policy, store, _, _ = world
    blocks = FakeBlocks()
    policy.blocks = blocks
    return policy, store, blocks


def block(blocker: str, other: str, version: int, name: str = "UserBlocked") -> Any:
    return record("users", name, blocker, version, user_id=blocker, blocked_user_id=other)


def mentioning(mentions: list[str], message_id: str = "m1", recipients: Any = None) -> Any:
    data: dict[str, Any] = dict(
        conversation_id="c1",
        message_id=message_id,
        seq=1,
        sender_id="ada",
        content="hi @bob",
        recipient_ids=recipients or ["bob", "eve"],
        mentions=mentions,
    )
    return record("chat", "MessageSent", "c1", 2, **data)


def notified(store: FakeStore, message_id: str = "m1") -> dict[str, bool]:
    """recipient -> whether their notification of the message is a mention"""
    found = {}
    for user in ("bob", "eve", "dan"):
        note = store.notes.get(notification_id(message_id, user))
        if note is not None:
            (created,) = [e for e in store.appended if getattr(e, "notification_id", "") == note.id]
            found[user] = created.mention
    return found


async def test_whoever_blocks_the_sender_is_not_notified_until_they_unblock(
    blocking: Any,
) -> None:
    policy, store, _ = blocking
    await feed(policy, "users.events", block("bob", "ada", 3))
    await feed(policy, "chat.events", mentioning([], "m1"))
    assert notified(store, "m1") == {"eve": False}  # eve blocks nobody
    await feed(policy, "users.events", block("bob", "ada", 4, "UserUnblocked"))
    await feed(policy, "users.events", block("bob", "ada", 3))  # the old block, redelivered
    await feed(policy, "chat.events", mentioning([], "m2"))
    assert notified(store, "m2") == {"bob": False, "eve": False}


async def test_a_blocked_senders_mentions_are_not_notified_either(blocking: Any) -> None:
    policy, store, _ = blocking
    await feed(policy, "users.events", block("bob", "ada", 2))
    await feed(policy, "chat.events", mentioning(["bob", "eve"]))
    assert notified(store) == {"eve": True}


async def test_a_mention_pierces_a_muted_conversation_unless_its_mentions_are_muted(
    blocking: Any,
) -> None:
    policy, store, _ = blocking
    await set_prefs(store, "bob", muted_conversations=["c1"])
    await set_prefs(store, "eve", muted_conversations=["c1"], muted_mentions=["c1"])
    await feed(policy, "chat.events", mentioning(["bob", "eve"]))
    assert notified(store) == {"bob": True}
    await feed(policy, "chat.events", mentioning([], "m2"))  # no mention: the mute holds
    assert notified(store, "m2") == {}


async def test_mentions_of_people_who_are_not_recipients_notify_nobody(blocking: Any) -> None:
    policy, store, _ = blocking
    await feed(policy, "chat.events", mentioning(["dan", "ada"], recipients=["bob"]))
    assert notified(store) == {"bob": False}


async def test_block_records_without_their_fields_are_skipped(blocking: Any) -> None:
    policy, _, blocks = blocking
    await feed(policy, "users.events", record("users", "UserBlocked", "bob", 2, user_id="bob"))
    await feed(policy, "users.events", block("bob", "ada", 0))  # no stream version
    assert blocks.rows == {}
