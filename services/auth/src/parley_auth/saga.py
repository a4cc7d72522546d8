"""The auth service as a registration-saga participant (`auth.commands`):
- ActivateAccount: the last step; the account may log in once its address is verified.
- CancelRegistration: the compensation of the registration itself; the address is free again
  and the account closed for good.
Both are idempotent by command id (the event store's idempotency key and the saga_commands
log); a cancelled account refuses activation (a rejection the orchestrator compensates).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_commandkit import Context
from parley_eventstore.records import Metadata
from parley_messaging.participant import Handler
from parley_messaging.saga import Rejected, SagaCommand

from parley_auth import handlers as h
from parley_auth.domain import AccountNotFound, RegistrationWasCancelled


def _context(command: SagaCommand) -> Context:
    return Context(
        Metadata(
            correlation_id=command.saga_id,
            causation_id=command.id,
            actor="registration-saga",
            traceparent=command.traceparent,
        )
    )


def handlers(auth: h.Auth) -> Mapping[str, Handler]:
    async def activate(command: SagaCommand) -> Mapping[str, Any]:
        try:
            outcome = await h.activate_account(
                auth, command.subject, _context(command), key=command.id
            )
        except AccountNotFound as error:
            raise Rejected("no such account") from error
        except RegistrationWasCancelled as error:
            raise Rejected("the registration was cancelled") from error
        return {"version": outcome.reported_version}

    async def cancel(command: SagaCommand) -> Mapping[str, Any]:
        outcome = await h.cancel_registration(
            auth, command.subject, "registration_failed", _context(command), key=command.id
        )
        return {"version": outcome.reported_version if outcome else 0}

    return {"ActivateAccount": activate, "CancelRegistration": cancel}
