"""The composition root: settings -> pool -> event store -> repositories -> policy + FastAPI.

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

from parley_notifications import http, policy, saga
from parley_notifications.config import Settings
from parley_notifications.directory import Directory
from parley_notifications.domain import (
    NOTIFICATION_EVENTS,
    PREFERENCES_EVENTS,
    Notification,
    Preferences,
)
from parley_notifications.handlers import Repositories
from parley_notifications.mail import Mailer
from parley_notifications.migrate import migrate

TOPIC = "notifications.events"
SOURCE = "/parley/notifications"


def bootstrap(settings: Settings | None = None, keys: KeyOwner | None = None) -> FastAPI:
    """`keys`: the data-key owner (tests: a MemoryKeys); default the auth service's key
    endpoint through a short cache (settings `keys_url`, `internal_token`)."""
    settings = settings or Settings()
    verifier = Verifier.from_settings(settings)
    revocations = RevocationList.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await migrate(settings.postgres_dsn)
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
        repos = Repositories(
            notifications=Repository(
                store,
                Notification,
                EventCodec(*NOTIFICATION_EVENTS),
                snapshot_every=None,
                cipher=cipher,  # previews: sealed with the sender's key
            ),
            preferences=Repository(
                store,
                Preferences,
                EventCodec(*PREFERENCES_EVENTS),
                snapshot_every=settings.snapshot_every,
            ),
        )
        app.state.repos = repos
        app.state.policy = policy.Policy(
            store=policy.EventStoreBackend(repos),
            directory=Directory(pool),
            mailer=Mailer(settings.smtp_host, settings.smtp_port),
            mail_from=settings.mail_from,
            cipher=cipher,
        )
        stop = asyncio.Event()
        jobs = []
        if settings.consume_events:
            jobs.append(
                policy.run_forever(
                    app.state.policy,
                    settings.kafka_bootstrap_servers,
                    settings.consumer_group,
                    stop,
                )
            )
        codes = saga.CodeSource(settings.auth_url, settings.internal_token)
        if settings.saga_participant:
            mailer = Mailer(settings.smtp_host, settings.smtp_port)
            jobs.append(
                serve_forever(
                    "notifications",
                    saga.handlers(repos, codes, mailer, settings.mail_from, cipher),
                    settings.kafka_bootstrap_servers,
                    stop,
                    commands=SagaCommandLog(pool),
                )
            )
        try:
            async with in_background(stop, jobs), revocations:
                yield
        finally:
            await codes.close()
            await store.close()
            await owner.close()
            await pool.close()

    app = FastAPI(title="Parley notifications (commands)", version="1.0.0", lifespan=lifespan)
    install_edge(app, max_body_bytes=settings.max_body_bytes)

    async def database_ready() -> bool:
        async with app.state.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT 1") == 1)

    install_authn(app, verifier, revocations)
    install_observability(
        app,
        {"postgres": database_ready, "revocations": revocations.check_ready},
        refresh=[outbox_refresher("notifications", lambda: pending(app.state.pool))],
    )
    http.include_routes(app)
    return app
