"""Declared indexes on the real Mongo-wire store: created per generation, idempotently."""

from __future__ import annotations

from typing import Any

import pytest
from parley_readmodel.aliases import ensure_indexes, physical

pytestmark = pytest.mark.integration

INDEXES = {
    "users": ((("name_key", 1), ("_id", 1)), (("tokens", 1),)),
    "pairs": ((("owner", 1), ("_id", -1)),),
}


async def keys(db: Any, logical: str, generation: int) -> set[tuple[tuple[str, int], ...]]:
    found = await db[physical(logical, generation)].list_indexes()
    return {tuple((k, int(v)) for k, v in i["key"].items()) async for i in found}


async def test_indexes_are_created_once_per_generation_and_again_is_harmless(db: Any) -> None:
    await db[physical("users", 1)].insert_one({"_id": "u1", "tokens": ["a", "ab"]})
    for _ in range(3):  # FerretDB 1.24 drops the connection on a multi-index re-create
        await ensure_indexes(db, 1, INDEXES)
    assert await keys(db, "users", 1) == {(("_id", 1),), *INDEXES["users"]}
    assert await keys(db, "pairs", 1) == {(("_id", 1),), *INDEXES["pairs"]}
    assert await keys(db, "users", 2) == set()  # another generation: untouched
    await ensure_indexes(db, 2, INDEXES)
    assert await keys(db, "users", 2) == {(("_id", 1),), *INDEXES["users"]}


async def test_on_ferretdb_the_runtime_writes_unguarded_and_creates_no_indexes(db: Any) -> None:
    """FerretDB 1.24 pushes only `_id` filters down (explain: a SCAN), so the declared
    indexes would only slow inserts there; options still override the store's default."""
    from parley_readmodel.runtime import Options, Store, is_ferretdb, resolve_store

    if not await is_ferretdb(db):
        pytest.skip("the local cluster's store is FerretDB; MongoDB keeps both on")
    assert await resolve_store(db, Options(bootstrap_servers="unused")) == Store(False, False)
    forced = Options(bootstrap_servers="unused", guard=True, indexes=True)
    assert await resolve_store(db, forced) == Store(True, True)
