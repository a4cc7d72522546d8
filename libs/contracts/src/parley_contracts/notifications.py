"""Public events of the notifications context (topic `notifications.events`).

Two kinds of streams, key = the aggregate id:
- a notification (id = uuid5 of (message id, recipient id): a redelivered `MessageSent`
  names the same notification, so it is never created twice): NotificationCreated, then
  NotificationRead and/or NotificationEmailed;
- a user's preferences (id = the user id): NotificationPreferencesUpdated, each carrying the
  whole new state (no event means the defaults: in-app on, email off).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from parley_contracts.base import REDACTED_TEXT, Event, personal

NotificationKind = Literal["message"]
PREVIEW_LENGTH = 140


class NotificationsEvent(Event):
    context: ClassVar[str] = "notifications"
    abstract: ClassVar[bool] = True


class NotificationCreated(NotificationsEvent):
    """`user_id` has a new in-app notification: `sender_id` sent message `message_id` in
    `conversation_id`; `preview` is the message's first 140 characters."""

    notification_id: str
    user_id: str
    kind: NotificationKind = "message"
    conversation_id: str
    message_id: str
    sender_id: str
    preview: str = personal("sender_id", REDACTED_TEXT, max_length=PREVIEW_LENGTH)
    # the message mentions `user_id` (still `kind` "message": a consumer that shows messages
    # shows this one; a mention may reach someone who muted the conversation)
    mention: bool = False


class NotificationRead(NotificationsEvent):
    """The recipient marked the notification read (once: marking it again records nothing)."""

    notification_id: str
    user_id: str


class NotificationEmailed(NotificationsEvent):
    """The notification's mail was handed to the SMTP server (once per notification)."""

    notification_id: str
    user_id: str


class NotificationPreferencesUpdated(NotificationsEvent):
    """The user's whole preferences after the change: channels and muted conversations.
    A muted conversation still notifies its mentions of the user unless it is also in
    `muted_mentions` (absent in events before mentions: none muted)."""

    user_id: str
    in_app: bool
    email: bool
    muted_conversations: list[str] = Field(max_length=1000)
    muted_mentions: list[str] = Field(default_factory=list, max_length=1000)
