"""Command handlers: plain async functions, one per command, in one routing table.

A handler loads the aggregate, asks it to decide, and saves the new events with the outbox
row in one transaction (the repository does both). No HTTP here: the HTTP layer and, later,
the saga's Kafka consumer call `handle` with the same commands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from parley_eventstore.aggregate import Repository
from parley_eventstore.records import AppendResult, Metadata
from parley_observability.tracing import current_traceparent

from parley_users.domain import User


@dataclass(frozen=True)
class CreateUser:
    user_id: str
    name: str
    email: str


@dataclass(frozen=True)
class UpdateProfile:
    user_id: str
    changes: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What every command carries besides its fields."""

    metadata: Metadata
    idempotency_key: str | None = None


def _result(user: User) -> dict[str, Any]:
    return {"id": user.id, "version": user.next_version}


async def create_user(users: Repository[User], command: CreateUser, ctx: Context) -> AppendResult:
    return await users.execute(
        command.user_id,
        lambda user: user.create(command.name, command.email),
        metadata=ctx.metadata,
        idempotency_key=ctx.idempotency_key,
        result=_result,
    )


async def update_profile(
    users: Repository[User], command: UpdateProfile, ctx: Context
) -> AppendResult:
    # edits of different fields commute, so a concurrent edit is retried on a fresh load
    return await users.execute(
        command.user_id,
        lambda user: user.update_profile(command.changes),
        metadata=ctx.metadata,
        idempotency_key=ctx.idempotency_key,
        result=_result,
        retries=3,
    )


Handler = Callable[[Repository[User], Any, Context], Awaitable[AppendResult]]
HANDLERS: dict[type, Handler] = {
    CreateUser: create_user,
    UpdateProfile: update_profile,
}


async def handle(users: Repository[User], command: object, ctx: Context) -> AppendResult:
    """Run one command in a span of its own; the events it appends carry that span as their
    traceparent, so the relay's publish and every consumer continue this trace."""
    with trace.get_tracer("parley.users").start_as_current_span(f"users {type(command).__name__}"):
        traceparent = current_traceparent() or ctx.metadata.traceparent
        ctx = dataclasses.replace(
            ctx, metadata=dataclasses.replace(ctx.metadata, traceparent=traceparent)
        )
        return await HANDLERS[type(command)](users, command, ctx)
