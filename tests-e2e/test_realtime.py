"""The realtime gateway through nginx (issue 17): pushed messages, resume without loss, who gets
what, typing that is never stored or published, presence agreed by two replicas, tickets, the
WebSocket and revocation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from aiokafka import AIOKafkaConsumer, TopicPartition
from parley_messaging.security import kafka_security
from parley_messaging.topics import CONTEXTS, events_topic, partitions_of
from parley_testing.accounts import Account, sign_up
from parley_testing.cluster import ExtraReplica
from parley_testing.plugin import dsn_for_database
from parley_testing.realtime import Pushed, SseStream

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        yield http


async def people(client: httpx.AsyncClient, *names: str) -> list[Account]:
    return list(await asyncio.gather(*(sign_up(client, name) for name in names)))


async def conversation(
    client: httpx.AsyncClient, creator: Account, *others: Account, title: str | None = "room"
) -> str:
    body: dict[str, Any] = {"participant_ids": [o.user_id for o in others]}
    if title is not None:
        body["title"] = title
    created = await client.post("/v1/conversations", json=body, headers=creator.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def send(client: httpx.AsyncClient, sender: Account, cid: str, text: str) -> int:
    sent = await client.post(
        f"/v1/conversations/{cid}/messages", json={"content": text}, headers=sender.headers
    )
    assert sent.status_code == 201, sent.text
    return int(sent.json()["seq"])


def messages_of(events: list[Pushed], cid: str) -> list[Pushed]:
    return [e for e in events if e.event == "message.sent" and e.data["conversation_id"] == cid]


async def opened(stream: SseStream) -> SseStream:
    assert stream.status_code == 200, stream.error_body
    ready = await stream.next()
    assert ready.event in ("ready", "reset") and ready.id is not None
    return stream


async def test_a_message_reaches_the_recipients_stream_within_a_second(
    client: httpx.AsyncClient,
) -> None:
    ada, bob = await people(client, "Ada", "Bob")
    async with SseStream(client, headers=bob.headers) as stream:
        await opened(stream)
        cid = await conversation(client, ada, bob)
        created = await stream.first(lambda e: e.event == "conversation.created", timeout_s=5)
        assert created.data["conversation_id"] == cid
        started = time.perf_counter()
        seq = await send(client, ada, cid, "hello Bob")
        pushed = await stream.first(lambda e: e.event == "message.sent", timeout_s=5)
        assert pushed.received_at - started < 1.0
        assert pushed.data["content"] == "hello Bob" and pushed.data["seq"] == seq
        assert pushed.data["sender_id"] == ada.user_id
        assert "client_message_id" not in pushed.data  # the sender's own, not Bob's business


async def test_a_reconnect_with_the_last_cursor_gets_exactly_what_was_missed_in_order(
    client: httpx.AsyncClient,
) -> None:
    ada, bob = await people(client, "Ada", "Bob")
    cid = await conversation(client, ada, bob)
    async with SseStream(client, headers=bob.headers) as stream:
        await opened(stream)
        await send(client, ada, cid, "before")
        await stream.first(lambda e: e.event == "message.sent")
        cursor = stream.last_id
    assert cursor is not None
    missed = [await send(client, ada, cid, f"missed {i}") for i in range(20)]
    async with SseStream(client, headers=bob.headers, last_event_id=cursor) as stream:
        assert stream.status_code == 200
        got = await stream.collect(3.0)
        live = await send(client, ada, cid, "after")
        got += await stream.collect(1.5)
    seqs = [e.data["seq"] for e in messages_of(got, cid)]
    assert seqs == [*missed, live]  # each missed one once, in order, then the live flow
    [ready] = [e for e in got if e.event == "ready"]
    assert ready.data["resumed"] is True
    assert [e.data["content"] for e in messages_of(got, cid)][:2] == ["missed 0", "missed 1"]


async def test_a_cursor_that_cannot_be_resumed_gets_an_explicit_reset(
    client: httpx.AsyncClient,
) -> None:
    (ada,) = await people(client, "Ada")
    beyond = "1~" + ".".join(["zzzzzz"] * 6) + "~" + ".".join(["zzzzzz"] * 6)
    async with SseStream(client, headers=ada.headers, last_event_id=beyond) as stream:
        assert stream.status_code == 200
        reset = await stream.next()
        assert reset.event == "reset" and reset.data["reason"] == "unknown"
        assert reset.id is not None and reset.id != beyond
    bad = await client.get("/v1/stream", headers={**ada.headers, "Last-Event-ID": "garbage"})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")


async def test_a_stranger_gets_nothing_and_a_removed_participant_nothing_after_removal(
    client: httpx.AsyncClient,
) -> None:
    ada, bob, cy, eve = await people(client, "Ada", "Bob", "Cy", "Eve")
    cid = await conversation(client, ada, bob, cy)
    async with (
        SseStream(client, headers=cy.headers) as cys,
        SseStream(client, headers=eve.headers) as eves,
        SseStream(client, headers=bob.headers) as bobs,
    ):
        for stream in (cys, eves, bobs):
            await opened(stream)
        await send(client, ada, cid, "all three")
        await cys.first(lambda e: e.event == "message.sent")
        removed = await client.delete(
            f"/v1/conversations/{cid}/participants/{cy.user_id}", headers=ada.headers
        )
        assert removed.status_code == 200, removed.text
        gone = await cys.first(lambda e: e.event == "participant.removed")
        assert gone.data["user_id"] == cy.user_id
        await send(client, ada, cid, "without Cy")
        await bobs.first(lambda e: e.event == "message.sent" and e.data["seq"] == 2)
        late = await cys.collect(1.5)
        stranger = await eves.collect(0.5)
    assert messages_of(late, cid) == []
    assert [e for e in stranger if "conversation_id" in e.data] == []


async def public_offsets(kafka: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(events_topic(c), p)
            for c in CONTEXTS
            for p in await partitions_of(kafka, events_topic(c))
        ]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def public_records_since(kafka: str, since: dict[TopicPartition, int]) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    try:
        consumer.assign(list(since))
        ends = await consumer.end_offsets(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        found = []
        todo = {tp for tp in since if ends[tp] > since[tp]}
        while todo:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                found.extend(records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    todo.discard(tp)
        return found
    finally:
        await consumer.stop()


async def test_typing_reaches_the_others_and_is_never_stored_or_published(
    client: httpx.AsyncClient, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    ada, bob, eve = await people(client, "Ada", "Bob", "Eve")
    cid = await conversation(client, ada, bob)
    before = await public_offsets(kafka_bootstrap)
    async with (
        SseStream(client, headers=bob.headers) as bobs,
        SseStream(client, headers=ada.headers) as adas,
    ):
        await opened(bobs)
        await opened(adas)
        started = time.perf_counter()
        typed = await client.post(f"/v1/conversations/{cid}/typing", headers=ada.headers)
        assert typed.status_code == 204
        signal = await bobs.first(lambda e: e.event == "typing", timeout_s=2)
        assert signal.received_at - started < 1.0
        assert signal.data["user_id"] == ada.user_id and signal.data["conversation_id"] == cid
        assert signal.id is None  # ephemeral: not a resume point
        again = await client.post(f"/v1/conversations/{cid}/typing", headers=ada.headers)
        assert again.status_code == 429
        outsider = await client.post(f"/v1/conversations/{cid}/typing", headers=eve.headers)
        assert outsider.status_code == 404
        mine = await adas.collect(0.5)
        assert [e for e in mine if e.event == "typing"] == []  # not echoed to the typist
    # not in any event store, not on any public topic
    for database in ("users", "auth", "chat", "notifications", "saga"):
        connection = await asyncpg.connect(dsn_for_database(postgres_dsn, database))
        try:
            rows = await connection.fetchval(
                "SELECT count(*) FROM events WHERE event_type ILIKE '%typing%' "
                "OR (data::text LIKE '%' || $1 || '%' AND event_type NOT IN "
                "('ConversationCreated', 'MessageSent', 'ParticipantAdded'))",
                cid,
            )
        finally:
            await connection.close()
        assert rows == 0, database
    records = await public_records_since(kafka_bootstrap, before)
    for record in records:
        headers = dict(record.headers)
        assert b"yping" not in headers.get("ce_type", b""), headers
        assert b'"typing"' not in (record.value or b"")


async def test_presence_is_agreed_by_two_replicas(client: httpx.AsyncClient) -> None:
    ada, bob = await people(client, "Ada", "Bob")
    await conversation(client, ada, bob)
    with ExtraReplica("realtime-gateway", "parley_realtime", "REALTIME") as second_url:
        async with (
            httpx.AsyncClient(base_url=second_url, timeout=10) as second,
            SseStream(second, headers=bob.headers) as bobs,  # Bob on the new replica
        ):
            await opened(bobs)
            first = await client.get(f"/v1/users/{ada.user_id}/presence", headers=bob.headers)
            assert first.status_code == 200 and first.json()["status"] == "offline"
            async with SseStream(client, headers=ada.headers) as adas:  # Ada via nginx
                await opened(adas)
                online = await bobs.first(lambda e: e.event == "presence", timeout_s=5)
                assert online.data == {
                    "user_id": ada.user_id,
                    "status": "online",
                    "last_seen": None,
                }
                seen = await second.get(f"/v1/users/{ada.user_id}/presence", headers=bob.headers)
                assert seen.json()["status"] == "online"
            offline = await bobs.first(lambda e: e.event == "presence", timeout_s=5)
            assert offline.data["status"] == "offline" and offline.data["last_seen"]
            after = await second.get(f"/v1/users/{ada.user_id}/presence", headers=bob.headers)
            assert after.json()["status"] == "offline" and after.json()["last_seen"]
    (eve,) = await people(client, "Eve")
    hidden = await client.get(f"/v1/users/{ada.user_id}/presence", headers=eve.headers)
    assert hidden.status_code == 404  # no shared conversation: not Eve's business


async def test_a_ticket_opens_one_stream_once(client: httpx.AsyncClient) -> None:
    (ada,) = await people(client, "Ada")
    issued = await client.post("/v1/stream/tickets", headers=ada.headers)
    assert issued.status_code == 201
    body = issued.json()
    assert body["expires_in"] == 30
    async with SseStream(client, params={"ticket": body["ticket"]}) as stream:
        await opened(stream)
    async with SseStream(client, params={"ticket": body["ticket"]}) as reused:
        assert reused.status_code == 401
    anonymous = await client.post("/v1/stream/tickets")
    assert anonymous.status_code == 401


async def test_the_websocket_carries_the_same_events_and_takes_typing(
    client: httpx.AsyncClient, gateway_url: str
) -> None:
    ada, bob = await people(client, "Ada", "Bob")
    cid = await conversation(client, ada, bob)
    ticket = (await client.post("/v1/stream/tickets", headers=ada.headers)).json()["ticket"]
    url = gateway_url.replace("http://", "ws://") + f"/v1/ws?ticket={ticket}"
    async with SseStream(client, headers=bob.headers) as bobs, websockets.connect(url) as ws:
        await opened(bobs)
        ready = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ready["event"] == "ready" and ready["id"]
        await ws.send(json.dumps({"type": "typing", "conversation_id": cid}))
        typing = await bobs.first(lambda e: e.event == "typing", timeout_s=3)
        assert typing.data["user_id"] == ada.user_id
        await send(client, bob, cid, "over the socket")
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if frame["event"] == "message.sent":
                break
        assert frame["data"]["content"] == "over the socket" and frame["id"]
        await ws.send("not json")
        error = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert error["event"] == "error" and error["data"]["status"] == 400


async def test_logging_out_closes_the_stream(client: httpx.AsyncClient) -> None:
    (ada,) = await people(client, "Ada")
    async with SseStream(client, headers=ada.headers) as stream:
        await opened(stream)
        out = await client.post("/v1/auth/logout", headers=ada.headers)
        assert out.status_code == 200, out.text
        await asyncio.wait_for(stream.closed.wait(), 5)
    again = await client.get("/v1/stream", headers=ada.headers)
    assert again.status_code == 401


async def test_a_forgotten_senders_text_is_replayed_redacted(client: httpx.AsyncClient) -> None:
    ada, bob = await people(client, "Ada", "Bob")
    cid = await conversation(client, ada, bob)
    async with SseStream(client, headers=bob.headers) as stream:
        await opened(stream)
        cursor = stream.last_id
        await send(client, ada, cid, "something Ada will take back")
        live = await stream.first(lambda e: e.event == "message.sent")
        assert live.data["content"] == "something Ada will take back"
    forgotten = await client.delete(f"/v1/users/{ada.user_id}", headers=ada.headers)
    assert forgotten.status_code == 200, forgotten.text
    # a replay asks for keys cached more than a second ago again (FieldCipher's `fresh`):
    # that second is how long a just-destroyed key may still open a replayed text
    await asyncio.sleep(1.1)
    async with SseStream(client, headers=bob.headers, last_event_id=cursor) as stream:
        replayed = await stream.first(lambda e: e.event == "message.sent")
    assert replayed.data["content"] is None and replayed.data["redacted"] is True


async def test_a_person_holds_at_most_ten_streams(client: httpx.AsyncClient) -> None:
    (ada,) = await people(client, "Ada")
    streams = [SseStream(client, headers=ada.headers) for _ in range(10)]
    try:
        for stream in streams:
            await stream.__aenter__()
            await opened(stream)
        refused = await client.get("/v1/stream", headers=ada.headers)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        await streams[0].close()
        await asyncio.sleep(0.3)  # the closed stream is taken off presence
        async with SseStream(client, headers=ada.headers) as eleventh:
            await opened(eleventh)
    finally:
        for stream in streams:
            await stream.close()
