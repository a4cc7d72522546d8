"""A batch Kafka does not acknowledge goes again, whole, on a fresh producer after a pause, and
nothing is deleted until it was acknowledged; `stop` cuts the pause short (fakes, no server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from parley_relay import relay
from parley_relay.config import Settings
from parley_relay.faults import Faults
from prometheus_client import REGISTRY

ROWS = [
    {
        "id": n,
        "topic": "t",
        "key": "k",
        "headers": "{}",
        "payload": b"{}",
        "created_at": datetime.now(UTC),
    }
    for n in (1, 2)
]


class Outbox:
    def __init__(self) -> None:
        self.deleted: list[list[int]] = []

    async def fetch(self, _sql: str, _limit: int) -> list[dict[str, Any]]:
        return [] if self.deleted else ROWS

    async def execute(self, _sql: str, ids: list[int]) -> None:
        self.deleted.append(ids)


class Producer:
    """The first `broken` producers made fail every send; the later ones work."""

    made: list[Producer] = []
    broken = 0

    def __init__(self) -> None:
        self.stopped = False
        self.fails = len(Producer.made) < Producer.broken
        Producer.made.append(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, *_: Any, **__: Any) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fails:
            ack.set_exception(KafkaConnectionError("broker away"))
        else:
            ack.set_result(None)
        return ack


def failures(relay_name: str) -> float:
    counted = REGISTRY.get_sample_value(
        "parley_relay_publish_failures_total", {"relay": relay_name}
    )
    return counted or 0.0


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> type[Producer]:
    Producer.made = []
    monkeypatch.setattr(relay, "new_producer", lambda _settings: Producer())
    return Producer


async def test_an_unacknowledged_batch_goes_again_on_a_fresh_producer(
    producers: type[Producer], caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(name="relay-retry-test")
    state = {"kafka": False}
    kafka = relay._Kafka(settings, state)
    outbox = Outbox()
    producers.broken = 2
    assert failures(settings.name) == 0
    published = await relay.publish_next(
        outbox,  # type: ignore[arg-type]
        kafka,
        Faults(),
        asyncio.Event(),
        asyncio.Event(),
    )
    assert published == 2
    assert outbox.deleted == [[1, 2]]  # deleted once, after the acknowledged send
    assert len(producers.made) == 3 and [p.stopped for p in producers.made] == [True, True, False]
    assert failures(settings.name) == 2
    assert state["kafka"] is True
    assert caplog.text.count("Kafka did not acknowledge a batch") == 2


async def test_stop_cuts_the_pause_short(producers: type[Producer]) -> None:
    producers.broken = 1_000
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, stop.set)
    began = loop.time()
    published = await relay.publish_next(
        Outbox(),  # type: ignore[arg-type]
        relay._Kafka(Settings(name="relay-stop-test"), {}),
        Faults(),
        stop,
        asyncio.Event(),
    )
    assert published is None
    assert loop.time() - began < 1.0  # pauses reach 0.1, 0.2, 0.4... s: stopped in the first
