"""The composition root: settings -> pool, keys, hasher, mailer -> handlers' `Auth` -> FastAPI.

No I/O at import time: the pool opens in the app's lifespan (and so does the development key
file, read or generated on first start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
from fastapi import FastAPI
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
from parley_privacy.store import KeyStore

from parley_auth import http, saga, tables
from parley_auth.config import Settings
from parley_auth.domain import EVENTS, Account
from parley_auth.handlers import Auth
from parley_auth.mail import Mailer
from parley_auth.passwords import Passwords
from parley_auth.tokens import CodeHasher, KeySet

TOPIC = "auth.events"
SOURCE = "/parley/auth"
PURGE_EVERY_S = 600
log = logging.getLogger("parley.auth")


async def build(settings: Settings, pool: asyncpg.Pool) -> tuple[Auth, EventStore]:
    """The handlers' dependencies over an open pool (also used by the admin CLI)."""
    store = EventStore(
        pool, topic=TOPIC, source=SOURCE, context=http.CONTEXT, group_commit=settings.group_commit
    )
    keys = KeySet.from_settings(
        settings.signing_key_pem,
        settings.previous_key_pem,
        settings.key_dir,
        issuer=settings.issuer,
        audience=settings.audience,
    )
    codes = (
        CodeHasher(settings.code_secret.encode())
        if settings.code_secret
        else CodeHasher.derived_from(keys.signing_key)
    )
    # the key owner: subject keys live in this database (parley_privacy.store)
    subject_keys = KeyStore(pool)
    if not settings.internal_token:
        log.warning("AUTH_INTERNAL_TOKEN is not set: the internal key endpoint refuses everyone")
    auth = Auth(
        settings=settings,
        pool=pool,
        accounts=Repository(
            store,
            Account,
            EventCodec(*EVENTS),
            snapshot_every=settings.snapshot_every,
            cipher=FieldCipher(subject_keys),
        ),
        subject_keys=subject_keys,
        keys=keys,
        codes=codes,
        passwords=Passwords(
            settings.argon2_time_cost,
            settings.argon2_memory_kib,
            settings.argon2_parallelism,
            settings.hash_concurrency,
        ),
        mailer=Mailer(settings.smtp_host, settings.smtp_port, settings.smtp_timeout_s),
    )
    return auth, store


async def purge_loop(auth: Auth) -> None:
    """Drop elapsed login-throttle counters now and then (they are only dead weight)."""
    window = timedelta(seconds=auth.settings.login_window_s)
    while True:
        await asyncio.sleep(PURGE_EVERY_S)
        try:
            await tables.purge_throttle(auth.pool, window)
        except (OSError, asyncpg.PostgresError):
            log.warning("throttle purge failed; retrying later", exc_info=True)


def bootstrap(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.postgres_dsn, min_size=2, max_size=settings.pool_size)
        auth, store = await build(settings, pool)
        app.state.pool = pool
        app.state.auth = auth
        purger = asyncio.create_task(purge_loop(auth))
        stop = asyncio.Event()
        participant = []
        if settings.saga_participant:
            participant = [
                serve_forever(
                    "auth",
                    saga.handlers(auth),
                    settings.kafka_bootstrap_servers,
                    stop,
                    commands=SagaCommandLog(pool),
                )
            ]
        try:
            async with in_background(stop, participant):
                yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            await auth.background.drain()  # mails and resets accepted before shutdown
            await store.close()
            await pool.close()

    app = FastAPI(title="Parley auth (commands)", version="1.0.0", lifespan=lifespan)
    install_edge(app, max_body_bytes=settings.max_body_bytes)

    async def database_ready() -> bool:
        async with app.state.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT 1") == 1)

    install_observability(
        app,
        {"postgres": database_ready},
        refresh=[outbox_refresher("auth", lambda: pending(app.state.pool))],
    )
    http.include_routes(app)
    return app
