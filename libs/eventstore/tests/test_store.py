"""The event store's contract against a real PostgreSQL (each test: alone and group commit)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from parley_eventstore import (
    ConcurrencyError,
    EventStore,
    Metadata,
    NewEvent,
    Snapshot,
    Upcasters,
)
from parley_messaging.envelope import decode, kafka_headers

pytestmark = pytest.mark.integration

META = Metadata(
    correlation_id="corr-1",
    causation_id="cmd-1",
    actor="user-9",
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)


def ev(event_type: str = "Incremented", **data: Any) -> NewEvent:
    return NewEvent(event_type, data or {"by": 1})


async def count(pool: asyncpg.Pool, table: str, where: str = "true", *args: Any) -> int:
    async with pool.acquire() as conn:
        n: int = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
        return n


async def test_versions_follow_expected_and_stale_or_future_versions_conflict(
    store: EventStore,
) -> None:
    first = await store.append("s", "Counter", 0, [ev(), ev()], metadata=META)
    assert (first.version, first.already_handled, len(first.positions)) == (2, False, 2)
    assert (await store.append("s", "Counter", 2, [ev()], metadata=META)).version == 3
    for stale_or_future in (0, 2, 7):
        with pytest.raises(ConcurrencyError) as conflict:
            await store.append("s", "Counter", stale_or_future, [ev()], metadata=META)
        assert (conflict.value.expected, conflict.value.actual) == (stale_or_future, 3)
    assert [e.version for e in await store.load("s")] == [1, 2, 3]


async def test_fifty_concurrent_writers_on_one_stream(store: EventStore) -> None:
    """Each writer reads the head and appends once; exactly one writer per version wins,
    the others get ConcurrencyError with the real head; the stream stays gap- and dup-free."""
    await store.append("hot", "Counter", 0, [ev("Opened", title="t")], metadata=META)
    everyone_read = asyncio.Barrier(50)

    async def writer(i: int) -> int | ConcurrencyError:
        expected = await store.head("hot")
        await everyone_read.wait()  # all hold the same head: maximum contention
        try:
            return (
                await store.append("hot", "Counter", expected, [ev(by=i)], metadata=META)
            ).version
        except ConcurrencyError as error:
            assert error.actual > error.expected
            return error

    outcomes = await asyncio.gather(*(writer(i) for i in range(50)))
    won = [o for o in outcomes if isinstance(o, int)]
    lost = [o for o in outcomes if isinstance(o, ConcurrencyError)]
    assert won == [2] and len(lost) == 49  # all read version 1: only one can append 2

    # now with retries: every writer eventually appends exactly one event
    async def retrying(i: int) -> int:
        while True:
            try:
                head = await store.head("hot")
                return (
                    await store.append("hot", "Counter", head, [ev(by=i)], metadata=META)
                ).version
            except ConcurrencyError:
                await asyncio.sleep(0)

    versions = await asyncio.gather(*(retrying(i) for i in range(50)))
    assert sorted(versions) == list(range(3, 53))
    loaded = await store.load("hot")
    assert [e.version for e in loaded] == list(range(1, 53))
    assert sorted(e.data["by"] for e in loaded[2:]) == list(range(50))
    assert await count(store.pool, "outbox") == 52


async def test_a_failed_append_leaves_nothing(store: EventStore) -> None:
    """A rejected multi-event append writes no event, no outbox row, no key, no snapshot
    (the mid-statement collision with a concurrent writer is in test_races.py)."""
    await store.append("s", "Counter", 0, [ev()], metadata=META)
    async with store.pool.acquire() as conn:  # a head the caller did not expect
        await conn.execute(
            "INSERT INTO events (stream_id, stream_type, version, event_id, event_type, data)"
            " VALUES ('s', 'Counter', 3, $1, 'Incremented', '{}')",
            uuid.uuid4(),
        )
    outbox_before = await count(store.pool, "outbox")
    doomed = [ev(by=10), ev(by=11), ev(by=12)]
    with pytest.raises(ConcurrencyError) as conflict:
        await store.append(
            "s",
            "Counter",
            1,
            doomed,
            metadata=META,
            idempotency_key="k-doomed",
            snapshot=Snapshot(4, 1, {"total": 99}),
        )
    assert conflict.value.actual == 3
    ids = [e.event_id for e in doomed]
    assert await count(store.pool, "events", "event_id = ANY($1::uuid[])", ids) == 0
    assert await count(store.pool, "outbox") == outbox_before
    assert await count(store.pool, "idempotency_keys") == 0
    assert await count(store.pool, "snapshots") == 0


async def test_bad_data_fails_the_whole_append(store: EventStore) -> None:
    with pytest.raises(asyncpg.PostgresError):  # NaN is not JSON: the cast fails mid-statement
        await store.append("s", "Counter", 0, [ev(by=1), ev(by=float("nan"))], metadata=META)
    assert await count(store.pool, "events") == 0
    assert await count(store.pool, "outbox") == 0


async def test_outbox_rows_carry_cloudevents_headers(store: EventStore) -> None:
    result = await store.append(
        "user-42",
        "User",
        0,
        [ev("Registered", email="a@b"), ev("Renamed", name="A")],
        metadata=META,
    )
    async with store.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, topic, key, headers, payload FROM outbox ORDER BY id")
    events = await store.load("user-42")
    assert len(rows) == 2
    for row, event in zip(rows, events, strict=True):
        assert (row["topic"], row["key"]) == ("users.events", "user-42")
        headers = json.loads(row["headers"])
        envelope = decode(kafka_headers(headers), bytes(row["payload"]))  # what a consumer sees
        assert envelope.id == str(event.event_id)
        assert envelope.type == f"parley.users.{event.event_type}.v1"
        assert envelope.source == "/parley/users"
        assert envelope.subject == "user-42"
        assert envelope.aggregate_version == event.version
        assert envelope.schema_version == 1
        assert envelope.correlation_id == "corr-1"
        assert envelope.causation_id == "cmd-1"
        assert envelope.traceparent == META.traceparent
        assert envelope.time == event.recorded_at  # ce_time is the stored time
        assert json.loads(envelope.data) == event.data
        assert event.metadata == META.as_dict()
    assert result.positions == tuple(e.global_position for e in events)


async def test_idempotent_command_sequential(store: EventStore) -> None:
    first = await store.append(
        "s", "Counter", 0, [ev()], metadata=META, idempotency_key="k1", result={"id": "s", "n": 1}
    )
    again = await store.append(
        "s", "Counter", 0, [ev()], metadata=META, idempotency_key="k1", result={"other": True}
    )
    # also with a different stream id: a retried "create" that minted a new id
    elsewhere = await store.append("s2", "Counter", 0, [ev()], metadata=META, idempotency_key="k1")
    assert not first.already_handled and again.already_handled and elsewhere.already_handled
    for repeat in (again, elsewhere):
        assert (repeat.stream_id, repeat.version, repeat.result) == ("s", 1, {"id": "s", "n": 1})
    assert await count(store.pool, "events") == 1
    assert await count(store.pool, "outbox") == 1
    assert (await store.idempotent_result("k1")) == again


async def test_idempotent_command_concurrent(store: EventStore) -> None:
    """Identical keyed commands at the same moment (fresh stream ids, like retried creates,
    and the same stream): exactly one appends, all answer with its result."""
    for round_ in range(10):
        key = f"k-{round_}"
        same_stream = round_ % 2 == 0
        outcomes = await asyncio.gather(
            *(
                store.append(
                    "same" + key if same_stream else f"s-{key}-{i}",
                    "Counter",
                    0,
                    [ev(by=i)],
                    metadata=META,
                    idempotency_key=key,
                    result={"by": i},
                )
                for i in range(8)
            ),
            return_exceptions=True,
        )
        fresh = [o for o in outcomes if not isinstance(o, BaseException) and not o.already_handled]
        assert len(fresh) == 1, outcomes
        winner = fresh[0]
        for o in outcomes:
            # never a ConcurrencyError: the key decides before the version does
            assert not isinstance(o, BaseException), o
            assert (o.stream_id, o.version, o.result) == (winner.stream_id, 1, winner.result)
    assert await count(store.pool, "events") == 10
    assert await count(store.pool, "outbox") == 10
    assert await count(store.pool, "idempotency_keys") == 10


async def test_load_up_to_version_and_at_time(store: EventStore) -> None:
    for i in range(5):
        await store.append("s", "Counter", i, [ev(by=i)], metadata=META)
    events = await store.load("s")
    assert [e.data["by"] for e in await store.load("s", up_to_version=3)] == [0, 1, 2]
    assert [e.version for e in await store.load("s", after_version=3)] == [4, 5]
    at = events[1].recorded_at
    assert [e.version for e in await store.load("s", at=at)] == [1, 2]
    assert await store.load("s", at=datetime(2000, 1, 1, tzinfo=UTC)) == []
    assert await store.load("missing") == []
    assert await store.head("missing") == 0


async def test_v1_rows_are_loaded_as_v3(pool: asyncpg.Pool) -> None:
    """A real evolution: rows written by v1 code, read by code that knows v3."""
    old = EventStore(pool, topic="users.events", source="/parley/users", context="users")
    await old.append(
        "u", "User", 0, [NewEvent("ProfileCreated", {"name": "Ada Lovelace"}, 1)], metadata=META
    )
    upcasters = Upcasters()

    @upcasters.register("ProfileCreated", 1)
    def split_name(data: dict[str, Any]) -> dict[str, Any]:
        first, _, last = data.pop("name").partition(" ")
        return {**data, "first_name": first, "last_name": last}

    @upcasters.register("ProfileCreated", 2)
    def add_locale(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "locale": "en"}

    new = EventStore(
        pool, topic="users.events", source="/parley/users", context="users", upcasters=upcasters
    )
    await new.append(
        "u",
        "User",
        1,
        [NewEvent("ProfileCreated", {"first_name": "B", "last_name": "C", "locale": "fr"}, 3)],
        metadata=META,
    )
    loaded = await new.load("u")
    assert [(e.schema_version, e.data) for e in loaded] == [
        (3, {"first_name": "Ada", "last_name": "Lovelace", "locale": "en"}),
        (3, {"first_name": "B", "last_name": "C", "locale": "fr"}),
    ]
    async with pool.acquire() as conn:  # stored rows are untouched
        assert await conn.fetchval("SELECT schema_version FROM events WHERE version = 1") == 1
        raw = await conn.fetchval("SELECT headers->>'ce_type' FROM outbox ORDER BY id DESC LIMIT 1")
    assert raw == "parley.users.ProfileCreated.v3"
    await old.close()
    await new.close()
