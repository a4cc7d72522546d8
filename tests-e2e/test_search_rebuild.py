"""Issue 21: the search model is rebuilt (`python -m parley_projector_search.rebuild`: a new
generation filled from offset 0 by its own consumer group in the running projector-search,
then swapped in and the old one dropped) while people keep writing and searching through the
gateway: no search, list or unread read fails at any moment, and afterwards every message
written before, during and after the rebuild is found, in the new generation."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Any

import asyncpg
import httpx
from parley_testing import cluster
from parley_testing.accounts import sign_up
from parley_testing.plugin import dsn_for_database

TOKEN = "X-Consistency-Token"


async def live_generation(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT n FROM search_generations WHERE state = 'live'"))
    finally:
        await conn.close()


async def test_a_rebuild_under_live_writes_loses_nothing_and_fails_no_read(
    gateway_url: str, postgres_dsn: str
) -> None:
    search_dsn = dsn_for_database(postgres_dsn, "search")
    word = f"rb{uuid.uuid4().hex[:8]}"  # a word only this test's messages have
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        ada = await sign_up(client, "Ada Rebuild")
        bob = await sign_up(client, "Bob Rebuild")
        created = await client.post(
            "/v1/conversations",
            json={"participant_ids": [bob.user_id], "title": "rebuild"},
            headers=ada.headers,
        )
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        sent: list[str] = []
        last: list[httpx.Response] = []

        async def send(i: int) -> None:
            r = await client.post(
                f"/v1/conversations/{cid}/messages",
                json={"content": f"{word} number {i}"},
                headers=ada.headers,
            )
            assert r.status_code == 201, r.text
            sent.append(r.json()["id"])
            last[:] = [r]

        for i in range(10):  # before the rebuild
            await send(i)
        before = await live_generation(search_dsn)

        stop = asyncio.Event()
        failures: list[str] = []
        reads = 0

        async def write() -> None:
            i = 10
            while not stop.is_set():
                await send(i)
                i += 1
                await asyncio.sleep(0.05)

        async def read() -> None:
            nonlocal reads
            while not stop.is_set():
                for path, params in (
                    ("/v1/messages/search", {"q": word}),
                    ("/v1/conversations", {}),
                    ("/v1/conversations/unread-count", {}),
                    ("/v1/users", {"q": "bob rebuild"}),
                ):
                    r = await client.get(path, params=params, headers=bob.headers)
                    reads += 1
                    if r.status_code != 200:
                        failures.append(f"{path}: {r.status_code} {r.text[:200]}")
                await asyncio.sleep(0.02)

        # as an operator runs it: with projector-search's own settings (its Kafka address and
        # principal, the key owner), whatever ports this cluster was started on
        settings = await asyncio.to_thread(cluster.environment_of, "projector-search")
        env = {**os.environ, **settings, "SEARCH_POSTGRES_DSN": search_dsn}
        tasks = [asyncio.create_task(write()), asyncio.create_task(read())]
        rebuild = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "parley_projector_search.rebuild", "--keep", "2", env=env
        )
        try:
            assert await asyncio.wait_for(rebuild.wait(), 900) == 0
            await asyncio.sleep(3)  # reads and writes go on across the old generation's drop
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        after = await live_generation(search_dsn)
        assert after > before
        assert failures == [], failures[:5]
        assert reads > 20

        for i in range(3):  # after the rebuild
            await send(1000 + i)

        async def found_all() -> list[str]:
            ids: list[str] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"q": word, "limit": 50}
                if cursor:
                    params["cursor"] = cursor
                r = await client.get(
                    "/v1/messages/search",
                    params=params,
                    headers={**ada.headers, TOKEN: last[0].headers[TOKEN]},
                )
                assert r.status_code == 200, r.text
                ids += [m["id"] for m in r.json()["items"]]
                cursor = r.json()["next_cursor"]
                if not cursor:
                    return ids

        ids = await found_all()
        assert sorted(ids) == sorted(sent), (len(ids), len(sent))
        assert len(ids) == len(set(ids))
