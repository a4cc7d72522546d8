"""Load a saga, decide, save it with the commands it sends: one PostgreSQL transaction each.

The row lock (`FOR UPDATE`) serialises everything that touches one saga (a reply and its
deadline firing at the same moment, two orchestrator replicas); the timer takes due sagas with
`SKIP LOCKED`, so replicas share the work. Commands go to the `outbox` table in the same
transaction and the relay publishes them: a crash before the commit loses nothing (the input
is redelivered or the deadline is still due), a crash after it loses nothing either (the
outbox row is there). Metrics are counted after the commit.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from parley_eventstore.outbox import OutboxWaker, enqueue
from parley_messaging.saga import SagaCommand, SagaReply, command_record

from parley_registration_saga import metrics
from parley_registration_saga.domain import ACTIVE, FORWARD, STATUSES, Policy, Saga

SOURCE = "/parley/registration-saga"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Orchestrator:
    pool: asyncpg.Pool
    policy: Policy
    reply_to: str
    waker: OutboxWaker | None = None
    clock: Callable[[], datetime] = _now

    async def start(
        self, user_id: str, email: str, name: str, traceparent: str | None = None
    ) -> bool:
        """Begin the saga of a new account; False if it exists (a redelivered trigger)."""
        saga, commands = Saga.start(
            user_id, email, name, self.reply_to, self.clock(), self.policy, traceparent
        )
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO sagas (id, status, deadline, state) VALUES ($1, $2, $3, $4::jsonb)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                saga.id,
                saga.status,
                saga.deadline,
                json.dumps(saga.to_json()),
            )
            if inserted is None:
                return False
            await _enqueue(conn, commands)
        self._after_commit(saga.history, commands)
        return True

    async def shadow(self, decoy_id: str) -> None:
        """Auth answered a taken address with `decoy_id`: give it a plausible registration
        (per-step times drawn around what real steps take), stored like a saga, never run."""
        seconds = [random.uniform(0.03, 0.12) for _ in FORWARD]
        saga = Saga.shadow(decoy_id, self.reply_to, self.clock(), seconds)
        await self.pool.execute(
            "INSERT INTO sagas (id, status, deadline, state) VALUES ($1, $2, NULL, $3::jsonb)"
            " ON CONFLICT (id) DO NOTHING",
            saga.id,
            saga.status,
            json.dumps(saga.to_json()),
        )

    async def on_reply(self, reply: SagaReply) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            saga = await _locked(conn, reply.saga_id)
            if saga is None:
                return  # a reply for a saga this database never had: nothing to correlate
            seen = len(saga.history)
            commands = saga.on_reply(reply, self.clock(), self.policy)
            if len(saga.history) == seen:
                return
            await _save(conn, saga, commands)
        self._after_commit(saga.new_history_since(seen), commands)

    async def fire_due(self, limit: int = 100) -> int:
        """Act on every saga whose deadline passed (retries, timeouts); returns how many."""
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT state FROM sagas WHERE deadline <= $1 ORDER BY deadline LIMIT $2"
                " FOR UPDATE SKIP LOCKED",
                now,
                limit,
            )
            changes: list[tuple[Saga, int, list[SagaCommand]]] = []
            for row in rows:
                saga = Saga.from_json(json.loads(row["state"]))
                seen = len(saga.history)
                commands = saga.on_deadline(now, self.policy)
                await _save(conn, saga, commands)
                changes.append((saga, seen, commands))
        for saga, seen, commands in changes:
            self._after_commit(saga.new_history_since(seen), commands)
        return len(rows)

    async def view(self, saga_id: str) -> dict[str, Any] | None:
        state = await self.pool.fetchval("SELECT state FROM sagas WHERE id = $1", saga_id)
        return Saga.from_json(json.loads(state)).public_view(self.clock()) if state else None

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.pool.fetch("SELECT status, count(*) AS n FROM sagas GROUP BY status")
        return {row["status"]: int(row["n"]) for row in rows}

    async def refresh_metrics(self) -> None:
        metrics.set_counts(await self.count_by_status(), STATUSES)

    def _after_commit(self, entries: Sequence[dict[str, Any]], commands: list[SagaCommand]) -> None:
        metrics.observe(entries)
        if commands and self.waker is not None:
            self.waker.poke()


async def _locked(conn: asyncpg.Connection, saga_id: str) -> Saga | None:
    state = await conn.fetchval("SELECT state FROM sagas WHERE id = $1 FOR UPDATE", saga_id)
    return Saga.from_json(json.loads(state)) if state else None


async def _save(conn: asyncpg.Connection, saga: Saga, commands: list[SagaCommand]) -> None:
    deadline = saga.deadline if saga.status in ACTIVE else None
    await conn.execute(
        "UPDATE sagas SET status = $2, deadline = $3, state = $4::jsonb, updated_at = now()"
        " WHERE id = $1",
        saga.id,
        saga.status,
        deadline,
        json.dumps(saga.to_json()),
    )
    await _enqueue(conn, commands)


async def _enqueue(conn: asyncpg.Connection, commands: list[SagaCommand]) -> None:
    for command in commands:
        key, headers, value = command_record(command, SOURCE)
        await enqueue(conn, command.topic, key, headers, value)
