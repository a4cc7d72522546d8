"""Fault injection under load (issue 9, users pipeline): while a load generator keeps editing
profiles through the gateway, SIGKILL each kind of process in turn (`make kill`), let the
process manager restart it, and then check the invariants:

- every accepted command (a 2xx answer) has its event in PostgreSQL and on `users.events`;
- the live read model equals a from-scratch projection of the topic (nothing lost, nothing
  applied twice);
- nothing was parked on the projector's dead-letter topic.

Each fault, the commands accepted during it and the invariants checked are written to
`.local/reports/faults-users.json` (and printed). Bounded: a few seconds per fault; `make test`
runs one round, `make faults` three.

On a cluster with replicas (`make up REPLICAS=2`, issue 22) each fault kills one replica of
its kind while the others keep serving (round k takes replica k). On any cluster, clients
must meet nothing but successes and 503s (nginx's answer for a process that is down or died
holding the request, a service's for a store that is; they retry): any other answer or a
transport error during a fault breaks an invariant.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from parley_messaging.security import kafka_security
from parley_messaging.topics import partitions_of
from parley_projector_users.views import users_projection
from parley_readmodel import aliases
from parley_testing import cluster
from parley_testing.accounts import Account
from parley_testing.plugin import dsn_for_database
from parley_testing.privacy import cluster_cipher
from parley_testing.projections import project
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.fault

# every kind of process the users pipeline crosses; `make faults` repeats the round
KINDS_KILLED = (
    "relay-users",
    "projector-users",
    "users-api",
    "query-gateway",
    "kafka",
    "ferretdb",
    "postgres",
)
FAULTS = KINDS_KILLED * int(os.environ.get("PARLEY_FAULT_ROUNDS", "1"))
USERS = 12
LOAD_PER_S = 40
AFTER_RESTART_S = 3.0
REPORT = Path(os.environ.get("PARLEY_STATE_DIR", ".local")) / "reports" / "faults-users.json"


@dataclass
class Load:
    accepted: set[tuple[str, int]] = field(default_factory=set)  # (user id, version)
    refused: int = 0
    # answers other than success or a 503 (cluster.unexpected_answer), by status or exception:
    # there must be none, whatever was killed
    unexpected: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, outcome: httpx.Response | httpx.HTTPError) -> None:
        if (unexpected := cluster.unexpected_answer(outcome)) is not None:
            self.unexpected[unexpected] += 1


async def generate(client: httpx.AsyncClient, users: list[str], load: Load) -> None:
    """Round-robin profile edits at about LOAD_PER_S; errors are expected during faults."""
    i = 0
    while not load.stop.is_set():
        user_id = users[i % len(users)]
        i += 1
        try:
            response = await client.patch(f"/v1/users/{user_id}", json={"bio": f"edit {i}"})
            if response.status_code == 200:
                load.accepted.add((user_id, int(response.json()["version"])))
            else:
                load.refused += 1
                load.note(response)
        except httpx.HTTPError as error:
            load.refused += 1
            load.note(error)
        await asyncio.sleep(1 / LOAD_PER_S)


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    parts = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
    if not parts:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_security())
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(parts))
    finally:
        await consumer.stop()


async def on_topic(
    bootstrap: str, start: dict[TopicPartition, int], wanted: set[str], expect: int
) -> set[tuple[str, int]]:
    """(key, aggregate version) of the records after `start` whose key is wanted."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_security()
    )
    await consumer.start()
    found: set[tuple[str, int]] = set()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + 90
        while len(found) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for record in (r for rs in batch.values() for r in rs):
                key = (record.key or b"").decode()
                if key in wanted:
                    version = dict(record.headers)["ce_aggregateversion"].decode()
                    found.add((key, int(version)))
    finally:
        await consumer.stop()
    return found


async def stored_versions(postgres_dsn: str, users: list[str]) -> set[tuple[str, int]]:
    conn = await asyncpg.connect(dsn_for_database(postgres_dsn, "users"))
    try:
        rows = await conn.fetch(
            "SELECT stream_id, version FROM events WHERE stream_id = ANY($1::text[])", users
        )
    finally:
        await conn.close()
    return {(r["stream_id"], int(r["version"])) for r in rows}


async def rebuilt(bootstrap: str, mongo_url: str, users: list[str]) -> dict[str, Any]:
    """The users documents of a from-scratch projection of users.events (own group, own db)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    name = f"faults-rebuild-{uuid.uuid4().hex[:8]}"
    db = client[name.replace("-", "_")]
    cipher = cluster_cipher()  # personal fields are encrypted: decrypt as the live projector
    try:
        await project(
            db,
            users_projection(name),
            bootstrap,
            timeout_s=120,
            max_records=2000,
            decrypt=cipher.consume,
        )
        collection = await aliases.collection(db, name, "users")
        return {d["_id"]: d async for d in collection.find({"_id": {"$in": users}})}
    finally:
        await cipher.keys.close()
        await client.drop_database(db.name)
        await client.close()


async def live(mongo_url: str, users: list[str], versions: dict[str, int]) -> dict[str, Any]:
    """The live read model's documents once they reached the stored versions (bounded)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        db = client["parley"]
        deadline = time.monotonic() + 90
        while True:
            collection = await aliases.collection(db, "projector-users", "users", ttl_s=0)
            docs = {d["_id"]: d async for d in collection.find({"_id": {"$in": users}})}
            behind = [u for u in users if docs.get(u, {}).get("_v", {}).get(u, 0) < versions[u]]
            if not behind:
                return docs
            assert time.monotonic() < deadline, f"the live projector never caught up: {behind}"
            await asyncio.sleep(0.5)
    finally:
        await client.close()


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k in ("name", "email", "bio", "avatar_url", "_v")}


async def test_every_process_killed_under_load_loses_and_doubles_nothing(
    gateway_url: str, kafka_bootstrap: str, mongo_url: str, postgres_dsn: str, admin: Account
) -> None:
    topic_start = await end_offsets(kafka_bootstrap, "users.events")
    dlq_start = await end_offsets(kafka_bootstrap, "projector-users.dlq")
    report: list[dict[str, Any]] = []
    load = Load()
    transport = httpx.AsyncHTTPTransport(retries=0)
    async with httpx.AsyncClient(
        base_url=gateway_url, timeout=5, headers=admin.headers, transport=transport
    ) as client:
        users = []
        for i in range(USERS):
            created = await client.post(
                "/v1/users", json={"name": f"Fault {i}", "email": f"f{i}@example.test"}
            )
            assert created.status_code == 201, created.text
            users.append(created.json()["id"])
            load.accepted.add((users[-1], 1))
        generator = asyncio.create_task(generate(client, users, load))
        try:
            for index, kind in enumerate(FAULTS):
                # with `make up REPLICAS=N`: one replica of the kind dies, the others serve
                fault_round = index // len(KINDS_KILLED)
                name, replicas = await asyncio.to_thread(
                    cluster.replica_for_round, kind, fault_round
                )
                before = (len(load.accepted), load.unexpected.total())
                started = time.monotonic()
                old = await asyncio.to_thread(cluster.kill, name)
                new = await asyncio.to_thread(cluster.wait_restarted, name, old, 90.0)
                # and serving again: a restarted broker recovers its logs for a while
                await asyncio.to_thread(cluster.wait_healthy)
                await asyncio.sleep(AFTER_RESTART_S)
                report.append(
                    {
                        "fault": f"SIGKILL {name}",
                        "replicas_of_its_kind": replicas,
                        "pids": [old, new],
                        "seconds": round(time.monotonic() - started, 1),
                        "commands_accepted_during": len(load.accepted) - before[0],
                        "unexpected_answers_during": load.unexpected.total() - before[1],
                    }
                )
        finally:
            load.stop.set()
            await generator

    accepted = load.accepted
    stored = await stored_versions(postgres_dsn, users)
    missing_in_pg = accepted - stored
    published = await on_topic(kafka_bootstrap, topic_start, set(users), len(stored))
    missing_on_kafka = stored - published
    latest = {u: max(v for s, v in stored if s == u) for u in users}
    live_docs = await live(mongo_url, users, latest)
    rebuilt_docs = await rebuilt(kafka_bootstrap, mongo_url, users)
    differences = [
        u for u in users if comparable(live_docs[u]) != comparable(rebuilt_docs.get(u, {}))
    ]
    dlq_end = await end_offsets(kafka_bootstrap, "projector-users.dlq")
    parked = sum(dlq_end.get(tp, 0) - dlq_start.get(tp, 0) for tp in dlq_end)

    summary = {
        "faults": report,
        "commands_accepted": len(accepted),
        "commands_refused_or_failed": load.refused,
        "answers_other_than_success_or_503": dict(load.unexpected),
        "invariants": {
            "accepted commands missing in PostgreSQL": len(missing_in_pg),
            "stored events missing on users.events": len(missing_on_kafka),
            "read-model documents differing from a from-scratch rebuild": len(differences),
            "records parked on projector-users.dlq": parked,
            # whatever died, a client meets successes and 503s only (nginx answers 503 for a
            # process that is down or died mid-request, a service for a store that is; clients
            # retry them), never a 500, a raw 502 or a timeout
            "answers other than success or 503": load.unexpected.total(),
        },
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    assert not missing_in_pg, sorted(missing_in_pg)[:10]
    assert not missing_on_kafka, sorted(missing_on_kafka)[:10]
    assert not differences, {u: (live_docs[u], rebuilt_docs.get(u)) for u in differences[:3]}
    assert parked == 0
    assert summary["invariants"]["answers other than success or 503"] == 0, report
    assert all(item["commands_accepted_during"] > 0 for item in report), report
