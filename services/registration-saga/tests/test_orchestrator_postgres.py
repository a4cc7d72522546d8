"""The orchestrator against the real PostgreSQL: each transition is one transaction with the
commands it sends in the outbox; deadlines live in the table, so a new orchestrator (a restart)
picks up exactly where the old one stopped."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from parley_messaging.saga import SagaReply, decode_command
from parley_registration_saga.domain import Policy
from parley_registration_saga.migrate import migrate
from parley_registration_saga.orchestrator import Orchestrator

pytestmark = pytest.mark.integration
POLICY = Policy(
    step_timeout=timedelta(seconds=2),
    max_attempts=2,
    backoff_base=timedelta(seconds=1),
    backoff_max=timedelta(seconds=1),
    compensation_attempts=2,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(fresh_database)
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


async def outbox(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    """(topic, command name, command id) of every queued command, oldest first."""
    rows = await pool.fetch("SELECT topic, headers, payload FROM outbox ORDER BY id")
    found = []
    for row in rows:
        headers = [(k, v.encode()) for k, v in json.loads(row["headers"]).items()]
        command = decode_command(headers, bytes(row["payload"]))
        found.append((row["topic"], command.name, command.id))
    return found


def succeeded(command_id: str, saga_id: str) -> SagaReply:
    return SagaReply(command_id, "x", saga_id, saga_id, "succeeded")


async def test_a_saga_runs_to_completion_one_transaction_per_reply(pool: asyncpg.Pool) -> None:
    clock = Clock()
    orchestrator = Orchestrator(pool, POLICY, "registration-saga.replies", clock=clock)
    user = str(uuid.uuid4())
    assert await orchestrator.start(user, "a@x.test", "Ada")
    assert not await orchestrator.start(user, "a@x.test", "Ada")  # a redelivered trigger
    for _ in range(4):
        _topic, _, command_id = (await outbox(pool))[-1]
        await orchestrator.on_reply(succeeded(command_id, user))
        await orchestrator.on_reply(succeeded(command_id, user))  # a duplicate reply: ignored
    sent = await outbox(pool)
    assert [(t, n) for t, n, _ in sent] == [
        ("users.commands", "CreateProfile"),
        ("notifications.commands", "PrepareNotifications"),
        ("users.commands", "AssignDefaultRole"),
        ("auth.commands", "ActivateAccount"),
    ]
    view = await orchestrator.view(user)
    assert view is not None and view["status"] == "completed" and view["step"] is None
    assert await orchestrator.count_by_status() == {"completed": 1}
    assert await pool.fetchval("SELECT deadline FROM sagas WHERE id = $1", user) is None


async def test_deadlines_survive_a_restart_and_drive_retries_then_compensation(
    pool: asyncpg.Pool,
) -> None:
    clock = Clock()
    first = Orchestrator(pool, POLICY, "registration-saga.replies", clock=clock)
    user = str(uuid.uuid4())
    await first.start(user, "a@x.test", "Ada")
    del first  # the orchestrator "crashes": only the database remains

    resumed = Orchestrator(pool, POLICY, "registration-saga.replies", clock=clock)
    assert await resumed.fire_due() == 0  # nothing due yet
    clock.now += timedelta(seconds=2)
    assert await resumed.fire_due() == 1  # timed out -> retry scheduled after the backoff
    clock.now += timedelta(seconds=1)
    assert await resumed.fire_due() == 1  # the retry is sent
    clock.now += timedelta(seconds=2)
    assert await resumed.fire_due() == 1  # second attempt timed out: compensate
    names = [n for _, n, _ in await outbox(pool)]
    assert names == ["CreateProfile", "CreateProfile", "RemoveProfile"]
    # compensation replies: the profile removal, then cancelling the registration
    for _ in range(2):
        _, _, command_id = (await outbox(pool))[-1]
        await resumed.on_reply(succeeded(command_id, user))
    assert [n for _, n, _ in await outbox(pool)][-1] == "CancelRegistration"
    view = await resumed.view(user)
    assert view is not None and view["status"] == "compensated"
    events = [(h["step"], h["event"]) for h in view["history"]]
    assert events.count(("create_profile", "timed_out")) == 2
    assert ("remove_profile", "succeeded") in events


async def test_two_orchestrators_never_fire_the_same_deadline_twice(pool: asyncpg.Pool) -> None:
    clock = Clock()
    a = Orchestrator(pool, POLICY, "registration-saga.replies", clock=clock)
    b = Orchestrator(pool, POLICY, "registration-saga.replies", clock=clock)
    users = [str(uuid.uuid4()) for _ in range(20)]
    for user in users:
        await a.start(user, f"{user}@x.test", "Ada")
    clock.now += timedelta(seconds=3)
    import asyncio

    fired = await asyncio.gather(a.fire_due(limit=7), b.fire_due(limit=7), a.fire_due(limit=7))
    while sum(fired) < len(users):
        fired.append(await b.fire_due())
    assert sum(fired) == len(users)
    rows = await pool.fetch("SELECT state FROM sagas")
    for row in rows:
        history = json.loads(row["state"])["history"]
        assert [h["event"] for h in history].count("timed_out") == 1


async def test_unknown_and_malformed_ids_have_no_view(pool: asyncpg.Pool) -> None:
    orchestrator = Orchestrator(pool, POLICY, "registration-saga.replies")
    assert await orchestrator.view(str(uuid.uuid4())) is None
    await orchestrator.on_reply(succeeded("nope/create_profile", str(uuid.uuid4())))
    assert await outbox(pool) == []
