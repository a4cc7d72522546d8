"""Consumer-group lag seen from outside the projector (what a lag exporter such as Burrow
does): end offset minus the group's committed offset, per partition. A projector reports its
own lag too (metrics.CONSUMER_LAG), but only while it runs; this one keeps rising while the
projector is stopped or stuck, which is when it matters. The query gateway exports it for
the projections it serves (their freshness is its users' concern), measured at scrape time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from parley_messaging.security import kafka_security

from parley_readmodel import metrics


class LagMonitor:
    def __init__(self, bootstrap_servers: str, groups: Mapping[str, Sequence[str]]) -> None:
        """`groups`: consumer group -> the topics it consumes."""
        self.bootstrap_servers = bootstrap_servers
        self.groups = groups
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, **kafka_security()
            )
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers, **kafka_security()
            )
            await admin.start()
            try:
                await consumer.start()
            except BaseException:
                await admin.close()
                raise
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    async def lag(self, group: str) -> dict[TopicPartition, int]:
        admin, consumer = await self._clients()
        parts: list[TopicPartition] = []
        for topic in self.groups[group]:
            for description in await admin.describe_topics([topic]):
                parts += [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
        committed: dict[TopicPartition, Any] = await admin.list_consumer_group_offsets(group)
        ends = await consumer.end_offsets(parts)
        lag = {}
        for tp in parts:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else 0
            lag[tp] = max(0, ends[tp] - position)
        return lag

    async def refresh(self) -> None:
        """Set `parley_consumer_group_lag` for every group (a /metrics refresher)."""
        try:
            for group in self.groups:
                for tp, behind in (await self.lag(group)).items():
                    metrics.GROUP_LAG.labels(group, tp.topic, str(tp.partition)).set(behind)
        except BaseException:
            await self.close()  # start again with fresh clients on the next scrape
            raise

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()
