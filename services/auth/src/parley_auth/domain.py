"""The account aggregate and the auth rules that need no infrastructure.

Events are the truth about an account (registered, verified, active, role, which sessions are
open); secret material (password hash, code hashes, refresh-token hashes, throttle counters)
lives in plain tables of the auth database and never in an event. Pure: imports only the
event-store domain base and the public contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from parley_contracts.auth import (
    AccountActivated,
    AccountClosed,
    AccountDeactivated,
    AccountReactivated,
    EmailVerified,
    PasswordChanged,
    PasswordResetRequested,
    RegistrationCancelled,
    Role,
    RoleChanged,
    SessionRevoked,
    UserEmailChanged,
    UserLoggedIn,
    UserLoggedOut,
    UserRegistered,
)
from parley_eventstore.domain import Aggregate, Event

# a login beyond this many open sessions revokes the oldest (bounds the aggregate's state)
MAX_SESSIONS = 20
PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 256  # argon2 hashes anything, but a 1 MB password is a DoS, not a secret


class DomainError(Exception):
    """A command that the current state refuses."""


class AccountNotFound(DomainError):
    pass


class AccountExists(DomainError):
    pass


class AccountNotActive(DomainError):
    """Not verified or not activated yet: no login."""


class AccountDisabled(DomainError):
    """Deactivated in the users context (an admin): no login, no refresh, until reactivated."""


class RegistrationWasCancelled(DomainError):
    """The registration saga cancelled this account: it cannot be activated any more."""


def normalise_email(email: str) -> str:
    """The form used for uniqueness and lookups: surrounding blanks stripped, lowercased
    (local parts are case-insensitive in practice; no provider-specific dot/plus rewriting)."""
    return email.strip().lower()


def password_problems(password: str, email: str) -> list[str]:
    """Why a new password is refused (empty list: accepted).

    At least 10 characters, at most 256; not made of a single character class (letters only,
    digits only, ...); not the email address or its local part.
    """
    problems = []
    if len(password) < PASSWORD_MIN_LENGTH:
        problems.append(f"use at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        problems.append(f"use at most {PASSWORD_MAX_LENGTH} characters")
    classes = {
        "lower" if c.islower() else "upper" if c.isupper() else "digit" if c.isdigit() else "other"
        for c in password
    }
    if len(classes) < 2:
        problems.append("mix at least two kinds of characters (lower, upper, digits, symbols)")
    lowered = password.strip().lower()
    address = normalise_email(email)
    if lowered and (lowered == address or lowered == address.split("@", 1)[0]):
        problems.append("do not use your email address as password")
    return problems


class Account(Aggregate):
    stream_type: ClassVar[str] = "account"
    snapshot_schema_version: ClassVar[int] = 1

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.exists = False
        self.email = ""
        self.name = ""
        self.verified = False
        self.active = False
        self.role: Role = "user"
        self.sessions: list[str] = []  # open sessions, oldest first
        self.cancelled = False
        self.closed = False
        self.disabled = False
        # the users stream version of the last status change applied (each applied once)
        self.status_version = 0

    # -- commands -------------------------------------------------------------------------

    def register(self, email: str, name: str) -> None:
        if self.exists:
            raise AccountExists(self.id)
        self.record(UserRegistered(user_id=self.id, email=normalise_email(email), name=name))

    def verify_email(self) -> None:
        """The holder entered the code mailed to the account's address. Logging in also needs
        the account activated, which the registration saga does as its last step."""
        self._require_exists()
        if not self.verified:
            self.record(EmailVerified(user_id=self.id, email=self.email))

    def activate(self) -> None:
        """The registration saga's last step: every other context is ready for this account."""
        self._require_exists()
        if self.cancelled:
            raise RegistrationWasCancelled(self.id)
        if not self.active:
            self.record(AccountActivated(user_id=self.id))

    def cancel_registration(self, reason: str) -> None:
        """The registration saga compensates: the account is closed and cannot be used again
        (its address was released by the caller). Cancelling twice records nothing."""
        if self.exists and not self.cancelled:
            self.record(RegistrationCancelled(user_id=self.id, reason=reason))

    def log_in(self, session_id: str) -> list[str]:
        """Open a session; returns the sessions revoked to stay within MAX_SESSIONS."""
        self._require_exists()
        if not (self.verified and self.active):
            raise AccountNotActive(self.id)
        if self.disabled:
            raise AccountDisabled(self.id)
        self.record(UserLoggedIn(user_id=self.id, session_id=session_id))
        revoked = self.sessions[: max(0, len(self.sessions) - MAX_SESSIONS)]
        for old in revoked:
            self.record(SessionRevoked(user_id=self.id, session_id=old, reason="session_limit"))
        return revoked

    def log_out(self, session_id: str, expires_at: datetime | None = None) -> None:
        """End one session; an already ended session records nothing."""
        if session_id in self.sessions:
            self.record(
                UserLoggedOut(user_id=self.id, session_id=session_id, expires_at=expires_at)
            )

    def revoke_session(
        self, session_id: str, reason: str, expires_at: datetime | None = None
    ) -> None:
        if session_id in self.sessions:
            self.record(
                SessionRevoked(
                    user_id=self.id, session_id=session_id, reason=reason, expires_at=expires_at
                )
            )

    def request_password_reset(self) -> None:
        self._require_exists()
        self.record(PasswordResetRequested(user_id=self.id))

    def change_password(self, expiries: Mapping[str, datetime | None] | None = None) -> None:
        """A reset code was confirmed: the password changed and every session ends. The code
        proved control of the address, so an unverified account becomes verified too (not
        active: activation is the registration saga's)."""
        self._require_exists()
        self.verify_email()
        self.record(PasswordChanged(user_id=self.id))
        for session_id in list(self.sessions):
            self.revoke_session(session_id, "password_changed", (expiries or {}).get(session_id))

    def change_email(self, new_email: str) -> None:
        self._require_exists()
        address = normalise_email(new_email)
        if address != self.email:
            self.record(UserEmailChanged(user_id=self.id, email=address))

    def revoke_other_sessions(
        self, keep: str, reason: str, expiries: Mapping[str, datetime | None] | None = None
    ) -> None:
        """End every open session but `keep` (the one that made a sensitive change)."""
        for session_id in [s for s in self.sessions if s != keep]:
            self.revoke_session(session_id, reason, (expiries or {}).get(session_id))

    def follow_status(
        self,
        status: str,
        status_version: int,
        expiries: Mapping[str, datetime | None] | None = None,
    ) -> None:
        """Follow the users context's `UserStatusChanged` at `status_version` of the user's
        stream: `deactivated` disables login and refresh and ends every session, `active`
        enables them again. A version already applied (a redelivery, a replay) records
        nothing, so the status is the one of the newest change whatever is delivered twice.
        A closed or cancelled account stays as it is (the registration saga's compensation
        deactivates the profile of a registration it cancels); an account auth never had (an
        admin-made profile) raises AccountNotFound."""
        self._require_exists()
        if self.closed or self.cancelled or status_version <= self.status_version:
            return
        if status == "deactivated":
            for session_id in list(self.sessions):
                reason, expiry = "account_deactivated", (expiries or {}).get(session_id)
                self.revoke_session(session_id, reason, expiry)
            self.record(AccountDeactivated(user_id=self.id, status_version=status_version))
        elif status == "active":
            self.record(AccountReactivated(user_id=self.id, status_version=status_version))
        else:
            raise ValueError(f"unknown user status {status!r}")

    def change_role(self, role: Role) -> None:
        self._require_exists()
        if role != self.role:
            self.record(RoleChanged(user_id=self.id, role=role, previous_role=self.role))

    def close(self, expiries: Mapping[str, datetime | None] | None = None) -> None:
        """Close the account for good (its holder is forgotten): every session ends, no login
        again. Closing a closed account records nothing."""
        if self.closed:
            return
        for session_id in list(self.sessions):
            self.revoke_session(session_id, "account_closed", (expiries or {}).get(session_id))
        self.record(AccountClosed(user_id=self.id))

    def _require_exists(self) -> None:
        if not self.exists:
            raise AccountNotFound(self.id)

    # -- state ----------------------------------------------------------------------------

    def when(self, event: Event) -> None:
        match event:
            case UserRegistered(email=email, name=name):
                self.exists = True
                self.email = email
                self.name = name
            case EmailVerified():
                self.verified = True
            case AccountActivated():
                self.active = True
            case RegistrationCancelled():
                self.cancelled = True
                self.active = False
            case UserLoggedIn(session_id=session_id):
                self.sessions.append(session_id)
            case UserLoggedOut(session_id=session_id) | SessionRevoked(session_id=session_id):
                if session_id in self.sessions:
                    self.sessions.remove(session_id)
            case UserEmailChanged(email=email):
                self.email = email
            case RoleChanged(role=role):
                self.role = role
            case AccountClosed():
                self.closed = True
                self.active = False
            case AccountDeactivated(status_version=version):
                self.disabled = True
                self.status_version = version
            case AccountReactivated(status_version=version):
                self.disabled = False
                self.status_version = version
            case PasswordResetRequested() | PasswordChanged():
                pass

    def snapshot(self) -> Mapping[str, Any]:
        return {
            "exists": self.exists,
            "email": self.email,
            "name": self.name,
            "verified": self.verified,
            "active": self.active,
            "role": self.role,
            "sessions": list(self.sessions),
            "cancelled": self.cancelled,
            "closed": self.closed,
            "disabled": self.disabled,
            "status_version": self.status_version,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.exists = bool(state["exists"])
        self.email = str(state["email"])
        self.name = str(state["name"])
        self.verified = bool(state["verified"])
        self.active = bool(state["active"])
        self.role = "admin" if state["role"] == "admin" else "user"
        self.sessions = [str(s) for s in state["sessions"]]
        self.cancelled = bool(state.get("cancelled", False))  # absent from older snapshots
        self.closed = bool(state.get("closed", False))
        self.disabled = bool(state.get("disabled", False))
        self.status_version = int(state.get("status_version", 0))


EVENTS: tuple[type[Event], ...] = (
    AccountClosed,
    AccountDeactivated,
    AccountReactivated,
    UserRegistered,
    EmailVerified,
    AccountActivated,
    UserLoggedIn,
    UserLoggedOut,
    SessionRevoked,
    PasswordResetRequested,
    PasswordChanged,
    UserEmailChanged,
    RoleChanged,
    RegistrationCancelled,
)
