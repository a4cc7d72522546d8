"""The user aggregate: a profile that is created once and then edited, with a status, a role
(mirrored from the auth context) and a set of contacts.

Pure domain: imports only the event-store's domain base and the public event contract (both
free of infrastructure). Commands check invariants and record events; `when` folds them.
Commands that would change nothing record nothing (a repeated deactivation, adding a contact
twice, removing one that is absent), so retries and mirrored events are harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from parley_contracts.base import FORGOTTEN_NAME
from parley_contracts.users import (
    UserBlocked,
    UserContactAdded,
    UserContactRemoved,
    UserCreated,
    UserForgotten,
    UserProfileEmailChanged,
    UserProfileUpdated,
    UserRole,
    UserRoleAssigned,
    UserStatus,
    UserStatusChanged,
    UserUnblocked,
)
from parley_eventstore.domain import Aggregate, Event


class DomainError(Exception):
    """A command that the current state refuses."""


class UserNotFound(DomainError):
    pass


class UserAlreadyExists(DomainError):
    pass


class ContactIsSelf(DomainError):
    """A user cannot be their own contact."""


class ReservedName(DomainError):
    """A display name that would impersonate Parley itself (see RESERVED_NAMES)."""


class UserDeactivated(DomainError):
    """A deactivated user adds no contacts (an admin reactivates them first)."""


class TooManyContacts(DomainError):
    pass


class BlockIsSelf(DomainError):
    """A user cannot block themselves."""


class TooManyBlocks(DomainError):
    pass


PROFILE_FIELDS = ("name", "bio", "avatar_url")
ROLES: tuple[UserRole, ...] = ("user", "admin")
# display names nobody may take: they would pass for the operators of the service, or for a
# forgotten person's placeholder (parley_contracts.base.FORGOTTEN_NAME)
RESERVED_NAMES = frozenset(
    {
        "admin",
        "administrator",
        "parley",
        "parley support",
        "support",
        "system",
        " ".join(FORGOTTEN_NAME.casefold().split()),
    }
)


def is_reserved(name: str) -> bool:
    return " ".join(name.casefold().split()) in RESERVED_NAMES


MAX_CONTACTS = 5000  # bounds the aggregate's state (and so its snapshot)
# bounds the state too, and what chat and notifications keep per person (docs/decisions.md)
MAX_BLOCKS = 1000


class User(Aggregate):
    stream_type: ClassVar[str] = "user"
    snapshot_schema_version: ClassVar[int] = 2  # 2: status, role, contacts

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.exists = False
        self.email = ""
        self.profile: dict[str, str | None] = dict.fromkeys(PROFILE_FIELDS)
        self.status: UserStatus = "active"
        self.role: UserRole = "user"
        self.role_assigned = False  # the registration's default role was recorded
        self.contacts: set[str] = set()
        self.blocks: set[str] = set()  # the people this user blocks
        self.forgotten = False

    # -- commands -------------------------------------------------------------------------

    def create(self, name: str, email: str) -> None:
        if self.exists:
            raise UserAlreadyExists(self.id)
        if is_reserved(name):
            raise ReservedName(name)
        self.record(UserCreated(user_id=self.id, name=name, email=email))

    def update_profile(self, changes: Mapping[str, str | None]) -> None:
        """Record only the fields whose value really changes (a no-op edit appends nothing).
        None means "leave unchanged"; an empty string clears a field."""
        self._must_exist()
        changed = {
            k: v
            for k, v in changes.items()
            if k in PROFILE_FIELDS and v is not None and self.profile[k] != v
        }
        if is_reserved(changed.get("name") or ""):
            raise ReservedName(str(changed["name"]))
        if changed:
            self.record(UserProfileUpdated(user_id=self.id, **changed))

    def deactivate(self, reason: str) -> None:
        self._must_exist()
        if self.status != "deactivated":
            self.record(UserStatusChanged(user_id=self.id, status="deactivated", reason=reason))

    def reactivate(self) -> None:
        self._must_exist()
        if self.status != "active":
            self.record(UserStatusChanged(user_id=self.id, status="active"))

    def add_contact(self, contact_id: str) -> None:
        """Any id but one's own: whether `contact_id` is a user is not checked (see the
        handler: an answer that differs for unknown ids is an enumeration oracle)."""
        self._must_exist()
        if contact_id == self.id:
            raise ContactIsSelf(self.id)
        if contact_id in self.contacts:
            return
        if self.status == "deactivated":
            raise UserDeactivated(self.id)
        if len(self.contacts) >= MAX_CONTACTS:
            raise TooManyContacts(self.id)
        self.record(UserContactAdded(user_id=self.id, contact_id=contact_id))

    def remove_contact(self, contact_id: str) -> None:
        self._must_exist()
        if contact_id in self.contacts:
            self.record(UserContactRemoved(user_id=self.id, contact_id=contact_id))

    def block(self, other_id: str) -> None:
        """Any id but one's own: whether `other_id` is a user is not checked (blocking is
        about ids others send as; an unknown id costs one entry of the capped list). A
        deactivated user may still block: blocking protects, it never reaches anyone."""
        self._must_exist()
        if other_id == self.id:
            raise BlockIsSelf(self.id)
        if other_id in self.blocks:
            return
        if len(self.blocks) >= MAX_BLOCKS:
            raise TooManyBlocks(self.id)
        self.record(UserBlocked(user_id=self.id, blocked_user_id=other_id))

    def unblock(self, other_id: str) -> None:
        self._must_exist()
        if other_id in self.blocks:
            self.record(UserUnblocked(user_id=self.id, blocked_user_id=other_id))

    def assign_role(self, role: UserRole) -> None:
        self._must_exist()
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        if role != self.role:
            self.record(UserRoleAssigned(user_id=self.id, role=role))

    def assign_default_role(self) -> None:
        """The registration's role step: records the default role once per profile (a role
        given before, e.g. an admin mirrored from auth, is not overwritten)."""
        self._must_exist()
        if not self.role_assigned:
            self.record(UserRoleAssigned(user_id=self.id, role=self.role))

    def change_email(self, email: str) -> None:
        self._must_exist()
        if email != self.email:
            self.record(UserProfileEmailChanged(user_id=self.id, email=email))

    def forget(self, by: str | None) -> None:
        """The person is forgotten (their data key was destroyed by the key owner before):
        from now on the profile shows the placeholder and refuses every other command.
        Allowed without a profile too (an account whose profile was never made), so the
        fact is published either way; forgetting twice records nothing."""
        if not self.forgotten:
            self.record(UserForgotten(user_id=self.id, forgotten_by=by))

    def _must_exist(self) -> None:
        if not self.exists or self.forgotten:
            raise UserNotFound(self.id)

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
            case UserStatusChanged(status=status):
                self.status = status
            case UserContactAdded(contact_id=contact_id):
                self.contacts.add(contact_id)
            case UserContactRemoved(contact_id=contact_id):
                self.contacts.discard(contact_id)
            case UserBlocked(blocked_user_id=other):
                self.blocks.add(other)
            case UserUnblocked(blocked_user_id=other):
                self.blocks.discard(other)
            case UserRoleAssigned(role=role):
                self.role = role
                self.role_assigned = True
            case UserProfileEmailChanged(email=email):
                self.email = email
            case UserForgotten():
                self.forgotten = True
                self.email = ""
                self.profile = dict.fromkeys(PROFILE_FIELDS)
                self.profile["name"] = FORGOTTEN_NAME

    def snapshot(self) -> Mapping[str, Any]:
        return {
            "exists": self.exists,
            "email": self.email,
            "profile": dict(self.profile),
            "status": self.status,
            "role": self.role,
            "role_assigned": self.role_assigned,
            "contacts": sorted(self.contacts),
            "blocks": sorted(self.blocks),
            "forgotten": self.forgotten,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.exists = bool(state["exists"])
        self.email = str(state["email"])
        self.profile = dict(state["profile"])
        self.status = state["status"]
        self.role = state["role"]
        self.role_assigned = bool(state.get("role_assigned", False))  # absent before the saga
        self.contacts = set(state["contacts"])
        self.blocks = set(state.get("blocks", ()))  # absent in snapshots before blocking
        self.forgotten = bool(state.get("forgotten", False))


EVENTS: tuple[type[Event], ...] = (
    UserCreated,
    UserProfileUpdated,
    UserStatusChanged,
    UserContactAdded,
    UserContactRemoved,
    UserRoleAssigned,
    UserProfileEmailChanged,
    UserForgotten,
    UserBlocked,
    UserUnblocked,
)
