"""Drive the local cluster's process manager from fault tests (same code path as `make kill`)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

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


def replicas(name: str) -> list[str]:
    """The replicas of one kind of process the cluster runs: `name`, then `name-2`, ...
    (`make up REPLICAS=N`; deploy/local/services_catalog.py replica_name)."""
    table = processes()
    names = [name]
    while f"{name}-{len(names) + 1}" in table:
        names.append(f"{name}-{len(names) + 1}")
    return names


def replica_for_round(kind: str, fault_round: int) -> tuple[str, int]:
    """The replica of `kind` a fault suite kills in round `fault_round` (0-based: round k takes
    replica k + 1, cyclically; one replica: always it), and how many replicas the kind has."""
    names = replicas(kind)
    return names[fault_round % len(names)], len(names)


def unexpected_answer(outcome: httpx.Response | httpx.HTTPError) -> str | None:
    """For an answer a fault suite's client did not take as success: what it counts against
    the fault, keyed by status or exception. None for a 503 (nginx's answer for a process
    that is down or died holding the request, a service's for a store that is: clients retry
    it)."""
    if isinstance(outcome, httpx.Response):
        return None if outcome.status_code == 503 else str(outcome.status_code)
    return type(outcome).__name__


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


def wait_healthy() -> None:
    """Wait until every server and service of the cluster answers (deploy/local/health.py
    wait_healthy); raises if one does not within two minutes."""
    _cluster("wait")


def pause(name: str) -> None:
    """Stop a process (the process manager leaves it stopped until `resume`)."""
    _cluster("pause", name)


def resume(name: str) -> None:
    _cluster("resume", name)


@contextlib.contextmanager
def stopped(kind: str) -> Iterator[list[str]]:
    """Every replica of one kind of process paused for the block (with one replica left
    running, the kind would not be down: `make up REPLICAS=N`), resumed after it."""
    names = replicas(kind)
    try:
        for name in names:
            pause(name)
        yield names
    finally:
        for name in names:
            resume(name)


# the servers the local cluster runs for Parley; every other process is one of Parley's own
INFRASTRUCTURE = frozenset({"postgres", "kafka", "ferretdb", "nginx", "smtp-sink"})


def environment_of(name: str) -> dict[str, str]:
    """The environment a running process of the cluster was started with (its settings)."""
    _, pid = processes()[name]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(): value.decode() for key, value in pairs}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ExtraReplica:
    """One more replica of a running HTTP service, with the same settings on another port
    (what a second pod would be): `with ExtraReplica("realtime-gateway", "parley_realtime",
    "REALTIME") as url: ...`."""

    def __init__(self, name: str, module: str, prefix: str, ready_s: float = 60.0) -> None:
        self.name = name
        self.module = module
        self.prefix = prefix
        self.ready_s = ready_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        import urllib.request

        env = environment_of(self.name)
        env[f"{self.prefix}_PORT"] = str(self.port)
        env[f"{self.prefix}_HOST"] = "127.0.0.1"
        env.pop(f"{self.prefix}_REPLICA_ID", None)
        self._process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.ready_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the extra {self.name} exited with {self._process.returncode}")
            try:
                ready = f"{self.url}/readyz"  # http, built above
                with urllib.request.urlopen(ready, timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        return self.url
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise TimeoutError(f"the extra {self.name} was not ready within {self.ready_s}s")

    def __exit__(self, *_: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
