"""Kafka to the hub: the live feed every replica runs, and the replay a resuming stream runs.

Both read `chat.events` and `notifications.events` with no consumer group (every replica must
see every record for the people connected to it; offsets are the topics' own, so a cursor
written by one replica means the same on any other). The live feed starts at the topics' end
when the process starts; a stream resuming from an older cursor replays (cursor, the hub's
position at attach) with a consumer of its own, then takes the live flow.

A record that is not a Parley event, or that the pushed rules do not cover, only moves the
position. Personal fields are decrypted once per record (not per recipient), and only when a
recipient is connected; an unreachable key owner is retried with jittered backoff (the record
is not skipped: skipping would lose a message), a tampered value is skipped and counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from parley_messaging.envelope import InvalidEnvelope, decode, parse_ce_type
from parley_messaging.fetching import LIVE_FETCH_MAX_WAIT_MS
from parley_messaging.security import kafka_security
from parley_privacy import KeyUnavailable, TamperedValue
from pymongo.errors import PyMongoError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from parley_realtime import metrics
from parley_realtime.cursor import TopicPartition as TP
from parley_realtime.cursor import encode
from parley_realtime.hub import Frame, Hub
from parley_realtime.mappings import RULES, Meta, Rule, rules_by_source
from parley_realtime.members import Members

log = logging.getLogger("parley.realtime.feed")


class Cipher(Protocol):
    def require_sealed(self, event_name: str, data: Mapping[str, Any]) -> None: ...

    async def decrypt(
        self, event_name: str, data: Mapping[str, Any], *, mark: bool = True, fresh: bool = False
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Decoded:
    rule: Rule
    meta: Meta
    data: dict[str, Any]
    recipients: list[str]


class Translator:
    """Records -> (rule, data, recipients); decrypts on demand."""

    def __init__(
        self, cipher: Cipher, rules: Sequence[Rule] = RULES, members: Members | None = None
    ) -> None:
        self.cipher = cipher
        self.rules = rules_by_source(rules)
        self.members = members  # for rules whose events name no recipients

    async def addressed(self, decoded: Decoded) -> Decoded:
        """`decoded` with its recipients: for a rule `to_participants`, the conversation's
        participants now (a replay uses today's, not those of the event's time: reactions
        are not personal data, and a removed participant is never among them)."""
        if not decoded.rule.to_participants or self.members is None:
            return decoded
        try:
            found = await self.members.participants(decoded.meta.subject)
        except PyMongoError as error:
            # a reaction's push is a nicety: dropping one beats stalling every stream's feed
            # (the message page shows the reaction either way)
            metrics.SKIPPED.labels("recipients").inc()
            log.warning("no recipients for %s of %s: %r", decoded.rule.source, decoded.meta, error)
            return decoded
        return dataclasses.replace(decoded, recipients=sorted(found))

    def decode(self, record: ConsumerRecord[Any, Any]) -> Decoded | None:
        try:
            envelope = decode(record.headers, record.value)
            _, name, _ = parse_ce_type(envelope.type)
        except InvalidEnvelope:
            metrics.SKIPPED.labels("envelope").inc()
            return None
        rule = self.rules.get((record.topic, name))
        if rule is None:
            return None
        try:
            data = json.loads(envelope.data)
            recipients = list(dict.fromkeys(str(u) for u in rule.recipients(data)))
        except (ValueError, KeyError, TypeError) as error:
            metrics.SKIPPED.labels("data").inc()
            log.warning("skipping %s at %s/%s: %r", name, record.topic, record.offset, error)
            return None
        meta = Meta(envelope.subject, envelope.time, envelope.aggregate_version)
        return Decoded(rule, meta, data, recipients)

    async def open(self, decoded: Decoded, fresh: bool = False) -> dict[str, Any] | None:
        """The data with personal fields opened (placeholders where the key is gone); None
        for a tampered record. `fresh` (replays, which read old records): keys cached more
        than a second ago are asked for again, so a person forgotten a moment ago is redacted
        even though their key is still in this process's cache."""
        if not decoded.rule.personal:
            return decoded.data
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(KeyUnavailable),
                wait=wait_random_exponential(multiplier=0.1, max=5.0),
                reraise=True,
            ):
                with attempt:
                    # a personal field that arrived unencrypted is tampered, never plaintext
                    self.cipher.require_sealed(decoded.rule.source, decoded.data)
                    return await self.cipher.decrypt(decoded.rule.source, decoded.data, fresh=fresh)
        except TamperedValue:
            metrics.SKIPPED.labels("tampered").inc()
            log.warning("tampered personal field in %s of %s", decoded.rule.source, decoded.meta)
        return None


def _consumer(bootstrap_servers: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=LIVE_FETCH_MAX_WAIT_MS,
        **kafka_security(),
        **options,
    )


async def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    found: list[TopicPartition] = []
    for topic in topics:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise RuntimeError(f"topic {topic} does not exist")
        found.extend(TopicPartition(topic, p) for p in sorted(partitions))
    return found


class LiveFeed:
    """Feeds the hub from the topics' end (at process start) onwards; restarts its consumer
    from the hub's positions after a failure, so a Kafka outage delays pushes, loses none."""

    def __init__(
        self, bootstrap_servers: str, hub: Hub, translator: Translator, members: Members
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.hub = hub
        self.translator = translator
        self.members = members
        self.dispatched = 0

    async def run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("live feed failed (%r); resuming from the hub's positions", error)
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        consumer = _consumer(self.bootstrap_servers, max_partition_fetch_bytes=4 * 1024 * 1024)
        await consumer.start()
        try:
            partitions = await _partitions(consumer, self.hub.topics)
            consumer.assign(partitions)
            if self.hub.started.is_set():
                for tp in partitions:
                    consumer.seek(tp, self.hub.positions.get((tp.topic, tp.partition), 0))
            else:
                ends = await consumer.end_offsets(partitions)
                for tp, end in ends.items():
                    consumer.seek(tp, end)
                self.hub.start_at({(tp.topic, tp.partition): end for tp, end in ends.items()})
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
                for records in batch.values():
                    for record in records:
                        await self._dispatch(record)
        finally:
            await consumer.stop()

    async def _dispatch(self, record: ConsumerRecord[Any, Any]) -> None:
        tp = (record.topic, record.partition)
        decoded = self.translator.decode(record)
        if decoded is None:
            self.hub.advance(tp, record.offset)
            return
        decoded = await self.translator.addressed(decoded)
        members = decoded.rule.members
        if members is not None:
            found = members(decoded.data)
            if found is not None:
                self.members.remember(decoded.meta.subject, found)
        if not self.hub.wants(decoded.recipients):
            self.hub.advance(tp, record.offset)
            return
        data = await self.translator.open(decoded)
        if data is None:
            self.hub.advance(tp, record.offset)
            return
        self.hub.deliver(tp, record.offset, decoded.rule, data, decoded.recipients, decoded.meta)
        self.dispatched += 1


@dataclass(frozen=True)
class ReplayPlan:
    """What a resume needs to read, or why it cannot (then the client gets `reset`)."""

    ranges: dict[TP, tuple[int, int]]
    reset: str | None = None


class Replay:
    """One resuming stream's read of (its cursor, the hub's position at attach)."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        translator: Translator,
        max_records: int,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.translator = translator
        self.max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> Replay:
        self._consumer = _consumer(self.bootstrap_servers)
        await self._consumer.start()
        self._partitions = await _partitions(self._consumer, self.topics)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "use `async with Replay(...)`"
        return self._consumer

    async def check(self, cursor: Mapping[TP, int]) -> str | None:
        """Why this cursor cannot be resumed (None: it can): older than the log keeps, beyond
        what the log holds (another cluster's, or forged), or too far behind to replay."""
        starts = await self.consumer.beginning_offsets(self._partitions)
        ends = await self.consumer.end_offsets(self._partitions)
        behind = 0
        for tp in self._partitions:
            offset = cursor.get((tp.topic, tp.partition), 0)
            if offset < starts[tp]:
                return "expired"
            if offset > ends[tp]:
                return "unknown"
            behind += ends[tp] - offset
        if behind > self.max_records:
            return "too_far_behind"
        return None

    async def frames(
        self, user_id: str, cursor: Mapping[TP, int], until: Mapping[TP, int]
    ) -> AsyncIterator[Frame]:
        """The user's frames of every partition from `cursor` up to `until`, each carrying
        the cursor reached with it."""
        keys = [(tp.topic, tp.partition) for tp in self._partitions]
        position = {key: cursor.get(key, 0) for key in keys}
        todo = {
            tp
            for tp in self._partitions
            if position[(tp.topic, tp.partition)] < until.get((tp.topic, tp.partition), 0)
        }
        if not todo:
            return
        consumer = self.consumer
        consumer.assign(sorted(todo))
        for tp in todo:
            consumer.seek(tp, position[(tp.topic, tp.partition)])
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=1000)
            for tp, records in batch.items():
                key = (tp.topic, tp.partition)
                for record in records:
                    if record.offset >= until[key]:
                        break
                    position[key] = record.offset + 1
                    frame = await self._frame(record, user_id, position)
                    if frame is not None:
                        yield frame
            for tp in list(todo):
                key = (tp.topic, tp.partition)
                # the consumer's position also passes offsets that hold no record
                if position[key] >= until[key] or await consumer.position(tp) >= until[key]:
                    position[key] = max(position[key], until[key])
                    todo.discard(tp)
                    consumer.pause(tp)

    async def _frame(
        self, record: ConsumerRecord[Any, Any], user_id: str, position: Mapping[TP, int]
    ) -> Frame | None:
        decoded = self.translator.decode(record)
        if decoded is None:
            return None
        decoded = await self.translator.addressed(decoded)
        if user_id not in decoded.recipients:
            return None
        data = await self.translator.open(decoded, fresh=True)
        if data is None:
            return None
        view = decoded.rule.view(data, user_id, decoded.meta)
        body = json.dumps(view, separators=(",", ":")).encode()
        metrics.REPLAYED.inc()
        return Frame(
            decoded.rule.event,
            body,
            encode(position, self.topics),
            decoded.meta.time.timestamp(),
        )
