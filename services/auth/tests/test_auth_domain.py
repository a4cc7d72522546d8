"""The account aggregate's rules and the password/email policies, with no database."""

from datetime import UTC, datetime

import pytest
from parley_auth.domain import (
    MAX_SESSIONS,
    Account,
    AccountDisabled,
    AccountExists,
    AccountNotActive,
    AccountNotFound,
    RegistrationWasCancelled,
    normalise_email,
    password_problems,
)
from parley_contracts.auth import (
    AccountActivated,
    AccountDeactivated,
    AccountReactivated,
    EmailVerified,
    PasswordChanged,
    RegistrationCancelled,
    RoleChanged,
    SessionRevoked,
    UserEmailChanged,
    UserLoggedIn,
    UserLoggedOut,
    UserRegistered,
)


def saved(account: Account) -> Account:
    """The account as a fresh load would see it: pending events folded, version advanced."""
    account.mark_saved(account.next_version)
    return account


def active_account() -> Account:
    account = Account("a1")
    account.register("  Ada@Example.TEST ", "Ada")
    account.verify_email()
    account.activate()
    return saved(account)


def test_register_normalises_the_email_and_records_no_secret() -> None:
    account = Account("a1")
    account.register(" Ada@Example.TEST", "Ada")
    assert account.pending == [UserRegistered(user_id="a1", email="ada@example.test", name="Ada")]
    assert set(UserRegistered.model_fields) == {"user_id", "email", "name"}


def test_register_twice_is_refused() -> None:
    with pytest.raises(AccountExists):
        active_account().register("ada@example.test", "Ada")


def test_verify_and_activation_are_separate_and_recorded_once() -> None:
    account = Account("a1")
    account.register("ada@example.test", "Ada")
    saved(account)
    account.verify_email()
    assert account.pending == [EmailVerified(user_id="a1", email="ada@example.test")]
    saved(account).verify_email()
    assert account.pending == []
    account.activate()  # the registration saga's last step
    assert account.pending == [AccountActivated(user_id="a1")]
    saved(account).activate()
    assert account.pending == []


def test_verified_but_not_activated_cannot_log_in() -> None:
    account = Account("a1")
    account.register("ada@example.test", "Ada")
    account.verify_email()
    with pytest.raises(AccountNotActive):
        saved(account).log_in("s1")


def test_a_cancelled_registration_closes_the_account_for_good() -> None:
    account = Account("a1")
    account.register("ada@example.test", "Ada")
    saved(account).cancel_registration("registration_failed")
    assert account.pending == [RegistrationCancelled(user_id="a1", reason="registration_failed")]
    saved(account).cancel_registration("again")
    assert account.pending == []
    with pytest.raises(RegistrationWasCancelled):
        account.activate()
    copy = Account("a1")
    copy.restore(account.snapshot())
    assert copy.cancelled and not copy.active


def test_login_needs_a_verified_active_account() -> None:
    account = Account("a1")
    account.register("ada@example.test", "Ada")
    with pytest.raises(AccountNotActive):
        account.log_in("s1")
    with pytest.raises(AccountNotFound):
        Account("nobody").log_in("s1")


def test_login_logout_and_revocation_track_open_sessions() -> None:
    account = active_account()
    account.log_in("s1")
    account.log_in("s2")
    assert account.sessions == ["s1", "s2"]
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    account.log_out("s1", expiry)
    account.log_out("s1", expiry)  # already ended: nothing more
    account.revoke_session("s2", "refresh_token_reuse")
    account.revoke_session("s2", "refresh_token_reuse")
    assert account.pending == [
        UserLoggedIn(user_id="a1", session_id="s1"),
        UserLoggedIn(user_id="a1", session_id="s2"),
        UserLoggedOut(user_id="a1", session_id="s1", expires_at=expiry),
        SessionRevoked(user_id="a1", session_id="s2", reason="refresh_token_reuse"),
    ]
    assert account.sessions == []


def test_sessions_beyond_the_limit_revoke_the_oldest() -> None:
    account = active_account()
    for i in range(MAX_SESSIONS):
        assert account.log_in(f"s{i}") == []
    assert account.log_in("newest") == ["s0"]
    assert account.pending[-1] == SessionRevoked(
        user_id="a1", session_id="s0", reason="session_limit"
    )
    assert len(account.sessions) == MAX_SESSIONS


def test_password_change_revokes_every_session() -> None:
    account = active_account()
    account.log_in("s1")
    account.log_in("s2")
    saved(account)
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    account.change_password({"s1": expiry})
    assert account.pending == [
        PasswordChanged(user_id="a1"),
        SessionRevoked(user_id="a1", session_id="s1", reason="password_changed", expires_at=expiry),
        SessionRevoked(user_id="a1", session_id="s2", reason="password_changed"),
    ]


def test_password_reset_of_an_unverified_account_verifies_it() -> None:
    account = Account("a1")
    account.register("ada@example.test", "Ada")
    saved(account).change_password()
    assert [type(e) for e in account.pending] == [EmailVerified, PasswordChanged]


def test_email_and_role_changes_record_only_real_changes() -> None:
    account = active_account()
    account.change_email("ADA@example.test")
    account.change_role("user")
    assert account.pending == []
    account.change_email("ada@new.test")
    account.change_role("admin")
    assert account.pending == [
        UserEmailChanged(user_id="a1", email="ada@new.test"),
        RoleChanged(user_id="a1", role="admin", previous_role="user"),
    ]


def test_deactivation_ends_every_session_and_refuses_login_until_reactivated() -> None:
    account = active_account()
    account.log_in("s1")
    account.log_in("s2")
    saved(account)
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    account.follow_status("deactivated", 4, {"s1": expiry})
    assert account.pending == [
        SessionRevoked(
            user_id="a1", session_id="s1", reason="account_deactivated", expires_at=expiry
        ),
        SessionRevoked(user_id="a1", session_id="s2", reason="account_deactivated"),
        AccountDeactivated(user_id="a1", status_version=4),
    ]
    saved(account)
    assert account.disabled and account.sessions == []
    with pytest.raises(AccountDisabled):
        account.log_in("s3")
    account.follow_status("active", 5)
    assert account.pending == [AccountReactivated(user_id="a1", status_version=5)]
    saved(account)
    account.log_in("s3")
    assert account.sessions == ["s3"]


def test_a_status_change_is_applied_once_by_its_stream_version() -> None:
    """Redeliveries and replays of users.events change nothing: a version at or below the last
    applied one records nothing (an old deactivation never ends sessions opened since)."""
    account = active_account()
    account.follow_status("deactivated", 3)
    account.follow_status("active", 6)
    saved(account)
    account.log_in("s9")
    saved(account)
    for status, version in (("deactivated", 3), ("active", 6), ("deactivated", 5)):
        account.follow_status(status, version)
    assert account.pending == []
    assert not account.disabled and account.sessions == ["s9"]
    with pytest.raises(ValueError, match="unknown user status"):
        account.follow_status("suspended", 7)
    with pytest.raises(AccountNotFound):
        Account("nobody").follow_status("deactivated", 1)


def test_closed_and_cancelled_accounts_ignore_status_changes() -> None:
    account = active_account()
    account.close()
    saved(account)
    account.follow_status("active", 2)
    account.follow_status("deactivated", 3)
    assert account.pending == [] and account.closed
    cancelled = Account("a2")
    cancelled.register("bo@example.test", "Bo")
    cancelled.cancel_registration("registration_failed")
    saved(cancelled)
    cancelled.follow_status("deactivated", 2)  # the saga's compensation deactivated the profile
    assert cancelled.pending == []


def test_revoking_the_other_sessions_keeps_the_one_given() -> None:
    account = active_account()
    for session in ("s1", "s2", "s3"):
        account.log_in(session)
    saved(account)
    account.revoke_other_sessions("s2", "email_changed")
    assert [(e.session_id, e.reason) for e in account.pending] == [  # type: ignore[attr-defined]
        ("s1", "email_changed"),
        ("s3", "email_changed"),
    ]
    assert saved(account).sessions == ["s2"]


def test_snapshot_round_trip() -> None:
    account = active_account()
    account.log_in("s1")
    account.change_role("admin")
    account.follow_status("deactivated", 7)
    copy = Account("a1")
    copy.restore(account.snapshot())
    assert copy.snapshot() == account.snapshot()
    assert (copy.role, copy.sessions, copy.verified) == ("admin", [], True)
    assert (copy.disabled, copy.status_version) == (True, 7)


def test_normalise_email() -> None:
    assert normalise_email("  Ada.Lovelace@Example.TEST\n") == "ada.lovelace@example.test"


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("Tr0ub4dor&3x", True),
        ("correct horse battery", True),  # letters and spaces: two classes
        ("short1A", False),
        ("abcdefghijkl", False),  # one class
        ("123456789012", False),
        ("ADA@EXAMPLE.TEST", False),  # the email itself
        ("x" * 257 + "1", False),
    ],
)
def test_password_policy(password: str, ok: bool) -> None:
    assert (password_problems(password, "ada@example.test") == []) is ok


def test_password_equal_to_the_local_part_is_refused() -> None:
    assert password_problems("ada.lovelace", "ada.lovelace@example.test")
    assert password_problems("Ada.Lovelace1", "ada.lovelace1@example.test")
