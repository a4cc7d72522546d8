"""Aggregate folding and the event codec, without a database."""

import subprocess
import sys

import pytest
from es_counter import Counter, Incremented, NotOpen, Opened
from parley_eventstore.codec import EventCodec, UnknownEvent
from parley_eventstore.records import RecordedEvent


def test_commands_record_events_and_fold_state() -> None:
    counter = Counter("c-1")
    counter.open("visits")
    counter.increment(2)
    counter.increment(3)
    assert (counter.title, counter.total) == ("visits", 5)
    assert counter.pending == [Opened("visits"), Incremented(2), Incremented(3)]
    assert (counter.version, counter.next_version) == (0, 3)
    counter.mark_saved(3)
    assert (counter.pending, counter.version) == ([], 3)


def test_invariants_are_checked_before_recording() -> None:
    counter = Counter("c-1")
    with pytest.raises(NotOpen):
        counter.increment()
    assert counter.pending == []


def test_replay_equals_recording() -> None:
    events = [Opened("a"), Incremented(4), Incremented(1)]
    replayed = Counter("c-1")
    replayed.replay(enumerate(events, start=1))
    assert (replayed.title, replayed.total, replayed.version) == ("a", 5, 3)
    assert replayed.pending == []


def test_codec_round_trip_and_unknowns() -> None:
    codec = EventCodec(Opened, Incremented)
    new = codec.encode(Incremented(7))
    assert (new.event_type, new.schema_version, dict(new.data)) == ("Incremented", 1, {"by": 7})
    recorded = RecordedEvent(new.event_id, "c", "Incremented", 1, {"by": 7}, {}, 1, 1, None)  # type: ignore[arg-type]
    assert codec.decode(recorded) == Incremented(7)
    with pytest.raises(UnknownEvent):
        codec.decode(RecordedEvent(new.event_id, "c", "Nope", 1, {}, {}, 1, 1, None))  # type: ignore[arg-type]


def test_pure_modules_load_no_infrastructure() -> None:
    # the service domain imports these; asyncpg/aiokafka must not come along
    code = (
        "import sys, parley_eventstore.domain, parley_eventstore.records, "
        "parley_eventstore.upcasting\n"
        "bad = [m for m in ('asyncpg', 'aiokafka', 'pymongo', 'fastapi') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
