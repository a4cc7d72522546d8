"""The composition root: over the kit's lifespan, the notification and preference repositories,
the policy (chat messages -> notifications, mail), the saga's steps and the routes."""

from __future__ import annotations

from fastapi import FastAPI
from parley_commandkit import CommandService, Kit, Wiring
from parley_privacy.keys import KeyOwner

from parley_notifications import domain, http, policy, saga
from parley_notifications.config import Settings
from parley_notifications.handlers import BUS, Repositories
from parley_notifications.mail import Mailer
from parley_notifications.migrate import migrate


def bootstrap(settings: Settings | None = None, keys: KeyOwner | None = None) -> FastAPI:
    """`keys`: the data-key owner (tests: a MemoryKeys); default auth's key endpoint."""
    s = settings or Settings()

    async def wire(kit: Kit) -> Wiring[Repositories]:
        repos = Repositories(  # previews sealed with the sender's key; short streams: no snapshots
            kit.repository(domain.Notification, domain.NOTIFICATION_EVENTS, snapshot_every=None),
            kit.repository(domain.Preferences, domain.PREFERENCES_EVENTS, sealed=False),
        )
        mailer, codes = (
            Mailer(s.smtp_host, s.smtp_port),
            saga.CodeSource(s.auth_url, s.internal_token),
        )
        rules = policy.wired(repos, kit.pool, mailer, s.mail_from, kit.cipher)
        kafka, group = s.kafka_bootstrap_servers, s.consumer_group
        jobs = [policy.run_forever(rules, kafka, group, kit.stop)] if s.consume_events else []
        if s.saga_participant:
            jobs.append(saga.participant(kit, repos, codes, mailer, s.mail_from, kafka))
        return Wiring(repos, jobs, state={"repos": repos, "policy": rules}, closers=[codes.close])

    title, routes = "Parley notifications (commands)", http.include_routes
    service = CommandService("notifications", title, s, BUS, http.ERRORS, wire, routes, keys)
    service.before_start = (lambda: migrate(s.postgres_dsn)) if s.migrate_on_start else None
    return service.app()
