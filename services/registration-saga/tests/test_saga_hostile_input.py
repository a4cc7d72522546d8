"""`GET /v1/registrations/{id}` (and the ops routes) with hostile input
(parley_testing.hostile): a 4xx problem, never a 5xx, and no hostile value reaches the saga's
table. No server: the pool is a Boundary stand-in under the real orchestrator."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from parley_http.registration import registration_token
from parley_messaging.topics import SAGA_REPLIES
from parley_registration_saga.bootstrap import bootstrap
from parley_registration_saga.config import Settings
from parley_registration_saga.orchestrator import Orchestrator
from parley_testing.hostile import Boundary, BoundaryLog, operations_from_app, walk


async def test_every_route_answers_hostile_input_with_a_4xx_problem() -> None:
    settings = Settings(consume=False, registration_secret="test-registration-secret")
    app = bootstrap(settings)
    log = BoundaryLog()
    pool = Boundary("postgres", log)
    app.state.pool = pool
    app.state.orchestrator = Orchestrator(pool, settings.policy(), SAGA_REPLIES)
    app.state.consuming = asyncio.Event()
    operations = operations_from_app(app)
    assert "GET /v1/registrations/{registration_id}" in {op.name for op in operations}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://saga") as client:
        # the plain request holds the registration token of its id, so it reaches the store
        some_id = str(uuid.uuid4())
        token = registration_token(settings.registration_secret, some_id)
        report = await walk(
            client,
            operations,
            {"X-Registration-Token": token},
            {"registration_id": some_id},
            boundary=log,
        )

    assert report.failures == [], "\n".join(report.failures[:50])
    assert report.sent > 200, report.summary()
    assert report.reached > 0, report.summary()  # clean requests do get through
