"""Health checks `make up` waits for: each server answers the way the services use it."""

from __future__ import annotations

import asyncio
import functools
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from services_catalog import kafka_passwords, s3_credentials, service_programs
from settings import Settings, log

T = TypeVar("T")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not ready yet; retried until the deadline
            pass
        time.sleep(0.3)
    sys.exit(f"[parley] {what} did not become healthy in {timeout:.0f}s: see `make logs S=...`")


def retried(what: str, action: Callable[[], T], timeout: float = 120.0) -> T:
    """`action`'s result, retried until it stops raising (like wait_for)."""
    results: list[T] = []

    def attempt() -> bool:
        results.append(action())
        return True

    wait_for(what, attempt, timeout)
    return results[-1]


async def _pg_ok(dsn: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=2)
    try:
        return bool(await conn.fetchval("SELECT 1") == 1)
    finally:
        await conn.close()


def kafka_admin(s: Settings) -> dict[str, Any]:
    """Client options of the `admin` principal (a super user: topics, users, ACLs)."""
    from parley_messaging.access import ADMIN
    from parley_messaging.security import as_principal

    return as_principal(ADMIN, kafka_passwords(s)[ADMIN])


async def _kafka_produces(s: Settings) -> bool:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=s.kafka_bootstrap, acks="all", request_timeout_ms=5000, **kafka_admin(s)
    )
    await producer.start()
    try:
        await producer.send_and_wait("_parley.health", b"ping")
        return True
    finally:
        await producer.stop()


async def _mongo_ok(url: str) -> bool:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=2000
    )
    try:
        await client.admin.command("ping")
        return True
    finally:
        await client.close()


def s3_bucket_ready(s: Settings) -> bool:
    """SeaweedFS's S3 gateway accepts chat-api's credentials and the attachments bucket exists
    (created here when missing: idempotent; chat-api also makes it when it starts)."""
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import ClientError

    access_key, secret_key = s3_credentials(s)
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=s.s3_url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )
    try:
        client.head_bucket(Bucket=s.s3_bucket)
    except ClientError as error:
        if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
            raise
        client.create_bucket(Bucket=s.s3_bucket)
    return True


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
        return bool(response.status == 200)


async def _create_topics(s: Settings) -> list[str]:
    from parley_messaging.topics import Topic, declared_topics, ensure_topics

    topics = [
        *declared_topics(s.partitions),
        Topic("_parley.health", 1, {"retention.ms": "3600000"}),
    ]
    return await ensure_topics(s.kafka_bootstrap, topics, security=kafka_admin(s))


async def _kafka_access(s: Settings) -> dict[str, int]:
    """Every principal's SCRAM credential and ACLs (parley_messaging.access), as admin."""
    from parley_messaging.access import provision

    return await provision(s.kafka_bootstrap, kafka_passwords(s), **kafka_admin(s))


def wait_infrastructure(s: Settings) -> None:
    wait_for("postgres", lambda: asyncio.run(_pg_ok(s.pg_dsn)))
    wait_for("kafka (port)", lambda: port_open(s.host, s.kafka_port))
    # retried: a broker just restarted (a changed configuration) takes a moment to serve
    created = retried("kafka (topics)", lambda: asyncio.run(_create_topics(s)))
    if created:
        log(f"created topics: {', '.join(created)}")
    access = retried("kafka (users, ACLs)", lambda: asyncio.run(_kafka_access(s)))
    if access.get("created") or access.get("deleted"):
        log(f"kafka ACLs: {access['created']} created, {access['deleted']} removed")
    wait_serving(s)


def wait_serving(s: Settings) -> None:
    """Kafka takes a record, FerretDB, the S3 store and nginx answer."""
    wait_for("kafka (produce)", lambda: asyncio.run(_kafka_produces(s)))
    wait_for("ferretdb", lambda: asyncio.run(_mongo_ok(s.mongo_url)))
    wait_for("seaweedfs (S3, bucket)", lambda: s3_bucket_ready(s))
    wait_for("nginx", lambda: http_ok(f"{s.gateway_url}/healthz"))


def wait_services(s: Settings) -> None:
    for svc in service_programs(s):
        if svc.health_url:
            wait_for(svc.program.name, functools.partial(http_ok, svc.health_url))


def wait_healthy(s: Settings) -> None:
    """Every server and service answers as `make up` requires, creating nothing: what the
    fault suites wait for after each restart, before the next fault or their checks (a
    broker that supervisord reports running may still be recovering its logs)."""
    wait_for("postgres", lambda: asyncio.run(_pg_ok(s.pg_dsn)))
    wait_serving(s)
    wait_services(s)
