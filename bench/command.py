"""Command latency against stream length: the users service's real repository (snapshot every
100 events) edits a profile whose stream already holds 10, 1,000 or 10,000 events. With
snapshots, loading reads one snapshot row and at most 100 events, so the cost stays flat."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from parley_contracts.users import UserCreated, UserProfileUpdated
from parley_eventstore.aggregate import Repository
from parley_eventstore.codec import EventCodec
from parley_eventstore.migrate import migrate
from parley_eventstore.pool import create_pool
from parley_eventstore.records import Metadata
from parley_eventstore.store import EventStore
from parley_users.domain import EVENTS, User

from bench.common import Figures, create_database, drop_database

LENGTHS = (10, 1_000, 10_000)
COMMANDS = 300
META = Metadata(correlation_id="bench")


async def prefill(users: Repository[User], user_id: str, length: int) -> None:
    """Grow the stream to `length` events in appends of up to 100 (snapshots as in production)."""
    user = await users.load(user_id)
    user.record(UserCreated(user_id=user_id, name="Ada", email="ada@example.test"))
    n = 1
    while n < length:
        for _ in range(min(100, length - n)):
            user.record(UserProfileUpdated(user_id=user_id, bio=f"bio {n}"))
            n += 1
        await users.save(user, metadata=META)


async def latencies_at(users: Repository[User], length: int) -> Figures:
    user_id = str(uuid.uuid4())
    await prefill(users, user_id, length)
    for i in range(30):  # warm the plan cache and pool, as a running service would be
        await users.execute(
            user_id, lambda u, i=i: u.update_profile({"bio": f"w {i}"}), metadata=META
        )
    samples = []
    started = time.perf_counter()
    for i in range(COMMANDS):
        t0 = time.perf_counter()
        await users.execute(
            user_id, lambda u, i=i: u.update_profile({"bio": f"edit {i}"}), metadata=META
        )
        samples.append((time.perf_counter() - t0) * 1000)
    return Figures(COMMANDS, time.perf_counter() - started, samples)


async def run() -> dict[str, Any]:
    dsn = await create_database("bench_command")
    results: dict[str, Any] = {}
    try:
        await migrate(dsn)
        pool = await create_pool(dsn, min_size=2, max_size=4)
        store = EventStore(pool, topic="users.events", source="/parley/users", context="users")
        users = Repository(store, User, EventCodec(*EVENTS), snapshot_every=100)
        try:
            for length in LENGTHS:
                figures = await latencies_at(users, length)
                results[f"command.stream_len_{length}.p50_ms"] = round(figures.pct(50), 3)
                results[f"command.stream_len_{length}.p99_ms"] = round(figures.pct(99), 3)
        finally:
            await store.close()
            await pool.close()
    finally:
        await drop_database(dsn)
    short, long = (
        results["command.stream_len_10.p99_ms"],
        results["command.stream_len_10000.p99_ms"],
    )
    results["command.p99_ratio_10000_vs_10"] = round(long / short, 3)
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
