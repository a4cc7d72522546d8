"""Rebuild into a new generation while events keep flowing, swap, and compare with an
independent live projection of the same topic."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
import sample
from conftest import caught_up, docs, new_topic, options, produce, projector
from parley_readmodel import aliases
from parley_readmodel.rebuild import rebuild
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


async def test_rebuild_while_writes_flow_swaps_without_a_failed_read(
    db: Any, mongo_url: str, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"rm.{unique_name}", partitions=3)
    projection = dataclasses.replace(sample.conversations(f"rb-{unique_name}"), topics=(topic,))
    reference = dataclasses.replace(projection, name=f"rb-ref-{unique_name}")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    ref_db = client[f"rmref_{unique_name}"]
    members = {f"k{i}": [f"a{i}", f"b{i}"] for i in range(6)}
    messages = dict.fromkeys(members, 0)

    # some history before the rebuild starts
    await produce(
        kafka_bootstrap,
        topic,
        [e for c, m in members.items() for e in sample.conversation_events(c, m, 20)],
    )
    messages = dict.fromkeys(members, 20)
    stop_reading = asyncio.Event()
    seen: list[tuple[int, int]] = []  # (generation, total messages) per read
    failures: list[BaseException] = []

    async def writer() -> None:
        for _ in range(25):
            batch = []
            for c, m in members.items():
                batch += sample.conversation_events(c, m, 3, start_version=messages[c] + 2)
                messages[c] += 3
            await produce(kafka_bootstrap, topic, batch)
            await asyncio.sleep(0.1)

    async def reader() -> None:
        while not stop_reading.is_set():
            try:
                generation = await aliases.active_generation(db, projection.name, ttl_s=0.5)
                coll = await aliases.collection(db, projection.name, "conversations", ttl_s=0.5)
                total = sum(d.get("messages", 0) for d in await coll.find({}).to_list(None))
                seen.append((generation, total))
            except BaseException as error:  # any failed read fails the test
                failures.append(error)
            await asyncio.sleep(0.02)

    try:
        async with (
            projector(db, projection, options(kafka_bootstrap)),
            projector(ref_db, reference, options(kafka_bootstrap)),
        ):
            await caught_up(kafka_bootstrap, projection.group, projection.topics)
            reading = asyncio.create_task(reader())
            writing = asyncio.create_task(writer())
            await asyncio.sleep(0.3)
            new = await rebuild(
                db,
                projection,
                options(kafka_bootstrap, max_records=100),
                join_timeout_s=30,
                drop_after_s=1.5,
            )
            assert writing.done() is False or True
            await writing
            await caught_up(kafka_bootstrap, projection.group, projection.topics)
            await caught_up(kafka_bootstrap, reference.group, reference.topics)
            await asyncio.sleep(1.0)
            stop_reading.set()
            await reading
        assert new == 2
        assert not failures, failures
        gens = [g for g, _ in seen]
        assert 1 in gens and 2 in gens and gens == sorted(gens)
        totals = [t for _, t in seen]
        assert totals == sorted(totals), "a read saw fewer messages than an earlier one"
        assert totals[0] > 0

        live = {n: await docs(db, projection, n) for n in projection.collections}
        ref = {n: await docs(ref_db, reference, n) for n in projection.collections}
        assert live == ref
        assert {k: d["messages"] for k, d in live["conversations"].items()} == messages
        names = await db.list_collection_names()
        assert "conversations__g1" not in names and "conversations__g2" in names
    finally:
        await client.drop_database(ref_db.name)
        await client.close()
