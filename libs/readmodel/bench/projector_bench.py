"""Projector throughput into the Mongo-wire store of the local cluster, beside raw PyMongo.

    uv run python libs/readmodel/bench/projector_bench.py [--events 50000]

1. Produce N chat events (conversations of 3 members; MessagePosted touches the conversation
   and the two other members' unread sub-documents) to a fresh 6-partition topic.
2. Run the projector (batches of up to --batch records) from offset 0 into a fresh database;
   events/s = N / (time until the group's committed offsets reach the end), consumer-group
   join included.
3. Raw: the same documents written by PyMongo async `bulk_write` alone (no Kafka, no decoding,
   no version reads, no progress): the very updates the projector sends (handler writes of
   the same batches, coalesced the same way), in bulks of the same size. A naive variant, one
   update per handler write (no coalescing), runs on a slice for context.

Prints JSON: projector.events_per_s, projector.raw_bulk_write.events_per_s,
projector.vs_raw_bulk_write.ratio (+ context keys).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import sample
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from parley_messaging.envelope import decode
from parley_messaging.topics import Topic, ensure_topics
from parley_readmodel.aliases import physical
from parley_readmodel.apply import Change, plan, to_ops
from parley_readmodel.projection import writes_for
from parley_readmodel.runtime import Options, run
from pymongo import AsyncMongoClient, UpdateOne

KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGO = os.environ.get("MONGO_URL", "mongodb://127.0.0.1:27017/")


def workload(events: int, conversations: int) -> list[Any]:
    per = events // conversations
    streams = [
        sample.conversation_events(f"c{i}", [f"u{i}", f"u{i + 1}", f"u{i + 2}"], per - 1)
        for i in range(conversations)
    ]
    out = []
    for i in range(per):  # interleaved, as live traffic would be
        out += [s[i] for s in streams]
    return out


async def produce(topic: str, records: list[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=20)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def caught_up(group: str, topic: str, partitions: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        end = await consumer.end_offsets(tps)
        while True:  # polling Kafka: there is no event to wait on
            if all([(await consumer.committed(tp) or 0) >= end[tp] for tp in tps]):
                return
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()


async def raw(db: Any, batches: list[list[Any]], coalesce: bool, chunk: int) -> float:
    """Seconds spent in bulk_write for the handler writes of these batches."""
    projection = sample.conversations("raw")
    spent = 0.0
    for records in batches:
        changes = []
        for _key, value, headers in records:
            envelope = decode(headers, value)
            data = json.loads(envelope.data)
            for w in writes_for(projection, envelope, data):
                changes.append(
                    Change(
                        w.collection,
                        w.doc_id,
                        w.update,
                        envelope.subject,
                        envelope.aggregate_version or 0,
                    )
                )
        if coalesce:
            ops = to_ops(plan(changes, {}, set()), guard=False)
        else:
            ops = {}
            for c in changes:
                ops.setdefault(c.collection, []).append(
                    UpdateOne({"_id": c.doc_id}, c.update, upsert=True)
                )
        started = time.perf_counter()
        for logical, updates in ops.items():
            for i in range(0, len(updates), chunk):
                await db[physical(logical, 1)].bulk_write(updates[i : i + chunk], ordered=True)
        spent += time.perf_counter() - started
    return spent


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--conversations", type=int, default=100)
    p.add_argument("--batch", type=int, default=5_000)
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--naive-events", type=int, default=2_000)
    args = p.parse_args()
    run_id = uuid.uuid4().hex[:8]
    topic, partitions = f"bench.readmodel.{run_id}", 6
    await ensure_topics(KAFKA, [Topic(topic, partitions)])
    records = workload(args.events, args.conversations)
    await produce(topic, records)

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO, socketTimeoutMS=120_000)
    dbs = [client[f"bench_rm_{run_id}_{k}"] for k in ("proj", "raw", "naive")]
    try:
        projection = sample.conversations(f"bench-{run_id}")
        projection = type(projection)(
            projection.name, (topic,), projection.collections, projection.handlers, True
        )
        options = Options(KAFKA, max_records=args.batch, chunk=args.chunk)
        started = time.perf_counter()
        task = asyncio.create_task(run(dbs[0], projection, options))
        await caught_up(projection.group, topic, partitions)
        projector_s = time.perf_counter() - started
        options.stop.set()
        await task
        n = len(records)
        convs = await dbs[0][physical("conversations", 1)].find({}).to_list(None)
        assert sum(d["messages"] for d in convs) == n - args.conversations, "projector lost events"

        batches = [records[i : i + args.batch] for i in range(0, n, args.batch)]
        raw_s = await raw(dbs[1], batches, coalesce=True, chunk=args.chunk)
        naive = records[: args.naive_events]
        naive_s = await raw(dbs[2], [naive], coalesce=False, chunk=args.chunk)
        result = {
            "projector.events": n,
            "projector.seconds": round(projector_s, 2),
            "projector.events_per_s": round(n / projector_s),
            "projector.raw_bulk_write.events_per_s": round(n / raw_s),
            "projector.vs_raw_bulk_write.ratio": round((n / projector_s) / (n / raw_s), 3),
            "projector.raw_per_event_bulk_write.events_per_s": round(len(naive) / naive_s),
            "projector.batch": args.batch,
            "projector.conversations": args.conversations,
        }
        print(json.dumps(result, indent=2))
    finally:
        for db in dbs:
            await client.drop_database(db.name)
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
