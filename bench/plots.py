"""PNG plots of the benchmark figures (matplotlib, headless)."""

from __future__ import annotations

import re
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
        axis.set_xlabel("concurrent writers (closed loop, one event per commit)")
        axis.set_title(title)
    left.set_ylabel("events per second")
    right.set_ylabel("p99 latency, ms (log scale)")
    left.legend(fontsize=7)
    right.set_yscale("log")
    fig.suptitle("append: Parley against bare PostgreSQL loops and the eventsourcing library")
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
    bars = axis.bar(list(known), list(known.values()))
    axis.bar_label(bars, fmt="{:,.0f}")
    axis.set_title("throughput per pipeline stage (per second)")
    axis.set_xlabel("stage (append/relay/projector: events, query: requests)")
    axis.set_ylabel("per second")
    path = out / "pipeline_throughput.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


# operation -> (p50 key, p99 key); the label says how it was loaded
OPERATIONS = {
    "append, 8 writers": ("append.c8.p50_ms", "append.c8.p99_ms"),
    "command, stream of 10 events": (
        "command.stream_len_10.p50_ms",
        "command.stream_len_10.p99_ms",
    ),
    "send message, 1 sender": ("send_message.len_10.p50_ms", "send_message.len_10.p99_ms"),
    "relay: commit to consumer": ("relay.lag_p50_ms", "relay.lag_p99_ms"),
    "GET user by id, sequential": (
        "query_size.users_get.n_10000.p50_ms",
        "query_size.users_get.n_10000.p99_ms",
    ),
    "GET user by id, 50 connections": (None, "query.get_by_id.p99_ms"),
    "conversation list, 50 connections": (None, "conversation_list.p99_ms"),
    "login (argon2id), back to back": (None, "login.p99_ms"),
    "sign-up to profile readable": ("register_to_profile.p50_ms", "register_to_profile.p99_ms"),
    "message sent to visible in list": ("message_visible.p50_ms", "message_visible.p99_ms"),
    "registration saga, 20/s offered": ("saga.p50_ms", "saga.p99_ms"),
    "message sent to pushed on a stream": ("realtime.deliver.p50_ms", "realtime.deliver.p99_ms"),
    "message pushed to all 1,000 of a group": (
        "realtime.fanout_1000.p50_ms",
        "realtime.fanout_1000.p99_ms",
    ),
}


def _ms(value: float) -> str:
    return "" if not value else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _latency_plot(f: dict[str, Any], out: Path) -> list[Path]:
    rows: list[tuple[str, float, float]] = [
        (label, float(f.get(p50) or 0) if p50 else 0.0, float(f[p99]))
        for label, (p50, p99) in OPERATIONS.items()
        if f.get(p99) is not None
    ]
    if len(rows) < 2:
        return []
    fig, axis = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6))
    ys = range(len(rows))
    p50s, p99s = [r[1] for r in rows], [r[2] for r in rows]
    for shift, values, pct, colour in ((-0.2, p50s, "p50", "C0"), (0.2, p99s, "p99", "C3")):
        bars = axis.barh([y + shift for y in ys], values, 0.4, color=colour)
        bars.set_label(pct)
        axis.bar_label(bars, [_ms(v) for v in values], fontsize=7, padding=2)
    axis.set_yticks(list(ys), [r[0] for r in rows])
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlim(0.5, 3 * max(p99s))
    axis.set_xlabel("latency, ms (log scale)")
    axis.set_title("latency percentiles per operation (no p50 bar: only the p99 is measured)")
    axis.grid(True, axis="x", which="major", alpha=0.3)
    axis.legend(loc="upper right")
    path = out / "latency_percentiles.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


QUERIES = {
    "users_get": "GET /v1/users/{id}",
    "messages_page": "GET /v1/conversations/{id}/messages?limit=50",
    "users_search": "GET /v1/users?q= (search model)",
    "messages_search": "GET /v1/messages/search?q= (search model)",
    "conversation_list": "GET /v1/conversations, uncached (search model)",
}


def _query_size_plot(f: dict[str, Any], out: Path) -> list[Path]:
    found = (re.fullmatch(r"query_size\.\w+\.n_(\d+)\.store_p50_ms", key) for key in f)
    sizes = sorted({int(m.group(1)) for m in found if m})
    if len(sizes) < 2:
        return []
    fig, (gateway, store) = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for i, (query, label) in enumerate(QUERIES.items()):
        for axis, field in ((gateway, ""), (store, "store_")):
            for pct, style in (("p50", "-"), ("p99", "--")):
                points = [(n, f.get(f"query_size.{query}.n_{n}.{field}{pct}_ms")) for n in sizes]
                xs = [n for n, v in points if v is not None]
                axis.plot(
                    xs,
                    [v for _, v in points if v is not None],
                    style,
                    color=f"C{i}",
                    marker="o" if pct == "p50" else "x",
                    label=f"{label} {pct}",
                )
    gateway.set_title("through the query gateway (HTTP, token verified, no cache)", fontsize=10)
    store.set_title("the same read straight from the store (PyMongo, or asyncpg)", fontsize=10)
    for axis in (gateway, store):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(sizes, [f"{n:,}" for n in sizes])
        axis.set_xlabel("users / messages / memberships in the data read (log scale)")
        axis.grid(True, which="major", alpha=0.3)
        axis.axhline(5000, color="grey", linewidth=0.8, linestyle=":")
        axis.text(sizes[0], 5600, "gateway's store timeout, 5 s (503 above)", fontsize=7)
    if any(key.endswith(".over_store_timeout") for key in f):
        store.text(
            sizes[-1],
            3000,
            "above 5 s: one sample each; through the gateway a 503",
            ha="right",
            fontsize=7,
        )
    gateway.set_ylabel("latency, ms (log scale)")
    gateway.axhline(50, color="C3", linewidth=0.8, linestyle=":")
    gateway.text(sizes[0], 55, "50 ms", fontsize=7, color="C3")
    gateway.legend(fontsize=6)
    fig.suptitle(
        "query latency against collection size (sequential requests, p50 solid, p99 dashed)"
    )
    path = out / "query_vs_collection_size.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


# label -> (key, target, the target's direction); latencies in ms
REALTIME_LATENCIES = {
    "sent -> pushed\n(100/s) p50": ("realtime.deliver.p50_ms", None),
    "sent -> pushed\n(100/s) p99": ("realtime.deliver.p99_ms", 250),
    "to all 1,000 of\na group p50": ("realtime.fanout_1000.p50_ms", None),
    "to all 1,000 of\na group p99": ("realtime.fanout_1000.p99_ms", 1000),
    "resume: 1,000\nmissed messages": ("realtime.resume_ms", None),
}


def _realtime_plot(f: dict[str, Any], out: Path) -> list[Path]:
    if "realtime.idle_rss_mb" not in f and "realtime.deliver.p99_ms" not in f:
        return []
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2.2, 1]}
    )
    rows = [(label, f.get(key), target) for label, (key, target) in REALTIME_LATENCIES.items()]
    xs = range(len(rows))
    values = [float(v or 0) for _, v, _ in rows]
    bars = left.bar(xs, values, color=["C0" if t is None else "C3" for _, _, t in rows])
    left.bar_label(bars, [_ms(v) for v in values], fontsize=8)
    for x, (_, _, target) in zip(xs, rows, strict=True):
        if target is not None:
            left.hlines(target, x - 0.45, x + 0.45, colors="black", linestyles="--")
    labels = [label if t is None else f"{label}\n(target < {t:,} ms)" for label, _, t in rows]
    left.set_xticks(list(xs), labels, fontsize=8)
    left.set_yscale("log")
    shown = [v for v in values if v > 0] or [1.0]
    targets = [float(t) for _, _, t in rows if t is not None]
    left.set_ylim(min(shown) / 2, 3 * max([*shown, *targets]))
    left.set_ylabel("ms (log scale)")
    left.set_title("latency (red: has a target, dashed line)", fontsize=10)
    held = f.get("realtime.idle_connections")
    rss = f.get("realtime.idle_rss_mb")
    before = f.get("realtime.idle_rss_before_mb")
    if rss is not None:
        idle_bars = right.bar(
            ["before", f"{held or 0:,} idle\nstreams"], [before or 0, rss], color=["C7", "C0"]
        )
        right.bar_label(idle_bars, [f"{before or 0:,.0f} MiB", f"{rss:,.0f} MiB"], fontsize=8)
        right.axhline(1024, color="black", linestyle="--")
        right.text(0.5, 1024 * 0.94, "target ≤ 1,024 MiB", ha="center", va="top", fontsize=7)
        right.set_ylim(0, max(1100, rss * 1.15))
    right.set_ylabel("gateway resident memory, MiB")
    right.set_title("one replica holding idle streams (RSS)", fontsize=10)
    fig.suptitle("realtime gateway: pushed events (SSE) on one replica")
    path = out / "realtime.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def draw(figures: dict[str, Any], out: Path) -> list[Path]:
    return [
        *_latency_plot(figures, out),
        *_append_plots(figures, out),
        *_command_plot(figures, out),
        *_stage_bars(figures, out),
        *_query_size_plot(figures, out),
        *_realtime_plot(figures, out),
    ]
