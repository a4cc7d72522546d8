"""Public events of the auth context (topic `auth.events`, key = user id = account id).

No secret ever appears here: password hashes, one-time codes and refresh tokens stay in the auth
service's own tables. `UserLoggedOut` and `SessionRevoked` carry `user_id` and `session_id`:
that is what other services (libs/authn) use to refuse the session's access tokens before they
expire; `expires_at` (the expiry of the session's last access token) tells them how long to
remember the revocation.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from parley_contracts.base import FORGOTTEN_NAME, Event, personal

Role = Literal["user", "admin"]


class AuthEvent(Event):
    context: ClassVar[str] = "auth"
    abstract: ClassVar[bool] = True


class UserRegistered(AuthEvent):
    """An account was created with an email address and a display name (not yet verified).
    `email` and `name` are encrypted with the account's data key (`x-parley-encrypted`)."""

    user_id: str
    email: str = personal("user_id", max_length=320)
    name: str = personal("user_id", FORGOTTEN_NAME, max_length=200)


class EmailVerified(AuthEvent):
    """The account holder proved control of `email` with a one-time code."""

    user_id: str
    email: str = personal("user_id", max_length=320)


class AccountActivated(AuthEvent):
    """The account may log in."""

    user_id: str


class UserLoggedIn(AuthEvent):
    """A new session started (password login)."""

    user_id: str
    session_id: str


class UserLoggedOut(AuthEvent):
    """The holder ended the session: its refresh token is void and its access tokens must be
    refused until `expires_at` (after that they are expired anyway)."""

    user_id: str
    session_id: str
    expires_at: datetime | None = None


class SessionRevoked(AuthEvent):
    """The service ended a session: refresh-token reuse, password change, session limit, an
    email change (the other sessions), a deactivated or closed account."""

    user_id: str
    session_id: str
    reason: str = Field(max_length=100)
    expires_at: datetime | None = None


class PasswordResetRequested(AuthEvent):
    """A password-reset code was mailed to the account's address."""

    user_id: str


class PasswordChanged(AuthEvent):
    """The password changed (through a reset code); every session was revoked with it."""

    user_id: str


class UserEmailChanged(AuthEvent):
    """The account's address changed to `email` (the holder proved control of it)."""

    user_id: str
    email: str = personal("user_id", max_length=320)


class AccountClosed(AuthEvent):
    """The account is closed for good (its holder was forgotten, `parley.users.UserForgotten`):
    no login, every session revoked (each also as `SessionRevoked`), the address released."""

    user_id: str


class AccountDeactivated(AuthEvent):
    """The account may not log in or refresh (it follows `parley.users.UserStatusChanged`
    `deactivated`); every open session was revoked with it (each also as `SessionRevoked`,
    reason `account_deactivated`). `status_version` is the version of the user's stream in
    `users.events` whose status change this follows: each is applied once, in order."""

    user_id: str
    status_version: int = Field(ge=1)


class AccountReactivated(AuthEvent):
    """The account may log in again (`parley.users.UserStatusChanged` `active`); sessions
    revoked by the deactivation stay revoked. `status_version` as in `AccountDeactivated`."""

    user_id: str
    status_version: int = Field(ge=1)


class RoleChanged(AuthEvent):
    """The account's role changed; access tokens issued from now on carry it."""

    user_id: str
    role: Role
    previous_role: Role


class RegistrationCancelled(AuthEvent):
    """The registration could not be completed (the registration saga compensated): the account
    is closed for good and its address is free to register again."""

    user_id: str
    reason: str = Field(max_length=200)
