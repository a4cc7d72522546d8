"""The users read model: one document per user, shaped for the query gateway.

Handlers are pure functions from one event to MongoDB updates; the read-model runtime
(parley_readmodel) adds the per-stream version guard that makes replays harmless.
"""

from __future__ import annotations

from typing import Any

from parley_messaging.envelope import Envelope
from parley_readmodel.projection import Projection, Write

NAME = "projector-users"  # the projection's name: its consumer group and alias document
USERS = "users"
PROFILE_FIELDS = ("name", "bio", "avatar_url")


def user_created(event: Envelope, data: dict[str, Any]) -> list[Write]:
    return [
        Write(
            USERS,
            data["user_id"],
            {
                "$set": {
                    "name": data["name"],
                    "email": data["email"],
                    "bio": None,
                    "avatar_url": None,
                    "created_at": event.time,
                    "updated_at": event.time,
                }
            },
        )
    ]


def profile_updated(event: Envelope, data: dict[str, Any]) -> list[Write]:
    changes = {k: data[k] for k in PROFILE_FIELDS if data.get(k) is not None}
    return [Write(USERS, data["user_id"], {"$set": {**changes, "updated_at": event.time}})]


def users_projection(name: str = NAME) -> Projection:
    return Projection(
        name=name,
        topics=("users.events",),
        collections=(USERS,),
        handlers={"UserCreated": user_created, "UserProfileUpdated": profile_updated},
    )
