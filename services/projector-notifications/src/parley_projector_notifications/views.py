"""The notifications read model, shaped for the query gateway:

- `notifications`: one document per notification (`_id` = notification id, written only by
  that notification's stream): `user_id`, `kind`, `mention`, `conversation_id`, `message_id`,
  `sender_id`, `preview`, `created_at` (the event's ce_time), `read`, `emailed`. The gateway
  lists a user's newest first by (created_at, _id) and counts their unread ones.
- `preferences`: one document per user (`_id` = user id, written only by the user's
  preferences stream): `in_app`, `email`, `muted_conversations`, `muted_mentions`. No
  document = the defaults.

Handlers are pure functions from one event to MongoDB updates; the read-model runtime adds the
per-stream version guard that makes replays harmless.
"""

from __future__ import annotations

from typing import Any

from parley_messaging.envelope import Envelope
from parley_readmodel.projection import IndexKeys, Projection, Sweep, Write

NAME = "projector-notifications"  # the projection's name: its consumer group and alias doc
NOTIFICATIONS = "notifications"
PREFERENCES = "preferences"
INDEXES: dict[str, tuple[IndexKeys, ...]] = {
    NOTIFICATIONS: (
        (("user_id", 1), ("created_at", -1), ("_id", -1)),
        (("user_id", 1), ("read", 1)),
    ),
}


def notification_created(event: Envelope, data: dict[str, Any]) -> list[Write]:
    fields = {
        "user_id": data["user_id"],
        "kind": data.get("kind", "message"),
        "mention": bool(data.get("mention", False)),
        "conversation_id": data["conversation_id"],
        "message_id": data["message_id"],
        "sender_id": data["sender_id"],
        # the sender forgotten (key gone): no preview, for the reader either
        "preview": None if "preview" in (data.get("_redacted") or ()) else data["preview"],
        "redacted": "preview" in (data.get("_redacted") or ()),
        "created_at": event.time,
        # the stream's first event: its later ones (read, emailed) always come after it
        "read": False,
        "emailed": False,
    }
    return [Write(NOTIFICATIONS, data["notification_id"], {"$set": fields})]


def notification_read(event: Envelope, data: dict[str, Any]) -> list[Write]:
    update = {"$set": {"user_id": data["user_id"], "read": True, "read_at": event.time}}
    return [Write(NOTIFICATIONS, data["notification_id"], update)]


def notification_emailed(event: Envelope, data: dict[str, Any]) -> list[Write]:
    update = {"$set": {"user_id": data["user_id"], "emailed": True, "emailed_at": event.time}}
    return [Write(NOTIFICATIONS, data["notification_id"], update)]


def preferences_updated(event: Envelope, data: dict[str, Any]) -> list[Write]:
    fields = {
        "in_app": bool(data["in_app"]),
        "email": bool(data["email"]),
        "muted_conversations": list(data["muted_conversations"]),
        "muted_mentions": list(data.get("muted_mentions") or ()),
        "updated_at": event.time,
    }
    return [Write(PREFERENCES, data["user_id"], {"$set": fields})]


def user_forgotten(event: Envelope, data: dict[str, Any]) -> list[Write | Sweep]:
    """A person was forgotten (users.events): previews of their messages go everywhere."""
    gone = {"preview": None, "redacted": True}
    return [Sweep(NOTIFICATIONS, {"sender_id": str(data["user_id"])}, {"$set": gone})]


def notifications_projection(name: str = NAME) -> Projection:
    return Projection(
        name=name,
        # users.events only for UserForgotten (other users events have no handler here)
        topics=("notifications.events", "users.events"),
        tracked=("notifications",),  # users.events only for UserForgotten: no tokens of it here
        # a notification's document records its stream's versions (one stream each)
        versions_in={"notifications": NOTIFICATIONS},
        collections=(NOTIFICATIONS, PREFERENCES),
        handlers={
            "NotificationCreated": notification_created,
            "NotificationRead": notification_read,
            "NotificationEmailed": notification_emailed,
            "NotificationPreferencesUpdated": preferences_updated,
            "UserForgotten": user_forgotten,
        },
        indexes=INDEXES,
    )
