"""RevocationList against the real Kafka: the window at start, readiness, live revocations."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from parley_authn import CurrentPrincipal, KeySet, RevocationList, Verifier, install_authn
from parley_http.problems import install_problem_handlers
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics
from parley_testing.tokens import Signer, jwks

pytestmark = pytest.mark.integration

TTL_S = 900.0


def revocation(session_id: str, at: float, name: str = "SessionRevoked") -> dict[str, object]:
    data = {"user_id": f"user-{session_id}", "session_id": session_id}
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="/parley/auth",
        type=ce_type("auth", name, 1),
        subject=f"user-{session_id}",
        time=datetime.fromtimestamp(at, UTC),
        data=json.dumps(data).encode(),
        aggregate_version=2,
        schema_version=1,
    )
    return {
        "key": envelope.key,
        "value": envelope.data,
        "headers": kafka_headers(header_map(envelope)),
        "timestamp_ms": int(at * 1000),
    }


async def publish(bootstrap: str, topic: str, records: list[dict[str, object]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", **kafka_security()
    )
    await producer.start()
    try:
        sent = [await producer.send(topic, **record) for record in records]  # type: ignore[arg-type]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def new_topic(bootstrap: str, name: str, partitions: int) -> str:
    await ensure_topics(bootstrap, [Topic(name, partitions)])
    return name


async def eventually(condition: object, timeout_s: float = 10.0) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.005)
    raise AssertionError(f"not within {timeout_s} s")


async def test_start_loads_the_window_only_and_is_ready_once_caught_up(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"authn.{unique_name}", partitions=3)
    now = time.time()
    old = [revocation(f"old-{i}", now - TTL_S - 120) for i in range(5)]
    recent = [revocation(f"recent-{i}", now - 60 + i * 0.01) for i in range(1500)]
    poison = {"key": b"x", "value": b"\x00garbage", "headers": [], "timestamp_ms": int(now * 1000)}
    logout = revocation("logged-out", now - 1, name="UserLoggedOut")
    await publish(kafka_bootstrap, topic, [*old, *recent[:700], poison, *recent[700:], logout])

    revocations = RevocationList(kafka_bootstrap, topic=topic, max_token_ttl_s=TTL_S)
    assert not revocations.ready
    async with revocations:
        assert await revocations.wait_ready(30)
        # the moment it says ready, everything published before the start is known
        assert all(revocations.is_revoked(f"recent-{i}") for i in range(1500))
        assert revocations.is_revoked("logged-out")
        # older than the window: not even read (the seek skipped it), so not revoked
        assert not any(revocations.is_revoked(f"old-{i}") for i in range(5))
        assert revocations.consumed == 1500 + 1 + 1
        assert revocations.skipped == 1  # the poison record, and the list went on past it


async def test_a_live_revocation_is_seen_within_a_bounded_wait(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"authn.{unique_name}", partitions=2)
    async with RevocationList(kafka_bootstrap, topic=topic, max_token_ttl_s=TTL_S) as revocations:
        assert await revocations.wait_ready(30)  # an empty topic: ready at once
        assert not revocations.is_revoked("s-live")

        await publish(kafka_bootstrap, topic, [revocation("s-live", time.time())])
        waited = await eventually(lambda: revocations.is_revoked("s-live"), timeout_s=10)
        assert waited < 10
        assert not revocations.is_revoked("s-other")


async def test_not_ready_while_the_topic_does_not_exist(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"authn.missing.{unique_name}"
    revocations = RevocationList(
        kafka_bootstrap, topic=topic, max_token_ttl_s=TTL_S, retry_backoff_s=0.2
    )
    async with revocations:
        assert not await revocations.wait_ready(2)
        await new_topic(kafka_bootstrap, topic, partitions=1)
        await publish(kafka_bootstrap, topic, [revocation("s-late", time.time())])
        assert await revocations.wait_ready(30)
        await eventually(lambda: revocations.is_revoked("s-late"))


async def test_a_logout_on_kafka_turns_the_token_away_at_the_http_edge(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"authn.{unique_name}", partitions=1)
    signer = Signer()
    app = FastAPI()
    install_problem_handlers(app)
    revocations = RevocationList(kafka_bootstrap, topic=topic, max_token_ttl_s=TTL_S)
    install_authn(app, Verifier(KeySet(jwks=jwks(signer))), revocations)

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"user_id": principal.user_id}

    token = {"Authorization": f"Bearer {signer.token(sid='s-http')}"}
    transport = httpx.ASGITransport(app=app)
    async with revocations, httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert await revocations.wait_ready(30)
        assert (await http.get("/me", headers=token)).status_code == 200

        await publish(kafka_bootstrap, topic, [revocation("s-http", time.time(), "UserLoggedOut")])
        await eventually(lambda: revocations.is_revoked("s-http"))
        response = await http.get("/me", headers=token)
        assert response.status_code == 401
        assert response.json()["detail"] == "token revoked"
