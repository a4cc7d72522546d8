"""Every Kafka topic Parley owns, declared once: the local cluster, tests and deploy jobs create
them from this list (auto topic creation is off on every broker).

    python -m parley_messaging.topics --bootstrap-servers kafka:9092 [--partitions 6]
        [--replication-factor 3]

is what the docker-compose init job and the Kubernetes topics Job run, so every way of running
Parley creates the same topics with the same settings.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parley_messaging.security import kafka_security

CONTEXTS = ("auth", "users", "chat", "notifications")
# the registration saga: its participants (each consumes <context>.commands), its consumer
# group and the topic its participants reply on
SAGA_PARTICIPANTS = ("users", "notifications", "auth")
SAGA_GROUP = "registration-saga"
SAGA_REPLIES = "registration-saga.replies"

# Event topics are the replayable log other teams read: never delete (retention.ms=-1).
FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
# Commands, replies and dead letters are working queues: a week is plenty to re-drive.
ONE_WEEK = {"retention.ms": str(7 * 24 * 3600 * 1000)}


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def events_topic(context: str) -> str:
    return f"{context}.events"


def commands_topic(context: str) -> str:
    return f"{context}.commands"


def dlq_topic(group: str) -> str:
    return f"{group}.dlq"


def declared_topics(partitions: int = 6) -> list[Topic]:
    """Event topics per context, command topics per saga participant, the saga reply topic."""
    topics = [Topic(events_topic(ctx), partitions, dict(FOREVER)) for ctx in CONTEXTS]
    topics += [Topic(commands_topic(ctx), partitions, dict(ONE_WEEK)) for ctx in CONTEXTS]
    topics.append(Topic(SAGA_REPLIES, partitions, dict(ONE_WEEK)))
    # parked records of the saga's consumers: commands no participant could read, replies and
    # triggers the orchestrator could not read
    groups = [f"{ctx}-saga-participant" for ctx in SAGA_PARTICIPANTS] + [SAGA_GROUP]
    topics += [Topic(dlq_topic(group), 1, dict(ONE_WEEK)) for group in groups]
    return topics


async def ensure_topics(
    bootstrap_servers: str,
    topics: list[Topic],
    replication_factor: int = 1,
    security: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. Idempotent (an
    existing topic is left as it is, partitions and configuration included). `security`:
    the client's principal (default: this process's, parley_messaging.security)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    options = kafka_security() if security is None else security
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(t.name, t.partitions, replication_factor, topic_configs=t.config)
                    for t in missing
                ]
            )
        return [t.name for t in missing]
    finally:
        await admin.close()


async def partitions_of(bootstrap_servers: str, topic: str) -> list[int]:
    """The partition numbers of an existing topic (empty if it does not exist)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **kafka_security())
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for p in description.get("partitions", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create Parley's declared Kafka topics.")
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--partitions", type=int, default=6)
    # 1 on a single broker (local cluster, compose); 3 on a production cluster
    parser.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args(argv)
    created = asyncio.run(
        ensure_topics(
            args.bootstrap_servers, declared_topics(args.partitions), args.replication_factor
        )
    )
    print(f"created: {', '.join(created) or 'nothing (all topics exist)'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
