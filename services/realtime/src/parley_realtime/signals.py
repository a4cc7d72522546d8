"""What replicas share: stream tickets, presence, and the typing/presence signal channel.

All of it lives in the realtime gateway's own PostgreSQL database (never the event store,
never a Kafka topic): see docs/decisions.md "Realtime delivery".

- Tickets: `POST /v1/stream/tickets` stores the hash of a random 256-bit ticket with the
  caller's identity for 30 s; `GET /v1/stream?ticket=` redeems it with one `DELETE ...
  RETURNING` (single use on any replica).
- Presence: one row per (person, replica) counting that replica's open streams. A person is
  online while a row of a live replica exists. Replicas beat every `BEAT_S`; a replica silent
  for `DEAD_AFTER_S` is dead, and any replica sweeps its rows (its people go offline with
  `last_seen` = its last beat unless another replica holds a stream of theirs). Opening and
  closing streams take a per-person advisory lock, so the per-person connection cap holds
  across replicas and the online/offline transition is announced exactly once.
- Signals: `NOTIFY parley_typing` and `NOTIFY parley_presence` (delivered to every replica's
  listening connection at commit). Small JSON payloads; recipients are resolved by each
  receiving replica for the people connected to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

log = logging.getLogger("parley.realtime.signals")

TYPING_CHANNEL = "parley_typing"
PRESENCE_CHANNEL = "parley_presence"
BEAT_S = 3.0
DEAD_AFTER_S = 10.0
TICKET_TTL_S = 30


@dataclass(frozen=True)
class TicketHolder:
    user_id: str
    role: str
    session_id: str
    token_expires_at: datetime


@dataclass(frozen=True)
class Presence:
    user_id: str
    status: str  # online | offline
    last_seen: datetime | None


class TooManyStreams(Exception):
    """The person has `cap` streams open already (across every replica)."""


def _hash(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode()).digest()


def _lock_key(user_id: str) -> str:
    return f"parley-presence:{user_id}"


class Signals:
    def __init__(
        self,
        dsn: str,
        replica_id: str,
        *,
        on_typing: Callable[[dict[str, Any]], None],
        on_presence: Callable[[dict[str, Any]], None],
        max_streams_per_person: int = 10,
    ) -> None:
        self.dsn = dsn
        self.replica_id = replica_id
        self.on_typing = on_typing
        self.on_presence = on_presence
        self.cap = max_streams_per_person
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=8)
        await self._beat()
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="signals-listen"),
            asyncio.create_task(self._beat_forever(), name="signals-beat"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        if self._pool is not None:
            # a clean stop: this replica's streams are gone; its people go offline now
            with contextlib.suppress(Exception):
                await self._sweep_replica(self.replica_id)
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Signals.start() was not awaited")
        return self._pool

    async def ready(self) -> bool:
        return self.listening.is_set() and bool(await self.pool.fetchval("SELECT true"))

    async def _listen_forever(self) -> None:
        while True:
            try:
                connection = await asyncpg.connect(self.dsn)
                self._listener = connection
                await connection.add_listener(TYPING_CHANNEL, self._typing_received)
                await connection.add_listener(PRESENCE_CHANNEL, self._presence_received)
                self.listening.set()
                while not connection.is_closed():
                    await asyncio.sleep(1.0)
                    # a dead server is noticed by a query, not by waiting for notifications
                    await connection.fetchval("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("signal listener lost (%r); reconnecting", error)
            self.listening.clear()
            await asyncio.sleep(1.0)

    def _typing_received(self, _c: Any, _pid: int, _channel: str, payload: str) -> None:
        self._deliver(self.on_typing, payload)

    def _presence_received(self, _c: Any, _pid: int, _channel: str, payload: str) -> None:
        self._deliver(self.on_presence, payload)

    @staticmethod
    def _deliver(handler: Callable[[dict[str, Any]], None], payload: str) -> None:
        try:
            handler(json.loads(payload))
        except Exception:
            log.exception("bad signal payload %r", payload[:200])

    async def _beat(self) -> None:
        await self.pool.execute(
            "INSERT INTO realtime_replicas (replica_id, seen_at) VALUES ($1, now()) "
            "ON CONFLICT (replica_id) DO UPDATE SET seen_at = now()",
            self.replica_id,
        )

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(BEAT_S)
            try:
                await self._beat()
                await self._sweep_dead()
                await self.pool.execute("DELETE FROM stream_tickets WHERE expires_at < now()")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("presence beat failed: %r", error)

    async def _sweep_dead(self) -> None:
        dead = await self.pool.fetch(
            "SELECT replica_id FROM realtime_replicas "
            "WHERE seen_at < now() - make_interval(secs => $1) AND replica_id <> $2",
            DEAD_AFTER_S,
            self.replica_id,
        )
        for row in dead:
            await self._sweep_replica(row["replica_id"])

    async def _sweep_replica(self, replica_id: str) -> None:
        """Take a stopped or dead replica's streams off presence (one replica does it: the
        replica row is locked SKIP LOCKED, and deleted with its presence rows)."""
        async with self.pool.acquire() as connection, connection.transaction():
            seen_at = await connection.fetchval(
                "SELECT seen_at FROM realtime_replicas WHERE replica_id = $1 "
                "FOR UPDATE SKIP LOCKED",
                replica_id,
            )
            if seen_at is None:
                return
            users = [
                r["user_id"]
                for r in await connection.fetch(
                    "DELETE FROM presence WHERE replica_id = $1 RETURNING user_id", replica_id
                )
            ]
            await connection.execute(
                "DELETE FROM realtime_replicas WHERE replica_id = $1", replica_id
            )
            for user_id in users:
                if not await self._online_elsewhere(connection, user_id, replica_id):
                    await self._went_offline(connection, user_id, seen_at)

    # -- tickets ----------------------------------------------------------------------------

    async def issue_ticket(self, holder: TicketHolder) -> str:
        ticket = secrets.token_urlsafe(32)
        await self.pool.execute(
            "INSERT INTO stream_tickets (ticket_hash, user_id, role, session_id, "
            "token_expires_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
            _hash(ticket),
            holder.user_id,
            holder.role,
            holder.session_id,
            holder.token_expires_at,
            TICKET_TTL_S,
        )
        return ticket

    async def redeem_ticket(self, ticket: str) -> TicketHolder | None:
        row = await self.pool.fetchrow(
            "DELETE FROM stream_tickets WHERE ticket_hash = $1 "
            "RETURNING user_id, role, session_id, token_expires_at, expires_at",
            _hash(ticket),
        )
        if row is None or row["expires_at"] < datetime.now(UTC):
            return None
        return TicketHolder(row["user_id"], row["role"], row["session_id"], row["token_expires_at"])

    # -- presence ---------------------------------------------------------------------------

    async def _live_streams(
        self, connection: asyncpg.Connection, user_id: str, except_replica: str | None = None
    ) -> int:
        value = await connection.fetchval(
            "SELECT coalesce(sum(p.connections), 0) FROM presence p "
            "JOIN realtime_replicas r USING (replica_id) "
            "WHERE p.user_id = $1 AND r.seen_at > now() - make_interval(secs => $2) "
            "AND p.replica_id IS DISTINCT FROM $3",
            user_id,
            DEAD_AFTER_S,
            except_replica,
        )
        return int(value)

    async def _online_elsewhere(
        self, connection: asyncpg.Connection, user_id: str, replica_id: str
    ) -> bool:
        return await self._live_streams(connection, user_id, except_replica=replica_id) > 0

    async def _went_offline(
        self, connection: asyncpg.Connection, user_id: str, at: datetime
    ) -> None:
        await connection.execute(
            "INSERT INTO last_seen (user_id, at) VALUES ($1, $2) "
            "ON CONFLICT (user_id) DO UPDATE SET at = greatest(last_seen.at, excluded.at)",
            user_id,
            at,
        )
        await self._notify(
            connection,
            PRESENCE_CHANNEL,
            {"user_id": user_id, "status": "offline", "last_seen": at.isoformat()},
        )

    @staticmethod
    async def _notify(connection: asyncpg.Connection, channel: str, body: dict[str, Any]) -> None:
        await connection.execute("SELECT pg_notify($1, $2)", channel, json.dumps(body))

    async def stream_opened(self, user_id: str) -> None:
        """Count a new stream of `user_id` here; raises TooManyStreams at the cap."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _lock_key(user_id)
            )
            open_now = await self._live_streams(connection, user_id)
            if open_now >= self.cap:
                raise TooManyStreams(user_id)
            await connection.execute(
                "INSERT INTO presence (user_id, replica_id, connections) VALUES ($1, $2, 1) "
                "ON CONFLICT (user_id, replica_id) "
                "DO UPDATE SET connections = presence.connections + 1",
                user_id,
                self.replica_id,
            )
            if open_now == 0:
                await self._notify(
                    connection, PRESENCE_CHANNEL, {"user_id": user_id, "status": "online"}
                )

    async def stream_closed(self, user_id: str) -> None:
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _lock_key(user_id)
            )
            left = await connection.fetchval(
                "UPDATE presence SET connections = connections - 1 "
                "WHERE user_id = $1 AND replica_id = $2 AND connections > 1 "
                "RETURNING connections",
                user_id,
                self.replica_id,
            )
            if left is None:
                await connection.execute(
                    "DELETE FROM presence WHERE user_id = $1 AND replica_id = $2",
                    user_id,
                    self.replica_id,
                )
                if not await self._online_elsewhere(connection, user_id, self.replica_id):
                    await self._went_offline(connection, user_id, datetime.now(UTC))

    async def presence_of(self, user_id: str) -> Presence:
        async with self.pool.acquire() as connection:
            if await self._live_streams(connection, user_id) > 0:
                return Presence(user_id, "online", None)
            at = await connection.fetchval("SELECT at FROM last_seen WHERE user_id = $1", user_id)
            return Presence(user_id, "offline", at)

    # -- typing -----------------------------------------------------------------------------

    async def typing(self, conversation_id: str, user_id: str, expires_in: timedelta) -> None:
        expires_at = datetime.now(UTC) + expires_in
        async with self.pool.acquire() as connection:
            await self._notify(
                connection,
                TYPING_CHANNEL,
                {
                    "conversation_id": conversation_id,
                    "user_id": user_id,
                    "expires_at": expires_at.isoformat(),
                    "origin": self.replica_id,
                },
            )
