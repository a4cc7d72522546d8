"""The user aggregate: a profile that is created once and then edited.

Pure domain: imports only the event-store's domain base and the public event contract (both
free of infrastructure). Commands check invariants and record events; `when` folds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from parley_contracts.users import UserCreated, UserProfileUpdated
from parley_eventstore.domain import Aggregate, Event


class DomainError(Exception):
    """A command that the current state refuses."""


class UserNotFound(DomainError):
    pass


class UserAlreadyExists(DomainError):
    pass


PROFILE_FIELDS = ("name", "bio", "avatar_url")


class User(Aggregate):
    stream_type: ClassVar[str] = "user"
    snapshot_schema_version: ClassVar[int] = 1

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.exists = False
        self.email = ""
        self.profile: dict[str, str | None] = dict.fromkeys(PROFILE_FIELDS)

    # -- commands -------------------------------------------------------------------------

    def create(self, name: str, email: str) -> None:
        if self.exists:
            raise UserAlreadyExists(self.id)
        self.record(UserCreated(user_id=self.id, name=name, email=email))

    def update_profile(self, changes: Mapping[str, str | None]) -> None:
        """Record only the fields whose value really changes (a no-op edit appends nothing).
        None means "leave unchanged"; an empty string clears a field."""
        if not self.exists:
            raise UserNotFound(self.id)
        changed = {
            k: v
            for k, v in changes.items()
            if k in PROFILE_FIELDS and v is not None and self.profile[k] != v
        }
        if changed:
            self.record(UserProfileUpdated(user_id=self.id, **changed))

    # -- state ----------------------------------------------------------------------------

    def when(self, event: Event) -> None:
        match event:
            case UserCreated(name=name, email=email):
                self.exists = True
                self.email = email
                self.profile["name"] = name
            case UserProfileUpdated():
                for field in PROFILE_FIELDS:
                    value = getattr(event, field)
                    if value is not None:  # absent = unchanged (the contract's rule)
                        self.profile[field] = value

    def snapshot(self) -> Mapping[str, Any]:
        return {"exists": self.exists, "email": self.email, "profile": dict(self.profile)}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.exists = bool(state["exists"])
        self.email = str(state["email"])
        self.profile = dict(state["profile"])


EVENTS: tuple[type[Event], ...] = (UserCreated, UserProfileUpdated)
