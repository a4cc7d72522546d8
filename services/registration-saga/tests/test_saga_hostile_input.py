"""`GET /v1/registrations/{id}` (and the ops routes) with hostile input
(parley_testing.hostile): a 4xx problem, never a 5xx, and no hostile value reaches the saga's
table. No server: the pool is a Boundary stand-in under the real orchestrator."""

from __future__ import annotations

import asyncio

import httpx
from parley_messaging.topics import SAGA_REPLIES
from parley_registration_saga.bootstrap import bootstrap
from parley_registration_saga.config import Settings
from parley_registration_saga.orchestrator import Orchestrator
from parley_testing.hostile import Boundary, BoundaryLog, operations_from_app, walk


async def test_every_route_answers_hostile_input_with_a_4xx_problem() -> None:
    settings = Settings(consume=False)
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
        report = await walk(client, operations, boundary=log)

    assert report.failures == [], "\n".join(report.failures[:50])
    assert report.sent > 200, report.summary()
    assert report.reached > 0, report.summary()  # clean requests do get through
