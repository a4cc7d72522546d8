"""The participant's memory of answered saga commands (`saga_commands`, one row per command id):
the `CommandLog` of parley_messaging.participant, kept in the participant's own database."""

from __future__ import annotations

import json

import asyncpg
from parley_messaging.saga import OUTCOMES, SagaReply


class SagaCommandLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def reply_of(self, command_id: str) -> SagaReply | None:
        row = await self._pool.fetchval(
            "SELECT reply FROM saga_commands WHERE command_id = $1", command_id
        )
        if row is None:
            return None
        body = json.loads(row)
        outcome = body["outcome"]
        if outcome not in OUTCOMES:
            raise ValueError(f"saga_commands row {command_id} has outcome {outcome!r}")
        return SagaReply(
            command_id=command_id,
            context=body["context"],
            subject=body["subject"],
            saga_id=body["saga_id"],
            outcome=outcome,
            reason=body.get("reason", ""),
            result=body.get("result") or {},
        )

    async def remember(self, reply: SagaReply) -> None:
        body = {
            "context": reply.context,
            "subject": reply.subject,
            "saga_id": reply.saga_id,
            "outcome": reply.outcome,
            "reason": reply.reason,
            "result": dict(reply.result),
        }
        await self._pool.execute(
            "INSERT INTO saga_commands (command_id, reply) VALUES ($1, $2::jsonb)"
            " ON CONFLICT (command_id) DO NOTHING",
            reply.command_id,
            json.dumps(body),
        )
