"""Progress is kept per stream *of a context*: ids repeat across contexts (an account, its
profile and its notification preferences share the user id), so a projection reading two
topics must never take one stream's version for the other's (read-your-writes would then
answer before the write is in)."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord
from parley_readmodel.projection import Projection, Write
from parley_readmodel.runtime import Options, prepare
from parley_testing.projections import record


def consumed(topic: str, raw: tuple[bytes, bytes, list[tuple[str, bytes]]]) -> Any:
    key, value, headers = raw
    return ConsumerRecord(topic, 0, 0, 0, 0, key, value, None, len(key), len(value), headers)


def prefs(env: Any, data: dict[str, Any]) -> list[Write]:
    return [Write("prefs", env.subject, {"$set": {"email": data["email"]}})]


def preferences_projection(tracked: tuple[str, ...] | None = None) -> Projection:
    """Preferences of the notifications context, and users.events for UserForgotten."""
    return Projection(
        name="p",
        topics=("notifications.events", "users.events"),
        collections=("prefs",),
        handlers={"PrefsSet": prefs, "UserForgotten": lambda env, data: []},
        tracked=tracked,
    )


async def test_the_same_id_in_two_contexts_keeps_two_progress_entries() -> None:
    projection = preferences_projection()
    records = [
        consumed("users.events", record("users", "u1", 7, "UserForgotten", {"user_id": "u1"})),
        consumed(
            "notifications.events", record("notifications", "u1", 2, "PrefsSet", {"email": True})
        ),
    ]
    prepared = await prepare(projection, records, Options(bootstrap_servers="unused"))
    assert prepared.versions == {"users/u1": 7, "notifications/u1": 2}
    assert [c.stream for c in prepared.changes] == ["u1"]  # documents keep bare stream ids


async def test_untracked_contexts_and_ignored_events_cost_no_progress_and_no_parsing() -> None:
    """A projection reading users.events for one rare event records no progress for users
    streams (no token of that context is ever checked against it) and never parses the data
    of events it has no handler for (a non-strict projection ignores them)."""
    projection = preferences_projection(tracked=("notifications",))
    created = record("users", "u1", 1, "UserCreated", {"user_id": "u1"})
    unparsable = (created[0], b"{not json", created[2])
    records = [
        consumed("users.events", unparsable),
        consumed("users.events", record("users", "u1", 2, "UserForgotten", {"user_id": "u1"})),
        consumed(
            "notifications.events", record("notifications", "u1", 2, "PrefsSet", {"email": True})
        ),
    ]
    prepared = await prepare(projection, records, Options(bootstrap_servers="unused"))
    assert prepared.poison == []
    assert prepared.versions == {"notifications/u1": 2}
    assert [c.update for c in prepared.changes] == [{"$set": {"email": True}}]
