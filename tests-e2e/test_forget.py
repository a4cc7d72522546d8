"""Crypto-shredding through the gateway (issue 10, second half): a person is forgotten with
`DELETE /v1/users/{id}`. Afterwards their events, read straight from PostgreSQL and from
Kafka, hold no plaintext personal data; the read models show the placeholder; the other
participant of their conversation still reads their own messages and sees the forgotten
person's as redacted; the history routes show placeholders; and a full rebuild of the
users and chat projections from offset 0 ends the same."""

from __future__ import annotations

import asyncio
import json
import os
import random
import string
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from parley_messaging.security import kafka_security
from parley_messaging.topics import partitions_of
from parley_testing.accounts import PASSWORD, Account, sign_up
from parley_testing.plugin import dsn_for_database
from parley_testing.privacy import cli_environment

TOKEN = "X-Consistency-Token"
PLACEHOLDER = "Forgotten user"
# the public event topics, and the registration saga's command and reply topics (the saga
# copies UserRegistered's sealed fields into its commands: they must stay sealed there too)
TOPICS = (
    "auth.events",
    "users.events",
    "chat.events",
    "notifications.events",
    "users.commands",
    "notifications.commands",
    "auth.commands",
    "registration-saga.replies",
)


def word() -> str:
    return "".join(random.choices(string.ascii_lowercase, k=10))


async def eventually(check: Callable[[], Awaitable[Any]], wait_s: float = 30) -> Any:
    deadline = time.monotonic() + wait_s
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.3)


async def rows_mentioning(postgres_dsn: str, secrets: list[str], stream_ids: set[str]) -> list[str]:
    """Every stored event, snapshot and outbox row of the four command databases, and the
    registration saga's state and outbox, of the given streams, containing a secret."""
    leaks = []
    for database in ("auth", "users", "chat", "notifications"):
        conn = await asyncpg.connect(dsn_for_database(postgres_dsn, database))
        try:
            texts = [
                r["t"]
                for r in await conn.fetch(
                    "SELECT data::text AS t FROM events WHERE stream_id = ANY($1::text[])"
                    " UNION ALL SELECT state::text FROM snapshots"
                    "  WHERE stream_id = ANY($1::text[])"
                    " UNION ALL SELECT convert_from(payload, 'UTF8') FROM outbox",
                    list(stream_ids),
                )
            ]
        finally:
            await conn.close()
        leaks += [f"{database}: {t[:80]}" for t in texts if any(s in t for s in secrets)]
    conn = await asyncpg.connect(dsn_for_database(postgres_dsn, "saga"))
    try:  # the registration saga's state and its outbox of commands
        texts = [
            r["t"]
            for r in await conn.fetch(
                "SELECT state::text AS t FROM sagas WHERE id = ANY($1::text[])"
                " UNION ALL SELECT convert_from(payload, 'UTF8') FROM outbox",
                list(stream_ids),
            )
        ]
    finally:
        await conn.close()
    leaks += [f"saga: {t[:80]}" for t in texts if any(s in t for s in secrets)]
    return leaks


async def kafka_values_since(bootstrap: str, since_ms: int) -> list[str]:
    """Every record value on TOPICS since `since_ms` (as any consumer reads them)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    values: list[str] = []
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in TOPICS
            for p in await partitions_of(bootstrap, topic)
        ]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        for tp in tps:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else end[tp])
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            values += [
                (r.value or b"").decode(errors="replace") for rs in batch.values() for r in rs
            ]
    finally:
        await consumer.stop()
    return values


async def rebuild(projection: str, kafka_bootstrap: str, mongo_url: str) -> None:
    """`python -m parley_readmodel.rebuild --projection <name>` as an operator runs it, with
    the key endpoint of the cluster (parley_testing.privacy: its internal token)."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MONGO_URL": mongo_url,
        **cli_environment(),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parley_readmodel.rebuild",
        "--projection",
        projection,
        env=env,
    )
    assert await asyncio.wait_for(process.wait(), 900) == 0, f"rebuild of {projection} failed"


async def message_versions(
    client: httpx.AsyncClient, who: Account, cid: str, mid: str
) -> list[Any] | None:
    """The message's history as a participant reads it, once it shows no text (else None)."""
    got = await client.get(f"/v1/conversations/{cid}/messages/{mid}/history", headers=who.headers)
    if got.status_code != 200:
        return None
    body: dict[str, Any] = got.json()
    # once the sender is forgotten the read model holds none of their texts
    return [body] if body["redacted"] and not body["versions"] and body["content"] is None else None


async def test_forgetting_a_person_shreds_their_data_everywhere(
    gateway_url: str, postgres_dsn: str, kafka_bootstrap: str, mongo_url: str, admin: Account
) -> None:
    started_ms = int(time.time() * 1000) - 5000
    name, bio = f"Zora {word().capitalize()}", f"bio {word()}"
    # issue 19.5: the avatar, an admin's deactivation reason, the client's message id and the
    # conversation's title are sealed too (the title with the conversation's own key)
    avatar, reason = f"https://img.example.test/{word()}.png", f"reason {word()}"
    client_message_id, title = f"cmid-{word()}", f"title {word()}"
    alice_texts = [f"alice secret {word()}", f"alice again {word()}"]
    bob_text = f"bob text {word()}"
    # issue 20: an edited text and a report's reason are the person's too
    edited_text, report_reason = f"alice edited {word()}", f"alice reports {word()}"
    async with httpx.AsyncClient(base_url=gateway_url, timeout=15) as client:
        alice = await sign_up(client, name)
        bob = await sign_up(client, "Bob")
        patched = await client.patch(
            f"/v1/users/{alice.user_id}",
            json={"bio": bio, "avatar_url": avatar},
            headers=alice.headers,
        )
        assert patched.status_code == 200, patched.text
        me = f"/v1/users/{alice.user_id}"
        off = await client.post(f"{me}/deactivate", json={"reason": reason}, headers=admin.headers)
        assert off.status_code == 200, off.text
        on = await client.post(f"{me}/reactivate", headers=admin.headers)
        assert on.status_code == 200, on.text

        async def logged_in_again() -> Account | None:  # once auth saw the reactivation
            got = await client.post(
                "/v1/auth/login", json={"email": alice.email, "password": PASSWORD}
            )
            token = got.json().get("access_token") if got.status_code == 200 else None
            return Account(alice.user_id, alice.email, token) if token else None

        alice = await eventually(logged_in_again)
        created = await client.post(
            "/v1/conversations",
            json={"participant_ids": [bob.user_id], "title": title},
            headers=alice.headers,
        )
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        last = None
        ids: dict[str, str] = {}
        for who, text in ((alice, alice_texts[0]), (bob, bob_text), (alice, alice_texts[1])):
            body: dict[str, Any] = {"content": text}
            if text == alice_texts[0]:
                body["client_message_id"] = client_message_id
            last = await client.post(
                f"/v1/conversations/{cid}/messages", json=body, headers=who.headers
            )
            assert last.status_code == 201, last.text
            ids[text] = last.json()["id"]
        assert last is not None
        first_mid, bobs = ids[alice_texts[0]], ids[bob_text]
        edited = await client.patch(
            f"/v1/conversations/{cid}/messages/{first_mid}",
            json={"content": edited_text},
            headers=alice.headers,
        )
        assert edited.status_code == 200, edited.text
        reported = await client.post(
            f"/v1/conversations/{cid}/messages/{bobs}/report",
            json={"reason": report_reason},
            headers=alice.headers,
        )
        assert reported.status_code == 201, reported.text
        # before: the history shows plaintext (decrypted with the keys), as do the read models
        history = await client.get(f"/v1/conversations/{cid}/events", headers=bob.headers)
        contents = [e["data"].get("content") for e in history.json()["items"]]
        assert alice_texts[0] in contents and bob_text in contents

        async def whole_page() -> set[str | None] | None:  # the others' writes: eventually
            got = await client.get(f"/v1/conversations/{cid}/messages", headers=bob.headers)
            assert got.status_code in (200, 503), got.text  # 503: the read model catching up
            contents = {m["content"] for m in got.json().get("items", [])}
            return contents if contents == {edited_text, alice_texts[1], bob_text} else None

        await eventually(whole_page)

        # the person asks to be forgotten
        forgotten = await client.delete(f"/v1/users/{alice.user_id}", headers=alice.headers)
        assert forgotten.status_code == 200, forgotten.text
        again = await client.delete(f"/v1/users/{alice.user_id}", headers=admin.headers)
        assert again.status_code == 200 and again.json()["version"] == forgotten.json()["version"]
        after = {**bob.headers, TOKEN: forgotten.headers[TOKEN]}

        # read models: the placeholder for everyone, no address, no bio
        async def profile() -> dict[str, Any] | None:
            got = await client.get(f"/v1/users/{alice.user_id}", headers=admin.headers)
            body = got.json() if got.status_code == 200 else {}
            return body if body.get("name") == PLACEHOLDER else None

        shown = await eventually(profile)
        assert not shown.get("email") and not shown.get("bio")
        assert not shown.get("avatar_url") and not shown.get("status_reason")

        # bob holds no token of this write (a token counts for its writer only): what he sees
        # may be a query-gateway replica's cached copy for up to QUERY_CACHE_TTL_S
        async def seen_by_bob() -> dict[str, Any] | None:
            got = await client.get(f"/v1/users/{alice.user_id}", headers=after)
            body: dict[str, Any] = got.json() if got.status_code == 200 else {}
            return body if body.get("name") == PLACEHOLDER else None

        await eventually(seen_by_bob)

        # the other participant: own messages intact, the forgotten person's redacted
        async def redacted_page() -> list[dict[str, Any]] | None:
            got = await client.get(f"/v1/conversations/{cid}/messages", headers=bob.headers)
            items: list[dict[str, Any]] = got.json()["items"]
            mine = [m for m in items if m["sender_id"] == alice.user_id]
            return items if all(m["content"] is None and m["redacted"] for m in mine) else None

        items = await eventually(redacted_page)
        assert [m["content"] for m in items if m["sender_id"] == bob.user_id] == [bob_text]
        listed = await client.get("/v1/conversations", headers=bob.headers)
        (item,) = [c for c in listed.json()["items"] if c["id"] == cid]
        assert item["last_message"]["content"] is None and item["last_message"]["redacted"]
        # the title is the conversation's, not its creator's: still readable for the others
        assert item["title"] == title

        # history: placeholders where the key is gone, plaintext where it exists
        history = await client.get(f"/v1/conversations/{cid}/events", headers=bob.headers)
        sent = [e["data"] for e in history.json()["items"] if e["type"] == "MessageSent"]
        by_sender = {(d["sender_id"], d["content"]) for d in sent}
        assert (bob.user_id, bob_text) in by_sender
        assert all(c == "[redacted]" for s, c in by_sender if s == alice.user_id)
        versions = await eventually(
            lambda: message_versions(client, bob, cid, first_mid), wait_s=30
        )
        assert edited_text not in json.dumps(versions) and alice_texts[0] not in json.dumps(
            versions
        )
        user_history = await client.get(f"/v1/users/{alice.user_id}/events", headers=admin.headers)
        assert user_history.json()["items"][0]["data"]["name"] == PLACEHOLDER
        assert user_history.json()["items"][-1]["type"] == "UserForgotten"

        # the auth account is closed
        refused = await client.post(
            "/v1/auth/login", json={"email": alice.email, "password": PASSWORD}
        )
        assert refused.status_code == 401

    # PostgreSQL and Kafka, read directly: no plaintext personal data of the person
    secrets = [name, alice.email, bio, *alice_texts, avatar, reason, client_message_id]
    secrets += [edited_text, report_reason]
    streams = {alice.user_id, cid}
    assert not await rows_mentioning(postgres_dsn, secrets, streams)
    values = await kafka_values_since(kafka_bootstrap, started_ms)
    assert any(alice.user_id in v for v in values), "the person's events are on the topics"
    assert not [v[:80] for v in values if any(s in v for s in secrets)]
    # the title is on no topic in plaintext either, although its key still exists
    assert not await rows_mentioning(postgres_dsn, [title], streams)
    assert not [v[:80] for v in values if title in v]

    # a full rebuild of the projections from offset 0 shows the placeholder only
    await rebuild("users", kafka_bootstrap, mongo_url)
    await rebuild("chat", kafka_bootstrap, mongo_url)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=15) as client:
        await asyncio.sleep(2)  # the gateway's alias and document caches (about a second)
        profile_now = await client.get(f"/v1/users/{alice.user_id}", headers=admin.headers)
        assert profile_now.json()["name"] == PLACEHOLDER and not profile_now.json().get("email")
        page = await client.get(f"/v1/conversations/{cid}/messages", headers=bob.headers)
        rebuilt = page.json()["items"]
        assert len(rebuilt) == 3
        assert [m["content"] for m in rebuilt if m["sender_id"] == bob.user_id] == [bob_text]
        assert all(
            m["content"] is None and m["redacted"]
            for m in rebuilt
            if m["sender_id"] == alice.user_id
        )
        found = await client.get("/v1/users", params={"q": name.split()[1]}, headers=admin.headers)
        assert alice.user_id not in json.dumps(found.json())
