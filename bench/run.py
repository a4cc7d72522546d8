"""`make bench`: run every benchmark against the running local cluster, write the figures to
bench/results/latest.json (flat keys, numbers only; units in latest.units.json) and draw PNG
plots next to it. Each stage is a module with an async `run() -> dict` of figures."""

from __future__ import annotations

import asyncio
import importlib
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from bench.quiet import wait_until_quiet  # noqa: E402  (after the path above)

# module -> what it measures; a module whose service is not built yet is skipped, not faked
STAGES = {
    "bench.append": "append throughput and commit latency (Parley, raw asyncpg, eventsourcing)",
    "bench.command": "command latency against stream length (snapshots)",
    "bench.relay": "outbox -> Kafka throughput and commit-to-ack latency",
    "bench.projector": "Kafka -> read model throughput against raw bulk_write",
    "bench.query": "query gateway GET-by-id under 50 connections (wrk) against hello world",
    "bench.auth": "login throughput (argon2id) and register-to-profile latency through nginx",
    "bench.chat_send": "send-message latency in conversations of 10 and 100,000 messages",
    "bench.chat_features": "edit, react and guarded send (limit + blocks) latency",
    "bench.chat_visible": "send accepted -> the other side's conversation list shows it",
    "bench.chat_read": "conversation list and unread total for a user with 1,000 conversations",
    "bench.saga": "registration saga completion latency and throughput at 20 registrations/s",
    "bench.query_size": "query latency against data size (1k-100k users, 10k-1M messages)",
    "bench.encryption": "send-message p99 with and without per-person encryption of the text",
    "bench.realtime": "pushed events: send -> stream, fan-out to 1,000, 10,000 idle, resume",
    "bench.attachments": "1 MiB attachments: upload and download through the signed URLs",
    # needs `make up REPLICAS=2` (two chat-api replicas); skipped with one
    "bench.scale": "32 senders in one conversation via 2 chat-api replicas; CPU per message",
}


def unit_of(key: str) -> str:
    if key.endswith("_ms"):
        return "milliseconds"
    if key.endswith(("per_s", "_rps")) or key.endswith(".rps"):
        return "per second"
    if key.endswith("ratio") or "ratio" in key:
        return "ratio"
    return "number"


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    path = RESULTS / "latest.json"
    figures: dict[str, Any] = json.loads(path.read_text()) if only and path.exists() else {}
    for module_name, what in STAGES.items():
        if only and module_name.split(".")[-1] not in only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            print(f"[bench] skip {module_name}: {error}", flush=True)
            continue
        wait_until_quiet()
        print(f"[bench] {module_name}: {what}", flush=True)
        started = time.monotonic()
        stage: dict[str, Any] = asyncio.run(module.run())
        print(json.dumps(stage, indent=2), flush=True)
        print(f"[bench] {module_name} took {time.monotonic() - started:.0f}s", flush=True)
        prefix = getattr(module, "KEY_PREFIX", None)
        if prefix:  # a rerun replaces all of the stage's figures, also those it no longer has
            figures = {k: v for k, v in figures.items() if not k.startswith(prefix)}
        figures.update(stage)
    path.write_text(json.dumps(dict(sorted(figures.items())), indent=2) + "\n")
    meta = {
        "written_at": datetime.now(UTC).isoformat(),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "units": {key: unit_of(key) for key in sorted(figures)},
    }
    (RESULTS / "latest.units.json").write_text(json.dumps(meta, indent=2) + "\n")
    from bench.plots import draw

    for png in draw(figures, RESULTS):
        print(f"[bench] wrote {png.relative_to(ROOT)}")
    print(f"[bench] wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
