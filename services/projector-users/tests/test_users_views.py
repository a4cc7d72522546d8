"""The users view handlers, without servers."""

import uuid
from datetime import UTC, datetime

from parley_messaging.envelope import Envelope, ce_type
from parley_projector_users.views import profile_updated, user_created, users_projection


def envelope(name: str) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        source="/parley/users",
        type=ce_type("users", name, 1),
        subject="u1",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        data=b"{}",
        aggregate_version=1,
    )


def test_created_sets_the_whole_profile() -> None:
    (write,) = user_created(
        envelope("UserCreated"), {"user_id": "u1", "name": "Ada", "email": "a@x"}
    )
    assert write.doc_id == "u1"
    assert write.update["$set"]["name"] == "Ada"
    assert write.update["$set"]["bio"] is None


def test_update_sets_only_given_fields() -> None:
    (write,) = profile_updated(
        envelope("UserProfileUpdated"),
        {"user_id": "u1", "name": None, "bio": "b", "avatar_url": None},
    )
    assert set(write.update["$set"]) == {"bio", "updated_at"}


def test_projection_handles_every_users_event() -> None:
    from parley_contracts.registry import all_events

    users_events = {cls.event_name() for cls in all_events().values() if cls.context == "users"}
    assert users_events <= set(users_projection().handlers)
