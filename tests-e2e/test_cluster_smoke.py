"""The local cluster's servers answer with the very drivers the services use."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from parley_messaging.security import kafka_security
from pymongo import AsyncMongoClient


async def test_kafka_produce_and_consume(kafka_bootstrap: str) -> None:
    topic = f"smoke.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, **kafka_security())
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all", **kafka_security()
    )
    await producer.start()
    try:
        sent = [f"m{i}".encode() for i in range(10)]
        for value in sent:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", **kafka_security()
    )
    await consumer.start()
    try:
        got: list[bytes] = []
        while len(got) < len(sent):
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "no message within 5 s"
            got += [
                record.value for records in batch.values() for record in records if record.value
            ]
    finally:
        await consumer.stop()
    assert got == sent


async def test_postgres_write_and_read(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute("CREATE TABLE smoke (id int PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO smoke VALUES ($1, $2)", 1, "hello")
        assert await conn.fetchval("SELECT body FROM smoke WHERE id = 1") == "hello"
    finally:
        await conn.close()


async def test_mongo_wire_write_and_read(mongo_url: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    database = client[f"smoke_{uuid.uuid4().hex[:8]}"]
    try:
        await database.docs.insert_one({"_id": "a", "n": 1})
        await database.docs.update_one({"_id": "a"}, {"$inc": {"n": 2}}, upsert=True)
        assert await database.docs.find_one({"_id": "a"}) == {"_id": "a", "n": 3}
    finally:
        await client.drop_database(database.name)
        await client.close()


def test_gateway_answers_healthz(gateway_url: str) -> None:
    response = httpx.get(f"{gateway_url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_gateway_unknown_route_is_problem_json(gateway_url: str) -> None:
    response = httpx.get(f"{gateway_url}/nope", timeout=5)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_smtp_sink_stores_each_mail_as_eml() -> None:
    import os
    import smtplib
    import time
    from email.message import EmailMessage
    from pathlib import Path

    mail_dir = Path(os.environ.get("PARLEY_STATE_DIR", ".local")) / "mail"
    marker = uuid.uuid4().hex
    message = EmailMessage()
    message["From"] = "noreply@parley.test"
    message["To"] = "ada@example.test"
    message["Subject"] = f"smoke {marker}"
    message.set_content("Your code is 123456")
    host = os.environ.get("PARLEY_HOST", "127.0.0.1")
    with smtplib.SMTP(host, int(os.environ.get("PARLEY_SMTP_PORT", "1025")), timeout=5) as smtp:
        smtp.send_message(message)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(marker in p.read_text() for p in mail_dir.glob("*.eml")):
            return
        time.sleep(0.1)
    raise AssertionError(f"no .eml with {marker} under {mail_dir}")
