"""Shared measuring helpers for `make bench`: closed-loop workers, percentiles, fresh databases."""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from parley_testing.infra import Server, locate
from parley_testing.kafka_access import run_as_admin


@dataclass(frozen=True)
class Figures:
    operations: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds

    def pct(self, p: float) -> float:
        return percentile(self.latencies_ms, p)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(p * 10) - 1]


async def closed_loop(
    concurrency: int,
    duration_s: float,
    make_worker: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]],
    warmup_s: float = 1.0,
) -> Figures:
    """`concurrency` tasks each repeat their operation back to back; latencies after warm-up."""
    operations = [await make_worker(i) for i in range(concurrency)]
    latencies: list[float] = []
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s
    counted = 0

    async def loop(op: Callable[[], Awaitable[None]]) -> None:
        nonlocal counted
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            await op()
            t1 = time.perf_counter()
            if t0 >= measure_from:
                latencies.append((t1 - t0) * 1000)
                counted += 1

    await asyncio.gather(*(loop(op) for op in operations))
    return Figures(counted, duration_s, latencies)


def threaded_closed_loop(
    concurrency: int, duration_s: float, op: Callable[[], None], warmup_s: float = 1.0
) -> Figures:
    """The same closed loop with OS threads, for synchronous libraries."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s

    def loop() -> None:
        mine: list[float] = []
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                break
            op()
            t1 = time.perf_counter()
            if t0 >= measure_from:
                mine.append((t1 - t0) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Figures(len(latencies), duration_s, latencies)


def server_dsn() -> str:
    return locate(Server.POSTGRES).address


def kafka_bootstrap() -> str:
    # the benchmarks' own clients (and the relay or projector they run in-process) sign in as
    # the local cluster's admin, like the tests (parley_testing.kafka_access)
    run_as_admin()
    return locate(Server.KAFKA).address


def with_database(dsn: str, name: str) -> str:
    head, _, _ = dsn.rpartition("/")
    return f"{head}/{name}"


async def create_database(prefix: str) -> str:
    """A fresh database on the benchmark server; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_dsn(), name)


async def drop_database(dsn: str) -> None:
    name = dsn.rpartition("/")[2]
    admin = await asyncpg.connect(server_dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def payload(size: int = 300) -> dict[str, str]:
    """A ~`size`-byte JSON event body (a chat message with some text)."""
    return {"conversation_id": str(uuid.uuid4()), "text": "x" * (size - 80)}


DURATION_S = float(os.environ.get("BENCH_DURATION_S", "5"))
