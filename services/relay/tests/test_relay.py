"""The relay against the real PostgreSQL and Kafka: nothing lost, nothing uncommitted, order
per aggregate kept, through crashes (real SIGKILLs) and leader changes."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request

import asyncpg
import pytest
from relay_harness import Bench, read_topic, relay_process, versions_by_key

pytestmark = pytest.mark.integration


async def outbox_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox"))
    finally:
        await conn.close()


async def wait_drained(dsn: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while await outbox_rows(dsn) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await outbox_rows(dsn) == 0, "outbox not drained"


async def test_records_arrive_intact_in_order_and_the_outbox_empties(
    bench: Bench, relay_task: object
) -> None:
    for key in ("a", "b", "c"):
        await bench.append(key, 30)
    relay_task()  # type: ignore[operator]
    await wait_drained(bench.dsn)
    records = await read_topic(bench, 90)
    assert len(records) == 90
    assert versions_by_key(records) == {k: list(range(1, 31)) for k in ("a", "b", "c")}
    first = next(r for r in records if r.key == b"a")
    headers = {k: v.decode() for k, v in first.headers}
    assert headers["ce_type"] == "parley.test.Counted.v1"
    assert headers["ce_subject"] == "a"
    assert json.loads(first.value) == {"n": 0}


async def test_a_rolled_back_transaction_publishes_nothing(
    bench: Bench, relay_task: object
) -> None:
    relay_task()  # type: ignore[operator]
    conn = await asyncpg.connect(bench.dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(
            "INSERT INTO outbox (topic, key, headers, payload) VALUES ($1, 'ghost', $2, 'x')",
            bench.topic,
            json.dumps({"ce_specversion": "1.0"}),
        )
        await asyncio.sleep(0.5)  # the relay polls meanwhile and must not see it
        await tx.rollback()
    finally:
        await conn.close()
    await bench.append("real", 1)
    await wait_drained(bench.dsn)
    records = await read_topic(bench, 1, timeout=5)
    assert [r.key for r in records] == [b"real"]


async def test_many_concurrent_writers_keep_per_aggregate_order(
    bench: Bench, relay_task: object
) -> None:
    relay_task()  # type: ignore[operator]

    async def writer(key: str) -> None:
        for v in range(10):
            await bench.append(key, 1, start=v)

    keys = [f"k{i}" for i in range(25)]
    await asyncio.gather(*(writer(k) for k in keys))
    await wait_drained(bench.dsn)
    assert versions_by_key(await read_topic(bench, 250)) == {k: list(range(1, 11)) for k in keys}


@pytest.mark.parametrize("fault", ["crash_after_ack:2", "crash_before_send:3", "crash_after_ack:1"])
async def test_a_killed_relay_loses_nothing(bench: Bench, fault: str) -> None:
    for key in ("x", "y"):
        await bench.append(key, 50)
    crashing = relay_process(bench, fault=fault)
    assert await asyncio.to_thread(crashing.wait, 30) == 137, "the fault hook fired"
    survivor = relay_process(bench)
    try:
        await wait_drained(bench.dsn)
    finally:
        survivor.send_signal(signal.SIGTERM)
        await asyncio.to_thread(survivor.wait, 15)
    records = await read_topic(bench, 100)
    assert versions_by_key(records) == {"x": list(range(1, 51)), "y": list(range(1, 51))}
    if fault.startswith("crash_after_ack"):
        assert len(records) > 100, "the acked-but-not-deleted batch went out again"


def leader_gauge(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("parley_relay_leader{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def wait_for(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await asyncio.to_thread(condition):  # type: ignore[arg-type]
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_only_one_leader_and_a_standby_takes_over_within_5s(
    bench: Bench, unused_tcp_port_factory: object
) -> None:
    ports = [unused_tcp_port_factory(), unused_tcp_port_factory()]  # type: ignore[operator]
    first = relay_process(bench, port=ports[0])
    await wait_for(lambda: leader_gauge(ports[0]) == 1.0, 15)
    second = relay_process(bench, port=ports[1])
    try:
        await wait_for(lambda: leader_gauge(ports[1]) == 0.0, 15)
        await bench.append("before", 5)
        await wait_drained(bench.dsn)
        assert leader_gauge(ports[0]) == 1.0 and leader_gauge(ports[1]) == 0.0

        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
        await bench.append("after", 5)
        took = await wait_for(lambda: leader_gauge(ports[1]) == 1.0, 5)
        await wait_drained(bench.dsn, timeout=5 - took)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.to_thread(process.wait, 15)
    records = await read_topic(bench, 10)
    assert versions_by_key(records) == {"before": [1, 2, 3, 4, 5], "after": [1, 2, 3, 4, 5]}
