"""The chat commands: what a caller asks for, as small frozen dataclasses (the command
table in handlers.py routes each to its handler)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class CreateConversation:
    conversation_id: str
    created_by: str
    participant_ids: tuple[str, ...]
    title: str | None = None


@dataclass(frozen=True)
class SendMessage:
    conversation_id: str
    sender_id: str
    content: str
    client_message_id: str | None = None
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    reply_to: str | None = None
    mentions: tuple[str, ...] = ()
    attachment_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeleteMessage:
    conversation_id: str
    message_id: str
    deleted_by: str
    by_admin: bool = False


@dataclass(frozen=True)
class AddParticipant:
    conversation_id: str
    user_id: str
    added_by: str
    by_admin: bool = False


@dataclass(frozen=True)
class RemoveParticipant:
    conversation_id: str
    user_id: str
    removed_by: str
    by_admin: bool = False


@dataclass(frozen=True)
class MarkMessagesAsRead:
    conversation_id: str
    user_id: str
    up_to_message_id: str | None = None


@dataclass(frozen=True)
class EditMessage:
    conversation_id: str
    message_id: str
    editor_id: str
    content: str


@dataclass(frozen=True)
class AddReaction:
    conversation_id: str
    message_id: str
    user_id: str
    emoji: str


@dataclass(frozen=True)
class RemoveReaction:
    conversation_id: str
    message_id: str
    user_id: str
    emoji: str


@dataclass(frozen=True)
class ReportMessage:
    conversation_id: str
    message_id: str
    reporter_id: str
    reason: str


@dataclass(frozen=True)
class ResolveReport:
    report_id: str
    admin_id: str
    action: Literal["dismiss", "delete_message", "deactivate_user"]
