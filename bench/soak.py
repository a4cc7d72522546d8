"""`make soak MINUTES=10`: a steady mixed load on the running local cluster, recording whether
lag and memory stay flat (issue 9).

Load (through nginx, as signed-in users, about `RATE` operations a second): profile edits,
reads of one's own profile with the edit's consistency token, and messages in a group
conversation of all the soak's users. Every `SAMPLE_S` seconds: the outbox backlog of each
command service and the consumer-group lag of each projection (from their /metrics), and the
resident memory of every Parley process (/proc, pids from the process manager).

Flat means: in the last third of the run, the lag's maximum stays under `LAG_LIMIT` records
and every process's memory under its second-sample value plus `GROWTH_LIMIT`. Results and a
verdict go to bench/results/soak.json, a plot to bench/results/soak.png; the exit code is 1
when something did not stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from parley_testing import cluster
from parley_testing.accounts import Account, sign_up
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RATE = 20.0
USERS = 6
SAMPLE_S = 10.0
LAG_LIMIT = 200  # records behind, in the last third
GROWTH_LIMIT = 0.25  # of a process's memory after warm-up
BASE = int(os.environ.get("PARLEY_SERVICE_PORT_BASE", "8100"))
GATEWAY = f"http://127.0.0.1:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"
# process -> (its /metrics, the gauge that says how far behind it is)
BACKLOGS = {
    "users outbox": (BASE + 1, "parley_outbox_pending_rows"),
    "auth outbox": (BASE + 2, "parley_outbox_pending_rows"),
    "chat outbox": (BASE + 3, "parley_outbox_pending_rows"),
    "projections": (BASE, "parley_consumer_group_lag"),
}


async def gauge(client: httpx.AsyncClient, port: int, name: str) -> float:
    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


def resident_mib() -> dict[str, float]:
    """Resident memory of every Parley process (the servers it depends on are not ours)."""
    ours = {}
    for name, (state, pid) in cluster.processes().items():
        if state != "RUNNING" or not pid.isdigit() or name in cluster.INFRASTRUCTURE:
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        ours[name] = round(kib / 1024, 1)
    return ours


async def load(
    client: httpx.AsyncClient, users: list[Account], stop: asyncio.Event
) -> dict[str, int]:
    counts = {"ok": 0, "failed": 0}
    created = await client.post(
        "/v1/conversations",
        json={"participant_ids": [u.user_id for u in users[1:]], "title": "soak"},
        headers=users[0].headers,
    )
    conversation = created.json()["id"]
    i = 0
    while not stop.is_set():
        user = users[i % len(users)]
        i += 1
        try:
            if i % 3 == 0:
                r = await client.post(
                    f"/v1/conversations/{conversation}/messages",
                    json={"content": f"soak message {i}"},
                    headers=user.headers,
                )
            else:
                r = await client.patch(
                    f"/v1/users/{user.user_id}", json={"bio": f"soak {i}"}, headers=user.headers
                )
                if r.status_code == 200:
                    token = {"X-Consistency-Token": r.headers["X-Consistency-Token"]}
                    r = await client.get("/v1/users/me", headers={**user.headers, **token})
            counts["ok" if r.status_code < 400 else "failed"] += 1
        except httpx.HTTPError:
            counts["failed"] += 1
        await asyncio.sleep(1 / RATE)
    return counts


async def refresh_tokens(
    client: httpx.AsyncClient, users: list[Account], stop: asyncio.Event
) -> None:
    """Access tokens live 5 minutes: log in again every 4."""
    from parley_testing.accounts import login

    while not stop.is_set():
        await asyncio.sleep(240)
        for user in users:
            user.access_token = await login(client, user.email)


async def soak(minutes: float) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=10) as client:
        users = [await sign_up(client, f"Soak {i}") for i in range(USERS)]
        worker = asyncio.create_task(load(client, users, stop))
        refresher = asyncio.create_task(refresh_tokens(client, users, stop))
        started = time.monotonic()
        while time.monotonic() - started < minutes * 60:
            await asyncio.sleep(SAMPLE_S)
            sample: dict[str, Any] = {"t": round(time.monotonic() - started, 1)}
            for label, (port, name) in BACKLOGS.items():
                sample[label] = await gauge(client, port, name)
            sample["rss_mib"] = await asyncio.to_thread(resident_mib)
            samples.append(sample)
            print(json.dumps(sample), flush=True)
        stop.set()
        counts = await worker
        refresher.cancel()
    return verdict(samples, counts)


def verdict(samples: list[dict[str, Any]], counts: dict[str, int]) -> dict[str, Any]:
    last = samples[len(samples) * 2 // 3 :] or samples
    lag = {label: max(s[label] for s in last) for label in BACKLOGS}
    baseline = samples[1]["rss_mib"] if len(samples) > 1 else samples[0]["rss_mib"]
    growth = {
        name: round(max(s["rss_mib"].get(name, 0) for s in last) / mib - 1, 3)
        for name, mib in baseline.items()
        if mib
    }
    return {
        "operations": counts,
        "samples": samples,
        "last_third_max_lag": lag,
        "memory_growth_after_warmup": growth,
        "lag_flat": all(v <= LAG_LIMIT for v in lag.values()),
        "memory_flat": all(g <= GROWTH_LIMIT for g in growth.values()),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    t = [s["t"] / 60 for s in samples]
    fig, (lag_ax, mem_ax) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for label in BACKLOGS:
        lag_ax.plot(t, [s[label] for s in samples], label=label)
    lag_ax.set_ylabel("records behind")
    lag_ax.legend()
    lag_ax.set_title("soak: backlog and lag (flat is good)")
    for name in sorted(samples[-1]["rss_mib"]):
        mem_ax.plot(t, [s["rss_mib"].get(name) for s in samples], label=name)
    mem_ax.set_ylabel("resident memory, MiB")
    mem_ax.set_xlabel("minutes")
    mem_ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    minutes = parser.parse_args().minutes
    result = asyncio.run(soak(minutes))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / "soak.png")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    sys.exit(0 if result["lag_flat"] and result["memory_flat"] else 1)


if __name__ == "__main__":
    main()
