"""The registration saga under a steady arrival rate, through the gateway of the running cluster.

`RATE` registrations per second (open loop: each starts on schedule, whether or not the ones
before it finished) for `SAGA_DURATION_S` seconds; each is timed from the 202 of
POST /v1/auth/register (client clock) to the moment the saga recorded `completed` (the
orchestrator's clock; one machine, one clock). That span holds auth's append, relay-auth,
the orchestrator's consumer, four round trips (saga outbox -> relay-saga -> Kafka ->
participant -> reply topic -> orchestrator), the argon2id hash is before it (in the request).

- `saga.p50_ms`, `saga.p99_ms`: completion latency.
- `saga.completed_per_s`: sagas completed / (last completion - first registration).
- `saga.offered_per_s`: the arrival rate achieved by the client (the target is 20/s).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime
from typing import Any

import httpx
from parley_testing.accounts import PASSWORD, new_address, registration_settled

from bench.common import percentile

RATE = float(os.environ.get("SAGA_RATE", "20"))
DURATION_S = float(os.environ.get("SAGA_DURATION_S", "15"))


def gateway() -> str:
    return f"http://127.0.0.1:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"


async def register(client: httpx.AsyncClient) -> tuple[str, float]:
    response = await client.post(
        "/v1/auth/register",
        json={"email": new_address("bench-saga"), "password": PASSWORD, "name": "bench saga"},
    )
    accepted = time.time()
    if response.status_code != 202:
        raise RuntimeError(f"register failed: {response.status_code} {response.text}")
    return str(response.json()["user_id"]), accepted


async def completed_at(client: httpx.AsyncClient, user_id: str) -> float:
    status = await registration_settled(client, user_id, wait_s=120, poll_s=0.5)
    if status != "completed":
        raise RuntimeError(f"registration {user_id} ended {status}")
    history = (await client.get(f"/v1/registrations/{user_id}")).json()["history"]
    [done] = [h for h in history if h["event"] == "completed"]
    return datetime.fromisoformat(done["at"]).timestamp()


async def run() -> dict[str, Any]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=gateway(), timeout=60, limits=limits) as client:
        count = int(RATE * DURATION_S)
        start = time.monotonic()
        started_wall = time.time()
        tasks = []
        for i in range(count):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(register(client)))
        registered = await asyncio.gather(*tasks)
        offered = count / (time.monotonic() - start)
        finished = await asyncio.gather(*(completed_at(client, u) for u, _ in registered))
    latencies = [
        (done - accepted) * 1000 for (_, accepted), done in zip(registered, finished, strict=True)
    ]
    return {
        "saga.p50_ms": round(percentile(latencies, 50), 1),
        "saga.p99_ms": round(percentile(latencies, 99), 1),
        "saga.completed_per_s": round(count / (max(finished) - started_wall), 1),
        "saga.offered_per_s": round(offered, 1),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
