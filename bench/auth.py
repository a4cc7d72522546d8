"""Auth through the gateway of the running cluster (nginx -> auth-api), real argon2id.

- `login.per_s`, `login.p99_ms`: 8 verified accounts, each with a client logging in back to back for
  `BENCH_DURATION_S` seconds after a warm-up (closed loop). Each login verifies an argon2id
  hash (time cost 3, 19 MiB, parallelism 1: services/auth/passwords.py), signs an EdDSA
  access token and appends UserLoggedIn (one event, outbox row) to the auth database.
- `register_to_profile.p50_ms` / `p99_ms`: 30 sign-ups one after the other, each timed from
  POST /v1/auth/register to the first 200 of GET /v1/users/me: the code mailed through the
  SMTP sink, verify, login, and the users profile created from auth.events (relay, Kafka, the
  registration saga's steps, relay again, the users projector) - polled every
  10 ms, so the figures carry up to ~10 ms of polling.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx
from parley_testing.accounts import PASSWORD, sign_up

from bench.common import closed_loop, percentile

CLIENTS = 8
SIGN_UPS = 30


def gateway() -> str:
    return f"http://127.0.0.1:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"


async def login_figures() -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway(), timeout=30) as client:
        accounts = [await sign_up(client, "bench login") for _ in range(CLIENTS)]

        async def worker(i: int) -> Any:
            body = {"email": accounts[i].email, "password": PASSWORD}

            async def login() -> None:
                response = await client.post("/v1/auth/login", json=body)
                if response.status_code != 200:
                    raise RuntimeError(f"login failed under load: {response.status_code}")

            return login

        duration = float(os.environ.get("BENCH_DURATION_S", "5"))
        figures = await closed_loop(CLIENTS, duration, worker)
    return {"login.per_s": round(figures.per_second, 1), "login.p99_ms": round(figures.pct(99), 2)}


async def register_figures() -> dict[str, Any]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=gateway(), timeout=30) as client:
        for _ in range(SIGN_UPS):
            started = time.perf_counter()
            await sign_up(client, "bench sign-up", poll_s=0.01)
            latencies.append((time.perf_counter() - started) * 1000)
    return {
        "register_to_profile.p50_ms": round(percentile(latencies, 50), 1),
        "register_to_profile.p99_ms": round(percentile(latencies, 99), 1),
    }


async def run() -> dict[str, Any]:
    return {**await login_figures(), **await register_figures()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
