"""The key table of the key owner (the auth service): one AES-256 key per subject, created on
first use, destroyed (the row kept as a tombstone) when the subject is forgotten. Each key is
stored wrapped by the master key (`wrapping.MasterKeys`, from the environment): the database
alone never holds a usable data key.

Migration: `parley_privacy/migrations` (apply with the owner's own migrations through
`parley_eventstore.migrate.migrate(dsn, migrations_dir())`); then `rewrap(pool, master)` at the
owner's start wraps what an older version stored in the clear and moves rows of a previous
master key to the current one.
"""

from __future__ import annotations

import logging
import time
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from parley_privacy.envelope import new_key, new_kid
from parley_privacy.keys import Key, KeyUnavailable, SubjectForgotten
from parley_privacy.wrapping import MasterKeyError, MasterKeys

log = logging.getLogger("parley.privacy.store")

GET = "SELECT kid, secret, wrap_kid, forgotten_at FROM subject_keys WHERE subject_id = $1"
CREATE = """
INSERT INTO subject_keys (subject_id, kid, secret, wrap_kid) VALUES ($1, $2, $3, $4)
ON CONFLICT (subject_id) DO NOTHING
"""
FORGET = """
INSERT INTO subject_keys (subject_id, kid, secret, forgotten_at)
VALUES ($1, '-', NULL, clock_timestamp())
ON CONFLICT (subject_id) DO UPDATE SET secret = NULL, wrap_kid = NULL,
    forgotten_at = coalesce(subject_keys.forgotten_at, clock_timestamp())
RETURNING (xmax = 0) AS inserted
"""
# rows still in the clear (wrap_kid NULL) or under another master key than the current one
TO_REWRAP = """
SELECT subject_id, kid, secret, wrap_kid FROM subject_keys
WHERE secret IS NOT NULL AND wrap_kid IS DISTINCT FROM $1 AND subject_id > $2
ORDER BY subject_id LIMIT $3
"""
# only if the row is still as read (a concurrent rewrap or forget wins; idempotent)
REWRAP = """
UPDATE subject_keys SET secret = $2, wrap_kid = $3
WHERE subject_id = $1 AND secret = $4 AND wrap_kid IS NOT DISTINCT FROM $5
"""


def migrations_dir() -> Path:
    return Path(str(resources.files("parley_privacy") / "migrations"))


class KeyStore:
    """KeyProvider over the key table: one read by primary key, found keys cached for `ttl_s`
    (loading an aggregate opens every event of its tail). `forget` drops the entry at once in
    this process; another replica of the owner may use a destroyed key for up to `ttl_s`, as a
    consumer's KeyClient may for its own TTL."""

    def __init__(
        self, pool: asyncpg.Pool, ttl_s: float = 5.0, master: MasterKeys | None = None
    ) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        # None: keys are stored in the clear (unit tests, benchmarks); every deployment sets
        # one, and a wrapped row cannot be read without it (KeyUnavailable, never plaintext)
        self.master = master
        self._cache: dict[str, tuple[float, Key]] = {}

    def _key(self, subject: str, row: Any) -> Key:
        secret, kid = bytes(row["secret"]), str(row["kid"])
        if row["wrap_kid"] is not None:
            if self.master is None:
                raise KeyUnavailable("the key table is wrapped and no master key is configured")
            try:
                secret = self.master.unwrap(row["wrap_kid"], subject, kid, secret)
            except MasterKeyError as error:
                raise KeyUnavailable(str(error)) from error
        return Key(subject, kid, secret)

    def _wrapped(self, subject: str, kid: str, secret: bytes) -> tuple[bytes, str | None]:
        if self.master is None:
            return secret, None
        wrap_kid, wrapped = self.master.wrap(subject, kid, secret)
        return wrapped, wrap_kid

    async def key(self, subject: str, max_age_s: float | None = None) -> Key | None:
        cached = self._cache.get(subject)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(GET, subject)
        if row is None or row["secret"] is None:
            return None
        key = self._key(subject, row)
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
                kid = new_kid()
                await conn.execute(CREATE, subject, kid, *self._wrapped(subject, kid, new_key()))
                row = await conn.fetchrow(GET, subject)
        assert row is not None
        if row["secret"] is None:
            raise SubjectForgotten(subject)
        key = self._key(subject, row)
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

    def clear(self) -> None:
        self._cache.clear()


async def rewrap(pool: asyncpg.Pool, master: MasterKeys, batch: int = 500) -> int:
    """Wrap every key still in the clear and re-wrap those of a previous master key under the
    current one; returns how many rows changed. Idempotent and safe beside other replicas and
    live traffic (each row is updated only if it is still as read). A row under a master key
    that is no longer configured is left alone and logged (it cannot be read either)."""
    changed, after = 0, ""
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(TO_REWRAP, master.current_id, after, batch)
            for row in rows:
                subject, kid, stored = row["subject_id"], row["kid"], bytes(row["secret"])
                after = subject
                old_id = row["wrap_kid"]
                try:
                    plain = stored
                    if old_id is not None:
                        plain = master.unwrap(old_id, subject, kid, stored)
                except MasterKeyError as error:
                    log.error("key of %s not re-wrapped: %s", subject, error)
                    continue
                wrap_kid, wrapped = master.wrap(subject, kid, plain)
                status = await conn.execute(REWRAP, subject, wrapped, wrap_kid, stored, old_id)
                changed += status.endswith(" 1")
        if len(rows) < batch:
            break
    if changed:
        log.info("wrapped %d data key(s) under master key %s", changed, master.current_id)
    return changed
