"""The composition root: the kit's lifespan, pool, store and keys; the notification and
preference repositories, the policy (chat messages -> notifications, mail), the saga's steps
and the routes."""

from __future__ import annotations

from fastapi import FastAPI
from parley_commandkit import CommandService, Kit, Wiring
from parley_eventstore.commandlog import SagaCommandLog
from parley_messaging.participant import serve_forever
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
from parley_notifications.handlers import BUS, Repositories
from parley_notifications.mail import Mailer
from parley_notifications.migrate import migrate


def bootstrap(settings: Settings | None = None, keys: KeyOwner | None = None) -> FastAPI:
    """`keys`: the data-key owner (tests: a MemoryKeys); default auth's key endpoint."""
    settings = settings or Settings()
    kafka = settings.kafka_bootstrap_servers

    async def migrate_first() -> None:
        await migrate(settings.postgres_dsn)

    async def wire(kit: Kit) -> Wiring[Repositories]:
        repos = Repositories(
            # previews are sealed with the sender's key; notifications are short: no snapshots
            notifications=kit.repository(Notification, NOTIFICATION_EVENTS, snapshot_every=None),
            preferences=kit.repository(Preferences, PREFERENCES_EVENTS, sealed=False),
        )
        mailer = Mailer(settings.smtp_host, settings.smtp_port)
        rules = policy.Policy(
            store=policy.EventStoreBackend(repos),
            directory=Directory(kit.pool),
            mailer=mailer,
            mail_from=settings.mail_from,
            cipher=kit.cipher,
        )
        codes = saga.CodeSource(settings.auth_url, settings.internal_token)
        jobs = []
        if settings.consume_events:
            jobs.append(policy.run_forever(rules, kafka, settings.consumer_group, kit.stop))
        if settings.saga_participant:
            steps = saga.handlers(repos, codes, mailer, settings.mail_from, kit.cipher)
            jobs.append(
                serve_forever(
                    "notifications", steps, kafka, kit.stop, commands=SagaCommandLog(kit.pool)
                )
            )
        return Wiring(repos, jobs, state={"repos": repos, "policy": rules}, closers=[codes.close])

    return CommandService(
        "notifications",
        "Parley notifications (commands)",
        settings,
        BUS,
        http.ERRORS,
        wire,
        http.include_routes,
        keys,
        before_start=(lambda: migrate(settings.postgres_dsn))
        if settings.migrate_on_start
        else None,
    ).app()
