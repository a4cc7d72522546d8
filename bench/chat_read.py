"""Chat read side: the conversation list (`GET /v1/conversations`, first page of 20, newest
activity first, with last message and unread counter) for a user with 1,000 conversations,
under 50 connections (wrk, a separate process, loopback), and the unread total beside it.

The read model is seeded directly into the active generation (`memberships__g1`) of a fresh
database of the local cluster's Mongo-wire store: 1,000 memberships of the measured user
among 4,000 of other users (what the collection holds when each conversation has other
participants). A query gateway is started on a free port against that database (uvicorn,
`python -m parley_query_gateway`, the production entry point), trusting a static key that
signs the bench's access token. Since issue 21 the list and the unread total are served by the
search model (PostgreSQL): the same memberships are seeded into a fresh search database
(`seed_search`) that the bench's gateway reads."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from parley_http.consistency import ConsistencyToken
from parley_readmodel.progress import progress_id, stream_key
from parley_testing.infra import Server, locate
from parley_testing.plugin import create_database, drop_database
from parley_testing.tokens import Signer, jwks
from pymongo import AsyncMongoClient

from bench.common import percentile
from bench.query import free_port, wrk

HERE = Path(__file__).resolve().parent
CONVERSATIONS = 1000
OTHERS = 4000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def membership(user: str, i: int, at: datetime) -> dict[str, Any]:
    cid = f"conv-{i:06d}"
    other = f"peer-{i:06d}"
    return {
        "_id": f"{user}:{cid}",
        "user_id": user,
        "conversation_id": cid,
        "title": None,
        "kind": "direct",
        "participant_ids": [user, other],
        "last_message": {
            "message_id": f"{cid}-m7",
            "seq": 7,
            "sender_id": other,
            "content": "see you at the standup tomorrow, bring the numbers " * 2,
            "deleted": False,
            "sent_at": at,
        },
        "last_activity_at": at,
        "unread_count": i % 5,
        "read_up_to_seq": 7 - i % 5,
        "removed": i % 97 == 0,
        "_v": {cid: 9},
    }


async def seed(mongo_url: str, database: str, user: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        target = client[database]["memberships__g1"]
        docs = [
            membership(user, i, T0 + timedelta(seconds=i * 37 % CONVERSATIONS))
            for i in range(CONVERSATIONS)
        ]
        docs += [
            membership(f"other-{i % 400}", CONVERSATIONS + i, T0 + timedelta(seconds=i))
            for i in range(OTHERS)
        ]
        # a stream projector-chat has applied: a token for it makes the gateway read fresh
        await client[database]["_progress"].insert_one(
            {
                "_id": progress_id("projector-chat", 1, stream_key("chat", "bench")),
                "version": 1,
                "projection": "projector-chat",
            }
        )
        for start in range(0, len(docs), 1000):
            await target.insert_many(docs[start : start + 1000], ordered=False)
        await target.create_index(
            [("user_id", 1), ("last_activity_at", -1), ("conversation_id", -1)],
            name="user_id_1_last_activity_at_-1_conversation_id_-1",
        )
    finally:
        await client.close()


async def seed_search(search_dsn: str, user: str) -> None:
    """The same memberships in the search model (projector-search's database), which serves
    the list and the unread total since issue 21: inbox rows and each conversation's row."""
    from parley_projector_search.migrate import migrate

    await migrate(search_dsn)
    conn = await asyncpg.connect(search_dsn)
    try:
        docs = [
            membership(user, i, T0 + timedelta(seconds=i * 37 % CONVERSATIONS))
            for i in range(CONVERSATIONS)
        ]
        docs += [
            membership(f"other-{i % 400}", CONVERSATIONS + i, T0 + timedelta(seconds=i))
            for i in range(OTHERS)
        ]
        await conn.copy_records_to_table(
            "inbox",
            schema_name="g1",
            columns=[
                "user_id",
                "conversation_id",
                "last_activity_at",
                "removed",
                "unread_count",
                "mention_count",
            ],
            records=[
                (
                    d["user_id"],
                    d["conversation_id"],
                    d["last_activity_at"],
                    d["removed"],
                    d["unread_count"],
                    0,
                )
                for d in docs
            ],
        )
        last = [{**d["last_message"], "sent_at": d["last_message"]["sent_at"].isoformat()}
                for d in docs]  # fmt: skip
        await conn.copy_records_to_table(
            "conversations",
            schema_name="g1",
            columns=["id", "last_seq", "title", "kind", "participant_ids", "last_message"],
            records=[
                (
                    d["conversation_id"],
                    7,
                    d["title"],
                    d["kind"],
                    d["participant_ids"],
                    json.dumps(m),
                )
                for d, m in zip(docs, last, strict=True)
            ],
        )
        await conn.execute("INSERT INTO g1.applied (stream, version) VALUES ('chat/bench', 1)")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# the bench's gateway honours consistency tokens signed with this (it plays the command side)
SECRET = "bench-consistency-secret"  # noqa: S105 (a throwaway gateway's)


def fresh_token(context: str, caller: str) -> dict[str, str]:
    """A token of a stream the projector has applied (`seed`), signed for `caller`: the
    gateway reads the store instead of its caches."""
    return {"X-Consistency-Token": ConsistencyToken(context, "bench", 1, caller).sign(SECRET)}


def start_gateway(
    port: int, mongo_url: str, database: str, signer: Signer, search_dsn: str | None = None
) -> subprocess.Popen[bytes]:
    """`search_dsn`: the search model (projector-search's database) the gateway reads; None:
    the gateway's default (the local cluster's `search`)."""
    kafka = locate(Server.KAFKA).address
    env = {
        **os.environ,
        **({"QUERY_SEARCH_DSN": search_dsn} if search_dsn else {}),
        "QUERY_PORT": str(port),
        "QUERY_HOST": "127.0.0.1",
        "QUERY_MONGO_URL": mongo_url,
        "QUERY_MONGO_DB": database,
        "QUERY_JWKS": json.dumps(jwks(signer)),
        "QUERY_JWKS_URL": "",
        "QUERY_CONSISTENCY_SECRET": SECRET,
        "QUERY_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "QUERY_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "parley_query_gateway"], env=env, cwd=HERE.parent
    )


def wait_ready(base: str, headers: dict[str, str], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            response = httpx.get(f"{base}/v1/conversations", headers=headers, timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        except httpx.TransportError as error:
            last = repr(error)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bench's query gateway never answered 200: {last}")
        time.sleep(0.3)


def fresh_latencies(base: str, headers: dict[str, str], caller: str, n: int = 20) -> list[float]:
    """One request at a time, each read from the store (a chat consistency token bypasses the
    gateway's list cache): what a single conversation-list query costs."""
    fresh = {**headers, **fresh_token("chat", caller)}
    out = []
    with httpx.Client(base_url=base, headers=fresh, timeout=30) as client:
        page = client.get("/v1/conversations").json()
        assert len(page["items"]) == 20 and page["next_cursor"], page
        for _ in range(n):
            started = time.perf_counter()
            assert client.get("/v1/conversations").status_code == 200
            out.append((time.perf_counter() - started) * 1000)
        # warm the unread total too, as the list was warmed by wait_ready
    httpx.get(f"{base}/v1/conversations/unread-count", headers=headers, timeout=30)
    return out


async def run() -> dict[str, Any]:
    mongo_url = locate(Server.MONGO).address
    database = f"bench_chat_{uuid.uuid4().hex[:8]}"
    user = f"bench-{uuid.uuid4().hex[:8]}"
    signer = Signer()
    token = signer.token(sub=user)  # 15 minutes: the longest lifetime the gateway accepts
    headers = {"Authorization": f"Bearer {token}"}
    await seed(mongo_url, database, user)
    search_dsn = await create_database(locate(Server.POSTGRES).address)
    await seed_search(search_dsn, user)
    port = free_port()
    gateway = start_gateway(port, mongo_url, database, signer, search_dsn)
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_ready, base, headers)
        uncached = await asyncio.to_thread(fresh_latencies, base, headers, user)
        auth = f"Authorization: Bearer {token}"
        rps, p99 = await asyncio.to_thread(wrk, f"{base}/v1/conversations", auth)
        unread_rps, unread_p99 = await asyncio.to_thread(
            wrk, f"{base}/v1/conversations/unread-count", auth
        )
    finally:
        gateway.terminate()
        gateway.wait(15)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        await client.drop_database(database)
        await client.close()
        await drop_database(search_dsn)
    return {
        "conversation_list.p99_ms": round(p99, 2),
        "conversation_list.rps": round(rps, 1),
        "conversation_list.uncached_p50_ms": round(percentile(uncached, 50), 2),
        "conversation_list.uncached_max_ms": round(max(uncached), 2),
        "conversation_unread_count.p99_ms": round(unread_p99, 2),
        "conversation_unread_count.rps": round(unread_rps, 1),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
