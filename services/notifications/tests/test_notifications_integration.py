"""The notifications service against the real PostgreSQL and Kafka, and a real SMTP server
(aiosmtpd on a free port): HTTP commands, and the policy consuming a redelivered message."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from parley_commandkit import Context
from parley_eventstore.records import Metadata
from parley_http.consistency import ConsistencyToken
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics
from parley_notifications import policy
from parley_notifications.bootstrap import bootstrap
from parley_notifications.config import Settings
from parley_notifications.directory import Directory
from parley_notifications.domain import notification_id
from parley_notifications.handlers import CreateNotification, UpdatePreferences, handle
from parley_notifications.mail import Mailer
from parley_notifications.migrate import migrate
from parley_privacy.fields import FieldCipher
from parley_privacy.memory import MemoryKeys
from parley_testing.tokens import Signer, jwks

pytestmark = pytest.mark.integration
KEYS = MemoryKeys()  # plays the key owner (the auth service)
SIGNER = Signer()
BOB, EVE, ADA = (str(uuid.uuid4()) for _ in range(3))
SECRET = "test-consistency-secret"  # the command side's and the gateway's shared secret


def bearer(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id)}"}


@dataclass
class Mailbox:
    received: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
async def app(
    fresh_database: str, kafka_bootstrap: str, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[FastAPI]:
    await migrate(fresh_database)
    settings = Settings(
        postgres_dsn=fresh_database,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",
        consistency_secret=SECRET,
        kafka_bootstrap_servers=kafka_bootstrap,
        consume_events=False,  # the policy test runs it on topics of its own
        saga_participant=False,  # never answer the live cluster's saga commands
        smtp_port=mailbox[1],
    )
    application = bootstrap(settings, keys=KEYS)
    async with application.router.lifespan_context(application):
        assert await application.state.authn.revocations.wait_ready(15)
        application.state.dsn = fresh_database
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifications") as c:
        yield c


async def rows(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def ctx() -> Context:
    return Context(Metadata(correlation_id=str(uuid.uuid4())))


async def test_mark_read_by_the_recipient_only(app: FastAPI, client: httpx.AsyncClient) -> None:
    nid = notification_id("m1", BOB)
    await handle(app.state.repos, CreateNotification(nid, BOB, "c1", "m1", ADA, "hi"), ctx())

    other = await client.post(f"/v1/notifications/{nid}/read", headers=bearer(EVE))
    assert other.status_code == 404, other.text
    assert other.headers["content-type"].startswith("application/problem+json")
    missing = await client.post(f"/v1/notifications/{uuid.uuid4()}/read", headers=bearer(BOB))
    assert missing.status_code == 404
    assert (await client.post(f"/v1/notifications/{nid}/read")).status_code == 401

    first = await client.post(f"/v1/notifications/{nid}/read", headers=bearer(BOB))
    assert first.status_code == 200, first.text
    assert first.json() == {"id": nid, "version": 2}
    token = ConsistencyToken.decode(first.headers["X-Consistency-Token"])
    assert (token.context, token.stream_id, token.version) == ("notifications", nid, 2)
    assert ConsistencyToken.verify(first.headers["X-Consistency-Token"], SECRET, BOB) == token
    again = await client.post(f"/v1/notifications/{nid}/read", headers=bearer(BOB))
    assert again.json() == {"id": nid, "version": 2}

    events = await rows(app.state.dsn, "SELECT event_type FROM events ORDER BY global_position")
    assert [e["event_type"] for e in events] == ["NotificationCreated", "NotificationRead"]
    outbox = await rows(app.state.dsn, "SELECT topic, key FROM outbox")
    assert {(o["topic"], o["key"]) for o in outbox} == {("notifications.events", nid)}


async def test_preferences_put_is_idempotent_and_validated(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    body = {"in_app": True, "email": True, "muted_conversations": ["c2", "c1"]}
    first = await client.put("/v1/notifications/preferences", json=body, headers=bearer(BOB))
    assert first.status_code == 200, first.text
    assert first.json() == {"id": BOB, "version": 1}
    token = ConsistencyToken.decode(first.headers["X-Consistency-Token"])
    assert (token.context, token.stream_id) == ("notifications", BOB)
    same = await client.put("/v1/notifications/preferences", json=body, headers=bearer(BOB))
    assert same.json() == {"id": BOB, "version": 1}

    bad = await client.put(
        "/v1/notifications/preferences", json={"in_app": "maybe"}, headers=bearer(BOB)
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    events = await rows(app.state.dsn, "SELECT stream_id, data FROM events")
    assert len(events) == 1
    assert json.loads(events[0]["data"])["muted_conversations"] == ["c1", "c2"]


def record(context: str, event: str, subject: str, version: int, /, **data: Any) -> Any:
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source=f"/parley/{context}",
        type=ce_type(context, event, 1),
        subject=subject,
        time=datetime.now(UTC),
        data=json.dumps(data).encode(),
        aggregate_version=version,
    )
    return subject.encode(), envelope.data, kafka_headers(header_map(envelope))


async def produce(bootstrap_servers: str, topic: str, records: list[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", **kafka_security())
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def eventually(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.2)


async def test_policy_notifies_and_mails_once_under_redelivery(
    app: FastAPI, kafka_bootstrap: str, mailbox: tuple[Mailbox, int], unique_name: str
) -> None:
    box, port = mailbox
    chat, users = f"nc.{unique_name}", f"nu.{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(chat, 3), Topic(users, 3)])
    directory = Directory(app.state.pool)
    the_policy = policy.Policy(
        store=policy.EventStoreBackend(app.state.repos),
        directory=directory,
        mailer=Mailer("127.0.0.1", port),
        mail_from="Parley <no-reply@parley.invalid>",
        chat_topic=chat,
        users_topic=users,
        cipher=FieldCipher(KEYS),
    )
    # bob wants mail, eve muted the conversation, carl has in-app only (the default)
    carl = str(uuid.uuid4())
    repos = app.state.repos
    await handle(repos, UpdatePreferences(BOB, True, True, []), ctx())
    await handle(repos, UpdatePreferences(EVE, True, True, ["c1"]), ctx())
    stop = asyncio.Event()
    task = asyncio.create_task(
        policy.run_forever(the_policy, kafka_bootstrap, f"np-{unique_name}", stop)
    )
    try:
        seal = FieldCipher(KEYS).encrypt  # users' event store seals names and addresses
        bob = await seal("UserCreated", {"user_id": BOB, "name": "Bob", "email": "b@x.test"})
        eve = await seal("UserCreated", {"user_id": EVE, "name": "Eve", "email": "e@x.test"})
        await produce(
            kafka_bootstrap,
            users,
            [
                record("users", "UserCreated", BOB, 1, **bob),
                record("users", "UserCreated", EVE, 1, **eve),
                (b"poison", b"not an event", []),
            ],
        )
        await eventually(lambda: directory.address(EVE))
        message = dict(
            conversation_id="c1",
            message_id="m1",
            seq=1,
            sender_id=ADA,
            content="Hello Bob! " * 30,
            recipient_ids=[BOB, EVE, carl],
        )
        message = await FieldCipher(KEYS).encrypt("MessageSent", message)  # as chat-api does
        sent = record("chat", "MessageSent", "c1", 2, **message)
        # the same event twice (a relay's duplicate) and once more republished
        await produce(kafka_bootstrap, chat, [sent, sent, (b"c1", b"{", sent[2])])
        await produce(kafka_bootstrap, chat, [record("chat", "MessageSent", "c1", 2, **message)])

        async def emailed() -> bool:
            found = await rows(
                app.state.dsn, "SELECT 1 FROM events WHERE event_type = 'NotificationEmailed'"
            )
            return len(found) == 1

        await eventually(emailed)
        await asyncio.sleep(2)  # let any duplicate processing show up
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    events = await rows(
        app.state.dsn,
        "SELECT stream_id, event_type, data FROM events WHERE stream_type = 'notification'"
        " ORDER BY global_position",
    )
    created = [
        await FieldCipher(KEYS).decrypt(e["event_type"], json.loads(e["data"]))
        for e in events
        if e["event_type"] == "NotificationCreated"
    ]
    assert all("Hello" not in e["data"] for e in events)  # previews are stored sealed
    assert sorted(c["user_id"] for c in created) == sorted([BOB, carl])  # eve muted c1
    assert all(len(c["preview"]) == 140 for c in created)
    assert [e["stream_id"] for e in events if e["event_type"] == "NotificationEmailed"] == [
        notification_id("m1", BOB)
    ]
    assert len(box.received) == 1  # bob once; carl has email off, eve muted
    rcpts, raw = box.received[0]
    assert rcpts == ["b@x.test"]
    assert b"Hello Bob!" in raw
    assert notification_id("m1", BOB).encode() in raw
