"""Migrations, the idempotency-key purge and the coalescing outbox waker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import pytest
from parley_eventstore import EventStore, Metadata, NewEvent, purge_idempotency_keys
from parley_eventstore.migrate import main, migrate, migrations_dir
from parley_testing.plugin import dsn_for_database

pytestmark = pytest.mark.integration


async def test_migrate_creates_the_database_and_is_idempotent(postgres_dsn: str) -> None:
    name = f"t_mig_{uuid.uuid4().hex[:8]}"
    dsn = dsn_for_database(postgres_dsn, name)
    try:
        await migrate(dsn)
        await migrate(dsn)
        assert await asyncio.to_thread(main, [dsn]) == 0
        conn = await asyncpg.connect(dsn)
        try:
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                )
            }
            applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        finally:
            await conn.close()
        assert {"events", "snapshots", "idempotency_keys", "outbox"} <= tables
        assert applied == len(list(migrations_dir().glob("*.sql")))
    finally:
        admin = await asyncpg.connect(postgres_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_purge_deletes_only_expired_keys(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, topic="t.events", source="/t", context="t", notify=False)
    for i in range(12):
        await store.append(
            f"s{i}", "C", 0, [NewEvent("E", {})], metadata=Metadata(), idempotency_key=f"k{i}"
        )
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET recorded_at = now() - interval '8 days'"
            " WHERE key <> ALL($1::text[])",
            ["k0", "k1"],
        )
    assert await purge_idempotency_keys(pool, timedelta(days=7), batch=4) == 10
    async with pool.acquire() as conn:
        left = {r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")}
    assert left == {"k0", "k1"}


async def test_waker_coalesces_notifies_after_commit(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, topic="t.events", source="/t", context="t")
    assert store.waker is not None
    heard: list[str] = []
    listener = await asyncpg.connect(pool._connect_args[0])  # type: ignore[attr-defined]
    await listener.add_listener("parley_outbox", lambda *args: heard.append(args[2]))
    await asyncio.gather(
        *(
            store.append(f"s{i}", "C", 0, [NewEvent("E", {})], metadata=Metadata())
            for i in range(200)
        )
    )
    await store.close()
    await asyncio.sleep(0.1)
    await listener.close()
    assert 1 <= store.waker.sent < 200
    assert len(heard) == store.waker.sent
