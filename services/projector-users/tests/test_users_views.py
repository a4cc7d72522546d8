"""The users view handlers, without servers."""

import uuid
from datetime import UTC, datetime

from parley_messaging.envelope import Envelope, ce_type
from parley_projector_users.views import (
    contact_added,
    contact_removed,
    email_changed,
    profile_updated,
    role_assigned,
    status_changed,
    user_created,
    users_projection,
)


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
        envelope("UserCreated"),
        {"user_id": "u1", "name": "Émilie Noël", "email": "Emilie.Noel@X.test"},
    )
    assert write.doc_id == "u1"
    fields = write.update["$set"]
    assert fields["name"] == "Émilie Noël"
    assert fields["bio"] is None
    assert (fields["role"], fields["status"]) == ("user", "active")
    assert fields["name_key"] == "emilie noel"
    assert fields["email_key"] == "emilie.noel@x.test"
    assert {"emi", "noel", "emilie n"} <= set(fields["search_name"])
    assert {"emilie.n", "noe"} <= set(fields["search_email"])
    assert not any("x.test" in t for t in fields["search_email"])  # the local part only


def test_a_new_name_gets_new_tokens_and_sort_key() -> None:
    (write,) = profile_updated(envelope("UserProfileUpdated"), {"user_id": "u1", "name": "Zoë"})
    fields = write.update["$set"]
    assert (fields["name_key"], fields["search_name"]) == ("zoe", ["z", "zo", "zoe"])


def test_status_role_and_email_set_their_fields() -> None:
    e = envelope("X")
    (status,) = status_changed(e, {"user_id": "u1", "status": "deactivated", "reason": "spam"})
    assert status.update["$set"]["status"] == "deactivated"
    assert status.update["$set"]["status_reason"] == "spam"
    (active,) = status_changed(e, {"user_id": "u1", "status": "active", "reason": None})
    assert active.update["$set"]["status_reason"] is None
    (role,) = role_assigned(e, {"user_id": "u1", "role": "admin"})
    assert role.update["$set"]["role"] == "admin"
    (email,) = email_changed(e, {"user_id": "u1", "email": "New@Y.test"})
    assert email.update["$set"]["email_key"] == "new@y.test"
    assert "new" in email.update["$set"]["search_email"]


def test_contacts_are_one_document_per_pair_with_a_tombstone() -> None:
    e = envelope("X")
    (added,) = contact_added(e, {"user_id": "u1", "contact_id": "u2"})
    (removed,) = contact_removed(e, {"user_id": "u1", "contact_id": "u2"})
    assert added.collection == removed.collection == "contacts"
    assert added.doc_id == removed.doc_id == "u1:u2"
    assert added.update["$set"]["removed"] is False
    assert removed.update["$set"]["removed"] is True
    assert set(removed.update) == {"$set"}  # never a delete


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


def test_redacted_fields_and_user_forgotten_show_the_placeholder_only() -> None:
    from parley_projector_users.views import user_forgotten

    (created,) = user_created(
        envelope("UserCreated"),
        {"user_id": "u1", "name": "Forgotten user", "email": "", "_redacted": ["email", "name"]},
    )
    fields = created.update["$set"]
    assert fields["name"] == "Forgotten user"
    assert (fields["email"], fields["email_key"], fields["search_email"]) == (None, None, [])
    (updated,) = profile_updated(
        envelope("UserProfileUpdated"), {"user_id": "u1", "bio": "", "_redacted": ["bio"]}
    )
    assert updated.update["$set"]["bio"] is None
    (forgotten,) = user_forgotten(envelope("UserForgotten"), {"user_id": "u1"})
    fields = forgotten.update["$set"]
    assert fields["name"] == "Forgotten user" and fields["forgotten"] is True
    assert fields["email"] is None and fields["bio"] is None
    assert "UserForgotten" in users_projection().handlers


def test_a_forgotten_persons_avatar_and_status_reason_are_gone_not_placeholders() -> None:
    """issue 19.5: avatar_url and the deactivation reason are personal now; once the key is
    gone they decrypt to "" (listed in _redacted), and the read model holds nothing."""
    from parley_projector_users.views import user_forgotten

    (updated,) = profile_updated(
        envelope("UserProfileUpdated"),
        {"user_id": "u1", "avatar_url": "", "_redacted": ["avatar_url"]},
    )
    assert updated.update["$set"]["avatar_url"] is None
    (status,) = status_changed(
        envelope("UserStatusChanged"),
        {"user_id": "u1", "status": "deactivated", "reason": "", "_redacted": ["reason"]},
    )
    assert status.update["$set"]["status_reason"] is None
    (forgotten,) = user_forgotten(envelope("UserForgotten"), {"user_id": "u1"})
    assert forgotten.update["$set"]["avatar_url"] is None
    assert forgotten.update["$set"]["status_reason"] is None


def test_blocks_are_one_document_per_pair_with_a_tombstone() -> None:
    from parley_projector_users.views import user_blocked, user_unblocked

    e = envelope("X")
    data = {"user_id": "u1", "blocked_user_id": "u2"}
    (blocked,) = user_blocked(e, data)
    (unblocked,) = user_unblocked(e, data)
    assert blocked.collection == unblocked.collection == "blocks"
    assert blocked.doc_id == unblocked.doc_id == "u1:u2"
    assert blocked.update["$set"]["removed"] is False
    assert unblocked.update["$set"]["removed"] is True
    assert set(unblocked.update) == {"$set"}  # never a delete
    handlers = users_projection().handlers
    assert handlers["UserBlocked"] is user_blocked
    assert handlers["UserUnblocked"] is user_unblocked


def test_registrations_are_pending_until_the_address_is_verified() -> None:
    """auth.events: UserRegistered -> pending, EmailVerified -> not; in a collection of their
    own (the users documents are the users streams'), and no progress kept for auth."""
    from parley_projector_users.views import email_verified, user_registered

    e = envelope("X")
    (registered,) = user_registered(e, {"user_id": "u1", "email": "pe1.x", "name": "pe1.y"})
    (verified,) = email_verified(e, {"user_id": "u1", "email": "pe1.x"})
    assert registered.collection == verified.collection == "registrations"
    assert registered.doc_id == verified.doc_id == "u1"
    assert registered.update["$set"]["pending"] is True
    assert verified.update["$set"]["pending"] is False
    assert "pe1.x" not in str(registered.update)  # nothing personal kept
    projection = users_projection()
    assert "auth.events" in projection.topics
    assert projection.handlers["UserRegistered"] is user_registered
    assert projection.handlers["EmailVerified"] is email_verified
    assert not projection.tracks("auth/u1") and projection.tracks("users/u1")
