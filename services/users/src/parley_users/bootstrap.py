"""The composition root: the kit's lifespan, pool, store and keys; the users repository, the
Kafka consumers (auth's mirror, the saga's commands) and the routes."""

from __future__ import annotations

from fastapi import FastAPI
from parley_commandkit import CommandService, Kit, Wiring
from parley_eventstore.aggregate import Repository
from parley_eventstore.commandlog import SagaCommandLog
from parley_messaging.participant import serve_forever
from parley_privacy.keys import KeyOwner

from parley_users import http, registrations, saga
from parley_users.config import Settings
from parley_users.domain import EVENTS, User
from parley_users.handlers import BUS
from parley_users.http import ERRORS


def bootstrap(settings: Settings | None = None, keys: KeyOwner | None = None) -> FastAPI:
    """`keys`: the data-key owner (tests: a MemoryKeys); default auth's key endpoint."""
    settings = settings or Settings()

    async def wire(kit: Kit) -> Wiring[Repository[User]]:
        users = kit.repository(User, EVENTS)
        kafka, log = settings.kafka_bootstrap_servers, SagaCommandLog(kit.pool)
        jobs = []
        if settings.consume_registrations:  # auth's mirror and the saga's commands
            jobs.append(registrations.run_forever(users, kit.cipher, kafka, kit.stop))
            steps = saga.handlers(users, kit.cipher)
            jobs.append(serve_forever("users", steps, kafka, kit.stop, commands=log))
        return Wiring(users, jobs, state={"users": users})

    title = "Parley users (commands)"
    return CommandService(
        "users", title, settings, BUS, ERRORS, wire, http.include_routes, keys
    ).app()
