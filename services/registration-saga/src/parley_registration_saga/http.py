"""`GET /v1/registrations/{id}`: where a registration stands. No token (the registrant has none
yet): the id is the unguessable account id returned only to them by `POST /v1/auth/register`,
and the answer holds only the status, step names and times."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from parley_http.problems import Problem
from pydantic import BaseModel

from parley_registration_saga.orchestrator import Orchestrator


class HistoryEntry(BaseModel):
    step: str
    event: str
    at: str


class Registration(BaseModel):
    id: str
    status: Literal["running", "compensating", "completed", "compensated", "failed"]
    step: str | None
    started_at: str
    updated_at: str | None
    history: list[HistoryEntry]


def include_routes(app: FastAPI) -> None:
    @app.get(
        "/v1/registrations/{registration_id}",
        response_model=Registration,
        responses={404: {"description": "No registration with this id (yet)"}},
    )
    async def registration(registration_id: str, request: Request, response: Response) -> Any:
        try:
            uuid.UUID(registration_id)
        except ValueError:
            raise Problem(404, "Not Found", "no registration with this id") from None
        orchestrator: Orchestrator = request.app.state.orchestrator
        view = await orchestrator.view(registration_id)
        if view is None:
            raise Problem(404, "Not Found", "no registration with this id (yet)")
        # a running saga changes within milliseconds: no caching; a finished one never changes
        finished = view["status"] not in ("running", "compensating")
        response.headers["Cache-Control"] = "private, max-age=60" if finished else "no-store"
        return view
