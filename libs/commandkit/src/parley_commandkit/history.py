"""The history routes every command service offers for its aggregates (routed to the command
side by nginx: the event store is its own): `GET <prefix>/{id}/events` (a page of events,
oldest first) and `GET <prefix>/{id}/state?at=` (the aggregate folded up to a version or a
moment). Who may read is the service's rule (`authorize`)."""

# no `from __future__ import annotations`: the routes' parameter types are built at run time
# (the path parameter's name), and FastAPI must see them as objects, not strings
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Path, Query, Request
from parley_authn import CurrentPrincipal, Principal
from parley_eventstore import history
from parley_eventstore.aggregate import Repository
from parley_http.problems import Problem
from pydantic import BaseModel, Field


class EventPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = Field(description="pass as `after` for the next page")


class PastState(BaseModel):
    id: str
    version: int
    state: dict[str, Any]


class Visibility(Protocol):
    """What one reader may see of a stream's history: nothing before `from_version` (a
    member's view starts when they joined), and each page passed through `redact`."""

    from_version: int

    async def redact(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


# raises a Problem for a caller who may not read at all; None: they see everything
Authorize = Callable[[Request, str, Principal], Awaitable[Visibility | None]]


def history_routes(
    router: APIRouter,
    noun: str,
    repository: Callable[[Request], Repository[Any]],
    authorize: Authorize,
    *,
    param: str = "id",
    empty_is_missing: bool = True,
) -> None:
    """Add the two routes to `router`, the id in the path parameter `param` (`user_id`...).
    `authorize` raises a Problem (403/404) for callers who may not read this history;
    `empty_is_missing`: no events at all is a 404."""
    StreamId = Annotated[uuid.UUID, Path(alias=param)]

    @router.get(f"/{{{param}}}/events", response_model=EventPage)
    async def events(
        stream_id: StreamId,
        request: Request,
        principal: CurrentPrincipal,
        after: Annotated[int, Query(ge=0, le=history.MAX_VERSION)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Any:
        visibility = await authorize(request, str(stream_id), principal)
        if visibility is not None:
            after = max(after, visibility.from_version - 1)
        page = await history.events_page(repository(request), str(stream_id), after, limit)
        if empty_is_missing and not page["items"] and after == 0:
            raise Problem(404, "Not Found", f"no {noun} {stream_id}")
        if visibility is not None:
            page["items"] = await visibility.redact(page["items"])
        return page

    @router.get(f"/{{{param}}}/state", response_model=PastState)
    async def state(
        stream_id: StreamId,
        request: Request,
        principal: CurrentPrincipal,
        at: Annotated[str, Query(max_length=64, description="a version number or an ISO time")],
    ) -> Any:
        visibility = await authorize(request, str(stream_id), principal)
        try:
            moment = history.parse_moment(at)
        except history.BadMoment as error:
            raise Problem(
                422, "Invalid request", "at: a version number or an ISO 8601 time with its zone"
            ) from error
        found = await history.state_at(repository(request), str(stream_id), moment)
        hidden = visibility is not None and _before(found, moment, visibility.from_version)
        if found is None or hidden:
            raise Problem(404, "Not Found", f"{noun} {stream_id} did not exist at {at}")
        return found

    events.__doc__ = f"The {noun}'s events, oldest first."
    state.__doc__ = f"The {noun} as it was at a version or a moment (the fold of its events)."


def _before(found: dict[str, Any] | None, moment: int | datetime, from_version: int) -> bool:
    """True when the state asked for is from before what the reader may see."""
    if isinstance(moment, int):
        return moment < from_version
    return found is not None and int(found["version"]) < from_version
