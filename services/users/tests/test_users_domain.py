"""The user aggregate's rules, with no database."""

import pytest
from parley_contracts.users import (
    UserContactAdded,
    UserContactRemoved,
    UserCreated,
    UserProfileEmailChanged,
    UserProfileUpdated,
    UserRoleAssigned,
    UserStatusChanged,
)
from parley_users.domain import (
    ContactIsSelf,
    User,
    UserAlreadyExists,
    UserDeactivated,
    UserNotFound,
)


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
    user.add_contact("u2")
    user.assign_role("admin")
    user.deactivate("spam")
    copy = User("u1")
    copy.restore(user.snapshot())
    assert (copy.exists, copy.email, copy.profile) == (True, user.email, user.profile)
    assert (copy.contacts, copy.role, copy.status) == ({"u2"}, "admin", "deactivated")


def test_deactivate_and_reactivate_record_once() -> None:
    user = created_user()
    user.deactivate("spam")
    user.deactivate("again")  # already deactivated: nothing new
    user.reactivate()
    user.reactivate()
    assert user.pending == [
        UserStatusChanged(user_id="u1", status="deactivated", reason="spam"),
        UserStatusChanged(user_id="u1", status="active"),
    ]
    assert user.status == "active"


def test_reactivating_an_active_user_records_nothing() -> None:
    user = created_user()
    user.reactivate()
    assert user.pending == []


@pytest.mark.parametrize(
    "command",
    [
        lambda u: u.deactivate("x"),
        lambda u: u.reactivate(),
        lambda u: u.add_contact("u2"),
        lambda u: u.remove_contact("u2"),
        lambda u: u.assign_role("admin"),
        lambda u: u.change_email("a@b.c"),
    ],
)
def test_commands_on_an_unknown_user_are_refused(command: object) -> None:
    with pytest.raises(UserNotFound):
        command(User("nobody"))  # type: ignore[operator]


def test_contacts_add_twice_is_a_noop_and_remove_absent_is_a_noop() -> None:
    user = created_user()
    user.add_contact("u2")
    user.add_contact("u2")
    user.remove_contact("u3")
    user.remove_contact("u2")
    user.remove_contact("u2")
    user.add_contact("u2")
    assert user.pending == [
        UserContactAdded(user_id="u1", contact_id="u2"),
        UserContactRemoved(user_id="u1", contact_id="u2"),
        UserContactAdded(user_id="u1", contact_id="u2"),
    ]
    assert user.contacts == {"u2"}


def test_a_user_is_not_their_own_contact() -> None:
    with pytest.raises(ContactIsSelf):
        created_user().add_contact("u1")


def test_a_deactivated_user_adds_no_contacts_but_may_remove_them() -> None:
    user = created_user()
    user.add_contact("u2")
    user.deactivate("spam")
    with pytest.raises(UserDeactivated):
        user.add_contact("u3")
    user.add_contact("u2")  # already a contact: still a no-op, not an error
    user.remove_contact("u2")
    assert user.contacts == set()


def test_role_and_email_record_only_changes() -> None:
    user = created_user()
    user.assign_role("user")  # the default
    user.assign_role("admin")
    user.assign_role("admin")
    user.change_email("ada@example.test")  # unchanged
    user.change_email("ada@new.test")
    assert user.pending == [
        UserRoleAssigned(user_id="u1", role="admin"),
        UserProfileEmailChanged(user_id="u1", email="ada@new.test"),
    ]
    assert (user.role, user.email) == ("admin", "ada@new.test")


def test_an_old_snapshot_is_not_restored() -> None:
    # version 1 snapshots lack status/role/contacts: the repository ignores them (rebuilds
    # from events) because the schema version was bumped
    assert User.snapshot_schema_version == 2


def test_reserved_display_names_are_refused_at_creation_and_edit() -> None:
    from parley_users.domain import ReservedName

    for name in ("Parley", "  parley   SUPPORT ", "Admin"):
        with pytest.raises(ReservedName):
            User("u1").create(name, "a@x.test")
    user = User("u1")
    user.create("Ada", "a@x.test")
    user.mark_saved(user.next_version)
    with pytest.raises(ReservedName):
        user.update_profile({"name": "System"})
    user.update_profile({"name": "Parley fan"})  # only the exact names are reserved
    assert len(user.pending) == 1


def test_the_default_role_is_recorded_once() -> None:
    user = User("u1")
    user.create("Ada", "a@x.test")
    user.mark_saved(user.next_version)
    user.assign_default_role()
    assert [type(e).__name__ for e in user.pending] == ["UserRoleAssigned"]
    user.mark_saved(user.next_version)
    user.assign_default_role()
    assert user.pending == []
    copy = User("u1")
    copy.restore(user.snapshot())
    copy.assign_default_role()
    assert copy.pending == []


def test_the_forgotten_placeholder_is_a_reserved_name() -> None:
    from parley_users.domain import is_reserved

    assert is_reserved("Forgotten  USER")


# -- blocking -------------------------------------------------------------------------------


def test_block_records_once_and_unblock_only_after_a_block() -> None:
    from parley_contracts.users import UserBlocked, UserUnblocked

    user = created_user()
    user.unblock("u2")  # not blocked: nothing to record
    assert user.pending == []
    user.block("u2")
    user.block("u2")  # blocking twice: a no-op
    assert user.pending == [UserBlocked(user_id="u1", blocked_user_id="u2")]
    assert user.blocks == {"u2"}
    user.unblock("u2")
    user.unblock("u2")
    assert user.pending[1:] == [UserUnblocked(user_id="u1", blocked_user_id="u2")]
    assert user.blocks == set()


def test_blocking_oneself_or_without_a_profile_is_refused() -> None:
    from parley_users.domain import BlockIsSelf

    with pytest.raises(BlockIsSelf):
        created_user().block("u1")
    with pytest.raises(UserNotFound):
        User("nobody").block("u2")


def test_the_block_list_is_capped_and_survives_a_snapshot() -> None:
    from parley_contracts.users import UserBlocked
    from parley_users.domain import MAX_BLOCKS, TooManyBlocks

    user = created_user()
    blocked = [
        (v + 2, UserBlocked(user_id="u1", blocked_user_id=f"b{v}")) for v in range(MAX_BLOCKS)
    ]
    user.replay(blocked)
    with pytest.raises(TooManyBlocks):
        user.block("one-more")
    user.block("b0")  # already blocked: still a no-op at the cap
    user.unblock("b0")
    user.block("one-more")  # a freed place can be taken
    restored = User("u1")
    restored.restore(user.snapshot())
    assert restored.blocks == user.blocks
    old = dict(user.snapshot())
    del old["blocks"]  # a snapshot written before blocking existed
    restored.restore(old)
    assert restored.blocks == set()


def test_a_deactivated_user_may_still_block() -> None:
    user = created_user()
    user.replay([(2, UserStatusChanged(user_id="u1", status="deactivated", reason="r"))])
    user.block("u2")
    assert user.blocks == {"u2"}
