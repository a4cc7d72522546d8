"""The notifications commands: what a caller asks for, as small frozen dataclasses (the command
table in handlers.py routes each to its handler)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CreateNotification:
    notification_id: str
    user_id: str
    conversation_id: str
    message_id: str
    sender_id: str
    content: str
    mention: bool = False  # the message mentions the recipient


@dataclass(frozen=True)
class MarkRead:
    notification_id: str
    user_id: str  # the caller: only the recipient may mark it


@dataclass(frozen=True)
class MarkEmailed:
    notification_id: str


@dataclass(frozen=True)
class UpdatePreferences:
    user_id: str
    in_app: bool
    email: bool
    muted_conversations: list[str] = field(default_factory=list)
    muted_mentions: list[str] = field(default_factory=list)
