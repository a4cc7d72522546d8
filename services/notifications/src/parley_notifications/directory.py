"""The `directory` table (user id -> email address), fed from users.events by the policy.

A row remembers the users stream's version it reflects: an upsert with an older or equal
version changes nothing, so redeliveries and replays of users.events are harmless.
"""

from __future__ import annotations

import asyncpg


class Directory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def remember(self, user_id: str, email: str, version: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO directory (user_id, email, version) VALUES ($1, $2, $3)
                ON CONFLICT (user_id) DO UPDATE
                   SET email = EXCLUDED.email, version = EXCLUDED.version,
                       updated_at = clock_timestamp()
                 WHERE directory.version < EXCLUDED.version
                """,
                user_id,
                email,
                version,
            )

    async def forget(self, user_id: str) -> None:
        """The person was forgotten: their address goes (a replay of their older events
        cannot bring it back: their email decrypts to nothing then)."""
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM directory WHERE user_id = $1", user_id)

    async def address(self, user_id: str) -> str | None:
        async with self.pool.acquire() as conn:
            email: str | None = await conn.fetchval(
                "SELECT email FROM directory WHERE user_id = $1", user_id
            )
            return email
