"""The cost of crypto-shredding on the command path: chat send-message latency (the real
handler, repository, event store with group commit) without encryption, with the message
text sealed through the key client as chat-api runs it (AES-256-GCM with the sender's key
from the client's TTL cache: the steady state), and with the key from the key table
(`KeyStore`, the key owner's own path: a primary-key read, cached 5 s).

Rounds alternate the modes (same database, fresh conversations of 3 people) so drift on the
shared machine hits all of them alike; p99 is over all rounds of a mode.
`encryption.overhead_p99_ratio` = p99 sealed (cached key) / p99 plain."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
from parley_chat.domain import EVENTS, Conversation
from parley_chat.handlers import Chat, ChatCodec, SendMessage, handle
from parley_commandkit import Context
from parley_eventstore.aggregate import DataCipher, Repository
from parley_eventstore.migrate import migrate
from parley_eventstore.pool import create_pool
from parley_eventstore.records import Metadata
from parley_eventstore.store import EventStore
from parley_privacy.client import KeyClient, key_body
from parley_privacy.envelope import new_key, new_kid
from parley_privacy.fields import FieldCipher
from parley_privacy.keys import Key
from parley_privacy.store import KeyStore, migrations_dir

from bench.common import Figures, create_database, drop_database

KEY_PREFIX = "encryption."  # every figure of this stage (run.py replaces them on a rerun)
ROUNDS = 5
COMMANDS = 400  # per round and mode
WARMUP = 30
META = Metadata(correlation_id="bench")
TEXT = "a chat message of some ordinary length, about eighty characters long......"


def cached_client() -> KeyClient:
    """The real KeyClient (60 s TTL cache) in front of an owner answering from memory: after
    the first send of each person every lookup is a cache hit, as in chat-api."""
    keys: dict[str, Key] = {}

    def owner(request: httpx.Request) -> httpx.Response:
        subject = request.url.path.rsplit("/", 1)[1]
        key = keys.setdefault(subject, Key(subject, new_kid(), new_key()))
        return httpx.Response(200, json=key_body(key))

    return KeyClient("http://auth", "bench", ttl_s=60, transport=httpx.MockTransport(owner))


async def sends(chat: Chat) -> list[float]:
    people = [str(uuid.uuid4()) for _ in range(3)]
    cid = str(uuid.uuid4())
    conversation = await chat.conversations.load(cid)
    conversation.create(people[0], people[1:], "bench")
    await chat.conversations.save(conversation, metadata=META)
    ctx = Context(META)
    for i in range(WARMUP):
        await handle(chat, SendMessage(cid, people[i % 3], TEXT), ctx)
    samples = []
    for i in range(COMMANDS):
        t0 = time.perf_counter()
        await handle(chat, SendMessage(cid, people[i % 3], TEXT), ctx)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def run() -> dict[str, Any]:
    dsn = await create_database("bench_encryption")
    results: dict[str, Any] = {}
    try:
        await migrate(dsn, migrations_dir())
        pool = await create_pool(dsn, min_size=2, max_size=16)
        store = EventStore(
            pool, topic="chat.events", source="/parley/chat", context="chat", group_commit=True
        )
        client = cached_client()
        ciphers: dict[str, DataCipher | None] = {
            "plain": None,
            "sealed": FieldCipher(client),
            "sealed_key_table": FieldCipher(KeyStore(pool)),
        }
        samples: dict[str, list[float]] = {mode: [] for mode in ciphers}
        elapsed: dict[str, float] = dict.fromkeys(ciphers, 0.0)
        try:
            for _ in range(ROUNDS):
                for mode, cipher in ciphers.items():
                    chat = Chat(
                        Repository(
                            store,
                            Conversation,
                            ChatCodec(*EVENTS),
                            snapshot_every=50,
                            cipher=cipher,
                            serialize=True,
                        )
                    )
                    started = time.perf_counter()
                    samples[mode] += await sends(chat)
                    elapsed[mode] += time.perf_counter() - started
            async with pool.acquire() as conn:
                sealed = await conn.fetchval(
                    "SELECT count(*) FROM events WHERE event_type = 'MessageSent'"
                    " AND data->>'content' LIKE 'pe1.%'"
                )
            assert sealed == 2 * ROUNDS * (COMMANDS + WARMUP), "sealed modes stored ciphertext"
        finally:
            await client.close()
            await store.close()
            await pool.close()
    finally:
        await drop_database(dsn)
    for mode, values in samples.items():
        figures = Figures(len(values), elapsed[mode], values)
        results[f"encryption.send_message.{mode}.p50_ms"] = round(figures.pct(50), 3)
        results[f"encryption.send_message.{mode}.p99_ms"] = round(figures.pct(99), 3)
    plain = results["encryption.send_message.plain.p99_ms"]
    results["encryption.overhead_p99_ratio"] = round(
        results["encryption.send_message.sealed.p99_ms"] / plain, 3
    )
    results["encryption.key_table_overhead_p99_ratio"] = round(
        results["encryption.send_message.sealed_key_table.p99_ms"] / plain, 3
    )
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
