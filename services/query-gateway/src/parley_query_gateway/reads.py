"""Reading documents of a projection: through its alias (so a rebuild swaps in without
downtime), with a short-TTL cache for single documents, and ETags.

The cache is safe because the read side is eventually consistent anyway: a GET without a
consistency token may see a document up to `ttl` older, and a GET with a token that names
this projection's context always reads fresh after the bounded wait (consistency.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import LRUCache
from fastapi import Request, Response
from parley_readmodel import aliases
from pymongo.asynchronous.database import AsyncDatabase

DB = AsyncDatabase[dict[str, Any]]
log = logging.getLogger("parley.query")


class DocumentCache:
    """(physical collection, _id) -> document or None.

    An entry younger than `ttl_s` is served as is. An older one is still served while one
    background read refreshes it (stale-while-revalidate), up to `4 * ttl_s`; past that the
    request waits for a fresh read, shared by every concurrent request for it (single-flight).
    Without this, every expiry under load made all concurrent readers of a hot document wait
    for the store at once: that herd, not the steady state, was the tail latency."""

    def __init__(self, ttl_s: float, size: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.enabled = ttl_s > 0
        self._docs: LRUCache[tuple[str, str], tuple[float, dict[str, Any] | None]] = LRUCache(
            maxsize=size
        )
        self._inflight: dict[tuple[str, str], asyncio.Task[dict[str, Any] | None]] = {}

    async def find_one(self, db: DB, collection: str, doc_id: str, fresh: bool) -> Any:
        key = (collection, doc_id)
        if not self.enabled or fresh:
            return await self._read(db, key)
        hit = self._docs.get(key)
        age = time.monotonic() - hit[0] if hit is not None else None
        if hit is not None and age is not None and age < self.ttl_s:
            return hit[1]
        refresh = self._inflight.get(key)
        if refresh is None:
            refresh = asyncio.create_task(self._read(db, key))
            self._inflight[key] = refresh
            refresh.add_done_callback(lambda task: self._settled(key, task))
        if hit is not None and age is not None and age < 4 * self.ttl_s:
            return hit[1]
        return await asyncio.shield(refresh)

    def _settled(self, key: tuple[str, str], task: asyncio.Task[dict[str, Any] | None]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            # a background refresh nobody waited for: the stale copy stays until it ages out
            log.warning("refreshing %s failed: %s", key, task.exception())

    async def _read(self, db: DB, key: tuple[str, str]) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await db[key[0]].find_one({"_id": key[1]})
        if self.enabled:
            self._docs[key] = (time.monotonic(), doc)
        return doc


async def get_document(
    request: Request, projection: str, logical: str, doc_id: str, fresh: bool
) -> dict[str, Any] | None:
    db: DB = request.app.state.db
    collection = await aliases.collection(db, projection, logical)
    cache: DocumentCache = request.app.state.cache
    doc: dict[str, Any] | None = await cache.find_one(db, collection.name, doc_id, fresh)
    return doc


def etag_of(body: Any) -> str:
    digest = hashlib.blake2b(
        json.dumps(body, sort_keys=True, default=str).encode(), digest_size=12
    ).hexdigest()
    return f'W/"{digest}"'


def not_modified(request: Request, response: Response, body: Any) -> bool:
    """Set ETag (and `private, no-cache`: every read is per caller); True when the client's
    If-None-Match already names this representation (answer 304)."""
    tag = etag_of(body)
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "private, no-cache"
    return tag in request.headers.get("if-none-match", "")


class QueryCache:
    """Results of list queries per caller and parameters, on the same terms as DocumentCache
    (fresh for `ttl_s`, served stale while one background read refreshes it up to `4 * ttl_s`,
    single-flight). Needed on FerretDB 1.24, which pushes only `_id` equality down to SQLite:
    every other filter scans and decodes the whole collection (a conversation list over 5,000
    memberships took 0.5-0.8 s there), so concurrent readers of one list must share one read.
    A GET with a consistency token of the projection's context bypasses it (`fresh`)."""

    def __init__(self, ttl_s: float, size: int = 20_000) -> None:
        self.ttl_s = ttl_s
        self.enabled = ttl_s > 0
        self._hits: LRUCache[tuple[Any, ...], tuple[float, Any]] = LRUCache(maxsize=size)
        self._inflight: dict[tuple[Any, ...], asyncio.Task[Any]] = {}

    async def get(
        self, key: tuple[Any, ...], load: Callable[[], Awaitable[Any]], fresh: bool
    ) -> Any:
        if not self.enabled or fresh:
            value = await load()
            if self.enabled:
                self._hits[key] = (time.monotonic(), value)
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
        if hit is not None and age is not None and age < 4 * self.ttl_s:
            return hit[1]
        return await asyncio.shield(refresh)

    async def _load(self, key: tuple[Any, ...], load: Callable[[], Awaitable[Any]]) -> Any:
        value = await load()
        self._hits[key] = (time.monotonic(), value)
        return value

    def _settled(self, key: tuple[Any, ...], task: asyncio.Task[Any]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("refreshing %s failed: %s", key, task.exception())
