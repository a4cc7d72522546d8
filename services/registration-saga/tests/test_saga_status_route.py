"""`GET /v1/registrations/{id}` answers only the holder of the registration token (issue 19):
without it, or with a wrong one, exactly the 404 of an unknown id, decided before the store is
asked. No server: the orchestrator is a stand-in that knows one registration."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from parley_http.registration import registration_token
from parley_registration_saga.bootstrap import bootstrap
from parley_registration_saga.config import Settings

SECRET = "test-registration-secret"
KNOWN = str(uuid.uuid4())
VIEW = {
    "id": KNOWN,
    "status": "completed",
    "step": None,
    "started_at": "2026-01-01T00:00:00+00:00",
    "updated_at": "2026-01-01T00:00:01+00:00",
    "history": [{"step": "create_profile", "event": "done", "at": "2026-01-01T00:00:01+00:00"}],
}


class Registrations:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def view(self, saga_id: str) -> dict[str, Any] | None:
        self.asked.append(saga_id)
        return VIEW if saga_id == KNOWN else None


async def test_only_the_registration_token_shows_the_status() -> None:
    app = bootstrap(Settings(consume=False, registration_secret=SECRET))
    app.state.orchestrator = store = Registrations()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://saga") as client:

        async def get(saga_id: str, token: str | None) -> httpx.Response:
            headers = {} if token is None else {"X-Registration-Token": token}
            return await client.get(f"/v1/registrations/{saga_id}", headers=headers)

        unknown_id = str(uuid.uuid4())
        unknown = await get(unknown_id, registration_token(SECRET, unknown_id))
        assert unknown.status_code == 404
        assert store.asked == [unknown_id]  # the right token of an id nobody registered

        refused = {
            "no token": None,
            "a wrong token": "A" * 22,
            "another id's token": registration_token(SECRET, unknown_id),
            "another secret's token": registration_token("not-the-secret", KNOWN),
        }
        for name, token in refused.items():
            answer = await get(KNOWN, token)
            assert answer.status_code == 404, name
            assert answer.headers["content-type"] == "application/problem+json", name
            # the same words as an unknown id's (but the path each names)
            assert {**answer.json(), "instance": None} == {**unknown.json(), "instance": None}
        assert store.asked == [unknown_id]  # none of them asked the store

        shown = await get(KNOWN, registration_token(SECRET, KNOWN))
        assert shown.status_code == 200
        assert shown.json() == VIEW
        assert shown.headers["Vary"] == "X-Registration-Token"


async def test_without_a_secret_no_registration_is_shown() -> None:
    app = bootstrap(Settings(consume=False, registration_secret=""))
    app.state.orchestrator = Registrations()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://saga") as client:
        answer = await client.get(
            f"/v1/registrations/{KNOWN}",
            headers={"X-Registration-Token": registration_token(SECRET, KNOWN)},
        )
    assert answer.status_code == 404
