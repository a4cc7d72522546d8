"""The attachments' janitor: two background jobs of chat-api (the kit runs them next to the
routes and stops them at shutdown).

- `sweep`: every `attachment_sweep_every_s`, delete the attachments no appended message refers
  to `attachment_ttl_s` after they were asked for (or last claimed by a send that failed),
  and finish the deletions of deleted messages' attachments (attachments.py).
  Replicas share the rows (SKIP LOCKED), so any number of chat-api replicas may sweep.
- `forgetting`: consume `users.events` in a consumer group of its own (`chat-attachments`) and,
  on `UserForgotten`, delete that person's attachments, objects first. Offsets are committed
  after the deletion (at-least-once; deleting again finds nothing). A record that is not a
  CloudEvent is logged and skipped; a store or S3 error restarts the consumer from the last
  commit (with backoff), so a forgotten person's files are never skipped.

A third job creates the bucket if it is missing (idempotent, retried while S3 is away), so a
new deployment needs no separate step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer
from parley_messaging.envelope import InvalidEnvelope, decode
from parley_messaging.fetching import LIVE_FETCH_MAX_WAIT_MS
from parley_messaging.retrying import doubling, log_retry, until_set
from parley_messaging.security import kafka_security
from parley_messaging.supervise import keep_running
from tenacity import AsyncRetrying, retry_if_exception_type

from parley_chat.attachments import Attachments
from parley_chat.attachments_config import AttachmentSettings
from parley_chat.storage import S3Storage

log = logging.getLogger("parley.chat.janitor")
USERS_TOPIC = "users.events"


async def sweep_once(attachments: Attachments) -> int:
    """Delete every expired attachment, a batch at a time, and those of deleted messages that
    a chat-api which died mid-deletion left; how many went."""
    total = 0
    while (deleted := await attachments.expire()) > 0:
        total += deleted
    if total:
        log.info("deleted %d attachments no message refers to", total)
    finished = await attachments.finish_deletions()
    if finished:
        log.info("deleted %d attachments of deleted messages", finished)
    return total + finished


async def sweep(attachments: Attachments, every_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await sweep_once(attachments)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)


def forgotten_user(headers: Any, value: bytes | None) -> str | None:
    """The person a users.events record forgets, None for any other record (or a poison one,
    logged)."""
    try:
        envelope = decode(headers, value)
        if envelope.event_name != "UserForgotten":
            return None
        user_id = json.loads(envelope.data)["user_id"]
    except (InvalidEnvelope, ValueError, KeyError, TypeError) as error:
        log.warning("skipped a users.events record: %s", error)
        return None
    return str(user_id)


async def consume_forgotten(
    attachments: Attachments,
    bootstrap_servers: str,
    group: str,
    stop: asyncio.Event,
    topic: str = USERS_TOPIC,
) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=LIVE_FETCH_MAX_WAIT_MS,
        **kafka_security(),
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=200)
            for records in batch.values():
                for record in records:
                    user_id = forgotten_user(record.headers, record.value)
                    if user_id is not None and (deleted := await attachments.forget(user_id)):
                        log.info("forgotten person: %d attachments deleted", deleted)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()


async def make_bucket(storage: S3Storage, stop: asyncio.Event) -> None:
    """Create the bucket if it is missing, retried while S3 is away (until shutdown)."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=doubling(0.5, 30.0),
        stop=until_set(stop),
        before_sleep=log_retry(
            log, "attachments bucket not made (%(error)s); again in %(pause).1fs"
        ),
        reraise=True,
    )
    with contextlib.suppress(Exception):  # only after `stop`: given up at shutdown
        async for attempt in retrying:
            with attempt:
                await storage.ensure_bucket()


def jobs(
    attachments: Attachments, storage: S3Storage, s: AttachmentSettings, stop: asyncio.Event
) -> list[Coroutine[Any, Any, None]]:
    """The janitor's background jobs for the kit (`Wiring.jobs`)."""

    async def sweeping() -> None:
        every = s.attachment_sweep_every_s
        await keep_running("attachments sweep", lambda: sweep(attachments, every, stop), stop)

    async def forgetting() -> None:
        servers, group = s.kafka_bootstrap_servers, s.attachment_consumer_group
        await keep_running(
            "attachments forget",
            lambda: consume_forgotten(attachments, servers, group, stop),
            stop,
        )

    return [make_bucket(storage, stop), sweeping(), forgetting()]
