"""`GET /v1/registrations/{id}`: where a registration stands, for the registrant only. They
have no access token yet, so they present the registration token `POST /v1/auth/register`
returned with the id (`X-Registration-Token`, parley_http.registration): the id is the account
id, which others soon see (profiles, conversations), so it alone shows nothing. Without the
token, or with a wrong one, the answer is the 404 of an unknown id, decided before the store
is asked (nothing, not even the time taken, says whether the id exists). The answer holds only
the status, step names and times."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Request, Response
from parley_http.problems import Problem
from parley_http.registration import HEADER, holds_registration
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


def include_routes(app: FastAPI, secret: str) -> None:
    """`secret`: the registration secret (empty: every registration answers 404)."""

    @app.get(
        "/v1/registrations/{registration_id}",
        response_model=Registration,
        responses={404: {"description": "No registration with this id (yet)"}},
    )
    async def registration(
        registration_id: str,
        request: Request,
        response: Response,
        token: Annotated[str | None, Header(alias=HEADER)] = None,
    ) -> Any:
        try:
            uuid.UUID(registration_id)
        except ValueError:
            raise Problem(404, "Not Found", "no registration with this id") from None
        if not holds_registration(secret, registration_id, token):
            raise Problem(404, "Not Found", "no registration with this id (yet)")
        orchestrator: Orchestrator = request.app.state.orchestrator
        view = await orchestrator.view(registration_id)
        if view is None:
            raise Problem(404, "Not Found", "no registration with this id (yet)")
        # a running saga changes within milliseconds: no caching; a finished one never changes
        finished = view["status"] not in ("running", "compensating")
        response.headers["Cache-Control"] = "private, max-age=60" if finished else "no-store"
        response.headers["Vary"] = HEADER  # the answer depends on the token, not the URL alone
        return view
