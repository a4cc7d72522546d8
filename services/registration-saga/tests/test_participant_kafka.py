"""The participant runtime over the real Kafka with the real command log: every command gets a
reply, a redelivered command gets the same reply without running its handler again, and a
record that is not a saga command is parked on the DLQ while the partition keeps flowing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from parley_eventstore.commandlog import SagaCommandLog
from parley_eventstore.migrate import migrate
from parley_messaging.participant import serve
from parley_messaging.saga import Rejected, SagaCommand, command_record, decode_reply
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics

pytestmark = pytest.mark.integration


async def test_participant_replies_once_per_command_and_parks_garbage(
    fresh_database: str, kafka_bootstrap: str, unique_name: str
) -> None:
    context = f"t{unique_name}"
    group = f"{context}-saga-participant"
    replies = f"{context}.replies"
    await ensure_topics(
        kafka_bootstrap,
        [Topic(f"{context}.commands", 2), Topic(replies, 1), Topic(f"{group}.dlq", 1)],
    )
    await migrate(fresh_database)
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=2)
    assert pool is not None
    calls: list[str] = []

    async def create(command: SagaCommand) -> Mapping[str, Any]:
        calls.append(command.id)
        if command.data.get("name") == "Parley":
            raise Rejected("reserved")
        if command.data.get("name") == "boom":
            raise RuntimeError("database away")
        return {"created": command.subject}

    def command(name: str, subject: str) -> SagaCommand:
        return SagaCommand(
            id=f"{subject}/create",
            context=context,
            name="Create",
            subject=subject,
            saga_id=subject,
            reply_to=replies,
            step="create",
            data={"name": name},
        )

    ok, refused, failing = (command(n, str(uuid.uuid4())) for n in ("Ada", "Parley", "boom"))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, **kafka_security())
    await producer.start()
    try:
        await producer.send_and_wait(f"{context}.commands", b"not a command", key=b"x")
        for c in (ok, refused, failing, ok):  # `ok` twice: a redelivery
            key, headers, value = command_record(c, "/test")
            await producer.send_and_wait(
                f"{context}.commands",
                value,
                key=key.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            )
    finally:
        await producer.stop()

    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(context, {"Create": create}, kafka_bootstrap, stop, commands=SagaCommandLog(pool))
    )
    consumer = AIOKafkaConsumer(
        replies,
        f"{group}.dlq",
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        **kafka_security(),
    )
    await consumer.start()
    got: dict[str, list[Any]] = {"replies": [], "dlq": []}
    try:
        async with asyncio.timeout(30):
            while len(got["replies"]) < 4 or not got["dlq"]:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        if record.topic == replies:
                            got["replies"].append(decode_reply(record.headers, record.value))
                        else:
                            got["dlq"].append(record)
    finally:
        stop.set()
        await consumer.stop()
        await asyncio.wait_for(task, 10)
        await pool.close()

    outcome = {(r.command_id, r.outcome) for r in got["replies"]}
    assert outcome == {(ok.id, "succeeded"), (refused.id, "rejected"), (failing.id, "failed")}
    assert [r.result for r in got["replies"] if r.command_id == ok.id] == [
        {"created": ok.subject},
        {"created": ok.subject},
    ]
    assert calls.count(ok.id) == 1  # the redelivery was answered from the log
    [parked] = got["dlq"]
    assert parked.value == b"not a command"
    assert dict(parked.headers)["dlq_topic"] == f"{context}.commands".encode()
