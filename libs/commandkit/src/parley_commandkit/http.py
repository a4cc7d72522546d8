"""What every command route shares: the call (caller, headers, response), running a command
through the service's bus and error map, and the accepted response with its consistency
token.

    @router.post("/{user_id}/deactivate", response_model=CommandAccepted)
    async def deactivate(user_id: uuid.UUID, body: DeactivateBody, call: CommandCall) -> Any:
        require_role(call.principal, "admin")
        return await call.execute(Deactivate(str(user_id), body.reason), "deactivate", str(user_id))
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request, Response
from parley_authn import CurrentPrincipal, Principal
from parley_eventstore.records import AppendResult
from parley_http.commands import CorrelationId, IdempotencyKey, hand_out_token
from pydantic import BaseModel

from parley_commandkit.bus import CommandBus
from parley_commandkit.context import Context, command_context
from parley_commandkit.errors import ErrorMap

D = TypeVar("D")
R = TypeVar("R")


class CommandAccepted(BaseModel):
    id: str
    version: int


@dataclass(frozen=True)
class Commands(Generic[D]):
    """A service's command side as its routes reach it (`app.state.commands`)."""

    context: str
    bus: CommandBus[D]
    deps: D
    errors: ErrorMap
    consistency_secret: str = ""  # signs the tokens handed out (settings.consistency_secret)

    async def run(self, command: object, ctx: Context) -> Any:
        return await self.errors.answer(self.bus.handle(self.deps, command, ctx))


def typed(outcome: AppendResult, result_type: type[R]) -> R:
    """A handler's result as its declared dataclass: `typed(outcome, MessageAccepted).seq`.
    `id` and `version` default to the stream's and the reported version."""
    assert is_dataclass(result_type)
    values = {"id": outcome.stream_id, **outcome.result, "version": outcome.reported_version}
    return result_type(**{f.name: values[f.name] for f in fields(result_type) if f.name in values})


@dataclass(frozen=True)
class Call:
    """What every command route receives besides its path and body."""

    request: Request
    response: Response
    principal: Principal
    idempotency_key: str | None
    correlation_id: str | None

    @property
    def commands(self) -> Commands[Any]:
        commands: Commands[Any] = self.request.app.state.commands
        return commands

    def context(self, route: str, *target: str, key: str | None = None) -> Context:
        """The command's context; `key` replaces the Idempotency-Key header (a message's own
        client id, say)."""
        return command_context(
            self.commands.context,
            route,
            target,
            self.principal.user_id,
            key if key is not None else self.idempotency_key,
            self.correlation_id,
        )

    async def run(
        self, command: object, route: str, *target: str, key: str | None = None
    ) -> AppendResult:
        ctx = self.context(route, *target, key=key)
        outcome: AppendResult = await self.commands.run(command, ctx)
        return outcome

    def accept(self, outcome: AppendResult, stream_id: str | None = None) -> CommandAccepted:
        """The accepted response, with the consistency token for the written stream, bound to
        the caller (only they can redeem it)."""
        version = outcome.reported_version
        hand_out_token(
            self.response,
            self.commands.context,
            stream_id or outcome.stream_id,
            version,
            caller=self.principal.user_id,
            secret=self.commands.consistency_secret,
        )
        return CommandAccepted(id=str(outcome.result.get("id", outcome.stream_id)), version=version)

    async def execute(self, command: object, route: str, *target: str) -> CommandAccepted:
        return self.accept(await self.run(command, route, *target))


def command_call(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    correlation_id: CorrelationId = None,
) -> Call:
    return Call(request, response, principal, idempotency_key, correlation_id)


CommandCall = Annotated[Call, Depends(command_call)]
