"""Issue 5, notifications part, through the gateway as clients see it (needs the chat routes
of the chat branch: POST /v1/conversations, POST /v1/conversations/{id}/messages, and the
`recipient_ids` field of MessageSent).

Two users and a conversation: the other participant gets an in-app notification (never the
sender), with email turned on also one mail in the SMTP sink; marking it read resets the
unread count; a muted conversation notifies nobody; a MessageSent record redelivered on
chat.events (re-published as is, as a relay's duplicate would be) leaves the notification
count, the unread count and the mails exact."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from parley_messaging.security import kafka_security
from parley_messaging.topics import partitions_of
from parley_testing.accounts import MAIL, Account, sign_up

Json = dict[str, Any]


def consistency(response: httpx.Response) -> dict[str, str]:
    assert response.status_code in (200, 201), response.text
    return {"X-Consistency-Token": response.headers["X-Consistency-Token"]}


async def eventually(fetch: Any, check: Any, wait_s: float = 20) -> Any:
    deadline = time.monotonic() + wait_s
    while True:
        value = await fetch()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"never happened; last: {value}"
        await asyncio.sleep(0.2)


def mails_for(notification_id: str) -> list[Path]:
    return [
        path
        for path in MAIL.glob("*.eml")
        if f"X-Parley-Notification: {notification_id}" in path.read_text(errors="replace")
    ]


async def notifications(client: httpx.AsyncClient, account: Account, query: str = "") -> Json:
    response = await client.get(f"/v1/notifications{query}", headers=account.headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def unread(client: httpx.AsyncClient, account: Account, **headers: str) -> int:
    response = await client.get(
        "/v1/notifications/unread-count", headers={**account.headers, **headers}
    )
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


async def send(client: httpx.AsyncClient, sender: Account, conversation: str, text: str) -> str:
    sent = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": text}, headers=sender.headers
    )
    assert sent.status_code == 201, sent.text
    message_id: str = sent.json()["id"]
    return message_id


async def redeliver(bootstrap: str, message_id: str) -> None:
    """Find the MessageSent record of `message_id` on chat.events and publish it again,
    byte for byte (key, headers, value)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition("chat.events", p) for p in await partitions_of(bootstrap, "chat.events")
        ]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        start = await consumer.beginning_offsets(tps)
        for tp in tps:  # the message was sent a moment ago: it is among the latest records
            consumer.seek(tp, max(start[tp], end[tp] - 2000))
        found = None
        while found is None and any([await consumer.position(tp) < end[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batch.values():
                for record in records:
                    if record.value and json.loads(record.value).get("message_id") == message_id:
                        found = record
        assert found is not None, f"MessageSent {message_id} not on chat.events"
    finally:
        await consumer.stop()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **kafka_security())
    await producer.start()
    try:
        await producer.send_and_wait(
            "chat.events", value=found.value, key=found.key, headers=list(found.headers)
        )
    finally:
        await producer.stop()


async def test_message_notifies_the_other_participant_in_app_and_by_mail(
    gateway_url: str, kafka_bootstrap: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob = await sign_up(client, "Ada"), await sign_up(client, "Bob")

        defaults = await client.get("/v1/notifications/preferences", headers=bob.headers)
        assert defaults.json() == {
            "in_app": True,
            "email": False,
            "muted_conversations": [],
            "muted_mentions": [],
        }
        prefs = {"in_app": True, "email": True, "muted_conversations": []}
        put = await client.put("/v1/notifications/preferences", json=prefs, headers=bob.headers)
        mine = await client.get(
            "/v1/notifications/preferences", headers={**bob.headers, **consistency(put)}
        )
        assert mine.json() == {**prefs, "muted_mentions": []}  # mentions pierce the mute

        created = await client.post(
            "/v1/conversations", json={"participant_ids": [bob.user_id]}, headers=ada.headers
        )
        assert created.status_code == 201, created.text
        conversation = created.json()["id"]
        first = await send(client, ada, conversation, "Hello Bob, " + "long text " * 30)

        page = await eventually(
            lambda: notifications(client, bob), lambda body: len(body["items"]) == 1
        )
        [note] = page["items"]
        assert (note["conversation_id"], note["message_id"], note["sender_id"]) == (
            conversation,
            first,
            ada.user_id,
        )
        assert note["kind"] == "message" and not note["read"]
        assert note["preview"].startswith("Hello Bob, ") and len(note["preview"]) == 140
        assert await unread(client, bob) == 1
        assert (await notifications(client, ada))["items"] == []  # never the sender
        await eventually(lambda: asyncio.sleep(0, mails_for(note["id"])), lambda m: len(m) == 1)
        assert f"To: {bob.email}" in mails_for(note["id"])[0].read_text(errors="replace")

        # only the recipient may mark it (anyone else: 404), then the count is 0
        path = f"/v1/notifications/{note['id']}/read"
        assert (await client.post(path, headers=ada.headers)).status_code == 404
        read = await client.post(path, headers=bob.headers)
        assert await unread(client, bob, **consistency(read)) == 0
        assert (await notifications(client, bob, "?unread=true"))["items"] == []

        # a redelivered MessageSent: no second notification, no second mail
        await redeliver(kafka_bootstrap, first)
        second = await send(client, ada, conversation, "are you there?")
        await eventually(lambda: notifications(client, bob), lambda body: len(body["items"]) == 2)
        await asyncio.sleep(1)
        items = (await notifications(client, bob))["items"]
        assert [i["message_id"] for i in items] == [second, first]  # newest first
        assert await unread(client, bob) == 1
        assert len(mails_for(note["id"])) == 1

        # bob mutes the conversation: the next message notifies nobody (the policy reads the
        # preferences from the event store, so the PUT is in force once it answered)
        muted = {"in_app": True, "email": True, "muted_conversations": [conversation]}
        put = await client.put("/v1/notifications/preferences", json=muted, headers=bob.headers)
        assert put.status_code == 200, put.text
        quiet = await send(client, ada, conversation, "muted one")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            items = (await notifications(client, bob))["items"]
            assert quiet not in [i["message_id"] for i in items]
            await asyncio.sleep(0.5)
        assert await unread(client, bob) == 1
