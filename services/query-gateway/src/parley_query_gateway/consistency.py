"""Read-your-writes: a GET that presents the `X-Consistency-Token` of a command sees that
command's effect, or a 503 that says so, never stale data presented as fresh."""

from __future__ import annotations

from typing import Any

from parley_http.consistency import ConsistencyToken, InvalidToken
from parley_http.problems import Problem
from parley_projection.readyourwrites import wait_for_version
from pymongo.asynchronous.collection import AsyncCollection


def parse_token(raw: str | None) -> ConsistencyToken | None:
    if raw is None:
        return None
    try:
        return ConsistencyToken.decode(raw)
    except InvalidToken as error:
        raise Problem(400, "Bad Request", "X-Consistency-Token is not a token we issued") from error


async def read_after(
    collection: AsyncCollection[dict[str, Any]],
    doc_id: str,
    token: ConsistencyToken | None,
    depends_on: tuple[str, str],
    wait_s: float,
) -> dict[str, Any] | None:
    """The document; if the token names the (context, stream) this document depends on, only
    once it reflects the token's version (bounded wait, then 503 + Retry-After)."""
    if token is None or (token.context, token.stream_id) != depends_on:
        return await collection.find_one({"_id": doc_id})
    doc = await wait_for_version(collection, doc_id, token.stream_id, token.version, wait_s)
    if doc is None:
        raise Problem(
            503,
            "Service Unavailable",
            f"the read model has not caught up with version {token.version} yet; retry",
            headers={"Retry-After": "1"},
        )
    return doc
