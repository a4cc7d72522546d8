"""Start a measurement on a quiet box."""

from __future__ import annotations

import time
from pathlib import Path


def busy_fraction(window_s: float = 1.0) -> float:
    """The share of the machine's CPU time spent busy over `window_s` (/proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(window_s)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_until_quiet(limit: float = 0.35, timeout_s: float = 30.0) -> None:
    """Start a stage on a quiet box: the stage before may leave background work behind (the
    append stage leaves PostgreSQL checkpointing and vacuuming for a while, the projector
    stage FerretDB) that would be counted against the next stage. Bounded: a box that never
    quiets down (another job) delays each stage by `timeout_s` at most."""
    deadline = time.monotonic() + timeout_s
    while busy_fraction() > limit and time.monotonic() < deadline:
        pass
