"""Settings from the environment (pydantic-settings); the same names in every deployment."""

from __future__ import annotations

from parley_authn import AuthnSettings
from parley_privacy.settings import PrivacySettings
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(AuthnSettings, PrivacySettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_", extra="ignore")

    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/users"
    host: str = "127.0.0.1"
    port: int = 8101
    pool_size: int = 16
    snapshot_every: int = 100
    group_commit: bool = True
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    # access tokens are verified locally against the auth service's keys (libs/authn)
    jwks_url: str = "http://127.0.0.1:8102/.well-known/jwks.json"
    # consume Kafka: role/address mirror from auth.events and the registration saga's commands
    # on users.commands (off in tests that drive commands directly)
    consume_registrations: bool = True
