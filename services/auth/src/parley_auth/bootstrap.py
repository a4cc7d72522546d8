"""The composition root: the kit's lifespan, pool and store; the handlers' `Auth`, the saga's
steps, the user-status consumer, the throttle purge, the expiry of unverified registrations
and the routes (public and internal). No I/O at import time."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import asyncpg
from fastapi import FastAPI
from parley_commandkit import CommandService, Kit, Wiring
from parley_eventstore.commandlog import SagaCommandLog
from parley_messaging.participant import serve_forever
from parley_privacy.store import KeyStore, rewrap

from parley_auth import expiry, http, internal, saga, statuses, tables, web
from parley_auth.config import Settings
from parley_auth.domain import EVENTS, Account
from parley_auth.handlers import BUS, Auth


def bootstrap(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def own_keys(pool: asyncpg.Pool) -> KeyStore:
        return KeyStore(pool, master=settings.master_keys())

    kafka, window = settings.kafka_bootstrap_servers, timedelta(seconds=settings.login_window_s)

    async def wire(kit: Kit) -> Wiring[Auth]:
        master = settings.master_keys()
        if master is not None:  # keys stored in the clear, or under a previous master key
            await rewrap(kit.pool, master)
        else:
            logging.getLogger(__name__).warning("AUTH_MASTER_KEY unset: data keys unwrapped")
        auth = Auth.create(settings, kit.pool, kit.repository(Account, EVENTS))
        jobs = [
            tables.purge_forever(kit.pool, window, kit.stop),
            expiry.expire_forever(auth, kit.stop),
        ]
        if settings.saga_participant:
            log = SagaCommandLog(kit.pool)
            jobs.append(serve_forever("auth", saga.handlers(auth), kafka, kit.stop, commands=log))
        if settings.follow_user_status:
            jobs.append(statuses.run_forever(auth, kafka, kit.stop))
        ready = {}
        if settings.internal_port:
            server = internal.InternalServer(
                app.state.internal_app, settings.host, settings.internal_port
            )
            jobs.append(server.serve(kit.stop))
            ready["internal"] = server.ready
        # mails and resets accepted before a shutdown still go out (closers run after jobs)
        return Wiring(
            auth, jobs, state={"auth": auth}, closers=[auth.background.drain], ready=ready
        )

    service = CommandService(
        "auth", "Parley auth (commands)", settings, BUS, web.ERRORS, wire, http.include_routes
    )
    # auth owns the data keys (in its database, wrapped by the master key) and verifies the
    # tokens it issues itself
    app = dataclasses.replace(service, own_keys=own_keys, authenticate=False).app()
    app.state.internal_app = internal.internal_app(app, settings)
    return app
