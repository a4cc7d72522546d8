"""The users commands: what a caller asks for, as small frozen dataclasses (the command
table in handlers.py routes each to its handler)."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley_contracts.users import UserRole


@dataclass(frozen=True)
class CreateUser:
    user_id: str
    name: str
    email: str


@dataclass(frozen=True)
class UpdateProfile:
    user_id: str
    changes: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Deactivate:
    user_id: str
    reason: str


@dataclass(frozen=True)
class Reactivate:
    user_id: str


@dataclass(frozen=True)
class AddContact:
    user_id: str
    contact_id: str


@dataclass(frozen=True)
class RemoveContact:
    user_id: str
    contact_id: str


@dataclass(frozen=True)
class Block:
    user_id: str  # the blocker
    other_id: str


@dataclass(frozen=True)
class Unblock:
    user_id: str
    other_id: str


@dataclass(frozen=True)
class AssignRole:
    user_id: str
    role: UserRole


@dataclass(frozen=True)
class ChangeEmail:
    user_id: str
    email: str


@dataclass(frozen=True)
class ForgetUser:
    """Publish that the person is forgotten. The caller asked the key owner to destroy the
    key first (`KeyClient.forget`): the key is the data, this event is the notice."""

    user_id: str
    forgotten_by: str | None = None
