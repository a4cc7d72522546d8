"""Every process that caches data keys hears of every forgotten person (issue 19.5).

A consumer group hands each `UserForgotten` to one member only, so the replica that caches a
person's key may never see it; this follower reads `users.events` in every process with no
consumer group (like the realtime feed and libs/authn's revocation list), from the topic's
end at start, and calls `forget(user_id)` for each `UserForgotten`: the process drops that
person's cached key at once instead of at the end of the cache's TTL.

    follower = ForgottenFollower(bootstrap, forget=keys.evict, gap=keys.clear)
    task = asyncio.create_task(follower.run())

`gap()` is called each time the follower (re)starts reading from the end: a forget published
while it was not reading would otherwise go unheard, so the whole cache is dropped instead
(refilled on demand, one request per person). The cache's short TTL bounds what remains: a
forget published before the follower's first read of it and after a key was cached.

Records that are not Parley CloudEvents or lack `user_id` are skipped; a failing consumer is
restarted with a backoff of 1 s doubling to 30 s. No offsets are committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from parley_messaging.envelope import InvalidEnvelope, decode, parse_ce_type
from parley_messaging.security import kafka_security
from parley_messaging.topics import partitions_of

log = logging.getLogger("parley.messaging.forgetting")

TOPIC = "users.events"
EVENT = "UserForgotten"
MAX_BACKOFF_S = 30.0


class ForgottenFollower:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        forget: Callable[[str], None],
        gap: Callable[[], None],
        topic: str = TOPIC,
        poll_timeout_ms: int = 200,
        retry_backoff_s: float = 1.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.forget = forget
        self.gap = gap
        self.topic = topic
        self.poll_timeout_ms = poll_timeout_ms
        self.retry_backoff_s = retry_backoff_s
        # the process's Kafka principal unless told otherwise (parley_messaging.security)
        self.client_options = dict(kafka_security() if client_options is None else client_options)
        self.following = asyncio.Event()  # set once positioned at the end (tests, readiness)
        self.forgotten = 0  # UserForgotten records applied (metrics, tests)

    def apply_record(self, headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> str:
        """One record of the topic: the user id it forgets, or "" for anything else."""
        try:
            envelope = decode(headers, value)
            _, name, _ = parse_ce_type(envelope.type)
            if name != EVENT:
                return ""
            user_id = json.loads(envelope.data).get("user_id")
        except (InvalidEnvelope, ValueError, AttributeError) as error:
            log.debug("record skipped: %r", error)
            return ""
        if not isinstance(user_id, str) or not user_id:
            return ""
        self.forget(user_id)
        self.forgotten += 1
        log.info("forgotten person's key dropped from this process's cache")
        return user_id

    async def run(self) -> None:
        """Follow until cancelled, restarting the consumer after a failure."""
        failures = 0
        while True:
            try:
                await self._follow()
                failures += 1  # the topic does not exist (yet)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following %s failed; restarting", self.topic)
                failures = 1 if self.following.is_set() else failures + 1
            self.following.clear()
            pause = self.retry_backoff_s * 2 ** max(failures - 1, 0)
            await asyncio.sleep(min(pause, MAX_BACKOFF_S))

    async def _follow(self) -> None:
        partitions = await partitions_of(self.bootstrap_servers, self.topic)
        if not partitions:
            log.warning("topic %s not found; not following forgotten persons yet", self.topic)
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id="parley-key-evictions",
            **self.client_options,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, ends[tp])
            self.gap()  # whatever was published while nobody here was reading
            self.following.set()
            while True:
                batches = await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=500)
                for records in batches.values():
                    for record in records:
                        self.apply_record(record.headers, record.value)
        finally:
            await consumer.stop()
