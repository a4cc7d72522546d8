"""The user aggregate's rules, with no database."""

import pytest
from parley_contracts.users import UserCreated, UserProfileUpdated
from parley_users.domain import User, UserAlreadyExists, UserNotFound


def created_user() -> User:
    user = User("u1")
    user.replay([(1, UserCreated(user_id="u1", name="Ada", email="ada@example.test"))])
    return user


def test_create_records_user_created() -> None:
    user = User("u1")
    user.create("Ada", "ada@example.test")
    assert user.pending == [UserCreated(user_id="u1", name="Ada", email="ada@example.test")]
    assert user.profile["name"] == "Ada"


def test_create_twice_is_refused() -> None:
    with pytest.raises(UserAlreadyExists):
        created_user().create("Ada", "ada@example.test")


def test_update_of_unknown_user_is_refused() -> None:
    with pytest.raises(UserNotFound):
        User("nobody").update_profile({"name": "X"})


def test_update_records_only_changed_fields() -> None:
    user = created_user()
    user.update_profile({"name": "Ada", "bio": "mathematician"})
    assert user.pending == [UserProfileUpdated(user_id="u1", bio="mathematician")]


def test_noop_update_records_nothing() -> None:
    user = created_user()
    user.update_profile({"name": "Ada", "bio": None})
    assert user.pending == []


def test_absent_fields_stay_unchanged_when_folding() -> None:
    user = created_user()
    user.replay(
        [
            (2, UserProfileUpdated(user_id="u1", bio="b")),
            (3, UserProfileUpdated(user_id="u1", name="Ada L.")),
        ]
    )
    assert user.profile == {"name": "Ada L.", "bio": "b", "avatar_url": None}
    assert user.version == 3


def test_snapshot_round_trip() -> None:
    user = created_user()
    user.update_profile({"bio": "b"})
    copy = User("u1")
    copy.restore(user.snapshot())
    assert (copy.exists, copy.email, copy.profile) == (True, user.email, user.profile)
