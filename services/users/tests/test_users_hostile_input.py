"""Every route of the users API with hostile input (parley_testing.hostile): a 4xx problem,
never a 5xx, and no hostile value reaches the event store. No server: the store's pool is a
Boundary stand-in, tokens come from a test signer, data keys from memory (MemoryKeys)."""

from __future__ import annotations

import json
import uuid

import httpx
from parley_authn import install_authn
from parley_commandkit import Commands
from parley_eventstore.aggregate import Repository
from parley_eventstore.codec import EventCodec
from parley_eventstore.store import EventStore
from parley_privacy.fields import FieldCipher
from parley_privacy.memory import MemoryKeys
from parley_testing.hostile import Boundary, BoundaryLog, operations_from_app, walk
from parley_testing.tokens import Signer, jwks
from parley_users import http
from parley_users.bootstrap import bootstrap
from parley_users.config import Settings
from parley_users.domain import EVENTS, User
from parley_users.handlers import BUS

SIGNER = Signer()  # plays the auth service
ADMIN = {"Authorization": f"Bearer {SIGNER.token(sub=str(uuid.uuid4()), role='admin')}"}
SAMPLES = {"email": "ada@example.test", "name": "Ada", "at": "1"}


async def test_every_route_answers_hostile_input_with_a_4xx_problem() -> None:
    settings = Settings(jwks=json.dumps(jwks(SIGNER)), consume_registrations=False)
    keys = MemoryKeys()
    app = bootstrap(settings, keys=keys)
    install_authn(app, app.state.authn.verifier, None)  # no revocation list: no Kafka here
    log = BoundaryLog()
    pool = Boundary("postgres", log)
    store = EventStore(pool, topic="users.events", source="/parley/users", context=http.CONTEXT)
    app.state.pool = pool
    app.state.keys = keys
    app.state.users = Repository(store, User, EventCodec(*EVENTS), cipher=FieldCipher(keys))
    app.state.commands = Commands(http.CONTEXT, BUS, app.state.users, http.ERRORS)
    operations = operations_from_app(app)
    assert {op.name for op in operations} >= {
        "POST /v1/users",
        "PATCH /v1/users/{user_id}",
        "DELETE /v1/users/{user_id}/contacts/{contact_id}",
        "GET /v1/users/{user_id}/state",
        "GET /metrics",
    }

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://users") as client:
        report = await walk(client, operations, ADMIN, SAMPLES, boundary=log)

    assert report.failures == [], "\n".join(report.failures[:50])
    assert report.sent > 1000, report.summary()
    assert report.reached > 0, report.summary()  # clean requests do get through
