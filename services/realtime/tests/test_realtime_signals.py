"""Tickets and presence against the real PostgreSQL: what two replicas share."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from parley_realtime.migrate import migrate
from parley_realtime.signals import Signals, TicketHolder, TooManyStreams

pytestmark = pytest.mark.integration


class Heard:
    def __init__(self) -> None:
        self.typing: list[dict[str, Any]] = []
        self.presence: list[dict[str, Any]] = []

    async def presence_of(self, user: str, count: int, wait_s: float = 5.0) -> list[str]:
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            found = [p["status"] for p in self.presence if p["user_id"] == user]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        return [p["status"] for p in self.presence if p["user_id"] == user]


async def replica(dsn: str, name: str, heard: Heard, cap: int = 3) -> Signals:
    signals = Signals(
        dsn,
        name,
        on_typing=heard.typing.append,
        on_presence=heard.presence.append,
        max_streams_per_person=cap,
    )
    await signals.start()
    await asyncio.wait_for(signals.listening.wait(), 5)
    return signals


@pytest.fixture
async def dsn(fresh_database: str) -> str:
    await migrate(fresh_database)
    return fresh_database


async def test_a_ticket_is_redeemed_once_on_any_replica(dsn: str) -> None:
    heard = Heard()
    one, two = await replica(dsn, "one", heard), await replica(dsn, "two", heard)
    try:
        holder = TicketHolder("ada", "user", "s1", datetime.now(UTC) + timedelta(minutes=5))
        ticket = await one.issue_ticket(holder)
        assert await two.redeem_ticket(ticket) == holder
        assert await one.redeem_ticket(ticket) is None
        assert await one.redeem_ticket("not-a-ticket-at-all-xxxxxxxxxx") is None
        stale = await one.issue_ticket(holder)
        connection = await asyncpg.connect(dsn)
        await connection.execute("UPDATE stream_tickets SET expires_at = now() - interval '1 s'")
        await connection.close()
        assert await two.redeem_ticket(stale) is None
    finally:
        await one.stop()
        await two.stop()


async def test_presence_is_shared_and_each_transition_announced_once(dsn: str) -> None:
    heard = Heard()
    one, two = await replica(dsn, "one", heard), await replica(dsn, "two", heard)
    try:
        await one.stream_opened("ada")
        await two.stream_opened("ada")  # a second device on the other replica
        assert (await one.presence_of("ada")).status == "online"
        await one.stream_closed("ada")
        assert (await two.presence_of("ada")).status == "online"
        await two.stream_closed("ada")
        offline = await two.presence_of("ada")
        assert offline.status == "offline" and offline.last_seen is not None
        # every replica hears each transition once (two listeners here: 2 x 2 signals)
        assert await heard.presence_of("ada", 4) == ["online", "online", "offline", "offline"]
    finally:
        await one.stop()
        await two.stop()


async def test_the_stream_cap_holds_across_replicas(dsn: str) -> None:
    heard = Heard()
    one, two = await replica(dsn, "one", heard, cap=3), await replica(dsn, "two", heard, cap=3)
    try:
        await one.stream_opened("ada")
        await two.stream_opened("ada")
        await two.stream_opened("ada")
        with pytest.raises(TooManyStreams):
            await one.stream_opened("ada")
        await two.stream_closed("ada")
        await one.stream_opened("ada")
    finally:
        await one.stop()
        await two.stop()


async def test_a_dead_replicas_people_go_offline_with_its_last_beat(dsn: str) -> None:
    heard = Heard()
    survivor = await replica(dsn, "survivor", heard)
    connection = await asyncpg.connect(dsn)
    try:
        # a replica that stopped beating 60 s ago with two people's streams
        await connection.execute(
            "INSERT INTO realtime_replicas VALUES ('crashed', now() - interval '60 s')"
        )
        await connection.execute(
            "INSERT INTO presence (user_id, replica_id, connections) "
            "VALUES ('bob', 'crashed', 2), ('cy', 'crashed', 1)"
        )
        await survivor.stream_opened("cy")  # cy also has a stream on the living replica
        assert (await survivor.presence_of("bob")).status == "offline"  # dead rows never count
        await survivor._sweep_dead()
        assert await heard.presence_of("bob", 1) == ["offline"]
        assert "offline" not in await heard.presence_of("cy", 1, wait_s=0.3)
        left = await connection.fetchval(
            "SELECT count(*) FROM presence WHERE replica_id = 'crashed'"
        )
        assert left == 0
        bob = await survivor.presence_of("bob")
        assert bob.last_seen is not None and bob.last_seen < datetime.now(UTC) - timedelta(
            seconds=50
        )
    finally:
        await connection.close()
        await survivor.stop()


async def test_typing_reaches_every_replica(dsn: str) -> None:
    heard_one, heard_two = Heard(), Heard()
    one, two = await replica(dsn, "one", heard_one), await replica(dsn, "two", heard_two)
    try:
        await one.typing("c1", "ada", timedelta(seconds=5))
        for heard in (heard_one, heard_two):
            for _ in range(100):
                if heard.typing:
                    break
                await asyncio.sleep(0.02)
            [signal] = heard.typing
            assert (signal["conversation_id"], signal["user_id"]) == ("c1", "ada")
    finally:
        await one.stop()
        await two.stop()
