"""The composition root: settings -> pool -> event store -> repository -> FastAPI app.

No I/O at import time: connections open in the app's lifespan and close with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from parley_authn import RevocationList, Verifier, install_authn
from parley_eventstore.aggregate import Repository
from parley_eventstore.codec import EventCodec
from parley_eventstore.commandlog import SagaCommandLog
from parley_eventstore.outbox import pending
from parley_eventstore.pool import create_pool
from parley_eventstore.store import EventStore
from parley_http.edge import install_edge
from parley_messaging.participant import serve_forever
from parley_messaging.supervise import in_background
from parley_observability.http import install_observability
from parley_observability.metrics import outbox_refresher
from parley_privacy.fields import FieldCipher
from parley_privacy.keys import KeyOwner

from parley_users import http, registrations, saga
from parley_users.config import Settings
from parley_users.domain import EVENTS, User

TOPIC = "users.events"
SOURCE = "/parley/users"


def bootstrap(settings: Settings | None = None, keys: KeyOwner | None = None) -> FastAPI:
    """`keys`: the data-key owner (tests: a MemoryKeys); default the auth service's key
    endpoint through a short cache (settings `keys_url`, `internal_token`)."""
    settings = settings or Settings()
    verifier = Verifier.from_settings(settings)
    revocations = RevocationList.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.postgres_dsn, min_size=2, max_size=settings.pool_size)
        store = EventStore(
            pool,
            topic=TOPIC,
            source=SOURCE,
            context=http.CONTEXT,
            group_commit=settings.group_commit,
        )
        app.state.pool = pool
        owner: KeyOwner = keys if keys is not None else settings.key_client()
        cipher = FieldCipher(owner)
        app.state.keys = owner
        app.state.users = Repository(
            store,
            User,
            EventCodec(*EVENTS),
            snapshot_every=settings.snapshot_every,
            cipher=cipher,
        )
        stop = asyncio.Event()
        consumers = []
        if settings.consume_registrations:
            kafka = settings.kafka_bootstrap_servers
            consumers = [
                registrations.run_forever(app.state.users, cipher, kafka, stop),
                serve_forever(
                    "users",
                    saga.handlers(app.state.users, cipher),
                    kafka,
                    stop,
                    commands=SagaCommandLog(pool),
                ),
            ]
        try:
            async with in_background(stop, consumers), revocations:
                yield
        finally:
            await store.close()
            await owner.close()
            await pool.close()

    app = FastAPI(title="Parley users (commands)", version="1.0.0", lifespan=lifespan)
    install_edge(app, max_body_bytes=settings.max_body_bytes)

    async def database_ready() -> bool:
        async with app.state.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT 1") == 1)

    install_authn(app, verifier, revocations)
    install_observability(
        app,
        {"postgres": database_ready, "revocations": revocations.check_ready},
        refresh=[outbox_refresher("users", lambda: pending(app.state.pool))],
    )
    http.include_routes(app)
    return app
