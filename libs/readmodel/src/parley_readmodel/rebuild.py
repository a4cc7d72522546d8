"""Rebuild a projection from offset 0 into a new generation while the live one keeps serving,
then swap: `python -m parley_readmodel.rebuild --projection NAME`.

1. Allocate generation N+1 and set `pending: N+1` on the alias (readers still use N).
2. Read every partition of the projection's topics from offset 0 (no consumer group: a
   crashed rebuild simply starts again into a fresh generation) and apply into N+1 with the
   same idempotent code as the live projector, until the positions reach the end offsets
   read at that moment (writes keep flowing; the check repeats until they are reached).
3. Stop writing, and publish `complete[N+1] = {partition: offset reached}`.
4. The live projector, reading the alias before each batch, now writes N and N+1 (dual
   writes). Per partition it first "joins": if its position is past `complete`, it seeks (and
   commits) back to `complete` — a replay that is a no-op for N and fills the gap in N+1 —
   and records the join in `_generations`. The rebuild has stopped writing N+1 before anyone
   joins, so each document keeps one writer (FerretDB updates are unlocked read-modify-
   writes). The rebuild waits for the joins of every partition (bounded: with no live
   projector running nobody joins, and the join rule keeps a later one correct anyway).
5. Swap: `active: N+1` in one single-document update. Readers switch within their alias cache
   TTL; generation N stays readable (and only stops moving) until it is dropped after
   `--drop-after` seconds, so no read ever fails or finds a missing collection.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from parley_messaging.security import kafka_security
from parley_messaging.topics import partitions_of
from parley_privacy.fields import FieldCipher
from pymongo.asynchronous.database import AsyncDatabase

from parley_readmodel import cli
from parley_readmodel.aliases import (
    ALIASES,
    ensure_indexes,
    joined,
    physical,
    read_alias,
    tp_key,
)
from parley_readmodel.progress import PROGRESS
from parley_readmodel.projection import Projection, load_projection
from parley_readmodel.runtime import Options, Writer, prepare, resolve_store

log = logging.getLogger("parley.readmodel.rebuild")
DB = AsyncDatabase[dict[str, Any]]


async def _fill(writer: Writer, generation: int) -> dict[str, int]:
    projection, options = writer.projection, writer.options
    partitions = [
        TopicPartition(topic, p)
        for topic in projection.topics
        for p in await partitions_of(options.bootstrap_servers, topic)
    ]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=options.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_poll_records=options.max_records,
        **kafka_security(),
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while True:
            end = await consumer.end_offsets(partitions)
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= end[tp] for tp in partitions):
                return {tp_key(tp.topic, tp.partition): positions[tp] for tp in partitions}
            batch = await consumer.getmany(timeout_ms=options.poll_ms)
            records = [r for rs in batch.values() for r in rs]
            if not records:
                continue
            prepared = await prepare(projection, records, options)
            await writer.park(None, [generation], prepared)
            await writer.apply(generation, prepared)
    finally:
        await consumer.stop()


async def rebuild(
    db: DB,
    projection: Projection,
    options: Options,
    join_timeout_s: float = 30.0,
    drop_after_s: float = 10.0,
) -> int:
    """Build a new generation and swap it in; returns its number."""
    store = await resolve_store(db, options)
    alias = await read_alias(db, projection.name)
    doc = await db[ALIASES].find_one({"_id": projection.name})
    assert doc is not None
    new = int(doc.get("latest", alias.active)) + 1
    old = alias.active
    await db[ALIASES].update_one(
        {"_id": projection.name}, {"$set": {"pending": new, "latest": new}}
    )
    log.info("%s: building generation %d beside %d", projection.name, new, old)
    if store.indexes:
        await ensure_indexes(db, new, projection.indexes)
    complete = await _fill(Writer(db, projection, options, store), new)
    await db[ALIASES].update_one({"_id": projection.name}, {"$set": {f"complete.{new}": complete}})
    deadline = time.monotonic() + join_timeout_s
    while set(complete) - await joined(db, projection.name, new):
        if time.monotonic() > deadline:
            log.warning("%s: not every partition joined; swapping anyway", projection.name)
            break
        await asyncio.sleep(0.1)
    await db[ALIASES].update_one(
        {"_id": projection.name}, {"$set": {"active": new, "pending": None, "previous": old}}
    )
    log.info(
        "%s: generation %d active; dropping %d in %.0fs", projection.name, new, old, drop_after_s
    )
    if drop_after_s >= 0:
        await asyncio.sleep(drop_after_s)
        for logical in projection.collections:
            await db.drop_collection(physical(logical, old))
        await db[PROGRESS].delete_many({"projection": projection.name, "generation": old})
    return new


async def main(argv: list[str] | None = None) -> int:
    p = cli.parser("Rebuild a projection from offset 0 into a new generation and swap it in.")
    p.add_argument("--projection", required=True, help="entry point name or module:attribute")
    p.add_argument("--name", help="projection (group) name, if not the declared one")
    p.add_argument("--join-timeout", type=float, default=30.0)
    p.add_argument(
        "--drop-after", type=float, default=10.0, help="seconds; negative keeps the old one"
    )
    args = p.parse_args(argv)
    projection = load_projection(args.projection, name=args.name)
    keys = cli.key_client(args)
    options = Options(args.bootstrap, decrypt=FieldCipher(keys).consume if keys else None)
    try:
        async with cli.database(args.mongo_url, args.database) as db:
            generation = await rebuild(db, projection, options, args.join_timeout, args.drop_after)
    finally:
        if keys is not None:
            await keys.close()
    print(f"{projection.name}: generation {generation} is active")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(asyncio.run(main()))
