"""Reading documents of a projection: through its alias (so a rebuild swaps in without
downtime), with a short-TTL cache for single documents, and ETags.

The cache is safe because the read side is eventually consistent anyway: a GET without a
consistency token may see a document up to `ttl` older, and a GET with a token that names
this projection's context always reads fresh after the bounded wait (consistency.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import LRUCache
from fastapi import Request, Response
from parley_readmodel import aliases
from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase

DB = AsyncDatabase[dict[str, Any]]
log = logging.getLogger("parley.query")


class DocumentCache:
    """Single documents by `_id`: a QueryCache keyed by (physical collection, _id)."""

    def __init__(self, ttl_s: float, size: int = 50_000) -> None:
        self._cache = QueryCache(ttl_s, size)

    async def find_one(self, db: DB, collection: str, doc_id: str, fresh: bool) -> Any:
        async def load() -> dict[str, Any] | None:
            doc: dict[str, Any] | None = await db[collection].find_one({"_id": doc_id})
            return doc

        return await self._cache.get((collection, doc_id), load, fresh)


async def get_document(
    request: Request, projection: str, logical: str, doc_id: str, fresh: bool
) -> dict[str, Any] | None:
    db: DB = request.app.state.db
    collection = await aliases.collection(db, projection, logical)
    cache: DocumentCache = request.app.state.cache
    doc: dict[str, Any] | None = await cache.find_one(db, collection.name, doc_id, fresh)
    return doc


# headers of FastAPI's placeholder response that describe its (empty) body, not ours
_BODY_HEADERS = {"content-length", "content-type"}


def answer(request: Request, response: Response, body: BaseModel) -> Response:
    """The view as JSON with its ETag, or 304 when the client has it: serialized once, by
    pydantic, and hashed as sent. (Returning the model let FastAPI validate and serialize it
    again after the ETag's own serialization: a third of a GET's CPU.)"""
    content = body.model_dump_json().encode()
    tag = f'W/"{hashlib.blake2b(content, digest_size=12).hexdigest()}"'
    headers = {k: v for k, v in response.headers.items() if k not in _BODY_HEADERS}
    headers.update({"ETag": tag, "Cache-Control": "private, no-cache"})
    if tag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)


class QueryCache:
    """Results of reads (a document, a list page) per key: fresh for `ttl_s`, then served
    stale while one background read refreshes them, up to `stale_s`; past that the request
    waits for a fresh read shared by every concurrent request for that key (single-flight).

    Why: without it every expiry under load made all concurrent readers of a hot key wait for
    the store at once (that herd, not the steady state, was the tail latency); and FerretDB
    1.24 pushes only `_id` equality down to SQLite, so every list filter scans the whole
    collection (a conversation list over 5,000 memberships took 0.5-0.8 s there). A GET with a
    consistency token of the projection's context bypasses it (`fresh`)."""

    def __init__(self, ttl_s: float, size: int = 20_000, stale_s: float | None = None) -> None:
        self.ttl_s = ttl_s
        # how long a stale page may stand in while its refresh runs: at least a second, so a
        # slow read (a list scanning thousands of memberships on FerretDB) does not make
        # every reader wait for it once the page is a few short TTLs old
        self.stale_s = max(4 * ttl_s, 1.0) if stale_s is None else stale_s
        self.enabled = ttl_s > 0
        self._hits: LRUCache[tuple[Any, ...], tuple[float, Any]] = LRUCache(maxsize=size)
        self._inflight: dict[tuple[Any, ...], asyncio.Task[Any]] = {}

    async def get(
        self, key: tuple[Any, ...], load: Callable[[], Awaitable[Any]], fresh: bool
    ) -> Any:
        if not self.enabled or fresh:
            started = time.monotonic()
            value = await load()
            if self.enabled:
                self._hits[key] = (started, value)
            return value
        hit = self._hits.get(key)
        age = time.monotonic() - hit[0] if hit is not None else None
        if hit is not None and age is not None and age < self.ttl_s:
            return hit[1]
        refresh = self._inflight.get(key)
        if refresh is None:
            refresh = asyncio.create_task(self._load(key, load))
            self._inflight[key] = refresh
            refresh.add_done_callback(lambda task: self._settled(key, task))
        if hit is not None and age is not None and age < self.stale_s:
            return hit[1]
        return await asyncio.shield(refresh)

    async def _load(self, key: tuple[Any, ...], load: Callable[[], Awaitable[Any]]) -> Any:
        started = time.monotonic()  # the result is as old as the moment the read began
        value = await load()
        self._hits[key] = (started, value)
        return value

    def _settled(self, key: tuple[Any, ...], task: asyncio.Task[Any]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("refreshing %s failed: %s", key, task.exception())
