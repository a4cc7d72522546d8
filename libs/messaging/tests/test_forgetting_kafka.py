"""Every replica of a key-caching consumer drops a forgotten person's key at once (issue
19.5): two processes' key caches (two KeyClients, each with its own ForgottenFollower on the
topic, no consumer group) both forget the key within a second or two of the UserForgotten
record, although their cache TTL is ten minutes."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
from parley_messaging.forgetting import ForgottenFollower
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics
from parley_privacy.client import KeyClient, key_body
from parley_privacy.envelope import new_key
from parley_privacy.keys import Key
from parley_testing.projections import produce, record

pytestmark = pytest.mark.integration


def test_records_that_are_not_user_forgotten_evict_nothing() -> None:
    evicted: list[str] = []
    follower = ForgottenFollower("unused:9092", forget=evicted.append, gap=lambda: None)
    _, value, headers = record("users", "u1", 1, "UserForgotten", {"user_id": "u1"})
    assert follower.apply_record(headers, value) == "u1"
    _, value, headers = record("users", "u1", 2, "UserProfileUpdated", {"user_id": "u1"})
    assert follower.apply_record(headers, value) == ""
    assert follower.apply_record([], b"not an event") == ""
    assert evicted == ["u1"]


async def test_two_replicas_both_drop_the_key_within_two_seconds(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"users.events.{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(topic, 3)])
    secret, gone = new_key(), {"u1": False}

    def owner(request: httpx.Request) -> httpx.Response:
        if gone["u1"]:
            return httpx.Response(410)
        return httpx.Response(200, json=key_body(Key("u1", "k1", secret)))

    replicas = [
        KeyClient("http://auth", "t", ttl_s=600, transport=httpx.MockTransport(owner))
        for _ in range(2)
    ]
    followers = [
        ForgottenFollower(
            kafka_bootstrap,
            forget=keys.evict,
            gap=keys.clear,
            topic=topic,
            client_options=kafka_security(),
        )
        for keys in replicas
    ]
    tasks = [asyncio.create_task(f.run()) for f in followers]
    try:
        for f in followers:
            await asyncio.wait_for(f.following.wait(), 30)
        for keys in replicas:  # both cached it (for ten minutes)
            assert await keys.key("u1") is not None
        gone["u1"] = True  # the owner destroyed it; then UserForgotten is published
        started = time.monotonic()
        await produce(
            kafka_bootstrap, topic, [record("users", "u1", 9, "UserForgotten", {"user_id": "u1"})]
        )
        while any(f.forgotten == 0 for f in followers):
            assert time.monotonic() - started < 2.0, "a replica still holds the key"
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        for keys in replicas:  # the next use asks the owner: gone
            assert await keys.key("u1") is None
        print(f"both replicas dropped the key {elapsed * 1000:.0f} ms after the publish")
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for keys in replicas:
            await keys.close()
