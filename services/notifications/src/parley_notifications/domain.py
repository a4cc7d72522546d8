"""The notifications domain: a Notification per (message, recipient) and Preferences per user.

Pure: imports only the event store's domain base and the public contract. Commands that would
change nothing record nothing, so redeliveries and retries are harmless:
- creating a notification that exists already is a no-op (its id is derived from the message
  and the recipient, so a redelivered MessageSent names the same stream);
- marking read twice, or recording the mail twice, appends nothing the second time.

`decide_delivery` is the policy's decision for one recipient of one message, kept here so it
is tested without Kafka or SMTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from parley_contracts.notifications import (
    PREVIEW_LENGTH,
    NotificationCreated,
    NotificationEmailed,
    NotificationPreferencesUpdated,
    NotificationRead,
)
from parley_eventstore.domain import Aggregate, Event

# fixed forever: notification ids of past messages must stay the same
NOTIFICATION_NAMESPACE = uuid.UUID("6d0f8f0e-3b1c-5d5e-9a51-8c2f6e1b7a42")
MAX_MUTED = 1000


class DomainError(Exception):
    """A command that the current state refuses."""


class NotificationNotFound(DomainError):
    pass


class NotYourNotification(DomainError):
    """Someone else's notification (HTTP says 404: ids are not disclosed)."""


class TooManyMuted(DomainError):
    pass


def notification_id(message_id: str, user_id: str) -> str:
    """Deterministic: the same message and recipient always give the same notification."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{message_id}:{user_id}"))


def preview_of(content: str) -> str:
    return content[:PREVIEW_LENGTH]


class Notification(Aggregate):
    stream_type: ClassVar[str] = "notification"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.exists = False
        self.user_id = ""
        self.read = False
        self.emailed = False

    def create(
        self,
        user_id: str,
        conversation_id: str,
        message_id: str,
        sender_id: str,
        content: str,
        mention: bool = False,
    ) -> None:
        if self.exists:
            return  # a redelivered message: the notification is there already
        self.record(
            NotificationCreated(
                notification_id=self.id,
                user_id=user_id,
                conversation_id=conversation_id,
                message_id=message_id,
                sender_id=sender_id,
                preview=preview_of(content),
                mention=mention,
            )
        )

    def mark_read(self, user_id: str) -> None:
        if not self.exists:
            raise NotificationNotFound(self.id)
        if user_id != self.user_id:
            raise NotYourNotification(self.id)
        if not self.read:
            self.record(NotificationRead(notification_id=self.id, user_id=self.user_id))

    def mark_emailed(self) -> None:
        if not self.exists:
            raise NotificationNotFound(self.id)
        if not self.emailed:
            self.record(NotificationEmailed(notification_id=self.id, user_id=self.user_id))

    def when(self, event: Event) -> None:
        match event:
            case NotificationCreated(user_id=user_id):
                self.exists = True
                self.user_id = user_id
            case NotificationRead():
                self.read = True
            case NotificationEmailed():
                self.emailed = True

    def snapshot(self) -> Mapping[str, Any] | None:
        return None  # three events at most: never worth a snapshot

    def restore(self, state: Mapping[str, Any]) -> None:  # pragma: no cover - no snapshots
        raise NotImplementedError


DEFAULT_IN_APP = True
DEFAULT_EMAIL = False  # opt-in: nobody gets mail about messages until they turn it on


class Preferences(Aggregate):
    """A user's notification settings (stream id = the user id). No events = the defaults."""

    stream_type: ClassVar[str] = "notification-preferences"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.in_app = DEFAULT_IN_APP
        self.email = DEFAULT_EMAIL
        self.muted: tuple[str, ...] = ()
        # muted conversations whose mentions of the user are muted too (elsewhere a mention
        # still notifies: see decide_delivery)
        self.muted_mentions: tuple[str, ...] = ()

    def update(
        self,
        in_app: bool,
        email: bool,
        muted_conversations: Iterable[str],
        muted_mentions: Iterable[str] = (),
    ) -> None:
        muted = tuple(sorted(set(muted_conversations)))
        mentions = tuple(sorted(set(muted_mentions)))
        if len(muted) > MAX_MUTED or len(mentions) > MAX_MUTED:
            raise TooManyMuted(self.id)
        if (in_app, email, muted, mentions) == (
            self.in_app,
            self.email,
            self.muted,
            self.muted_mentions,
        ):
            return
        self.record(
            NotificationPreferencesUpdated(
                user_id=self.id,
                in_app=in_app,
                email=email,
                muted_conversations=list(muted),
                muted_mentions=list(mentions),
            )
        )

    def set_defaults(self) -> None:
        """The registration's preferences step: the defaults recorded explicitly, once (a user
        who already chose keeps their choice)."""
        if self.version == 0:
            self.record(
                NotificationPreferencesUpdated(
                    user_id=self.id, in_app=self.in_app, email=self.email, muted_conversations=[]
                )
            )

    def when(self, event: Event) -> None:
        match event:
            case NotificationPreferencesUpdated(in_app=in_app, email=email, muted_conversations=m):
                self.in_app = in_app
                self.email = email
                self.muted = tuple(m)
                self.muted_mentions = tuple(event.muted_mentions)

    def snapshot(self) -> Mapping[str, Any]:
        return {
            "in_app": self.in_app,
            "email": self.email,
            "muted": list(self.muted),
            "muted_mentions": list(self.muted_mentions),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.in_app = bool(state["in_app"])
        self.email = bool(state["email"])
        self.muted = tuple(state["muted"])
        self.muted_mentions = tuple(state.get("muted_mentions", ()))  # absent before mentions


@dataclass(frozen=True)
class Delivery:
    """What the policy does for one recipient of one message."""

    in_app: bool  # create the notification
    email: bool  # and mail it


NOTHING = Delivery(in_app=False, email=False)


def decide_delivery(prefs: Preferences, conversation_id: str, mentioned: bool = False) -> Delivery:
    """Muted conversation: nothing at all, unless the message mentions the recipient and they
    did not mute that conversation's mentions too (`muted_mentions`). In-app off: nothing (the
    notification is the record the mail is deduplicated against, so no in-app means no mail
    either - see docs/decisions.md). Otherwise in-app, plus a mail when email is on. (A
    blocked sender is filtered before: the policy asks nobody's preferences for them.)"""
    if not prefs.in_app:
        return NOTHING
    if conversation_id in prefs.muted and not (
        mentioned and conversation_id not in prefs.muted_mentions
    ):
        return NOTHING
    return Delivery(in_app=True, email=prefs.email)


NOTIFICATION_EVENTS: tuple[type[Event], ...] = (
    NotificationCreated,
    NotificationRead,
    NotificationEmailed,
)
PREFERENCES_EVENTS: tuple[type[Event], ...] = (NotificationPreferencesUpdated,)
