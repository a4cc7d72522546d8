"""The composition root: settings -> pool -> orchestrator -> consumer, timer and HTTP app.

No I/O at import time: connections open in the app's lifespan and close with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from parley_eventstore.outbox import OutboxWaker, pending
from parley_eventstore.pool import create_pool
from parley_http.edge import install_edge
from parley_http.openapi import document_problems
from parley_messaging.supervise import in_background
from parley_messaging.topics import SAGA_REPLIES
from parley_observability.http import install_observability
from parley_observability.metrics import outbox_refresher

from parley_registration_saga import consumer, http
from parley_registration_saga.config import Settings
from parley_registration_saga.orchestrator import Orchestrator

log = logging.getLogger("parley.saga")


def bootstrap(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    if not settings.registration_secret:
        log.warning("SAGA_REGISTRATION_SECRET unset: GET /v1/registrations/{id} answers 404 to all")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.postgres_dsn, min_size=2, max_size=settings.pool_size)
        waker = OutboxWaker(pool)
        orchestrator = Orchestrator(pool, settings.policy(), SAGA_REPLIES, waker)
        app.state.pool = pool
        app.state.orchestrator = orchestrator
        stop = asyncio.Event()
        app.state.consuming = consuming = asyncio.Event()
        if not settings.consume:
            consuming.set()
        jobs = [consumer.timers(orchestrator, settings.timer_tick_s, stop)]
        if settings.consume:
            kafka = settings.kafka_bootstrap_servers
            jobs.append(consumer.run_forever(orchestrator, kafka, stop, consuming))
        try:
            async with in_background(stop, jobs):
                yield
        finally:
            await pool.close()

    app = FastAPI(title="Parley registration saga", version="1.0.0", lifespan=lifespan)
    install_edge(app, max_body_bytes=1024)  # GET only: no body is expected

    async def database_ready() -> bool:
        async with app.state.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT 1") == 1)

    async def consumer_ready() -> bool:
        # the consumer group holds its partitions with pinned positions (see consumer.py)
        return bool(app.state.consuming.is_set())

    install_observability(
        app,
        {"postgres": database_ready, "kafka": consumer_ready},
        refresh=[
            lambda: app.state.orchestrator.refresh_metrics(),
            outbox_refresher("saga", lambda: pending(app.state.pool)),
        ],
    )
    http.include_routes(app, settings.registration_secret)
    document_problems(app)
    return app
