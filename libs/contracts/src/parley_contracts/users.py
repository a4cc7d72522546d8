"""Public events of the users context (topic `users.events`, key = user id)."""

from __future__ import annotations

from typing import ClassVar, Literal

from parley_contracts.base import FORGOTTEN_NAME, Event, personal


class UsersEvent(Event):
    context: ClassVar[str] = "users"
    abstract: ClassVar[bool] = True


class UserCreated(UsersEvent):
    """A user profile exists (created by the registration saga or an admin)."""

    user_id: str
    name: str = personal("user_id", FORGOTTEN_NAME, max_length=200)
    email: str = personal("user_id", max_length=320)


class UserProfileUpdated(UsersEvent):
    """Some profile fields changed; absent fields are unchanged."""

    user_id: str
    name: str | None = personal("user_id", FORGOTTEN_NAME, default=None, max_length=200)
    bio: str | None = personal("user_id", default=None, max_length=2000)
    # a URL the person chose (it may name them or where they are): personal since issue 19.5
    avatar_url: str | None = personal("user_id", default=None, max_length=2000)


UserStatus = Literal["active", "deactivated"]
UserRole = Literal["user", "admin"]


class UserStatusChanged(UsersEvent):
    """An admin deactivated or reactivated the user (`reason` is given when deactivating)."""

    user_id: str
    status: UserStatus
    # an admin's words about the person: personal (sealed with the person's key) since 19.5
    reason: str | None = personal("user_id", default=None, max_length=500)


class UserContactAdded(UsersEvent):
    """`contact_id` (another user) is now one of the user's contacts."""

    user_id: str
    contact_id: str


class UserContactRemoved(UsersEvent):
    """`contact_id` is no longer one of the user's contacts."""

    user_id: str
    contact_id: str


class UserBlocked(UsersEvent):
    """`user_id` blocks `blocked_user_id`: the blocked person cannot start a direct
    conversation with them or send into one they share, and in group conversations the
    blocker gets no notifications or mentions from them. On the blocker's stream (key =
    `user_id`); blocking someone already blocked records nothing."""

    user_id: str
    blocked_user_id: str


class UserUnblocked(UsersEvent):
    """`user_id` no longer blocks `blocked_user_id` (recorded only after a `UserBlocked`)."""

    user_id: str
    blocked_user_id: str


class UserRoleAssigned(UsersEvent):
    """The user's role as the users context shows it. The role inside access tokens is the
    auth context's (`parley.auth.RoleChanged`); this one mirrors it, or is set by an admin."""

    user_id: str
    role: UserRole


class UserProfileEmailChanged(UsersEvent):
    """The profile's email address changed (mirrored from `parley.auth.UserEmailChanged`)."""

    user_id: str
    email: str = personal("user_id", max_length=320)


class UserForgotten(UsersEvent):
    """The person asked to be forgotten (or an admin did it for them): their data key is
    destroyed, so every encrypted field of theirs in any event, old or new, reads as its
    placeholder from now on. Consumers redact what they copied: name, address, bio, the
    texts of their messages. Their id stays (other events refer to it)."""

    user_id: str
    forgotten_by: str | None = None
