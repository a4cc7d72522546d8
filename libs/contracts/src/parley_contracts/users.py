"""Public events of the users context (topic `users.events`, key = user id)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from parley_contracts.base import Event


class UsersEvent(Event):
    context: ClassVar[str] = "users"
    abstract: ClassVar[bool] = True


class UserCreated(UsersEvent):
    """A user profile exists (created by the registration saga or an admin)."""

    user_id: str
    name: str = Field(max_length=200)
    email: str = Field(max_length=320)


class UserProfileUpdated(UsersEvent):
    """Some profile fields changed; absent fields are unchanged."""

    user_id: str
    name: str | None = Field(default=None, max_length=200)
    bio: str | None = Field(default=None, max_length=2000)
    avatar_url: str | None = Field(default=None, max_length=2000)
