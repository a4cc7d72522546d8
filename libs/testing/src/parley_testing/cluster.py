"""Drive the local cluster's process manager from fault tests (same code path as `make kill`)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
CLUSTER = ROOT / "deploy" / "local" / "cluster.py"


def _cluster(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(CLUSTER), *args], check=True, text=True, capture_output=True
    )
    return done.stdout


def processes() -> dict[str, tuple[str, str]]:
    """name -> (state, pid) as `make ps` prints them."""
    table = {}
    for line in _cluster("ps").splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[0]] = (parts[1], parts[2])
    return table


def kill(name: str) -> int:
    """SIGKILL the process; returns the pid that was killed."""
    state, pid = processes()[name]
    if state != "RUNNING":
        raise RuntimeError(f"{name} is {state}, not RUNNING")
    _cluster("kill", name)
    return int(pid)


def wait_restarted(name: str, old_pid: int, timeout: float = 60.0) -> int:
    """Wait until the process manager runs the process again under a new pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, pid = processes().get(name, ("?", "-"))
        if state == "RUNNING" and pid.isdigit() and int(pid) != old_pid:
            return int(pid)
        time.sleep(0.3)
    raise TimeoutError(f"{name} was not restarted within {timeout}s")


def pause(name: str) -> None:
    """Stop a process (the process manager leaves it stopped until `resume`)."""
    _cluster("pause", name)


def resume(name: str) -> None:
    _cluster("resume", name)


# the servers the local cluster runs for Parley; every other process is one of Parley's own
INFRASTRUCTURE = frozenset({"postgres", "kafka", "ferretdb", "nginx", "smtp-sink"})
