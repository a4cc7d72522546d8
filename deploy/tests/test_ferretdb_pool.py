"""The local cluster's FerretDB has no cap on its SQLite connections
(deploy/local/ferretdb/_patches/sqlite_pool_opendb.go; docs/decisions.md, "FerretDB's pool
deadlock"). Upstream FerretDB 1.24 caps them at 100, and an update holds the rows of its query
(one connection) while it writes (a second): enough updates at once, from any number of
clients, then each wait for a connection none gives back, and the database never answers
again. These tests run that load on a wrapper of their own (ferretdb_wrapper.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ferretdb_wrapper import Client, built_binary, wrapper
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import NetworkTimeout

pytestmark = pytest.mark.integration

WORKERS = 300  # concurrent updates: three times upstream's cap
ROUNDS = 10  # updates per worker
CAP = "PARLEY_FERRETDB_SQLITE_MAX_OPEN_CONNS"


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_binary(tmp_path_factory.mktemp("ferretdb"))


def increments(count: int) -> list[UpdateOne]:
    return [UpdateOne({"_id": f"d{i}"}, {"$inc": {"n": 1}}) for i in range(count)]


async def concurrent_updates(url: str, workers: int, rounds: int) -> dict[str, int]:
    """`workers` clients' worth of update_one at once, each on its own document, `rounds`
    times; the counters read back afterwards."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, maxPoolSize=workers + 10)
    async with client:
        docs = client.parley.counters
        await docs.insert_many([{"_id": f"d{i}", "n": 0} for i in range(workers)])

        async def worker(i: int) -> None:
            for _ in range(rounds):
                await docs.update_one({"_id": f"d{i}"}, {"$inc": {"n": 1}})

        await asyncio.gather(*(worker(i) for i in range(workers)))
        return {d["_id"]: d["n"] async for d in docs.find()}


def test_many_concurrent_updates_complete(binary: Path, tmp_path: Path) -> None:
    with wrapper(binary, tmp_path / "data") as (_, _, url):
        # upstream's pool wedges on this within seconds (measured: 400 workers, 4 s); a wedged
        # store fails the test here instead of hanging it
        found = asyncio.run(asyncio.wait_for(concurrent_updates(url, WORKERS, ROUNDS), 120))
    assert found == {f"d{i}": ROUNDS for i in range(WORKERS)}  # none lost, none twice


def test_one_command_of_many_updates_completes(binary: Path, tmp_path: Path) -> None:
    """One `update` command holds a connection per statement until it ends: upstream hangs
    on 100 of them; the projectors' chunk stays at 50 for stores that still cap."""
    with wrapper(binary, tmp_path / "data") as (client, _, _):
        docs = client.parley.counters
        docs.insert_many([{"_id": f"d{i}", "n": 0} for i in range(250)])
        done = docs.bulk_write(increments(250))
        assert done.modified_count == 250
        assert {d["n"] for d in docs.find()} == {1}


def test_with_a_cap_the_same_kind_of_load_wedges_the_store(binary: Path, tmp_path: Path) -> None:
    """The root cause, kept visible with a cap restored (10, so that one command shows it
    deterministically): a command of as many updates as the cap never returns, and from then
    on the database answers nothing. If this fails, a capped pool no longer deadlocks."""
    with wrapper(binary, tmp_path / "data", env={CAP: "10"}) as (client, _, url):
        client.parley.counters.insert_many([{"_id": f"d{i}", "n": 0} for i in range(10)])
        with Client(url, socketTimeoutMS=3_000) as impatient:
            docs = impatient.parley.counters
            with pytest.raises(NetworkTimeout):
                docs.bulk_write(increments(10))
            with pytest.raises(NetworkTimeout):
                docs.find_one({"_id": "d0"})
