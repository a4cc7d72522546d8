"""Metrics show trouble before users notice (issue 7): with the relay stopped the users
service's outbox backlog rises and falls back to zero once the relay runs again; with the
projector stopped its consumer-group lag (measured by the query gateway from outside) rises
and falls back to zero once it runs again. Scraped from the services' /metrics."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import httpx
import pytest
from parley_testing import cluster
from parley_testing.accounts import Account
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.fault  # it stops real processes of the local cluster

BASE = int(os.environ.get("PARLEY_SERVICE_PORT_BASE", "8100"))
USERS_API = f"http://127.0.0.1:{BASE + 1}"
QUERY = f"http://127.0.0.1:{BASE}"


async def scrape(url: str, name: str, match: Callable[[dict[str, str]], bool]) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and match(sample.labels)
    )


async def until(check: Callable[[float], bool], read: Callable[[], object], wait_s: float) -> float:
    deadline = time.monotonic() + wait_s
    while True:
        value = await read()  # type: ignore[misc]
        if check(value):
            return float(value)
        assert time.monotonic() < deadline, f"metric stuck at {value}"
        await asyncio.sleep(0.3)


async def edits(gateway_url: str, admin: Account, count: int) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, headers=admin.headers) as client:
        user = await client.post("/v1/users", json={"name": "Metrics", "email": "m@example.test"})
        assert user.status_code == 201, user.text
        for i in range(count - 1):
            patched = await client.patch(f"/v1/users/{user.json()['id']}", json={"bio": f"{i}"})
            assert patched.status_code == 200, patched.text


CASES = {
    # process paused -> (where the gauge is scraped, gauge, labels that select it, wait after)
    "relay-users": (USERS_API, "parley_outbox_pending_rows", ("database", "users"), 30),
    "projector-users": (QUERY, "parley_consumer_group_lag", ("group", "projector-users"), 60),
}


@pytest.mark.parametrize("process", CASES)
async def test_gauge_rises_while_the_process_is_stopped_and_drains_after(
    process: str, gateway_url: str, admin: Account
) -> None:
    """relay-users: the outbox backlog, counted by users-api; projector-users: its consumer
    group's lag, measured from outside by the query gateway."""
    url, name, (label, value), drain_s = CASES[process]

    def gauge() -> object:
        return scrape(url, name, lambda labels: labels[label] == value)

    await until(lambda v: v == 0, gauge, 30)
    # every replica (`make up REPLICAS=N`): a standby relay or another group member would
    # take over the work, and nothing would pile up
    with cluster.stopped(process):
        await edits(gateway_url, admin, 10)
        assert await until(lambda v: v >= 10, gauge, 15) >= 10
    await until(lambda v: v == 0, gauge, drain_s)
