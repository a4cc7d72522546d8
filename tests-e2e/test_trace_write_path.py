"""One trace follows a write (issue 7): the HTTP request's server span, the command handler's
span (its traceparent stored with the event and the outbox row), the relay's publish span
(continuing it and written into the Kafka record's `traceparent` header) and the projector's
span (continuing the header), with the right parent links, plus asyncpg client spans.

The pieces run in this process with an in-memory exporter, against the real PostgreSQL and
Kafka: the users app through ASGI, the relay's `publish_batch` on the app's database, and the
read-model runtime's `prepare` on the record as consumed from `users.events`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from parley_chat.bootstrap import bootstrap as chat_bootstrap
from parley_chat.config import Settings as ChatSettings
from parley_chat.migrate import migrate as migrate_chat
from parley_eventstore.migrate import migrate
from parley_messaging.envelope import decode
from parley_messaging.security import kafka_security
from parley_messaging.topics import partitions_of
from parley_notifications.bootstrap import bootstrap as notifications_bootstrap
from parley_notifications.config import Settings as NotificationsSettings
from parley_notifications.migrate import migrate as migrate_notifications
from parley_observability.tracing import configure_tracing
from parley_projector_chat.views import chat_projection
from parley_projector_users.views import users_projection
from parley_readmodel.runtime import Options, prepare
from parley_relay.config import Settings as RelaySettings
from parley_relay.faults import Faults
from parley_relay.relay import publish_batch
from parley_testing.plugin import create_database, drop_database
from parley_testing.privacy import internal_token, keys_url
from parley_testing.tokens import Signer, jwks
from parley_users.bootstrap import bootstrap
from parley_users.config import Settings as UsersSettings

EXPORTER = InMemorySpanExporter()


async def relay_one(dsn: str, bootstrap: str, topic: str, key: str) -> Any:
    """Run the relay's publish once over `dsn`'s outbox; the record of `key` as consumed."""
    parts = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, ends[tp])
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", **kafka_security()
        )
        await producer.start()
        conn = await asyncpg.connect(dsn)
        try:
            relay = RelaySettings(postgres_dsn=dsn, name="trace-relay")
            assert await publish_batch(conn, producer, relay, Faults()) >= 1
        finally:
            await conn.close()
            await producer.stop()
        for _ in range(40):
            batch = await consumer.getmany(timeout_ms=250)
            found = [r for rs in batch.values() for r in rs if r.key == key.encode()]
            if found:
                return found[-1]
        raise AssertionError("the published record never arrived")
    finally:
        await consumer.stop()


def spans_named() -> dict[str, Any]:
    return {span.name: span for span in EXPORTER.get_finished_spans()}


def child_of(span: Any, parent: Any) -> bool:
    return bool(span.parent is not None and span.parent.span_id == parent.context.span_id)


async def test_one_trace_from_the_request_to_the_projection(
    fresh_database: str, kafka_bootstrap: str
) -> None:
    configure_tracing("trace-test", exporter=EXPORTER)
    await migrate(fresh_database)
    signer = Signer()
    app = bootstrap(
        UsersSettings(
            postgres_dsn=fresh_database,
            jwks=json.dumps(jwks(signer)),
            jwks_url="",
            kafka_bootstrap_servers=kafka_bootstrap,
            consume_registrations=False,
            keys_url=keys_url(),
            internal_token=internal_token(),
        )
    )
    user_id = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {signer.token(sub=str(uuid.uuid4()), role='admin')}"}
    async with app.router.lifespan_context(app):
        assert await app.state.authn.revocations.wait_ready(15)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://users") as client:
            created = await client.post(
                "/v1/users",
                json={"user_id": user_id, "name": "Traced", "email": "t@example.test"},
                headers=headers,
            )
            assert created.status_code == 201, created.text

    record = await relay_one(fresh_database, kafka_bootstrap, "users.events", user_id)
    projection = users_projection("trace-test")
    prepared = await prepare(projection, [record], Options(bootstrap_servers=kafka_bootstrap))
    assert prepared.changes and not prepared.poison

    spans = {span.name: span for span in EXPORTER.get_finished_spans()}
    server = spans["POST /v1/users"]
    handler = spans["users CreateUser"]
    publish = spans["publish users.events"]
    project = spans["project parley.users.UserCreated.v1"]
    trace_id = server.context.trace_id
    assert {s.context.trace_id for s in (handler, publish, project)} == {trace_id}
    assert handler.parent is not None and handler.parent.span_id == server.context.span_id
    assert publish.parent is not None and publish.parent.span_id == handler.context.span_id
    assert project.parent is not None and project.parent.span_id == publish.context.span_id
    header = dict(record.headers)["traceparent"].decode()
    assert header.split("-")[2] == format(publish.context.span_id, "016x")
    database_spans = [
        s
        for s in EXPORTER.get_finished_spans()
        if s.attributes and s.attributes.get("db.system") == "postgresql"
    ]
    assert any(s.context.trace_id == trace_id for s in database_spans), "no asyncpg span"


async def test_one_trace_from_a_chat_message_to_its_projection_and_notification(
    fresh_database: str, postgres_dsn: str, kafka_bootstrap: str
) -> None:
    """A chat message: the request, the chat command, the relay's publish, and both of its
    consumers (the chat projector and the notification policy, whose notification carries the
    trace on) in one trace with the right parents."""
    configure_tracing("trace-test", exporter=EXPORTER)
    await migrate_chat(fresh_database)
    signer = Signer()
    ada, bob = str(uuid.uuid4()), str(uuid.uuid4())
    common = {
        "jwks": json.dumps(jwks(signer)),
        "jwks_url": "",
        "kafka_bootstrap_servers": kafka_bootstrap,
        "keys_url": keys_url(),  # personal fields are sealed with the cluster's data keys
        "internal_token": internal_token(),
    }
    # no chat-blocks consumer: it would join the live cluster's group from a test database
    chat_settings = ChatSettings(postgres_dsn=fresh_database, consume_blocks=False, **common)
    chat_app = chat_bootstrap(chat_settings)
    async with chat_app.router.lifespan_context(chat_app):
        assert await chat_app.state.authn.revocations.wait_ready(15)
        transport = httpx.ASGITransport(app=chat_app)
        headers = {"Authorization": f"Bearer {signer.token(sub=ada)}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://chat", headers=headers
        ) as c:
            created = await c.post(
                "/v1/conversations", json={"participant_ids": [bob], "title": "t"}
            )
            cid = created.json()["id"]
            await relay_one(fresh_database, kafka_bootstrap, "chat.events", cid)  # the creation
            EXPORTER.clear()
            sent = await c.post(f"/v1/conversations/{cid}/messages", json={"content": "hi"})
            assert sent.status_code == 201, sent.text
    record = await relay_one(fresh_database, kafka_bootstrap, "chat.events", cid)

    prepared = await prepare(
        chat_projection("trace-test"), [record], Options(bootstrap_servers=kafka_bootstrap)
    )
    assert prepared.changes and not prepared.poison
    notifications_db = await create_database(postgres_dsn)
    try:
        await migrate_notifications(notifications_db)
        notify_app = notifications_bootstrap(
            NotificationsSettings(
                postgres_dsn=notifications_db,
                consume_events=False,
                saga_participant=False,  # never answer the live cluster's saga commands
                **common,
            )
        )
        async with notify_app.router.lifespan_context(notify_app):
            envelope = decode(record.headers, record.value)
            await notify_app.state.policy.apply("chat.events", envelope)
    finally:
        await drop_database(notifications_db)

    spans = spans_named()
    server = spans["POST /v1/conversations/{conversation_id}/messages"]
    command = spans["chat SendMessage"]
    publish = spans["publish chat.events"]
    project = spans["project parley.chat.MessageSent.v1"]
    notify = spans["notify parley.chat.MessageSent.v1"]
    assert {s.context.trace_id for s in (command, publish, project, notify)} == {
        server.context.trace_id
    }
    assert child_of(command, server) and child_of(publish, command)
    assert child_of(project, publish) and child_of(notify, publish)
    appended = [
        s for s in EXPORTER.get_finished_spans() if s.name == "notifications CreateNotification"
    ]
    assert appended and all(child_of(s, notify) for s in appended)
