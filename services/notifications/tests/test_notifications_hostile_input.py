"""Every route of the notifications command API with hostile input (parley_testing.hostile):
a 4xx problem, never a 5xx, and no hostile value reaches the event store. No server: the
pool is a Boundary stand-in, tokens come from a test signer, data keys from memory."""

from __future__ import annotations

import json
import uuid

import httpx
from parley_authn import install_authn
from parley_commandkit import Commands
from parley_eventstore.aggregate import Repository
from parley_eventstore.codec import EventCodec
from parley_eventstore.store import EventStore
from parley_notifications import http
from parley_notifications.bootstrap import bootstrap
from parley_notifications.config import Settings
from parley_notifications.domain import (
    NOTIFICATION_EVENTS,
    PREFERENCES_EVENTS,
    Notification,
    Preferences,
)
from parley_notifications.handlers import BUS, Repositories
from parley_privacy.fields import FieldCipher
from parley_privacy.memory import MemoryKeys
from parley_testing.hostile import Boundary, BoundaryLog, operations_from_app, walk
from parley_testing.tokens import Signer, jwks

SIGNER = Signer()  # plays the auth service
USER = {"Authorization": f"Bearer {SIGNER.token(sub=str(uuid.uuid4()))}"}


async def test_every_route_answers_hostile_input_with_a_4xx_problem() -> None:
    settings = Settings(jwks=json.dumps(jwks(SIGNER)), consume_events=False, saga_participant=False)
    keys = MemoryKeys()
    app = bootstrap(settings, keys=keys)
    install_authn(app, app.state.authn.verifier, None)  # no revocation list: no Kafka here
    log = BoundaryLog()
    pool = Boundary("postgres", log)
    store = EventStore(
        pool, topic="notifications.events", source="/parley/notifications", context=http.CONTEXT
    )
    app.state.pool = pool
    app.state.repos = Repositories(
        notifications=Repository(
            store, Notification, EventCodec(*NOTIFICATION_EVENTS), cipher=FieldCipher(keys)
        ),
        preferences=Repository(store, Preferences, EventCodec(*PREFERENCES_EVENTS)),
    )
    app.state.commands = Commands(http.CONTEXT, BUS, app.state.repos, http.ERRORS)
    operations = operations_from_app(app)
    assert {op.name for op in operations} >= {
        "PUT /v1/notifications/preferences",
        "POST /v1/notifications/{notification_id}/read",
    }

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifications") as client:
        report = await walk(client, operations, USER, boundary=log)

    assert report.failures == [], "\n".join(report.failures[:50])
    assert report.sent > 300, report.summary()
    assert report.reached > 0, report.summary()  # clean requests do get through
