"""The key table of the key owner (the auth service): one AES-256 key per subject, created on
first use, destroyed (the row kept as a tombstone) when the subject is forgotten.

Migration: `parley_privacy/migrations` (apply with the owner's own migrations through
`parley_eventstore.migrate.migrate(dsn, migrations_dir())`).
"""

from __future__ import annotations

import time
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
    """KeyProvider over the key table: one read by primary key, found keys cached for `ttl_s`
    (loading an aggregate opens every event of its tail). `forget` drops the entry at once in
    this process; another replica of the owner may use a destroyed key for up to `ttl_s`, as a
    consumer's KeyClient may for its own TTL."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 5.0) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Key]] = {}

    async def key(self, subject: str, max_age_s: float | None = None) -> Key | None:
        cached = self._cache.get(subject)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(GET, subject)
        if row is None or row["secret"] is None:
            return None
        key = Key(subject, row["kid"], bytes(row["secret"]))
        self._remember(key)
        return key

    def _remember(self, key: Key) -> None:
        if len(self._cache) >= 100_000:
            self._cache.clear()
        self._cache[key.subject] = (time.monotonic() + self.ttl_s, key)

    async def is_forgotten(self, subject: str) -> bool:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(GET, subject)
        return row is not None and row["forgotten_at"] is not None

    async def key_for_writing(self, subject: str) -> Key:
        known = await self.key(subject)
        if known is not None:
            return known
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(GET, subject)
            if row is None:  # concurrent creators: the first insert wins, all read it back
                await conn.execute(CREATE, subject, new_kid(), new_key())
                row = await conn.fetchrow(GET, subject)
        assert row is not None
        if row["secret"] is None:
            raise SubjectForgotten(subject)
        key = Key(subject, row["kid"], bytes(row["secret"]))
        self._remember(key)
        return key

    async def close(self) -> None:
        """Nothing of its own to close: the pool is the service's."""

    async def forget(
        self, subject: str, *, actor: str | None = None, correlation_id: str | None = None
    ) -> None:
        """Destroy the subject's key for good (idempotent; a subject without a key gets a
        tombstone too, so no key is ever made for them afterwards)."""
        self._cache.pop(subject, None)
        async with self.pool.acquire() as conn:
            await conn.execute(FORGET, subject)
        self._cache.pop(subject, None)

    def evict(self, subject: str) -> None:
        self._cache.pop(subject, None)
