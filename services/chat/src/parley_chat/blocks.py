"""Who blocks whom, as chat needs it: the `blocks` table of the chat database, fed from
users.events (`UserBlocked` / `UserUnblocked`, on the blocker's stream) by a consumer inside
chat-api (group `chat-blocks`, like the users service's registrations consumer).

The users context owns block lists (docs/decisions.md, "Blocking"); chat only learns of them
through events, never by calling users-api, so a block takes effect here a moment after the
users command returned (relay, Kafka, this consumer: typically well under a second).

Idempotent apply: a row keeps the blocker's users stream version of the last event applied,
and an event with an older or equal version changes nothing. So a redelivered or replayed
`UserBlocked` after the `UserUnblocked` that followed it cannot bring the block back, and
block/unblock pairs converge whatever the redeliveries. One blocker's events share a
partition (key = blocker id), so they arrive in order anyway; the version is for replays.

At-least-once: each partition's offset is committed up to the records applied, and at a
rebalance the records in flight finish before a partition is handed over
(parley_messaging.inorder, like the other followers). A record that cannot be decoded is
logged and skipped (it never stops the partition); a store or Kafka error restarts the
consumer from the last commit, with backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from parley_messaging.envelope import InvalidEnvelope, decode
from parley_messaging.fetching import LIVE_FETCH_MAX_WAIT_MS
from parley_messaging.inorder import by_key, consume_in_key_order
from parley_messaging.security import kafka_security
from parley_messaging.supervise import keep_running

log = logging.getLogger("parley.chat.blocks")
USERS_TOPIC = "users.events"
GROUP = "chat-blocks"
APPLIED = {"UserBlocked": True, "UserUnblocked": False}  # event name -> the block is active


class BlockList:
    """The blocks chat knows of (the `blocks` table, migrations/…_chat_blocks.sql)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def blockers_of(self, user_id: str) -> frozenset[str]:
        """The people who block `user_id` (one indexed query; at most 1,000 rows per blocker
        are possible, and a person blocked by many is rare)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT blocker FROM blocks WHERE blocked = $1 AND active", user_id
            )
        return frozenset(str(row["blocker"]) for row in rows)

    async def apply(self, blocker: str, blocked: str, active: bool, version: int) -> None:
        """Record the block (or its end) as of the blocker's stream `version`; an event not
        newer than the row's is a redelivery or a replay: a no-op."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO blocks (blocker, blocked, active, version) VALUES ($1, $2, $3, $4)
                ON CONFLICT (blocker, blocked) DO UPDATE
                   SET active = EXCLUDED.active, version = EXCLUDED.version,
                       updated_at = clock_timestamp()
                 WHERE blocks.version < EXCLUDED.version
                """,
                blocker,
                blocked,
                active,
                version,
            )


async def apply_record(
    blocks: BlockList,
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
    value: bytes | None,
    key: bytes | None,
) -> None:
    """Apply one users.events record: blocks only; every other event is ignored."""
    try:
        envelope = decode(headers, value)
        active = APPLIED.get(envelope.event_name)
        if active is None:
            return
        data = json.loads(envelope.data)
        blocker, blocked = str(data["user_id"]), str(data["blocked_user_id"])
        version = envelope.aggregate_version
        if not version:
            raise ValueError("no ce_aggregateversion")
    except (InvalidEnvelope, ValueError, KeyError, TypeError) as error:
        log.warning("skipped an undecodable users.events record (key %r): %s", key, error)
        return
    await blocks.apply(blocker, blocked, active, version)


async def consume(
    blocks: BlockList,
    bootstrap_servers: str,
    stop: asyncio.Event,
    topic: str = USERS_TOPIC,
    group: str = GROUP,
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a new group learns every block made before it
        fetch_max_wait_ms=LIVE_FETCH_MAX_WAIT_MS,
        **kafka_security(),
    )

    async def apply_one(record: ConsumerRecord[bytes, bytes]) -> None:
        await apply_record(blocks, record.headers, record.value, record.key)

    await consumer.start()
    try:
        # one blocker's events in order (key = the blocker), different blockers at once: no
        # two tasks touch the same row
        await consume_in_key_order(consumer, [topic], apply_one, stop, order=by_key)
    finally:
        await consumer.stop()


async def run_forever(
    blocks: BlockList,
    bootstrap_servers: str,
    stop: asyncio.Event,
    topic: str = USERS_TOPIC,
    group: str = GROUP,
) -> None:
    """Keep consuming across Kafka or store outages (supervised by the service's lifespan)."""
    await keep_running(
        "blocks consumer", lambda: consume(blocks, bootstrap_servers, stop, topic, group), stop
    )
