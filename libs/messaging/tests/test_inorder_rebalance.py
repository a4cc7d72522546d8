"""InKeyOrder under rebalancing, over the real Kafka: a second member joins the group while
records stream in and leaves again before the stream ends. Every record's effect happens
exactly once and in key order (the handler counts; nothing makes it idempotent), no two
members handle one key at the same time, and neither member's loop fails and is restarted by
its supervisor. Before the rebalance listener, the first member kept handling (and
committing) the partitions it had lost while their next owner handled them too, and its
commit of a partition no longer assigned killed the loop (a restart per rebalance)."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from parley_messaging.inorder import Handler, InKeyOrder, Record
from parley_messaging.security import kafka_security
from parley_messaging.supervise import keep_running
from parley_messaging.topics import Topic, ensure_topics

pytestmark = pytest.mark.integration

PARTITIONS = 6
KEYS = 30
ROUNDS = 40  # records per key: 1,200 in all, over about 12 s


class Effects:
    """What the handlers did: each key's values in the order applied, who applied them, and
    how often one key was handled by two tasks at once."""

    def __init__(self) -> None:
        self.applied: dict[str, list[int]] = collections.defaultdict(list)
        self.by_member: collections.Counter[str] = collections.Counter()
        self.busy: set[str] = set()
        self.overlaps = 0

    def handler(self, member: str) -> Handler:
        async def handle(record: Record) -> None:
            assert record.value is not None
            key, n = record.value.decode().split(":")
            if key in self.busy:
                self.overlaps += 1
            self.busy.add(key)
            try:
                # one record in 15 is slow (an SMTP server, an HTTP call): it may still
                # run when a rebalance starts, and outlast the hand-over's drain_s
                slow = (int(key[1:]) + int(n)) % 15 == 0
                await asyncio.sleep(
                    random.uniform(0.5, 2.0) if slow else random.uniform(0.002, 0.03)
                )
                self.applied[key].append(int(n))  # after the await: cancelled means not applied
                self.by_member[member] += 1
            finally:
                self.busy.discard(key)

        return handle

    def total(self) -> int:
        return sum(len(values) for values in self.applied.values())


async def produce(bootstrap: str, topic: str, pause_s: float, rounds: list[int]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", **kafka_security()
    )
    await producer.start()
    try:
        for n in range(ROUNDS):
            sent = [
                await producer.send(topic, f"k{k}:{n}".encode(), key=f"k{k}".encode())
                for k in range(KEYS)
            ]
            await asyncio.gather(*sent)
            rounds[0] = n + 1
            await asyncio.sleep(pause_s)
    finally:
        await producer.stop()


class Member:
    """One group member run the way services run theirs: under keep_running, which restarts
    the loop when it fails (counted in `starts`)."""

    def __init__(self, name: str, bootstrap: str, topic: str, group: str, effects: Effects):
        self.name, self.bootstrap, self.topic, self.group = name, bootstrap, topic, group
        self.effects = effects
        self.starts = 0
        self.revocations = 0
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(keep_running(self.name, self.run_once, self.stop))

    async def leave(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=15)

    async def run_once(self) -> None:
        self.starts += 1
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=300,  # notice the group's rebalances within 0.3 s
            **kafka_security(),
        )
        loop = InKeyOrder(consumer, self.effects.handler(self.name), max_in_flight=16, drain_s=3.0)
        loop.subscribe([self.topic])
        await consumer.start()
        try:
            await loop.run(self.stop)
        finally:
            self.revocations += loop.revocations
            await consumer.stop()


async def test_members_joining_and_leaving_mid_stream_apply_every_record_once(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic, group = f"inorder-rb-{unique_name}", f"inorder-rb-{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(topic, PARTITIONS)])
    effects = Effects()
    total = KEYS * ROUNDS
    a = Member("a", kafka_bootstrap, topic, group, effects)
    b = Member("b", kafka_bootstrap, topic, group, effects)

    produced = [0]  # rounds sent

    async def until(what: str, done: Callable[[], bool], timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"{what}: {effects.total()} applied"
            await asyncio.sleep(0.05)

    a.start()
    producing = asyncio.create_task(produce(kafka_bootstrap, topic, 0.3, produced))
    try:
        await until("a started", lambda: produced[0] >= ROUNDS // 4 and effects.total() > 0)
        b.start()  # joins mid-stream: the group takes partitions from a and hands them to b
        await until("b took over", lambda: produced[0] >= ROUNDS * 2 // 3)
        assert effects.by_member["b"] > 0, "b never got a partition: no hand-over was tested"
        await b.leave()  # leaves mid-stream: its partitions go back to a
        assert not producing.done(), "the stream ended before b left"
        await producing
        await until("all applied", lambda: effects.total() >= total)
        await asyncio.sleep(1.0)  # room for a late duplicate to show
    finally:
        producing.cancel()
        for member in (a, b):
            member.stop.set()
        await asyncio.gather(*(m.task for m in (a, b) if m.task is not None))

    expected = list(range(ROUNDS))
    wrong = {key: values for key, values in effects.applied.items() if values != expected}
    assert not wrong, f"not exactly once in order: {sorted(wrong.items())[:3]}"
    assert len(effects.applied) == KEYS
    assert effects.overlaps == 0  # one key never handled by two members at once
    assert (a.starts, b.starts) == (1, 1)  # no member's loop failed and was restarted
    assert a.revocations >= 2  # b's arrival and its departure each took partitions from a

    checker = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, **kafka_security()
    )
    await checker.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await checker.end_offsets(tps)
        committed = {tp: await checker.committed(tp) for tp in tps}
        assert committed == ends  # everything handled was committed, nothing more
    finally:
        await checker.stop()


async def test_work_outlasting_the_hand_over_is_cancelled_and_not_committed(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """A record still running when the group rebalances gets drain_s, is then cancelled and
    its offset not committed: the partition's owner after the rebalance handles it again, from
    that record on, and no member's loop is restarted."""
    topic, group = f"inorder-cx-{unique_name}", f"inorder-cx-{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(topic, 1)])
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, enable_idempotence=True, **kafka_security()
    )
    await producer.start()
    try:
        for n in range(6):  # offset 0 is the stuck one; 1-5 overtake it (other keys)
            await producer.send_and_wait(topic, f"{n}".encode(), key=f"k{n}".encode())
    finally:
        await producer.stop()

    applied: list[int] = []
    cancelled: list[int] = []
    stuck_once = asyncio.Event()

    async def handle(record: Record) -> None:
        assert record.value is not None
        n = int(record.value)
        if n == 0 and not stuck_once.is_set():
            stuck_once.set()
            try:
                await asyncio.Event().wait()  # outlasts any hand-over (an SMTP server hangs)
            except asyncio.CancelledError:
                cancelled.append(n)
                raise
        applied.append(n)

    members: list[tuple[AIOKafkaConsumer, InKeyOrder, asyncio.Event, asyncio.Task[None]]] = []

    async def join() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=300,
            **kafka_security(),
        )
        loop = InKeyOrder(consumer, handle, drain_s=0.5)
        loop.subscribe([topic])
        await consumer.start()
        stop = asyncio.Event()
        members.append((consumer, loop, stop, asyncio.create_task(loop.run(stop))))

    tp = TopicPartition(topic, 0)
    try:
        await join()
        async with asyncio.timeout(20):
            while sorted(applied) != [1, 2, 3, 4, 5]:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # room for the committer: still 0, the stuck record is first
        assert await members[0][0].committed(tp) in (None, 0)
        await join()  # the rebalance: the stuck record is cancelled, its partition handed on
        async with asyncio.timeout(20):
            while 0 not in applied or await members[0][0].committed(tp) != 6:
                await asyncio.sleep(0.05)
        assert cancelled == [0]
        assert members[0][1].revocations >= 1
        assert not any(task.done() for *_, task in members)  # no loop failed
    finally:
        for consumer, _, stop, task in members:
            stop.set()
            await asyncio.wait_for(task, timeout=10)
            await consumer.stop()
    assert applied.count(0) == 1
    # what finished behind the cancelled record was not committed: handled again, at least once
    assert sorted(set(applied)) == [0, 1, 2, 3, 4, 5] and len(applied) == 11
