"""The projector runtime against the real Kafka and the Mongo-wire store of the local cluster."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest
import sample
from conftest import (
    caught_up,
    docs,
    dump,
    new_topic,
    options,
    produce,
    projector,
    read_topic,
    reset_offsets,
)
from parley_readmodel.progress import (
    PROGRESS,
    context_of,
    progress_id,
    stream_key,
    wait_for_version,
)
from parley_readmodel.redrive import main as redrive_main

pytestmark = pytest.mark.integration

MEMBERS = {f"c{i}": [f"u{i}", f"u{i + 1}", f"u{i + 2}"] for i in range(4)}
MESSAGES = {"c0": 30, "c1": 7, "c2": 12, "c3": 1}


def workload() -> list[Any]:
    per_conv = [sample.conversation_events(c, MEMBERS[c], MESSAGES[c]) for c in MEMBERS]
    out = []
    for i in range(max(len(evts) for evts in per_conv)):  # interleave the conversations
        out += [evts[i] for evts in per_conv if i < len(evts)]
    return out


def check_expected(convs: dict[str, Any], unread: dict[str, Any]) -> None:
    want = sample.expected(MEMBERS, MESSAGES)
    assert {k: d.get("messages", 0) for k, d in convs.items()} == want["conversations"]
    assert {k: d.get("count", 0) for k, d in unread.items()} == want["unread"]
    assert {k: d["_v"] for k, d in convs.items()} == {c: {c: MESSAGES[c] + 1} for c in MEMBERS}


async def test_replaying_from_offset_zero_twice_changes_nothing(
    db: Any, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"rm.{unique_name}")
    projection = dataclasses.replace(sample.conversations(f"replay-{unique_name}"), topics=(topic,))
    await produce(kafka_bootstrap, topic, workload())
    async with projector(db, projection, options(kafka_bootstrap)):
        await caught_up(kafka_bootstrap, projection.group, projection.topics)
    first = await dump(db, projection)
    check_expected(
        await docs(db, projection, "conversations"), await docs(db, projection, "unread")
    )

    for _ in range(2):  # the whole topic again over the populated model, small batches too
        await reset_offsets(kafka_bootstrap, projection.group, projection.topics)
        async with projector(db, projection, options(kafka_bootstrap, max_records=7)):
            await caught_up(kafka_bootstrap, projection.group, projection.topics)
        assert await dump(db, projection) == first


async def test_duplicate_deliveries_are_not_counted_twice(
    db: Any, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"rm.{unique_name}", partitions=2)
    projection = dataclasses.replace(sample.conversations(f"dup-{unique_name}"), topics=(topic,))
    events = workload()
    # at-least-once upstream: the same records again, some twice, some in one batch
    await produce(kafka_bootstrap, topic, events + events[5:20] + events[::3] + events)
    async with projector(db, projection, options(kafka_bootstrap, max_records=50)):
        await caught_up(kafka_bootstrap, projection.group, projection.topics)
    check_expected(
        await docs(db, projection, "conversations"), await docs(db, projection, "unread")
    )


async def test_poison_is_parked_the_partition_flows_and_redrive_applies_once(
    db: Any, kafka_bootstrap: str, mongo_url: str, unique_name: str
) -> None:
    topic = await new_topic(kafka_bootstrap, f"rm.{unique_name}", partitions=1)
    name = f"poison-{unique_name}"
    sample.BROKEN.add("Boom")
    sample.KNOWN_LATE.discard("Renamed")
    sample.CALLS.clear()
    projection = dataclasses.replace(sample.conversations(name), topics=(topic,))
    c = "conv-p"

    def msg(v: int) -> Any:
        return sample.event(
            c, v, "MessagePosted", {"sender": "a", "text": f"m{v}", "recipients": ["b"]}
        )

    records = [
        sample.event(c, 1, "ConversationStarted", {"title": c, "members": ["a", "b"]}),
        msg(2),
        sample.event(c, 3, "MessagePosted", raw=b"{not json"),
        msg(4),
        sample.event(c, 5, "Renamed", {"title": "new"}),  # unknown to a strict projection
        msg(6),
        sample.event(c, 7, "Boom", {}),  # its handler raises
        msg(8),
        msg(9),
    ]
    await produce(kafka_bootstrap, topic, records)
    async with projector(db, projection, options(kafka_bootstrap, attempts=3)):
        await caught_up(kafka_bootstrap, projection.group, projection.topics)
    conv = (await docs(db, projection, "conversations"))[c]
    assert conv["messages"] == 5 and "booms" not in conv and "renamed" not in conv
    assert sample.CALLS["Boom"] == 3  # bounded retries

    parked = await read_topic(kafka_bootstrap, f"{name}.dlq")
    assert [r.offset for r in (parked)] == [0, 1, 2]
    headers = [dict(r.headers) for r in parked]
    assert [h["dlq_offset"] for h in headers] == [b"2", b"4", b"6"]
    assert {h["dlq_topic"] for h in headers} == {topic.encode()}
    assert {h["dlq_partition"] for h in headers} == {b"0"}
    assert {h["dlq_group"] for h in headers} == {name.encode()}
    assert {h["dlq_attempts"] for h in headers} == {b"3"}
    assert [h["dlq_error_type"] for h in headers] == [
        b"JSONDecodeError",
        b"UnknownEventType",
        b"RuntimeError",
    ]
    assert [r.value for r in parked] == [records[2][1], records[4][1], records[6][1]]
    assert all(h["ce_subject"] == c.encode() for h in headers)

    # fix the causes (the JSON one cannot be fixed), then re-drive through the CLI
    sample.BROKEN.discard("Boom")
    sample.KNOWN_LATE.add("Renamed")
    argv = [
        "--group",
        name,
        "--projection",
        "sample:conversations",
        "--bootstrap",
        kafka_bootstrap,
        "--mongo-url",
        mongo_url,
        "--database",
        db.name,
    ]
    try:
        assert await redrive_main(argv) == 0
        after_first = await dump(db, projection)
        conv = (await docs(db, projection, "conversations"))[c]
        assert conv["booms"] == 1 and conv["renamed"] == "new" and conv["messages"] == 5
        assert len(await read_topic(kafka_bootstrap, f"{name}.dlq")) == 4  # bad JSON re-parked

        assert await redrive_main(argv) == 0  # takes only the re-parked bad JSON
        assert await dump(db, projection) == after_first
        # even a re-drive group reset to the start applies nothing twice
        await reset_offsets(kafka_bootstrap, f"{name}.redrive", (f"{name}.dlq",))
        assert await redrive_main(argv) == 0
        assert await dump(db, projection) == after_first
        # and so does a replay of the source topic with the fixed code
        await reset_offsets(kafka_bootstrap, name, (topic,))
        fixed = dataclasses.replace(sample.conversations(name), topics=(topic,))
        async with projector(db, fixed, options(kafka_bootstrap)):
            await caught_up(kafka_bootstrap, name, (topic,))
        assert await dump(db, projection) == after_first
    finally:
        sample.BROKEN.add("Boom")
        sample.KNOWN_LATE.discard("Renamed")


async def test_wait_for_version(db: Any, kafka_bootstrap: str, unique_name: str) -> None:
    topic = await new_topic(kafka_bootstrap, f"rm.{unique_name}", partitions=1)
    projection = dataclasses.replace(sample.conversations(f"wait-{unique_name}"), topics=(topic,))
    async with projector(db, projection, options(kafka_bootstrap)):
        assert not await wait_for_version(
            db, projection.name, stream_key(topic, "cw"), 1, timeout_s=0.3
        )
        await produce(kafka_bootstrap, topic, sample.conversation_events("cw", ["a", "b"], 4))
        assert await wait_for_version(db, projection.name, stream_key(topic, "cw"), 5, timeout_s=30)
        started = time.monotonic()
        assert not await wait_for_version(
            db, projection.name, stream_key(topic, "cw"), 6, timeout_s=0.5
        )
        assert time.monotonic() - started >= 0.5
    assert (await docs(db, projection, "conversations"))["cw"]["messages"] == 4


async def test_versions_kept_in_the_stream_document_replace_progress_documents(
    db: Any, kafka_bootstrap: str, unique_name: str
) -> None:
    """With `versions_in`, a stream whose newest event wrote its own document gets no
    `_progress` document; one whose newest event wrote elsewhere does; the wait sees both."""
    topic = await new_topic(kafka_bootstrap, f"rm.{unique_name}", partitions=1)
    projection = dataclasses.replace(
        sample.conversations(f"home-{unique_name}"),
        topics=(topic,),
        versions_in={context_of(topic): "conversations"},
    )
    key = stream_key(topic, "ch")
    home = ("conversations", "ch")
    progress = db[PROGRESS]
    async with projector(db, projection, options(kafka_bootstrap)):
        await produce(kafka_bootstrap, topic, sample.conversation_events("ch", ["a", "b"], 3))
        assert await wait_for_version(db, projection.name, key, 4, 30, home)
        assert await progress.find_one({"_id": progress_id(projection.name, 1, key)}) is None
        # without the document the stream looks unapplied: the wait must read it
        assert not await wait_for_version(db, projection.name, key, 4, 0.2)

        # a read mark writes only `unread`: its version needs a progress document
        await produce(kafka_bootstrap, topic, [sample.event("ch", 5, "Read", {"user": "a"})])
        assert await wait_for_version(db, projection.name, key, 5, 30, home)
        mark = await progress.find_one({"_id": progress_id(projection.name, 1, key)})
        assert mark is not None and mark["version"] == 5
        assert (await docs(db, projection, "conversations"))["ch"]["_v"] == {"ch": 4}
        assert not await wait_for_version(db, projection.name, key, 6, 0.3, home)

        # the document moves past the progress document: the document answers
        await produce(kafka_bootstrap, topic, sample.conversation_events("ch", ["a", "b"], 1, 6))
        assert await wait_for_version(db, projection.name, key, 6, 30, home)
        mark = await progress.find_one({"_id": progress_id(projection.name, 1, key)})
        assert mark is not None and mark["version"] == 5


async def test_members_joining_and_leaving_mid_stream_apply_everything_once(
    db: Any, kafka_bootstrap: str, unique_name: str
) -> None:
    """Two members of one group, the second joining while batches are in flight and the first
    leaving later: each rebalance hands partitions over between batches (a batch decoded
    before it is decoded again for what is still ours), and the counters end exact."""
    topic = await new_topic(kafka_bootstrap, f"rm.{unique_name}")
    projection = dataclasses.replace(
        sample.conversations(f"members-{unique_name}"), topics=(topic,)
    )
    events = workload()
    chunks = [events[i * len(events) // 12 : (i + 1) * len(events) // 12] for i in range(12)]

    async def feed(part: list[Any], pause: float) -> None:
        for chunk in part:
            await produce(kafka_bootstrap, topic, chunk)
            await asyncio.sleep(pause)

    first = options(kafka_bootstrap, max_records=3)
    async with projector(db, projection, first):
        await feed(chunks[:4], 0.1)
        second = options(kafka_bootstrap, max_records=3)
        async with projector(db, projection, second):
            # both members write while the group rebalances (heartbeats every 3 s)
            await feed(chunks[4:8], 1.0)
            first.stop.set()  # the first leaves; the second takes its partitions over
            await feed(chunks[8:], 0.1)
            await caught_up(kafka_bootstrap, projection.group, projection.topics)
    check_expected(
        await docs(db, projection, "conversations"), await docs(db, projection, "unread")
    )


async def test_store_outage_is_retried_not_parked(
    db: Any, kafka_bootstrap: str, unique_name: str
) -> None:
    """A write failure is not poison: nothing goes to the DLQ, nothing is committed."""
    from parley_readmodel import runtime

    topic = await new_topic(kafka_bootstrap, f"rm.{unique_name}", partitions=1)
    projection = dataclasses.replace(sample.conversations(f"outage-{unique_name}"), topics=(topic,))
    real = runtime.apply_changes
    failures = 0

    async def flaky(*args: Any, **kw: Any) -> int:
        nonlocal failures
        if failures < 3:
            failures += 1
            from pymongo.errors import AutoReconnect

            raise AutoReconnect("store down")
        return await real(*args, **kw)

    runtime.apply_changes = flaky  # type: ignore[assignment]
    try:
        await produce(kafka_bootstrap, topic, sample.conversation_events("co", ["a", "b"], 3))
        async with projector(db, projection, options(kafka_bootstrap)):
            await caught_up(kafka_bootstrap, projection.group, projection.topics)
    finally:
        runtime.apply_changes = real  # type: ignore[assignment]
    assert failures == 3
    assert (await docs(db, projection, "conversations"))["co"]["messages"] == 3
    assert await read_topic(kafka_bootstrap, f"{projection.group}.dlq") == []
    await asyncio.sleep(0)
