"""The registration saga under a steady arrival rate on the running cluster.

Two arrival paths, `RATE` registrations per second (open loop: each starts on schedule whether
or not the ones before it finished) for `SAGA_DURATION_S` seconds:

- `saga.*` (the target: p99 under 1 s at 20/s): registrations written by auth's own
  repository into the auth database (the claim row and `UserRegistered` with its outbox row,
  exactly what `POST /v1/auth/register` commits) with a password hash computed once, so the
  figures are the saga's and not argon2id's. From there everything is the live cluster:
  relay-auth, the orchestrator, relay-saga, the three participants and their replies.
- `saga.via_gateway.*`: the same through nginx and `POST /v1/auth/register`, argon2id
  included (about 55 ms of CPU per hash on this 2-core box that also runs the whole cluster):
  what a burst of real sign-ups gets here, and the rate the box sustained.

Latency: from the commit of the registration (the 202 for the gateway path) to the moment the
saga recorded `completed` (the orchestrator's clock; one machine, one clock). It holds
relay-auth, the orchestrator's consumer and four round trips (saga outbox -> relay-saga ->
Kafka -> participant -> reply topic -> orchestrator).
`*.completed_per_s`: sagas completed / (last completion - first registration).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from parley_auth import tables
from parley_auth.bootstrap import build
from parley_auth.config import Settings as AuthSettings
from parley_eventstore.records import Metadata
from parley_testing.accounts import (
    PASSWORD,
    new_address,
    registration_headers,
    registration_settled,
)

from bench.common import percentile, server_dsn, with_database

RATE = float(os.environ.get("SAGA_RATE", "20"))
DURATION_S = float(os.environ.get("SAGA_DURATION_S", "15"))
STATE = Path(os.environ.get("PARLEY_STATE_DIR", ".local"))

Register = Callable[[], Coroutine[Any, Any, tuple[str, float]]]


def gateway() -> str:
    return f"http://127.0.0.1:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"


async def completed_at(client: httpx.AsyncClient, user_id: str) -> float:
    status = await registration_settled(client, user_id, wait_s=180, poll_s=0.5)
    if status != "completed":
        raise RuntimeError(f"registration {user_id} ended {status}")
    headers = registration_headers(user_id)  # some are written to auth's database directly
    history = (await client.get(f"/v1/registrations/{user_id}", headers=headers)).json()["history"]
    [done] = [h for h in history if h["event"] == "completed"]
    return datetime.fromisoformat(done["at"]).timestamp()


async def measure(client: httpx.AsyncClient, register: Register, prefix: str) -> dict[str, Any]:
    count = int(RATE * DURATION_S)
    start = time.monotonic()
    started_wall = time.time()
    tasks = []
    for i in range(count):
        delay = start + i / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(register()))
    registered = await asyncio.gather(*tasks)
    offered = count / (time.monotonic() - start)
    finished = await asyncio.gather(*(completed_at(client, u) for u, _ in registered))
    latencies = [(done - at) * 1000 for (_, at), done in zip(registered, finished, strict=True)]
    return {
        f"{prefix}.p50_ms": round(percentile(latencies, 50), 1),
        f"{prefix}.p99_ms": round(percentile(latencies, 99), 1),
        f"{prefix}.completed_per_s": round(count / (max(finished) - started_wall), 1),
        f"{prefix}.offered_per_s": round(offered, 1),
    }


async def through_auth_repository(client: httpx.AsyncClient) -> dict[str, Any]:
    settings = AuthSettings(
        postgres_dsn=with_database(server_dsn(), "auth"), key_dir=STATE / "auth"
    )
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=2, max_size=16)
    assert pool is not None
    auth, store = await build(settings, pool)
    hashed = await auth.passwords.hash(PASSWORD)
    try:

        async def register() -> tuple[str, float]:
            account_id, email = str(uuid.uuid4()), new_address("bench-saga")
            await tables.claim_email(pool, email, account_id, "bench saga", hashed)
            await auth.accounts.execute(
                account_id,
                lambda account: account.register(email, "bench saga"),
                metadata=Metadata(correlation_id=account_id),
                idempotency_key=f"auth.register:{account_id}",
            )
            return account_id, time.time()

        return await measure(client, register, "saga")
    finally:
        await store.close()
        await pool.close()


async def through_gateway(client: httpx.AsyncClient) -> dict[str, Any]:
    async def register() -> tuple[str, float]:
        body = {"email": new_address("bench-saga"), "password": PASSWORD, "name": "bench saga"}
        response = await client.post("/v1/auth/register", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"register failed: {response.status_code} {response.text}")
        return str(response.json()["user_id"]), time.time()

    return await measure(client, register, "saga.via_gateway")


async def run() -> dict[str, Any]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=gateway(), timeout=60, limits=limits) as client:
        figures = await through_auth_repository(client)
        await asyncio.sleep(5)  # let the cluster settle between the two
        figures.update(await through_gateway(client))
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
