"""The composition root: the kit's lifespan, pool and store; the handlers' `Auth` (signing
keys, code hasher, password hasher, mailer, the data-key owner's table), the saga's steps,
the throttle purge and the routes (public and internal). No I/O at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import asyncpg
from fastapi import FastAPI
from parley_commandkit import CommandService, Kit, Wiring
from parley_eventstore.aggregate import Repository
from parley_eventstore.codec import EventCodec
from parley_eventstore.commandlog import SagaCommandLog
from parley_eventstore.store import EventStore
from parley_messaging.participant import serve_forever
from parley_privacy.fields import FieldCipher
from parley_privacy.store import KeyStore

from parley_auth import http, internal, saga, tables
from parley_auth.config import Settings
from parley_auth.domain import EVENTS, Account
from parley_auth.handlers import BUS, Auth
from parley_auth.mail import Mailer
from parley_auth.passwords import Passwords
from parley_auth.tokens import CodeHasher, KeySet

PURGE_EVERY_S = 600
log = logging.getLogger("parley.auth")


def auth_over(settings: Settings, pool: asyncpg.Pool, accounts: Repository[Account]) -> Auth:
    """The handlers' dependencies over an open pool and the accounts' repository."""
    keys = KeySet.from_settings(
        settings.signing_key_pem,
        settings.previous_key_pem,
        settings.key_dir,
        issuer=settings.issuer,
        audience=settings.audience,
    )
    secret = settings.code_secret
    codes = CodeHasher(secret.encode()) if secret else CodeHasher.derived_from(keys.signing_key)
    if not settings.internal_token:
        log.warning("AUTH_INTERNAL_TOKEN is not set: the internal key endpoint refuses everyone")
    s = settings
    passwords = Passwords(
        s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism, s.hash_concurrency
    )
    mailer = Mailer(s.smtp_host, s.smtp_port, s.smtp_timeout_s)
    return Auth(s, pool, accounts, keys, codes, passwords, mailer, KeyStore(pool))


async def build(settings: Settings, pool: asyncpg.Pool) -> tuple[Auth, EventStore]:
    """`Auth` and its store over an open pool, outside the service (the admin CLI, tests)."""
    store = EventStore(pool, topic="auth.events", source="/parley/auth", context="auth")
    cipher = FieldCipher(KeyStore(pool))
    accounts = Repository(
        store, Account, EventCodec(*EVENTS), snapshot_every=settings.snapshot_every, cipher=cipher
    )
    return auth_over(settings, pool, accounts), store


async def purge_loop(auth: Auth, stop: asyncio.Event) -> None:
    """Drop elapsed login-throttle counters now and then (they are only dead weight)."""
    window = timedelta(seconds=auth.settings.login_window_s)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PURGE_EVERY_S)
            return
        try:
            await tables.purge_throttle(auth.pool, window)
        except (OSError, asyncpg.PostgresError):
            log.warning("throttle purge failed; retrying later", exc_info=True)


def bootstrap(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def wire(kit: Kit) -> Wiring[Auth]:
        auth = auth_over(settings, kit.pool, kit.repository(Account, EVENTS))
        jobs = [purge_loop(auth, kit.stop)]
        if settings.saga_participant:
            log_ = SagaCommandLog(kit.pool)
            kafka = settings.kafka_bootstrap_servers
            jobs.append(serve_forever("auth", saga.handlers(auth), kafka, kit.stop, commands=log_))
        # mails and resets accepted before the shutdown still go out
        return Wiring(auth, jobs, state={"auth": auth}, closers=[auth.background.drain])

    def routes(app: FastAPI) -> None:
        http.include_routes(app)
        internal.include_routes(app)

    return CommandService(
        "auth",
        "Parley auth (commands)",
        settings,
        BUS,
        http.ERRORS,
        wire,
        routes,
        own_keys=KeyStore,
        authenticate=False,
    ).app()
