"""The command bus: handlers register by command type; one `handle` runs any command in a
span of its own, whose traceparent the appended events carry (so the relay's publish and
every consumer continue the command's trace)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from parley_eventstore.records import AppendResult
from parley_observability.tracing import command_span

from parley_commandkit.context import Context

D = TypeVar("D")  # what the service's handlers need (repositories, pools, clients)
Handler = Callable[[D, Any, Context], Awaitable[Any]]
H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


class UnknownCommand(LookupError):
    pass


class CommandBus(Generic[D]):
    def __init__(self, context: str) -> None:
        self.context = context
        self.handlers: dict[type, Handler[D]] = {}

    def register(self, *command_types: type) -> Callable[[H], H]:
        """Decorator: `@bus.register(SendMessage)` above `async def send(deps, cmd, ctx)`."""

        def add(handler: H) -> H:
            for command_type in command_types:
                if command_type in self.handlers:
                    raise ValueError(f"{command_type.__name__} has a handler already")
                self.handlers[command_type] = handler
            return handler

        return add

    async def handle(self, deps: D, command: object, ctx: Context) -> Any:
        handler = self.handlers.get(type(command))
        if handler is None:
            raise UnknownCommand(type(command).__name__)
        with command_span(self.context, command) as traceparent:
            return await handler(deps, command, ctx.traced(traceparent))

    async def append(self, deps: D, command: object, ctx: Context) -> AppendResult:
        """`handle` for a service whose every command appends (typed for its callers)."""
        outcome: AppendResult = await self.handle(deps, command, ctx)
        return outcome
