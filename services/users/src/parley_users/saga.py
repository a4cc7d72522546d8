"""The users service as a registration-saga participant (`users.commands`):
- CreateProfile: the first step; a reserved display name is refused for good (`rejected`), a
  profile that exists already is the outcome wanted (a retry whose reply was lost);
- AssignDefaultRole: the default role, recorded once per profile;
- RemoveProfile: the compensation; the profile is deactivated (events are never deleted) and
  leaves searches and contact lists; nothing to undo if it was never created.
The command's `email` and `name` are UserRegistered's, still sealed with the person's data key
(the saga never decrypts: its state and command topics hold no plaintext); they are decrypted
here (`FieldCipher.decrypt("UserRegistered", ...)`) and sealed again by the repository. A
person forgotten before their profile exists is refused for good (`rejected`).
Idempotent by command id: it is the event store's idempotency key, and the saga_commands log
replays the first reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_commandkit import Context
from parley_eventstore.aggregate import Repository
from parley_eventstore.records import AppendResult, Metadata
from parley_messaging.participant import Handler
from parley_messaging.saga import Rejected, SagaCommand
from parley_privacy.fields import REDACTED, FieldCipher

from parley_users.commands import CreateUser, Deactivate
from parley_users.domain import ReservedName, User, UserAlreadyExists, UserNotFound
from parley_users.handlers import handle

REMOVED_REASON = "registration_cancelled"


def _context(command: SagaCommand) -> Context:
    metadata = Metadata(
        correlation_id=command.saga_id,
        causation_id=command.id,
        actor="registration-saga",
        traceparent=command.traceparent,
    )
    return Context(metadata, idempotency_key=command.id)


def _version(outcome: AppendResult) -> dict[str, Any]:
    return {"version": outcome.reported_version}


def handlers(users: Repository[User], cipher: FieldCipher | None = None) -> Mapping[str, Handler]:
    async def create_profile(command: SagaCommand) -> Mapping[str, Any]:
        data = dict(command.data)
        if cipher is not None:  # KeyUnavailable: a `failed` reply, the orchestrator retries
            data = await cipher.decrypt("UserRegistered", {"user_id": command.subject, **data})
            if data.get(REDACTED):
                raise Rejected("the person was forgotten")
        create = CreateUser(command.subject, str(data["name"]), str(data["email"]))
        try:
            return _version(await handle(users, create, _context(command)))
        except ReservedName as error:
            raise Rejected("the display name is reserved") from error
        except UserAlreadyExists:
            return {"version": (await users.load(command.subject)).version}

    async def assign_default_role(command: SagaCommand) -> Mapping[str, Any]:
        ctx = _context(command)
        try:
            outcome = await users.execute(
                command.subject,
                lambda user: user.assign_default_role(),
                metadata=ctx.metadata,
                idempotency_key=ctx.idempotency_key,
                result=lambda user: {"id": user.id, "version": user.next_version},
                retries=3,
            )
        except UserNotFound as error:
            raise Rejected("no profile to give a role to") from error
        return _version(outcome)

    async def remove_profile(command: SagaCommand) -> Mapping[str, Any]:
        try:
            outcome = await handle(
                users, Deactivate(command.subject, REMOVED_REASON), _context(command)
            )
        except UserNotFound:
            return {"version": 0}  # never created: nothing to undo
        return _version(outcome)

    return {
        "CreateProfile": create_profile,
        "AssignDefaultRole": assign_default_role,
        "RemoveProfile": remove_profile,
    }
