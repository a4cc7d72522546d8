"""End-to-end message visibility (issue 5): a sender posts 100 messages a second into a
conversation through nginx; the other participant polls their conversation list
(`GET /v1/conversations`, no consistency token, as a client refreshing its inbox would) every
20 ms. A message is visible when the list's last message reaches its seq; its latency is that
moment minus the moment its send was accepted (so it includes the relay, Kafka, the projector,
the gateway's short list cache and up to one polling interval).

Keys: `message_visible.p50_ms`, `message_visible.p99_ms`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx
from parley_testing.accounts import sign_up

from bench.common import percentile

RATE = 100.0
SECONDS = 10.0
POLL_S = 0.02


def gateway() -> str:
    return f"http://127.0.0.1:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"


async def run() -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway(), timeout=10) as client:
        sender = await sign_up(client, "bench sender")
        reader = await sign_up(client, "bench reader")
        created = await client.post(
            "/v1/conversations",
            json={"participant_ids": [reader.user_id], "title": "visibility"},
            headers=sender.headers,
        )
        conversation = created.json()["id"]
        accepted: dict[int, float] = {}
        visible: dict[int, float] = {}
        done = asyncio.Event()

        async def send() -> None:
            started = time.perf_counter()
            for i in range(int(RATE * SECONDS)):
                await asyncio.sleep(max(0.0, started + i / RATE - time.perf_counter()))
                r = await client.post(
                    f"/v1/conversations/{conversation}/messages",
                    json={"content": f"m{i}"},
                    headers=sender.headers,
                )
                if r.status_code == 201:
                    accepted[r.json()["seq"]] = time.perf_counter()
            done.set()

        async def watch() -> None:
            seen = 0
            deadline = None
            while True:
                t0 = time.perf_counter()
                r = await client.get("/v1/conversations", headers=reader.headers)
                now = time.perf_counter()
                GETS.append((now - t0) * 1000)
                if r.status_code == 200:
                    for item in r.json()["items"]:
                        if item["id"] == conversation and item.get("last_message"):
                            newest = int(item["last_message"]["seq"])
                            for seq in range(seen + 1, newest + 1):
                                visible[seq] = now
                            seen = max(seen, newest)
                if done.is_set():
                    deadline = deadline or now + 10
                    if seen >= max(accepted, default=0) or now > deadline:
                        return
                await asyncio.sleep(POLL_S)

        await asyncio.gather(send(), watch())
    latencies = [(visible[s] - t) * 1000 for s, t in accepted.items() if s in visible]
    missing = len(accepted) - len(latencies)
    if missing:
        raise RuntimeError(f"{missing} accepted messages never became visible")
    return {
        "message_visible.p50_ms": round(percentile(latencies, 50), 1),
        "message_visible.p99_ms": round(percentile(latencies, 99), 1),
        "message_visible.messages": len(latencies),
    }


GETS: list[float] = []
if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
    print("GET p50/p90/p99", percentile(GETS, 50), percentile(GETS, 90), percentile(GETS, 99), len(GETS))
