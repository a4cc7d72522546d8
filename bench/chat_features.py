"""Latency of the chat commands added with edits and reactions, through the chat service's
real handlers and event store (group commit, snapshots every 50 events), in a conversation
that already holds 10,000 messages: `chat.edit` (the sender edits one of the recent
messages: one lookup of the message's events by id, then the append) and `chat.react` (a
participant puts an emoji on a message, or takes it off again: a lookup of the reaction's
events by id, then the append). `chat.send_guarded` is send-message on the production path,
with the per-person send limit and the block lookup (one PostgreSQL round trip each), beside
the bare handler's `send_message.len_10` of bench.chat_send."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from parley_chat.blocks import BlockList
from parley_chat.domain import EVENTS, Conversation
from parley_chat.handlers import (
    AddReaction,
    Chat,
    ChatCodec,
    EditMessage,
    RemoveReaction,
    SendMessage,
    handle,
)
from parley_chat.limits import SendLimiter
from parley_chat.migrate import migrate
from parley_commandkit import Context
from parley_eventstore.aggregate import Repository
from parley_eventstore.pool import create_pool
from parley_eventstore.store import EventStore

from bench.chat_send import META, PEOPLE, TEXT, prefill
from bench.common import Figures, create_database, drop_database

LENGTH = 10_000
COMMANDS = 1000
WARMUP = 30
EMOJI = ("\U0001f44d", "\U0001f389", "\u2764\ufe0f", "\U0001f602")


async def timed(count: int, command: Any) -> Figures:
    samples = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        await command(i)
        samples.append((time.perf_counter() - t0) * 1000)
    return Figures(count, time.perf_counter() - started, samples)


async def run() -> dict[str, Any]:
    dsn = await create_database("bench_chat_features")
    results: dict[str, Any] = {}
    try:
        await migrate(dsn)
        pool = await create_pool(dsn, min_size=2, max_size=16)
        store = EventStore(
            pool, topic="chat.events", source="/parley/chat", context="chat", group_commit=True
        )
        conversations = Repository(
            store, Conversation, ChatCodec(*EVENTS), snapshot_every=50, serialize=True
        )
        chat = Chat(conversations, blocks=BlockList(pool))
        ctx = Context(META)
        try:
            cid = str(uuid.uuid4())
            await prefill(conversations, cid, LENGTH)
            async with pool.acquire() as conn:
                await conn.execute("ANALYZE events")
            recent = [
                str((await handle(chat, SendMessage(cid, PEOPLE[0], TEXT), ctx)).result["id"])
                for _ in range(WARMUP)
            ]

            async def edit(i: int) -> None:
                text = f"{TEXT} (edit {i})"
                await handle(chat, EditMessage(cid, recent[i % len(recent)], PEOPLE[0], text), ctx)

            async def react(i: int) -> None:
                # every other command takes the previous one's reaction off again
                person, emoji = PEOPLE[(i // 2) % 3], EMOJI[(i // 6) % len(EMOJI)]
                message = recent[(i // 24) % len(recent)]
                kind = AddReaction if i % 2 == 0 else RemoveReaction
                await handle(chat, kind(cid, message, person, emoji), ctx)

            chat.send_limit = SendLimiter(pool, 1_000_000, 10.0)
            guarded_cid = str(uuid.uuid4())
            await prefill(conversations, guarded_cid, 10)

            async def send_guarded(i: int) -> None:
                await handle(chat, SendMessage(guarded_cid, PEOPLE[i % 3], TEXT), ctx)

            for name, command in (("edit", edit), ("react", react), ("send_guarded", send_guarded)):
                await timed(WARMUP, command)
                figures = await timed(COMMANDS, command)
                results[f"chat.{name}.p50_ms"] = round(figures.pct(50), 3)
                results[f"chat.{name}.p99_ms"] = round(figures.pct(99), 3)
        finally:
            await store.close()
            await pool.close()
    finally:
        await drop_database(dsn)
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
