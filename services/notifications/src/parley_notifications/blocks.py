"""The `blocks` table (blocker -> blocked), fed from users.events by the policy, so that a
person who blocks someone gets no notifications (mentions included) of their messages.

Like the directory: a row remembers the blocker's users stream version it reflects, and an
event with an older or equal version changes nothing, so redeliveries and replays of
users.events are harmless and a block followed by an unblock converges. An unblock keeps
the row (`active` false) for that reason.
"""

from __future__ import annotations

import asyncpg


class Blocks:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def apply(self, blocker: str, blocked: str, active: bool, version: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO blocks (blocker, blocked, active, version) VALUES ($1, $2, $3, $4)
                ON CONFLICT (blocker, blocked) DO UPDATE
                   SET active = EXCLUDED.active, version = EXCLUDED.version,
                       updated_at = clock_timestamp()
                 WHERE blocks.version < EXCLUDED.version
                """,
                blocker,
                blocked,
                active,
                version,
            )

    async def blockers_of(self, user_id: str) -> frozenset[str]:
        """The people who block `user_id` (one indexed query per message)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT blocker FROM blocks WHERE blocked = $1 AND active", user_id
            )
        return frozenset(str(row["blocker"]) for row in rows)
