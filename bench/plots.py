"""PNG plots of the benchmark figures (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CONCURRENCY = (1, 8, 32)
RIVALS = {
    "Parley (event + outbox + key)": "append",
    "bare asyncpg BEGIN/INSERT/COMMIT": "append.raw_asyncpg",
    "bare asyncpg autocommit INSERT": "append.raw_asyncpg_autocommit",
    "eventsourcing recorder": "append.eventsourcing",
}


def _append_plots(f: dict[str, Any], out: Path) -> list[Path]:
    if "append.c8.events_per_s" not in f:
        return []
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.2
    for i, (label, prefix) in enumerate(RIVALS.items()):
        xs = [c + (i - 1.5) * width for c in range(len(CONCURRENCY))]
        left.bar(
            xs, [f.get(f"{prefix}.c{c}.events_per_s", 0) for c in CONCURRENCY], width, label=label
        )
        right.bar(xs, [f.get(f"{prefix}.c{c}.p99_ms", 0) for c in CONCURRENCY], width, label=label)
    for axis, title in ((left, "append throughput (events/s)"), (right, "commit latency p99 (ms)")):
        axis.set_xticks(range(len(CONCURRENCY)), [f"c={c}" for c in CONCURRENCY])
        axis.set_title(title)
    left.legend(fontsize=7)
    right.set_yscale("log")
    path = out / "append.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _command_plot(f: dict[str, Any], out: Path) -> list[Path]:
    lengths = [10, 1_000, 10_000]
    if f"command.stream_len_{lengths[-1]}.p99_ms" not in f:
        return []
    fig, axis = plt.subplots(figsize=(6, 4))
    for pct in ("p50", "p99"):
        axis.plot(
            lengths, [f[f"command.stream_len_{n}.{pct}_ms"] for n in lengths], marker="o", label=pct
        )
    axis.set_xscale("log")
    axis.set_ylim(bottom=0)
    axis.set_xlabel("events already in the stream")
    axis.set_ylabel("command latency (ms)")
    axis.set_title("command cost against stream length (snapshots every 100)")
    axis.legend()
    path = out / "command_vs_stream_length.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _stage_bars(f: dict[str, Any], out: Path) -> list[Path]:
    stages = {
        "append c32": f.get("append.c32.events_per_s"),
        "relay": f.get("relay.events_per_s"),
        "projector": f.get("projector.events_per_s"),
        "query GET": f.get("query.get_by_id.rps"),
    }
    known = {k: v for k, v in stages.items() if v}
    if len(known) < 2:
        return []
    fig, axis = plt.subplots(figsize=(6, 4))
    axis.bar(list(known), list(known.values()))
    axis.set_title("throughput per pipeline stage (per second)")
    path = out / "pipeline_throughput.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def draw(figures: dict[str, Any], out: Path) -> list[Path]:
    return [*_append_plots(figures, out), *_command_plot(figures, out), *_stage_bars(figures, out)]
