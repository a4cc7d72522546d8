"""The key table of the key owner (the auth service): one AES-256 key per subject, created on
first use, destroyed (the row kept as a tombstone) when the subject is forgotten.

Migration: `parley_privacy/migrations` (apply with the owner's own migrations through
`parley_eventstore.migrate.migrate(dsn, migrations_dir())`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import asyncpg

from parley_privacy.envelope import new_key, new_kid
from parley_privacy.keys import Key, SubjectForgotten

GET = "SELECT kid, secret, forgotten_at FROM subject_keys WHERE subject_id = $1"
CREATE = """
INSERT INTO subject_keys (subject_id, kid, secret) VALUES ($1, $2, $3)
ON CONFLICT (subject_id) DO NOTHING
"""
FORGET = """
INSERT INTO subject_keys (subject_id, kid, secret, forgotten_at)
VALUES ($1, '-', NULL, clock_timestamp())
ON CONFLICT (subject_id) DO UPDATE SET secret = NULL,
    forgotten_at = coalesce(subject_keys.forgotten_at, clock_timestamp())
RETURNING (xmax = 0) AS inserted
"""


def migrations_dir() -> Path:
    return Path(str(resources.files("parley_privacy") / "migrations"))


class KeyStore:
    """KeyProvider over the key table (no cache: one indexed read by primary key)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def key(self, subject: str) -> Key | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(GET, subject)
        if row is None or row["secret"] is None:
            return None
        return Key(subject, row["kid"], bytes(row["secret"]))

    async def is_forgotten(self, subject: str) -> bool:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(GET, subject)
        return row is not None and row["forgotten_at"] is not None

    async def key_for_writing(self, subject: str) -> Key:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(GET, subject)
            if row is None:  # concurrent creators: the first insert wins, all read it back
                await conn.execute(CREATE, subject, new_kid(), new_key())
                row = await conn.fetchrow(GET, subject)
        assert row is not None
        if row["secret"] is None:
            raise SubjectForgotten(subject)
        return Key(subject, row["kid"], bytes(row["secret"]))

    async def forget(
        self, subject: str, *, actor: str | None = None, correlation_id: str | None = None
    ) -> None:
        """Destroy the subject's key for good (idempotent; a subject without a key gets a
        tombstone too, so no key is ever made for them afterwards)."""
        async with self.pool.acquire() as conn:
            await conn.execute(FORGET, subject)

    def evict(self, subject: str) -> None:
        return None
