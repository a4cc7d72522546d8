"""The auth commands: what a caller asks for, as small frozen dataclasses (the command
table in handlers.py routes each to its handler)."""

from __future__ import annotations

from dataclasses import dataclass

from parley_auth.tokens import AccessClaims


@dataclass(frozen=True)
class Register:
    email: str
    password: str
    name: str


@dataclass(frozen=True)
class VerifyEmail:
    email: str
    code: str


@dataclass(frozen=True)
class ActivateAccount:
    account_id: str
    key: str  # the saga's command id: a retried step appends nothing new


@dataclass(frozen=True)
class CancelRegistration:
    account_id: str
    reason: str
    key: str


@dataclass(frozen=True)
class LogIn:
    email: str
    password: str


@dataclass(frozen=True)
class Refresh:
    refresh_token: str


@dataclass(frozen=True)
class LogOut:
    principal: AccessClaims


@dataclass(frozen=True)
class RequestPasswordReset:
    email: str


@dataclass(frozen=True)
class ConfirmPasswordReset:
    email: str
    token: str  # the reset link's (128 bits)
    new_password: str


@dataclass(frozen=True)
class Forget:
    account_id: str


@dataclass(frozen=True)
class RequestEmailChange:
    principal: AccessClaims
    new_email: str
    password: str


@dataclass(frozen=True)
class ConfirmEmailChange:
    principal: AccessClaims
    code: str


@dataclass(frozen=True)
class ChangeRole:
    email: str
    role: str


@dataclass(frozen=True)
class FollowUserStatus:
    """The users context changed the person's status (`UserStatusChanged` at version
    `status_version` of their stream): deactivated accounts may not log in."""

    account_id: str
    status: str
    status_version: int
