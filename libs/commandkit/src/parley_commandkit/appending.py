"""The one way a handler appends: load the aggregate, let it decide, save its events (the
repository retries a race on a fresh load `retries` times: right for commands that set a
state or add to a set, which commute with concurrent writes of other fields)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from parley_eventstore.aggregate import A, Repository
from parley_eventstore.domain import Aggregate
from parley_eventstore.records import AppendResult

from parley_commandkit.context import Context

_FROM_CONTEXT: Any = object()


def version_of(aggregate: Aggregate) -> dict[str, Any]:
    """The result most commands report: the aggregate's id and its version after them."""
    return {"id": aggregate.id, "version": aggregate.next_version}


async def execute(
    repository: Repository[A],
    stream_id: str,
    decide: Callable[[A], Any],
    ctx: Context,
    *,
    retries: int = 3,
    key: str | None = _FROM_CONTEXT,
    result: Callable[[A], Mapping[str, Any]] = version_of,
) -> AppendResult:
    """`key`: the idempotency key (default the context's; None for none)."""
    return await repository.execute(
        stream_id,
        decide,
        metadata=ctx.metadata,
        idempotency_key=ctx.idempotency_key if key is _FROM_CONTEXT else key,
        result=result,
        retries=retries,
    )
