"""Re-drive parked records: `python -m parley_readmodel.redrive --group G [--limit N]`.

Reads `<G>.dlq` with its own consumer group `<G>.redrive`, up to the end offsets seen at the
start (records parked again during the run wait for the next run), puts each record back
through the projection, and commits the re-drive group's offsets after the writes: a second
run starts after them and applies nothing twice. A record that still fails is parked again (a
new DLQ entry, with a fresh error). Out-of-order application is deliberate: the parked version
was marked in `_progress` when it was parked, and each document records the parked versions it
applied (`_x`), so a re-driven event is applied once although later versions were applied
meanwhile (apply.py).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from parley_messaging.security import kafka_security
from parley_messaging.topics import dlq_topic, partitions_of
from parley_privacy.fields import FieldCipher
from pymongo.asynchronous.database import AsyncDatabase

from parley_readmodel import cli, dlq, metrics
from parley_readmodel.aliases import read_alias
from parley_readmodel.projection import Projection, load_projection
from parley_readmodel.runtime import Options, Writer, prepare, resolve_store

log = logging.getLogger("parley.readmodel.redrive")


def redrive_group(group: str) -> str:
    return f"{group}.redrive"


async def redrive(
    db: AsyncDatabase[dict[str, Any]],
    projection: Projection,
    options: Options,
    limit: int | None = None,
) -> int:
    """Re-apply parked records; returns how many were taken off the DLQ."""
    topic = dlq_topic(projection.group)
    numbers = await partitions_of(options.bootstrap_servers, topic)
    if not numbers:
        return 0
    partitions = [TopicPartition(topic, p) for p in numbers]
    writer = Writer(db, projection, options, await resolve_store(db, options))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=options.bootstrap_servers,
        group_id=redrive_group(projection.group),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=options.max_records,
        **kafka_security(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=options.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        **kafka_security(),
    )
    await consumer.start()
    await producer.start()
    taken = 0
    try:
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        while limit is None or taken < limit:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= end[tp] for tp in partitions):
                break
            batch = await consumer.getmany(timeout_ms=500)
            records = sorted(
                (r for tp, rs in batch.items() for r in rs if r.offset < end[tp]),
                key=lambda r: (r.partition, r.offset),
            )
            if limit is not None:
                records = records[: limit - taken]
            for tp in batch:  # read past the end or past the limit: not ours this run
                kept = [r.offset for r in records if r.partition == tp.partition]
                consumer.seek(tp, (max(kept) + 1) if kept else positions[tp])
            if not records:
                continue
            alias = await read_alias(db, projection.name)
            prepared = await prepare(
                projection, [dlq.original(r) for r in records], options, redrive=True
            )
            await writer.park(producer, alias.targets(), prepared)
            for generation in alias.targets():
                await writer.apply(generation, prepared)
            offsets: dict[TopicPartition, int] = {}
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            await consumer.commit(offsets)
            taken += len(records)
            metrics.REDRIVEN.labels(projection.name).inc(len(records))
    finally:
        await consumer.stop()
        await producer.stop()
    return taken


async def main(argv: list[str] | None = None) -> int:
    p = cli.parser("Re-drive records parked on <group>.dlq through the projection.")
    p.add_argument("--group", required=True, help="the projector's consumer group")
    p.add_argument(
        "--projection",
        help="module:attribute of the Projection (default: entry point named like the group)",
    )
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args(argv)
    projection = load_projection(args.projection or args.group, name=args.group)
    keys = cli.key_client(args)
    options = Options(args.bootstrap, decrypt=FieldCipher(keys).consume if keys else None)
    try:
        async with cli.database(args.mongo_url, args.database) as db:
            count = await redrive(db, projection, options, args.limit)
    finally:
        if keys is not None:
            await keys.close()
    print(f"re-drove {count} record(s) from {dlq_topic(projection.group)}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(asyncio.run(main()))
