"""The PostgreSQL search model (services/projector-search): user search, message search, the
order of a conversation list and the unread totals (docs/decisions.md, "Search and lists at
scale (issue 21)"). The same SQL runs against the local cluster, compose and Kubernetes.

The model lives in one schema per generation (`g<N>`); `search_generations` says which one
is live. The pointer is cached for a second (a rebuild keeps the old schema for ten seconds
after the swap, so a query on the old pointer still answers). Read-your-writes: the model
records per source stream the highest version it applied (`applied`), which a GET with a
consistency token of a context the route reads waits for, like `_progress` for MongoDB.

Every query is a range of one btree (or, for a rare word, the GIN index of one conversation):
its cost follows the page, not the number of users, messages or memberships.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import asyncpg
from parley_http.consistency import ConsistencyToken
from parley_http.problems import try_again_soon

GENERATION_TTL_S = 1.0
POLL_S = 0.01
BIGGEST = 2**63 - 1


class SearchModel:
    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._schema: str | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self.pool_size, command_timeout=5
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the search model is not open")
        return self._pool

    async def schema(self) -> str:
        """The live generation's schema (cached for GENERATION_TTL_S)."""
        if self._schema is not None and time.monotonic() - self._read_at < GENERATION_TTL_S:
            return self._schema
        async with self._lock:
            if self._schema is None or time.monotonic() - self._read_at >= GENERATION_TTL_S:
                n = await self.pool.fetchval(
                    "SELECT n FROM search_generations WHERE state = 'live'"
                )
                if n is None:
                    raise try_again_soon("the search model has no live generation yet")
                self._schema, self._read_at = f"g{int(n)}", time.monotonic()
        assert self._schema is not None
        return self._schema

    async def ready(self) -> bool:
        return bool(await self.pool.fetchval("SELECT 1"))

    async def applied(self, stream: str) -> int:
        schema = await self.schema()
        found = await self.pool.fetchval(
            f"SELECT version FROM {schema}.applied WHERE stream = $1", stream
        )
        return int(found or 0)

    async def caught_up(
        self, token: ConsistencyToken | None, contexts: tuple[str, ...], wait_s: float
    ) -> bool:
        """Like consistency.caught_up, for this model: False without a token of `contexts`;
        True once the token's version is applied; a 503 past `wait_s`."""
        if token is None or token.context not in contexts:
            return False
        stream = f"{token.context}/{token.stream_id}"
        deadline = time.monotonic() + wait_s
        while True:
            if await self.applied(stream) >= token.version:
                return True
            if time.monotonic() >= deadline:
                raise try_again_soon(
                    f"the search model has not caught up with version {token.version} yet; retry"
                )
            await asyncio.sleep(POLL_S)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        schema = await self.schema()
        return list(await self.pool.fetch(sql.replace("{s}", schema), *args))

    # -- users --------------------------------------------------------------------------------

    async def users(
        self,
        token: str,
        *,
        by_email: bool,
        role: str | None,
        status: str | None,
        after: tuple[str, str] | None,
        caller: str,
        admin: bool,
        limit: int,
    ) -> list[asyncpg.Record]:
        """Users in (name_key, id) order, `limit` at most, whose name (or, `by_email`, the
        address's local part) has a word or a start that begins with `token` ("" for all).
        Pending registrations are left out unless the caller is an admin or the person."""
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        where = []
        if role is not None:
            where.append(f"u.role = {arg(role)}")
        if status is not None:
            where.append(f"u.status = {arg(status)}")
        if not admin:
            where.append(
                f"(u.id = {arg(caller)} OR NOT EXISTS (SELECT 1 FROM {{s}}.registrations r"
                " WHERE r.id = u.id AND r.pending))"
            )
        if not token:
            where.append("u.name_key IS NOT NULL")
            if after is not None:
                where.append(f"(u.name_key, u.id) > ({arg(after[0])}, {arg(after[1])})")
            sql = (
                "SELECT u.* FROM {s}.users u WHERE " + " AND ".join(where) + " ORDER BY"
                f" u.name_key, u.id LIMIT {arg(limit)}"
            )
            return await self.fetch(sql, *args)
        table = "email_tokens" if by_email else "name_tokens"
        where.insert(0, f"t.token = {arg(token)}")
        if after is not None:
            where.append(f"(t.name_key, t.user_id) > ({arg(after[0])}, {arg(after[1])})")
        sql = (
            f"SELECT u.* FROM {{s}}.{table} t JOIN {{s}}.users u ON u.id = t.user_id WHERE "
            + " AND ".join(where)
            + f" ORDER BY t.name_key, t.user_id LIMIT {arg(limit)}"
        )
        return await self.fetch(sql, *args)

    async def user_by_email(self, email_key: str) -> asyncpg.Record | None:
        """The oldest profile with that (casefolded) address."""
        rows = await self.fetch(
            "SELECT * FROM {s}.users WHERE email_key = $1 ORDER BY created_at, id LIMIT 1",
            email_key,
        )
        return rows[0] if rows else None

    async def roles(self, status: str | None) -> dict[str, int]:
        """Users per role, of one status or all (a count of the users table: one pass over
        an index-sized table, not over decoded documents)."""
        where = "" if status is None else " WHERE status = $1"
        rows = await self.fetch(
            f"SELECT role, count(*) AS n FROM {{s}}.users{where} GROUP BY role",
            *(() if status is None else (status,)),
        )
        return {str(r["role"]): int(r["n"]) for r in rows}

    # -- messages -----------------------------------------------------------------------------

    async def messages(
        self, caller: str, words: list[str], after: tuple[datetime, str, int] | None, limit: int
    ) -> list[asyncpg.Record]:
        """(conversation_id, seq, sent_at) of the messages, newest first, whose text has a
        word starting with each of `words`, among those the caller may find: in the
        conversations they are in now, sent while they were a participant (after they
        joined, up to a removal; after a removal and a new join, not what was sent between)."""
        query = " & ".join(f"'{w}':*" for w in words)  # letters and digits only
        args: list[Any] = [caller, query, limit]
        below = ""
        if after is not None:
            args += list(after)
            below = " AND m.sent_at <= $4 AND (m.sent_at, m.conversation_id, m.seq) < ($4, $5, $6)"
        sql = (
            "SELECT m.conversation_id, m.seq, m.sent_at FROM {s}.members p CROSS JOIN LATERAL ("
            " SELECT m.conversation_id, m.seq, m.sent_at FROM {s}.messages m"
            " WHERE m.conversation_id = p.conversation_id AND m.seq > p.from_seq"
            f" AND m.seq <= coalesce(p.to_seq, {BIGGEST}) AND m.words @@ $2::tsquery{below}"
            " ORDER BY m.sent_at DESC, m.seq DESC LIMIT $3) m"
            # only conversations the caller is in now (as their pages: a removed person's
            # page is a 404), and in them what was sent while they were in
            " WHERE p.user_id = $1 AND EXISTS (SELECT 1 FROM {s}.members o"
            " WHERE o.user_id = $1 AND o.conversation_id = p.conversation_id"
            " AND o.to_seq IS NULL)"
            " ORDER BY m.sent_at DESC, m.conversation_id DESC, m.seq DESC LIMIT $3"
        )
        return await self.fetch(sql, *args)

    # -- conversation lists -------------------------------------------------------------------

    async def conversations(
        self, caller: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[asyncpg.Record]:
        """The caller's conversations as the list shows them, most recently active first:
        the caller's inbox rows (one range of their index) with each conversation's row."""
        args: list[Any] = [caller, limit]
        below = ""
        if after is not None:
            args += list(after)
            below = (
                " AND i.last_activity_at <= $3"
                " AND (i.last_activity_at, i.conversation_id) < ($3, $4)"
            )
        sql = (
            "SELECT i.conversation_id, i.last_activity_at, i.unread_count, i.mention_count,"
            " c.title, c.kind, c.participant_ids, c.last_message"
            " FROM {s}.inbox i LEFT JOIN {s}.conversations c ON c.id = i.conversation_id"
            f" WHERE i.user_id = $1 AND NOT i.removed{below}"
            " ORDER BY i.last_activity_at DESC, i.conversation_id DESC LIMIT $2"
        )
        return await self.fetch(sql, *args)

    async def unread(self, caller: str) -> tuple[int, int]:
        rows = await self.fetch(
            "SELECT coalesce(sum(greatest(unread_count, 0)), 0) AS unread,"
            " coalesce(sum(greatest(mention_count, 0)), 0) AS mentions"
            " FROM {s}.inbox WHERE user_id = $1 AND NOT removed",
            caller,
        )
        return int(rows[0]["unread"]), int(rows[0]["mentions"])
