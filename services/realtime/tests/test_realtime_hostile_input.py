"""Every route of the realtime gateway with hostile input (parley_testing.hostile): a 4xx
problem, never a 5xx, and no hostile value reaches PostgreSQL (tickets, presence). No server:
the signals' pool is a Boundary stand-in, tokens come from a test signer; the live feed is
marked started, so a clean stream request gets as far as counting the stream."""

from __future__ import annotations

import json
import uuid

import httpx
from parley_authn import install_authn
from parley_realtime.bootstrap import bootstrap
from parley_realtime.config import Settings
from parley_testing.hostile import Boundary, BoundaryLog, operations_from_app, walk
from parley_testing.tokens import Signer, jwks

SIGNER = Signer()  # plays the auth service
USER = str(uuid.uuid4())
CALLER = {"Authorization": f"Bearer {SIGNER.token(sub=USER)}"}


async def test_every_route_answers_hostile_input_with_a_4xx_problem() -> None:
    app = bootstrap(Settings(jwks=json.dumps(jwks(SIGNER))))
    install_authn(app, app.state.authn.verifier, None)  # no revocation list: no Kafka here
    log = BoundaryLog()
    streams = app.state.streams
    streams.signals._pool = Boundary("postgres", log)
    streams.hub.start_at({})
    operations = operations_from_app(app)
    assert {op.name for op in operations} >= {
        "GET /v1/stream",
        "POST /v1/stream/tickets",
        "POST /v1/conversations/{conversation_id}/typing",
        "GET /v1/users/{user_id}/presence",
    }

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://realtime") as client:
        report = await walk(client, operations, CALLER, {"user_id": USER}, boundary=log)

    assert report.failures == [], "\n".join(report.failures[:50])
    assert report.sent > 200, report.summary()
    assert report.reached > 0, report.summary()  # clean requests do get through
