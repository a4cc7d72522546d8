"""Reading documents of a projection: through its alias (so a rebuild swaps in without
downtime), with a short-TTL cache for single documents, and ETags.

The cache is safe because the read side is eventually consistent anyway: a GET without a
consistency token may see a document up to `ttl` older, and a GET with a token that names
this projection's context always reads fresh after the bounded wait (consistency.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cachetools import TTLCache
from fastapi import Request, Response
from parley_readmodel import aliases
from pymongo.asynchronous.database import AsyncDatabase

DB = AsyncDatabase[dict[str, Any]]


class DocumentCache:
    """(physical collection, _id) -> document or None, for `ttl_s` seconds."""

    def __init__(self, ttl_s: float, size: int = 50_000) -> None:
        self.enabled = ttl_s > 0
        self._docs: TTLCache[tuple[str, str], dict[str, Any] | None] = TTLCache(
            maxsize=size, ttl=max(ttl_s, 0.001)
        )

    async def find_one(self, db: DB, collection: str, doc_id: str, fresh: bool) -> Any:
        key = (collection, doc_id)
        if self.enabled and not fresh and key in self._docs:
            return self._docs[key]
        doc = await db[collection].find_one({"_id": doc_id})
        if self.enabled:
            self._docs[key] = doc
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
