"""What every command carries besides its fields, and the one rule that scopes a client's
Idempotency-Key."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

from parley_eventstore.records import Metadata


@dataclass(frozen=True)
class Context:
    metadata: Metadata
    idempotency_key: str | None = None
    # where the request came from (the gateway's X-Forwarded-For), for per-client limits
    client_address: str | None = None

    def traced(self, traceparent: str | None) -> Context:
        return dataclasses.replace(self, metadata=self.metadata.traced(traceparent))


def scoped_key(
    context: str, route: str, target: tuple[str, ...], caller: str, key: str | None
) -> str | None:
    """A client's key names one command of one caller on one target: `<context>.<route>:
    <target...>:<caller>:<key>`. So one client's key never replays another caller's, another
    route's or another target's result, whoever picks the same key."""
    if key is None:
        return None
    return ":".join((f"{context}.{route}", *target, caller, key))


def command_context(
    context: str,
    route: str,
    target: tuple[str, ...],
    actor: str,
    key: str | None,
    correlation_id: str | None,
) -> Context:
    scoped = scoped_key(context, route, target, actor, key)
    metadata = Metadata(
        correlation_id=correlation_id or str(uuid.uuid4()), causation_id=scoped, actor=actor
    )
    return Context(metadata, scoped)
