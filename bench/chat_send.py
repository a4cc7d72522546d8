"""Send-message latency against conversation length: the chat service's real handler (the
per-conversation queue, the repository with snapshots every 50 events, the event store with
group commit) sends into a conversation that already holds 10 or 100,000 messages.

The long conversation is pre-filled through the same repository in appends of 2,000 messages
(a snapshot written at each crossing, as in production), so the stream really has 100,000
MessageSent events. Loading for a command reads one bounded snapshot (participants + the last
128 messages' seq/id/sender) and at most 49 events, so the figure stays flat."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from parley_chat.bootstrap import warm_cache
from parley_chat.commands import SendMessage
from parley_chat.config import Settings
from parley_chat.domain import EVENTS, Conversation
from parley_chat.handlers import Chat, ChatCodec, handle
from parley_commandkit import Context
from parley_eventstore.aggregate import Repository
from parley_eventstore.migrate import migrate
from parley_eventstore.pool import create_pool
from parley_eventstore.records import ConcurrencyError, Metadata
from parley_eventstore.store import EventStore

from bench.common import Figures, create_database, drop_database

LENGTHS = (10, 100_000)
CONCURRENCY = (1, 8, 32, 64)
COMMANDS = 1000
WARMUP = 30
PREFILL_BATCH = 2_000
OTHER_CONVERSATIONS = 2_000  # the rest of the database (see other_conversations)
OTHER_LENGTH = 10
SNAPSHOT_EVERY = 50
META = Metadata(correlation_id="bench")
PEOPLE = [str(uuid.uuid4()) for _ in range(3)]
TEXT = "a chat message of some ordinary length, about eighty characters long......"


async def prefill(conversations: Repository[Conversation], cid: str, length: int) -> None:
    conversation = await conversations.load(cid)
    conversation.create(PEOPLE[0], PEOPLE[1:], "bench")
    n = 0
    while n < length:
        for _ in range(min(PREFILL_BATCH, length - n)):
            conversation.send(str(uuid.uuid4()), PEOPLE[n % 3], TEXT, None)
            n += 1
        await conversations.save(conversation, metadata=META)


async def other_conversations(conversations: Repository[Conversation], count: int) -> None:
    """The rest of a chat database: many small conversations beside the one measured, so the
    planner's statistics see what a real one holds (not a single stream owning the table)."""
    for _ in range(count):
        conversation = await conversations.load(str(uuid.uuid4()))
        conversation.create(PEOPLE[0], PEOPLE[1:], "other")
        for i in range(OTHER_LENGTH):
            conversation.send(str(uuid.uuid4()), PEOPLE[i % 3], TEXT, None)
        await conversations.save(conversation, metadata=META)


async def latencies_at(chat: Chat, length: int) -> Figures:
    cid = str(uuid.uuid4())
    await prefill(chat.conversations, cid, length)
    # a conversation that grew to this length over days was analyzed by autovacuum many times
    # on the way; the prefill takes seconds, so bring the statistics to where they would be
    async with chat.conversations.store.pool.acquire() as conn:
        await conn.execute("ANALYZE events")
    ctx = Context(META)
    for i in range(WARMUP):  # warm the plan cache and pool, as a running service would be
        await handle(chat, SendMessage(cid, PEOPLE[i % 3], TEXT), ctx)
    samples = []
    started = time.perf_counter()
    for i in range(COMMANDS):
        t0 = time.perf_counter()
        await handle(chat, SendMessage(cid, PEOPLE[i % 3], TEXT), ctx)
        samples.append((time.perf_counter() - t0) * 1000)
    return Figures(COMMANDS, time.perf_counter() - started, samples)


async def concurrent_senders(chat: Chat, senders: int, each: int) -> dict[str, float]:
    """`senders` tasks send `each` messages into ONE conversation at once. With the
    per-conversation queue they take turns in-process; without it (`chat_on(serialize=False)`:
    as if every sender were on another replica) they race on the stream version and the losers
    are re-run (jittered, up to `chat.retries` times). Counts refusals (409 over HTTP)."""
    cid = str(uuid.uuid4())
    people = [str(uuid.uuid4()) for _ in range(senders)]
    conversation = await chat.conversations.load(cid)
    conversation.create(people[0], people[1:] or [str(uuid.uuid4())], "bench")
    await chat.conversations.save(conversation, metadata=META)
    samples: list[float] = []
    refused = 0

    async def sender(me: str) -> None:
        nonlocal refused
        for _ in range(each):
            t0 = time.perf_counter()
            try:
                await handle(chat, SendMessage(cid, me, TEXT), Context(META))
            except ConcurrencyError:
                refused += 1
                continue
            samples.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(sender(p) for p in people))
    elapsed = time.perf_counter() - started
    figures = Figures(len(samples), elapsed, samples)
    seqs = (await chat.conversations.load(cid)).seq
    assert seqs == len(samples), "every accepted message got the next seq"
    return {
        "per_s": round(len(samples) / elapsed, 1),
        "p99_ms": round(figures.pct(99), 3),
        "refused": refused,
    }


def chat_on(store: EventStore, *, serialize: bool) -> Chat:
    """The chat handlers as the service wires them (config.Settings' defaults: the queue per
    conversation and its kept states); `serialize=False`: neither, as if every sender were
    on another replica."""
    defaults = Settings()
    return Chat(
        Repository(
            store,
            Conversation,
            ChatCodec(*EVENTS),
            snapshot_every=SNAPSHOT_EVERY,
            serialize=serialize,
            keep_warm=warm_cache(defaults) if serialize else None,
        )
    )


async def run() -> dict[str, Any]:
    dsn = await create_database("bench_chat_send")
    results: dict[str, Any] = {}
    try:
        await migrate(dsn)
        pool = await create_pool(dsn, min_size=2, max_size=16)
        store = EventStore(
            pool, topic="chat.events", source="/parley/chat", context="chat", group_commit=True
        )
        chat = chat_on(store, serialize=True)
        try:
            await other_conversations(chat.conversations, OTHER_CONVERSATIONS)
            for length in LENGTHS:
                figures = await latencies_at(chat, length)
                results[f"send_message.len_{length}.p50_ms"] = round(figures.pct(50), 3)
                results[f"send_message.len_{length}.p99_ms"] = round(figures.pct(99), 3)
            for serialize in (True, False):
                mode = "queued" if serialize else "racing"
                senders_chat = chat_on(store, serialize=serialize)
                for senders in CONCURRENCY:
                    each = max(10, 320 // senders)
                    figures_c = await concurrent_senders(senders_chat, senders, each)
                    for key, value in figures_c.items():
                        results[f"send_message.{mode}.c{senders}.{key}"] = value
            async with pool.acquire() as conn:
                results["send_message.snapshot_bytes_at_100000"] = await conn.fetchval(
                    "SELECT max(length(state::text)) FROM snapshots"
                )
        finally:
            await store.close()
            await pool.close()
    finally:
        await drop_database(dsn)
    results["send_message.p99_ratio_100000_vs_10"] = round(
        results["send_message.len_100000.p99_ms"] / results["send_message.len_10.p99_ms"], 3
    )
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
