"""The users read model, shaped for the query gateway:

- `users`: one document per user (`_id` = user id): profile, `role`, `status`, and what the
  queries need: `name_key` (the normalised name: the list's sort key, with `_id`),
  `email_key` (the casefolded address: lookup by email), `search_name` / `search_email`
  (normalised prefix tokens of the name's words and of the address's local part; see
  parley_readmodel.search). Two arrays, not one: each handler sees one event, so a name
  change cannot recompute tokens of the address it does not carry, and the gateway lets only
  admins search by address (the address is personal data).
- `contacts`: one document per (user, contact) pair, `_id` = f"{user}:{contact}", written only
  by the user's stream (one writer per document); a removal sets the tombstone `removed`.
- `blocks`: one document per (blocker, blocked) pair, `_id` = f"{user}:{blocked}", the same
  way: written only by the blocker's stream, an unblock sets the tombstone `removed`.
- `registrations`: one document per account that registered (`_id` = user id, written only by
  its auth stream from `auth.events`): `pending` until its address is verified. The gateway
  shows a pending registration's profile to nobody but the person and admins, so a fresh
  registration's id answers 404 like the decoy id a taken address gets (enumeration). Its own
  collection: the `users` documents are the users streams' alone (`versions_in`).

Personal fields (name, email, bio) arrive decrypted by the runtime (parley_privacy); where the
person's key is gone they arrive as placeholders listed in `_redacted`: the name shows the
placeholder, the address and bio are dropped. `UserForgotten` redacts the document itself, so
the live model, a replay and a rebuild all end the same: `forgotten: true`, placeholder name.

Handlers are pure functions from one event to MongoDB updates; the read-model runtime
(parley_readmodel) adds the per-stream version guard that makes replays harmless.
"""

from __future__ import annotations

from typing import Any

from parley_contracts.base import FORGOTTEN_NAME
from parley_messaging.envelope import Envelope
from parley_readmodel.projection import IndexKeys, Projection, Write
from parley_readmodel.search import normalise, prefix_tokens

NAME = "projector-users"  # the projection's name: its consumer group and alias document
USERS = "users"
CONTACTS = "contacts"
BLOCKS = "blocks"
REGISTRATIONS = "registrations"
PROFILE_FIELDS = ("name", "bio", "avatar_url")
INDEXES: dict[str, tuple[IndexKeys, ...]] = {
    USERS: (
        (("name_key", 1), ("_id", 1)),
        (("search_name", 1),),
        (("search_email", 1),),
        (("email_key", 1),),
        (("role", 1),),
    ),
    CONTACTS: ((("user_id", 1), ("_id", 1)),),
    BLOCKS: ((("user_id", 1), ("_id", 1)),),
}


def name_fields(name: str) -> dict[str, Any]:
    return {"name": name, "name_key": normalise(name), "search_name": prefix_tokens(name)}


NO_EMAIL: dict[str, Any] = {"email": None, "email_key": None, "search_email": []}


def redacted(data: dict[str, Any]) -> set[str]:
    return set(data.get("_redacted") or ())


def email_fields(email: str | None) -> dict[str, Any]:
    if email is None:
        return dict(NO_EMAIL)
    local = email.rpartition("@")[0] or email
    return {
        "email": email,
        "email_key": email.strip().casefold(),
        "search_email": prefix_tokens(local),
    }


def user_created(event: Envelope, data: dict[str, Any]) -> list[Write]:
    gone = redacted(data)
    return [
        Write(
            USERS,
            data["user_id"],
            {
                "$set": {
                    **name_fields(data["name"]),
                    **email_fields(None if "email" in gone else data["email"]),
                    "bio": None,
                    "avatar_url": None,
                    "role": "user",
                    "status": "active",
                    "status_reason": None,
                    "created_at": event.time,
                    "updated_at": event.time,
                }
            },
        )
    ]


def profile_updated(event: Envelope, data: dict[str, Any]) -> list[Write]:
    changes = {k: data[k] for k in PROFILE_FIELDS if data.get(k) is not None}
    for field in redacted(data) - {"name"}:
        changes[field] = None  # bio of a forgotten person: gone, not a placeholder
    if "name" in changes:
        changes.update(name_fields(changes["name"]))
    return [Write(USERS, data["user_id"], {"$set": {**changes, "updated_at": event.time}})]


def _set(data: dict[str, Any], event: Envelope, **fields: Any) -> list[Write]:
    return [Write(USERS, data["user_id"], {"$set": {**fields, "updated_at": event.time}})]


def status_changed(event: Envelope, data: dict[str, Any]) -> list[Write]:
    # the reason of a forgotten person reads as its placeholder: gone, not ""
    reason = None if "reason" in redacted(data) else data.get("reason")
    return _set(data, event, status=data["status"], status_reason=reason)


def role_assigned(event: Envelope, data: dict[str, Any]) -> list[Write]:
    return _set(data, event, role=data["role"])


def email_changed(event: Envelope, data: dict[str, Any]) -> list[Write]:
    email = None if "email" in redacted(data) else data["email"]
    return _set(data, event, **email_fields(email))


def user_forgotten(event: Envelope, data: dict[str, Any]) -> list[Write]:
    """The person is forgotten: placeholder name, no address, bio, avatar or status reason
    (idempotent `$set`s, so a replay or rebuild ends the same; the events before it decrypt
    to placeholders by then anyway)."""
    return _set(
        data,
        event,
        **name_fields(FORGOTTEN_NAME),
        **NO_EMAIL,
        bio=None,
        avatar_url=None,
        status_reason=None,
        forgotten=True,
    )


def contact_id(data: dict[str, Any]) -> str:
    return f"{data['user_id']}:{data['contact_id']}"


def contact_added(event: Envelope, data: dict[str, Any]) -> list[Write]:
    fields = {
        "user_id": data["user_id"],
        "contact_id": data["contact_id"],
        "added_at": event.time,
        "removed": False,
        "removed_at": None,
        "updated_at": event.time,
    }
    return [Write(CONTACTS, contact_id(data), {"$set": fields})]


def contact_removed(event: Envelope, data: dict[str, Any]) -> list[Write]:
    fields = {
        "user_id": data["user_id"],
        "contact_id": data["contact_id"],
        "removed": True,  # a tombstone, never a delete (projection.py)
        "removed_at": event.time,
        "updated_at": event.time,
    }
    return [Write(CONTACTS, contact_id(data), {"$set": fields})]


def block_id(data: dict[str, Any]) -> str:
    return f"{data['user_id']}:{data['blocked_user_id']}"


def user_blocked(event: Envelope, data: dict[str, Any]) -> list[Write]:
    fields = {
        "user_id": data["user_id"],
        "blocked_user_id": data["blocked_user_id"],
        "blocked_at": event.time,
        "removed": False,
        "removed_at": None,
        "updated_at": event.time,
    }
    return [Write(BLOCKS, block_id(data), {"$set": fields})]


def user_unblocked(event: Envelope, data: dict[str, Any]) -> list[Write]:
    fields = {
        "user_id": data["user_id"],
        "blocked_user_id": data["blocked_user_id"],
        "removed": True,  # a tombstone, never a delete (projection.py)
        "removed_at": event.time,
        "updated_at": event.time,
    }
    return [Write(BLOCKS, block_id(data), {"$set": fields})]


def user_registered(event: Envelope, data: dict[str, Any]) -> list[Write]:
    """auth.events UserRegistered: not verified yet (the profile the saga makes is hidden)."""
    fields = {"pending": True, "registered_at": event.time, "updated_at": event.time}
    return [Write(REGISTRATIONS, data["user_id"], {"$set": fields})]


def email_verified(event: Envelope, data: dict[str, Any]) -> list[Write]:
    fields = {"pending": False, "verified_at": event.time, "updated_at": event.time}
    return [Write(REGISTRATIONS, data["user_id"], {"$set": fields})]


def users_projection(name: str = NAME) -> Projection:
    return Projection(
        name=name,
        # auth.events for registrations only (UserRegistered, EmailVerified; the rest ignored)
        topics=("users.events", "auth.events"),
        collections=(USERS, CONTACTS, BLOCKS, REGISTRATIONS),
        handlers={
            "UserCreated": user_created,
            "UserProfileUpdated": profile_updated,
            "UserStatusChanged": status_changed,
            "UserRoleAssigned": role_assigned,
            "UserProfileEmailChanged": email_changed,
            "UserContactAdded": contact_added,
            "UserContactRemoved": contact_removed,
            "UserForgotten": user_forgotten,
            "UserBlocked": user_blocked,
            "UserUnblocked": user_unblocked,
            "UserRegistered": user_registered,
            "EmailVerified": email_verified,
        },
        indexes=INDEXES,
        # a user's stream id is the id of their users document, which only that stream writes
        versions_in={"users": USERS},
        # auth's streams only for the registrations' flag: no consistency tokens of auth here
        tracked=("users",),
    )
