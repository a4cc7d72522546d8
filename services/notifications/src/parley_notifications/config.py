"""Settings from the environment (pydantic-settings); the same names in every deployment."""

from __future__ import annotations

from parley_authn import AuthnSettings
from parley_privacy.settings import PrivacySettings
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(AuthnSettings, PrivacySettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore")

    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/notifications"
    host: str = "127.0.0.1"
    port: int = 8104
    pool_size: int = 16
    snapshot_every: int = 100
    group_commit: bool = True
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    # access tokens are verified locally against the auth service's keys (libs/authn)
    jwks_url: str = "http://127.0.0.1:8102/.well-known/jwks.json"
    # the policy: chat.events (messages) and users.events (addresses) -> notifications
    consume_events: bool = True
    consumer_group: str = "notifications-policy"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "Parley <no-reply@parley.invalid>"
    # the registration saga's steps on notifications.commands: default preferences and the
    # verification-code mail, whose code comes from the auth service's internal endpoint
    saga_participant: bool = True
    auth_url: str = "http://127.0.0.1:8102"
    # internal_token (the auth service's AUTH_INTERNAL_TOKEN): from PrivacySettings, the same
    # token for the verification-code and the data-key endpoints
    # apply the database's migrations (event store + directory) before serving: for
    # docker-compose, whose shared init image lacks this package; the local cluster and
    # Kubernetes (a Job) migrate beforehand
    migrate_on_start: bool = False
