"""The fan-out core without servers: cursors, the hub's hand-over from replay to live, the
declared rules (who gets what), the slow-client bound and the typing limit."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from parley_privacy.fields import REDACTED
from parley_realtime.cursor import MalformedCursor, decode, encode, furthest
from parley_realtime.hub import Connection, Hub, StreamClosed
from parley_realtime.mappings import RULES, TOPICS, Meta, rules_by_source
from parley_realtime.signalling import TypingLimiter
from parley_realtime.stream import Holder, Streams

CHAT, NOTES = TOPICS
RULE = rules_by_source()
META = Meta("c1", datetime(2026, 12, 6, tzinfo=UTC), 3)


def later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=5)


# -- cursor ----------------------------------------------------------------------------------


def test_a_cursor_round_trips_and_fills_missing_partitions_with_zero() -> None:
    offsets = {(CHAT, 0): 0, (CHAT, 1): 123456789, (CHAT, 5): 7, (NOTES, 2): 36}
    text = encode(offsets, TOPICS)
    assert text == "1~0.21i3v9.0.0.0.7~0.0.10"
    back = decode(text, TOPICS)
    assert back.get((CHAT, 1)) == 123456789
    assert back.get((CHAT, 3)) == 0  # never named: from the partition's start
    assert back.get((NOTES, 9)) == 0  # a partition added later starts at 0


@pytest.mark.parametrize(
    "text",
    ["", "2~0~0", "1~0", "1~0~0~0", "1~0.-1~0", "1~0..1~0", "1~A~0", "1~" + "1" * 20 + "~0"],
)
def test_anything_else_is_a_malformed_cursor(text: str) -> None:
    with pytest.raises(MalformedCursor):
        decode(text, TOPICS)


def test_furthest_is_elementwise_max() -> None:
    merged = furthest({(CHAT, 0): 5, (CHAT, 1): 1}, {(CHAT, 0): 2, (NOTES, 0): 4})
    assert merged == {(CHAT, 0): 5, (CHAT, 1): 1, (NOTES, 0): 4}


# -- rules -----------------------------------------------------------------------------------


def sent(**extra: object) -> dict[str, object]:
    return {
        "conversation_id": "c1",
        "message_id": "m1",
        "seq": 4,
        "sender_id": "ada",
        "content": "hi",
        "client_message_id": "ada-device-1",
        "recipient_ids": ["bob", "cy"],
        **extra,
    }


def test_a_message_goes_to_its_recipients_and_the_senders_other_devices() -> None:
    rule = RULE[(CHAT, "MessageSent")]
    assert list(rule.recipients(sent())) == ["ada", "bob", "cy"]
    assert rule.view(sent(), "ada", META)["client_message_id"] == "ada-device-1"
    assert "client_message_id" not in rule.view(sent(), "bob", META)
    assert rule.view(sent(), "bob", META)["content"] == "hi"


def test_a_forgotten_senders_text_arrives_redacted() -> None:
    view = RULE[(CHAT, "MessageSent")].view(
        sent(content="[redacted]", **{REDACTED: ["content"]}), "bob", META
    )
    assert view["content"] is None and view["redacted"] is True


def test_a_removed_participant_gets_the_removal_and_nothing_after_it() -> None:
    removed = {
        "conversation_id": "c1",
        "user_id": "cy",
        "removed_by": "ada",
        "participant_ids": ["ada", "bob"],
    }
    rule = RULE[(CHAT, "ParticipantRemoved")]
    assert sorted(rule.recipients(removed)) == ["ada", "bob", "cy"]
    after = sent(recipient_ids=["bob"])
    assert "cy" not in RULE[(CHAT, "MessageSent")].recipients(after)


def test_read_marks_go_to_the_reader_only_and_notifications_to_their_owner() -> None:
    read = {"conversation_id": "c1", "user_id": "bob", "up_to_seq": 4, "unread_after": 0}
    assert list(RULE[(CHAT, "MessagesRead")].recipients(read)) == ["bob"]
    note = {
        "notification_id": "n",
        "user_id": "bob",
        "conversation_id": "c1",
        "message_id": "m1",
        "sender_id": "ada",
        "preview": "hi",
    }
    assert list(RULE[(NOTES, "NotificationCreated")].recipients(note)) == ["bob"]


def test_every_rule_is_declared_once() -> None:
    assert len(rules_by_source(RULES)) == len(RULES)
    with pytest.raises(ValueError, match="two push rules"):
        rules_by_source([*RULES, RULES[0]])


# -- hub -------------------------------------------------------------------------------------


def deliver(hub: Hub, partition: int, offset: int, **extra: object) -> int:
    rule = RULE[(CHAT, "MessageSent")]
    data = sent(seq=offset + 1, **extra)
    return hub.deliver((CHAT, partition), offset, rule, data, rule.recipients(data), META)


async def test_records_before_attach_are_the_replays_and_records_after_are_live() -> None:
    hub = Hub(TOPICS)
    hub.start_at({(CHAT, 0): 10, (NOTES, 0): 0})
    deliver(hub, 0, 10)  # before bob attached: his replay covers it
    bob = Connection("bob", "s1", later())
    start = hub.attach(bob, {(CHAT, 0): 5})
    assert start[(CHAT, 0)] == 11  # the replay reads (5, 11)
    deliver(hub, 0, 11)
    frame = await bob.next(0.1)
    assert frame is not None and json.loads(frame.data)["seq"] == 12
    assert frame.cursor is not None and decode(frame.cursor, TOPICS).get((CHAT, 0)) == 12
    assert await bob.next(0.01) is None


async def test_a_client_ahead_of_this_replica_gets_nothing_twice() -> None:
    hub = Hub(TOPICS)
    hub.start_at({(CHAT, 0): 3})
    bob = Connection("bob", "s1", later())
    hub.attach(bob, {(CHAT, 0): 6})  # it saw offsets 3..5 on a replica further ahead
    for offset in (3, 4, 5, 6):
        deliver(hub, 0, offset)
    frame = await bob.next(0.1)
    assert frame is not None and json.loads(frame.data)["seq"] == 7  # offset 6 only
    assert await bob.next(0.01) is None
    assert decode(hub.cursor_of(bob), TOPICS).get((CHAT, 0)) == 7


async def test_heartbeat_cursor_keeps_up_with_records_meant_for_others() -> None:
    hub = Hub(TOPICS)
    hub.start_at({(CHAT, 0): 0, (CHAT, 1): 0})
    dan = Connection("dan", "s2", later())
    hub.attach(dan, None)
    hub.advance((CHAT, 1), 41)
    deliver(hub, 0, 0)  # to ada, bob, cy: not dan
    assert await dan.next(0.01) is None
    cursor = decode(hub.cursor_of(dan), TOPICS)
    assert (cursor.get((CHAT, 0)), cursor.get((CHAT, 1))) == (1, 42)


async def test_a_slow_client_is_disconnected_at_the_bound_not_buffered() -> None:
    hub = Hub(TOPICS)
    hub.start_at({(CHAT, 0): 0})
    bob = Connection("bob", "s1", later(), max_pending=3)
    hub.attach(bob, None)
    for offset in range(5):
        deliver(hub, 0, offset)
    assert bob.closed == "slow"
    with pytest.raises(StreamClosed):
        await bob.next(0.01)


async def test_ephemeral_frames_reach_only_the_named_connected_people_without_cursor() -> None:
    hub = Hub(TOPICS)
    hub.start_at({})
    bob, cy = Connection("bob", "s1", later()), Connection("cy", "s2", later())
    hub.attach(bob, None)
    hub.attach(cy, None)
    assert hub.push_ephemeral(["bob", "zed"], "typing", {"user_id": "ada"}) == 1
    frame = await bob.next(0.1)
    assert frame is not None and frame.event == "typing" and frame.cursor is None
    assert await cy.next(0.01) is None
    hub.detach(bob)
    assert hub.push_ephemeral(["bob"], "typing", {}) == 0


# -- typing limit ----------------------------------------------------------------------------


async def test_typing_is_limited_per_person_and_conversation_across_replicas() -> None:
    here, there = TypingLimiter(0.2), TypingLimiter(0.2)
    assert here.allow("ada", "c1")
    assert not here.allow("ada", "c1")
    assert here.allow("ada", "c2") and here.allow("bob", "c1")
    there.note("ada", "c1")  # the signal from `here` reached the other replica
    assert not there.allow("ada", "c1")
    await asyncio.sleep(0.21)
    assert here.allow("ada", "c1")


# -- a stream's life ---------------------------------------------------------------------------


class FakeSignals:
    """Presence bookkeeping only: what Streams asks of the signals."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    async def stream_opened(self, user_id: str) -> None:
        self.open[user_id] = self.open.get(user_id, 0) + 1

    async def stream_closed(self, user_id: str) -> None:
        self.open[user_id] -= 1


def streams_for(hub: Hub, signals: FakeSignals, heartbeat_s: float = 0.05) -> Streams:
    return Streams(hub, signals, None, "unused:9092", heartbeat_s=heartbeat_s)  # type: ignore[arg-type]


async def test_a_fresh_stream_starts_ready_then_beats_with_the_current_cursor() -> None:
    hub = Hub(TOPICS)
    hub.start_at({(CHAT, 0): 4})
    signals = FakeSignals()
    streams = streams_for(hub, signals)
    holder = Holder("bob", "user", "s1", later())
    connection = await streams.open(holder)
    frames = streams.frames(connection, None)
    ready = await anext(frames)
    assert ready.event == "ready" and decode(ready.cursor or "", TOPICS).get((CHAT, 0)) == 4
    hub.advance((CHAT, 0), 9)  # somebody else's record moved the topic on
    beat = await anext(frames)
    assert beat.event is None and decode(beat.cursor or "", TOPICS).get((CHAT, 0)) == 10
    assert signals.open == {"bob": 1}
    await frames.aclose()
    assert signals.open == {"bob": 0} and "bob" not in hub.by_user


async def test_an_expired_token_ends_the_stream_with_an_expired_event() -> None:
    hub = Hub(TOPICS)
    hub.start_at({})
    streams = streams_for(hub, FakeSignals(), heartbeat_s=5)
    connection = await streams.open(Holder("bob", "user", "s1", datetime.now(UTC)))
    frames = streams.frames(connection, None)
    await anext(frames)  # ready
    police = asyncio.create_task(streams.police())
    try:
        expired = await asyncio.wait_for(anext(frames), 3)
        assert expired.event == "expired" and expired.cursor is None
        with pytest.raises(StopAsyncIteration):
            await anext(frames)
    finally:
        police.cancel()


async def test_a_revoked_session_ends_the_stream() -> None:
    hub = Hub(TOPICS)
    hub.start_at({})
    revoked: set[str] = set()
    streams = Streams(
        hub,
        FakeSignals(),
        None,
        "unused:9092",
        is_revoked=revoked.__contains__,  # type: ignore[arg-type]
    )
    connection = await streams.open(Holder("bob", "user", "s1", later()))
    frames = streams.frames(connection, None)
    await anext(frames)
    police = asyncio.create_task(streams.police())
    try:
        revoked.add("s1")
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(frames), 3)
        assert connection.closed == "revoked"
    finally:
        police.cancel()


async def test_the_fan_out_shares_one_body_per_audience_and_keeps_the_senders_own() -> None:
    hub = Hub(TOPICS)
    hub.start_at({(CHAT, 0): 0})
    ada, bob, cy = (Connection(u, "s", later()) for u in ("ada", "bob", "cy"))
    for connection in (ada, bob, cy):
        hub.attach(connection, None)
    deliver(hub, 0, 0)
    frames = {c.user_id: await c.next(0.1) for c in (ada, bob, cy)}
    assert all(f is not None for f in frames.values())
    assert json.loads(frames["ada"].data)["client_message_id"] == "ada-device-1"  # type: ignore[union-attr]
    assert "client_message_id" not in json.loads(frames["bob"].data)  # type: ignore[union-attr]
    assert frames["bob"].data is frames["cy"].data  # type: ignore[union-attr]  (one body)


async def test_presence_is_shared_in_small_conversations_only() -> None:
    from parley_realtime.members import PRESENCE_GROUP_MAX, Members

    members = Members(None)
    members.remember("small", ["ada", "bob", "cy"])
    members.remember("big", ["ada", *(f"u{i}" for i in range(PRESENCE_GROUP_MAX))])
    assert await members.peers("ada") == {"bob", "cy"}  # not the big room's 100
    assert await members.peers("u1") == frozenset()
