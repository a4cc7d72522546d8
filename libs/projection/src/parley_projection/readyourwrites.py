"""Read-your-writes for the query side: wait (bounded) until a document has applied a given
version of a source stream (the `_v.<stream>` map the runtime maintains)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection


def applied_version(doc: dict[str, Any] | None, stream_id: str) -> int:
    if doc is None:
        return 0
    return int((doc.get("_v") or {}).get(stream_id.replace(".", "_"), 0))


async def wait_for_version(
    collection: AsyncCollection[dict[str, Any]],
    doc_id: str,
    stream_id: str,
    version: int,
    timeout_s: float,
    poll_s: float = 0.01,
) -> dict[str, Any] | None:
    """The document once it reflects `version` of `stream_id`, or None after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc = await collection.find_one({"_id": doc_id})
        if applied_version(doc, stream_id) >= version:
            return doc
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(poll_s)
        poll_s = min(poll_s * 1.5, 0.1)
