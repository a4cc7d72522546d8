"""Settings from the environment (pydantic-settings, `NOTIFICATIONS_*`): the kit's shared
fields (parley_commandkit.CommandSettings) and this service's own."""

from __future__ import annotations

from parley_commandkit import CommandSettings
from pydantic_settings import SettingsConfigDict


class Settings(CommandSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore")

    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/notifications"
    port: int = 8104
    # the policy: chat.events (messages) and users.events (addresses) -> notifications
    consume_events: bool = True
    consumer_group: str = "notifications-policy"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "Parley <no-reply@parley.invalid>"
    # the registration saga's steps on notifications.commands: default preferences and the
    # verification-code mail, whose code comes from the auth service's internal endpoint
    saga_participant: bool = True
    # auth-api's internal port (AUTH_INTERNAL_PORT, never behind the gateway)
    auth_url: str = "http://127.0.0.1:8112"
    # internal_token: this service's own credential (from PrivacySettings), the same for the
    # verification-code (scope codes:mint) and the data-key endpoints
    # apply the database's migrations (event store + directory) before serving: for
    # docker-compose, whose shared init image lacks this package; the local cluster and
    # Kubernetes (a Job) migrate beforehand
    migrate_on_start: bool = False
