"""SQL on the auth database's secret tables (see migrations/): address claims, password hashes,
one-time codes, sessions with their refresh tokens, login throttle counters.

Plain async functions over an asyncpg pool; every multi-statement change is one transaction.
Times come from the database clock (`now()`), so replicas agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

# -- address claims and credentials -------------------------------------------------------------

PURGE_EVERY_S = 600
log = logging.getLogger("parley.auth.tables")


async def claim_email(
    pool: asyncpg.Pool, email: str, account_id: str, name: str, password_hash: str
) -> str:
    """Claim `email` for a new account and store its password hash, atomically. Returns the
    owner: `account_id` if the claim is ours, else the account that holds the address."""
    async with pool.acquire() as conn, conn.transaction():
        owner = await conn.fetchval(
            "INSERT INTO email_claims (email, account_id, name) VALUES ($1, $2, $3)"
            " ON CONFLICT (email) DO NOTHING RETURNING account_id::text",
            email,
            account_id,
            name,
        )
        if owner is not None:
            await conn.execute(
                "INSERT INTO credentials (account_id, password_hash) VALUES ($1, $2)",
                account_id,
                password_hash,
            )
            return account_id
        existing: str = await conn.fetchval(
            "SELECT account_id::text FROM email_claims WHERE email = $1", email
        )
        return existing


async def mark_verified(pool: asyncpg.Pool, account_id: str) -> None:
    """The holder proved the address (a code, a reset link): the claim no longer expires."""
    await pool.execute(
        "UPDATE email_claims SET verified_at = clock_timestamp()"
        " WHERE account_id = $1 AND verified_at IS NULL",
        account_id,
    )


async def unverified_claims(pool: asyncpg.Pool, older_than: timedelta, limit: int) -> list[str]:
    """Accounts whose address was claimed more than `older_than` ago and never proved."""
    rows = await pool.fetch(
        "SELECT account_id::text AS account_id FROM email_claims"
        " WHERE verified_at IS NULL AND claimed_at < now() - $1::interval"
        " ORDER BY claimed_at LIMIT $2",
        older_than,
        limit,
    )
    return [r["account_id"] for r in rows]


async def release_unverified(pool: asyncpg.Pool, account_id: str) -> bool:
    """Free the address of an account that never proved it; False if it was proved meanwhile
    (a verification racing the expiry wins) or is gone already."""
    released = await pool.fetchval(
        "DELETE FROM email_claims WHERE account_id = $1 AND verified_at IS NULL RETURNING true",
        account_id,
    )
    return bool(released)


async def release_account(pool: asyncpg.Pool, account_id: str) -> None:
    """A cancelled registration, or a closed account (its holder forgotten): the address claim
    (plaintext address and name) goes, and the password hash and codes (idempotent)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM email_claims WHERE account_id = $1", account_id)
        await conn.execute("DELETE FROM credentials WHERE account_id = $1", account_id)
        await conn.execute("DELETE FROM one_time_codes WHERE account_id = $1", account_id)


@dataclass(frozen=True)
class Claim:
    email: str
    account_id: str
    name: str


async def claim_of(pool: asyncpg.Pool, email: str) -> Claim | None:
    row = await pool.fetchrow(
        "SELECT email, account_id::text AS account_id, name FROM email_claims WHERE email = $1",
        email,
    )
    return Claim(row["email"], row["account_id"], row["name"]) if row else None


async def move_claim(pool: asyncpg.Pool, account_id: str, new_email: str, name: str) -> bool:
    """Give the account `new_email` and release its other addresses; False if another account
    holds `new_email`."""
    async with pool.acquire() as conn, conn.transaction():
        owner = await conn.fetchval(
            # the new address was proved by the code mailed to it
            "INSERT INTO email_claims (email, account_id, name, verified_at)"
            " VALUES ($1, $2, $3, clock_timestamp())"
            " ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email"
            " RETURNING account_id::text",
            new_email,
            account_id,
            name,
        )
        if owner != account_id:
            raise _Taken  # rolls the transaction back
        await conn.execute(
            "DELETE FROM email_claims WHERE account_id = $1 AND email <> $2", account_id, new_email
        )
    return True


class _Taken(Exception):
    pass


async def try_move_claim(pool: asyncpg.Pool, account_id: str, new_email: str, name: str) -> bool:
    try:
        return await move_claim(pool, account_id, new_email, name)
    except _Taken:
        return False


async def password_hash(pool: asyncpg.Pool, account_id: str) -> str | None:
    value: str | None = await pool.fetchval(
        "SELECT password_hash FROM credentials WHERE account_id = $1", account_id
    )
    return value


async def set_password(pool: asyncpg.Pool, account_id: str, hashed: str) -> None:
    await pool.execute(
        "INSERT INTO credentials (account_id, password_hash) VALUES ($1, $2)"
        " ON CONFLICT (account_id) DO UPDATE"
        " SET password_hash = EXCLUDED.password_hash, updated_at = clock_timestamp()",
        account_id,
        hashed,
    )


# -- one-time codes -----------------------------------------------------------------------------


async def put_code(
    pool: asyncpg.Pool,
    account_id: str,
    purpose: str,
    code_hash: bytes,
    ttl: timedelta,
    resend_interval: timedelta,
    new_email: str | None = None,
) -> bool:
    """Store a new code (replacing the previous one, attempts reset). False: a code for the same
    purpose was issued less than `resend_interval` ago, nothing stored (mail-bombing guard)."""
    stored = await pool.fetchval(
        "INSERT INTO one_time_codes (account_id, purpose, code_hash, new_email, expires_at)"
        " VALUES ($1, $2, $3, $4, now() + $5::interval)"
        " ON CONFLICT (account_id, purpose) DO UPDATE"
        " SET code_hash = EXCLUDED.code_hash, new_email = EXCLUDED.new_email, attempts = 0,"
        "     created_at = now(), expires_at = EXCLUDED.expires_at"
        " WHERE one_time_codes.created_at < now() - $6::interval"
        " RETURNING true",
        account_id,
        purpose,
        code_hash,
        new_email,
        ttl,
        resend_interval,
    )
    return bool(stored)


@dataclass(frozen=True)
class CodeAttempt:
    code_hash: bytes
    new_email: str | None
    attempts: int
    expired: bool


async def attempt_code(pool: asyncpg.Pool, account_id: str, purpose: str) -> CodeAttempt | None:
    """Count one attempt against the live code (atomically, so parallel guesses count too)."""
    row = await pool.fetchrow(
        "UPDATE one_time_codes SET attempts = attempts + 1"
        " WHERE account_id = $1 AND purpose = $2"
        " RETURNING code_hash, new_email, attempts, expires_at <= now() AS expired",
        account_id,
        purpose,
    )
    if row is None:
        return None
    return CodeAttempt(bytes(row["code_hash"]), row["new_email"], row["attempts"], row["expired"])


async def burn_codes(pool: asyncpg.Pool, account_id: str, purpose: str | None = None) -> None:
    """Delete the account's live codes (of one purpose, or all): guessed at too often."""
    await pool.execute(
        "DELETE FROM one_time_codes WHERE account_id = $1 AND ($2::text IS NULL OR purpose = $2)",
        account_id,
        purpose,
    )


async def consume_code(pool: asyncpg.Pool, account_id: str, purpose: str, code_hash: bytes) -> bool:
    """Delete the matching code; False if a concurrent request used it first (single use)."""
    used = await pool.fetchval(
        "DELETE FROM one_time_codes WHERE account_id = $1 AND purpose = $2 AND code_hash = $3"
        " RETURNING true",
        account_id,
        purpose,
        code_hash,
    )
    return bool(used)


# -- sessions and refresh tokens ---------------------------------------------------------------


async def create_session(
    pool: asyncpg.Pool,
    session_id: str,
    account_id: str,
    token_hash: bytes,
    refresh_ttl: timedelta,
    access_expires_at: datetime,
    auth_time: datetime | None = None,
) -> None:
    """A session opened by a login at `auth_time` (its tokens' `auth_time` claim)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO sessions"
            " (session_id, account_id, expires_at, access_expires_at, auth_time)"
            " VALUES ($1, $2, now() + $3::interval, $4, $5)",
            session_id,
            account_id,
            refresh_ttl,
            access_expires_at,
            auth_time,
        )
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at)"
            " VALUES ($1, $2, now() + $3::interval)",
            token_hash,
            session_id,
            refresh_ttl,
        )


@dataclass(frozen=True)
class Rotation:
    outcome: Literal["rotated", "reused", "invalid"]
    session_id: str | None = None
    account_id: str | None = None
    auth_time: datetime | None = None  # the session's login, for the new access token


async def rotate_refresh_token(
    pool: asyncpg.Pool,
    old_hash: bytes,
    new_hash: bytes,
    refresh_ttl: timedelta,
    access_expires_at: datetime,
) -> Rotation:
    """Mark the presented token used and issue its successor, if it is live and its session is
    open. A token that was already used ("reused") names its session so the caller revokes it.
    The new token never outlives the session."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE refresh_tokens t SET rotated_at = now()"
            " FROM sessions s"
            " WHERE t.token_hash = $1 AND t.rotated_at IS NULL AND t.expires_at > now()"
            "   AND s.session_id = t.session_id AND s.revoked_at IS NULL AND s.expires_at > now()"
            " RETURNING s.session_id::text AS session_id, s.account_id::text AS account_id,"
            "           s.expires_at AS session_expires,"
            "           coalesce(s.auth_time, s.created_at) AS auth_time",
            old_hash,
        )
        if row is not None:
            await conn.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id, expires_at)"
                " VALUES ($1, $2, least(now() + $3::interval, $4))",
                new_hash,
                row["session_id"],
                refresh_ttl,
                row["session_expires"],
            )
            await conn.execute(
                "UPDATE sessions SET access_expires_at = $2 WHERE session_id = $1",
                row["session_id"],
                access_expires_at,
            )
            return Rotation("rotated", row["session_id"], row["account_id"], row["auth_time"])
        used = await conn.fetchrow(
            "SELECT t.session_id::text AS session_id, s.account_id::text AS account_id"
            " FROM refresh_tokens t JOIN sessions s USING (session_id)"
            " WHERE t.token_hash = $1 AND t.rotated_at IS NOT NULL",
            old_hash,
        )
        if used is not None:
            return Rotation("reused", used["session_id"], used["account_id"])
        return Rotation("invalid")


@dataclass(frozen=True)
class Revoked:
    session_id: str
    account_id: str
    access_expires_at: datetime | None


async def revoke_session(pool: asyncpg.Pool, session_id: str, reason: str) -> Revoked | None:
    """End an open session (its refresh tokens stop working); None if it was already ended."""
    row = await pool.fetchrow(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = $2"
        " WHERE session_id = $1 AND revoked_at IS NULL"
        " RETURNING session_id::text AS session_id, account_id::text AS account_id,"
        "           access_expires_at",
        session_id,
        reason,
    )
    return Revoked(row["session_id"], row["account_id"], row["access_expires_at"]) if row else None


async def revoke_sessions(
    pool: asyncpg.Pool,
    account_id: str,
    reason: str,
    only: list[str] | None = None,
    keep: str | None = None,
) -> list[Revoked]:
    """End every open session of the account (or those in `only`), except `keep`."""
    rows = await pool.fetch(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = $2"
        " WHERE account_id = $1 AND revoked_at IS NULL"
        "   AND ($3::uuid[] IS NULL OR session_id = ANY($3::uuid[]))"
        "   AND ($4::uuid IS NULL OR session_id <> $4::uuid)"
        " RETURNING session_id::text AS session_id, access_expires_at",
        account_id,
        reason,
        only,
        keep,
    )
    return [Revoked(r["session_id"], account_id, r["access_expires_at"]) for r in rows]


async def session_open(pool: asyncpg.Pool, session_id: str) -> bool:
    found = await pool.fetchval(
        "SELECT true FROM sessions WHERE session_id = $1 AND revoked_at IS NULL", session_id
    )
    return bool(found)


async def set_access_expiry(pool: asyncpg.Pool, session_id: str, expires_at: datetime) -> None:
    await pool.execute(
        "UPDATE sessions SET access_expires_at = $2 WHERE session_id = $1", session_id, expires_at
    )


async def open_sessions(pool: asyncpg.Pool, account_id: str) -> list[dict[str, object]]:
    rows = await pool.fetch(
        "SELECT session_id::text AS session_id, created_at, expires_at FROM sessions"
        " WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > now()"
        " ORDER BY created_at",
        account_id,
    )
    return [dict(r) for r in rows]


# -- throttling: counters in fixed windows ---------------------------------------------------


async def throttled_for(pool: asyncpg.Pool, limits: Mapping[str, int]) -> int | None:
    """Seconds until the first blocked key (failures >= its limit within the key's window) is
    free again, or None if no key is blocked."""
    rows = await pool.fetch(
        "SELECT key, failures,"
        "  extract(epoch FROM window_start + make_interval(secs => window_s) - now())::float8"
        "    AS remaining"
        " FROM login_throttle WHERE key = ANY($1::text[])"
        "  AND window_start + make_interval(secs => window_s) > now()",
        list(limits),
    )
    blocked: list[float] = [r["remaining"] for r in rows if r["failures"] >= limits[r["key"]]]
    if not blocked:
        return None
    return max(1, math.ceil(max(blocked)))


async def record_failure(pool: asyncpg.Pool, windows: Mapping[str, timedelta]) -> dict[str, int]:
    """One more failure for each key, in its own window (a fixed window restarts once it has
    elapsed); the keys' counts after this one."""
    ordered = sorted(windows)  # a fixed order: concurrent upserts of the same keys cannot deadlock
    rows = await pool.fetch(
        "INSERT INTO login_throttle (key, failures, window_start, window_s)"
        " SELECT k, 1, now(), w FROM unnest($1::text[], $2::int[]) AS t(k, w)"
        " ON CONFLICT (key) DO UPDATE SET"
        "  failures = CASE WHEN login_throttle.window_start"
        "                       + make_interval(secs => login_throttle.window_s) <= now() THEN 1"
        "                  ELSE login_throttle.failures + 1 END,"
        "  window_start = CASE WHEN login_throttle.window_start"
        "                       + make_interval(secs => login_throttle.window_s) <= now()"
        "                      THEN now() ELSE login_throttle.window_start END,"
        "  window_s = EXCLUDED.window_s"
        " RETURNING key, failures",
        ordered,
        [max(1, int(windows[k].total_seconds())) for k in ordered],
    )
    return {r["key"]: r["failures"] for r in rows}


async def clear_failures(pool: asyncpg.Pool, key: str) -> None:
    await pool.execute("DELETE FROM login_throttle WHERE key = $1", key)


# -- growing login delays ---------------------------------------------------------------------


@dataclass(frozen=True)
class Delays:
    """Wrong password number n (1-based) makes the next attempt wait `seconds(n)`: nothing for
    the first `free`, then base * 2^(n - free), at most `cap`."""

    free: int
    base_s: float
    cap_s: float

    def seconds(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return float(min(self.cap_s, self.base_s * 2 ** min(failures - self.free, 30)))

    def sql(self, failures: str) -> str:
        """The same as an SQL interval over the column expression `failures` ($2..$4 bound)."""
        return (
            f"make_interval(secs => CASE WHEN {failures} < $2 THEN 0"
            f" ELSE least($4::float8, $3::float8 * power(2, least({failures} - $2, 30))) END)"
        )

    def args(self) -> tuple[int, float, float]:
        return self.free, self.base_s, self.cap_s


async def admit_login(pool: asyncpg.Pool, key: str, delays: Delays) -> int | None:
    """None: an attempt may be made now (past the key's delay, which it reserves again, so
    parallel guesses during one delay get one try between them); else the seconds to wait.
    One round trip: the login's hot path (no row at all for most keys)."""
    row = await pool.fetchrow(
        "WITH admitted AS ("
        f"  UPDATE login_delays SET next_at = now() + {delays.sql('failures')}"
        "   WHERE key = $1 AND next_at <= now() RETURNING 1)"
        " SELECT EXISTS (SELECT 1 FROM admitted) AS admitted,"
        "  (SELECT extract(epoch FROM next_at - now())::float8 FROM login_delays"
        "    WHERE key = $1) AS remaining",
        key,
        *delays.args(),
    )
    remaining: float | None = row["remaining"]
    if row["admitted"] or remaining is None:
        return None
    # not admitted: delayed (or reserved by a parallel attempt this very moment)
    return max(1, math.ceil(remaining))


async def login_failed(pool: asyncpg.Pool, key: str, delays: Delays) -> int:
    """One more wrong password for `key`: the next attempt waits longer. Returns the wait."""
    failures: int = await pool.fetchval(
        "INSERT INTO login_delays (key, failures, next_at)"
        f" VALUES ($1, 1, now() + {delays.sql('1')})"
        " ON CONFLICT (key) DO UPDATE SET failures = login_delays.failures + 1,"
        f"  next_at = now() + {delays.sql('(login_delays.failures + 1)')}"
        " RETURNING failures",
        key,
        *delays.args(),
    )
    return math.ceil(delays.seconds(failures))


async def login_succeeded(pool: asyncpg.Pool, key: str) -> None:
    await pool.execute("DELETE FROM login_delays WHERE key = $1", key)


# -- purging ---------------------------------------------------------------------------------


async def purge_throttle(pool: asyncpg.Pool, window: timedelta) -> int:
    """Delete counters whose window elapsed, and delays nobody met for `window` (they are dead
    weight; a key quiet that long starts afresh)."""
    status = await pool.execute(
        "DELETE FROM login_throttle WHERE window_start + make_interval(secs => window_s) <= now()"
    )
    delays = await pool.execute(
        "DELETE FROM login_delays WHERE next_at <= now() - $1::interval", window
    )
    return int(status.split()[-1]) + int(delays.split()[-1])


async def purge_forever(pool: asyncpg.Pool, window: timedelta, stop: asyncio.Event) -> None:
    """`purge_throttle` every PURGE_EVERY_S until `stop` (a failure waits for the next turn)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PURGE_EVERY_S)
            return
        try:
            await purge_throttle(pool, window)
        except (OSError, asyncpg.PostgresError):
            log.warning("throttle purge failed; retrying later", exc_info=True)
