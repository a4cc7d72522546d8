"""The settings every command service shares; a service subclasses with its prefix and own
fields:

    class Settings(CommandSettings):
        model_config = SettingsConfigDict(env_prefix="CHAT_", extra="ignore")
        postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/chat"
        port: int = 8103

`CommandSettings` adds what a service needs that verifies bearer tokens (libs/authn) and reads
data keys from their owner (libs/privacy); the owner of both (auth) takes the base.
"""

from __future__ import annotations

from parley_authn import AuthnSettings
from parley_privacy.settings import PrivacySettings
from pydantic_settings import BaseSettings


class BaseCommandSettings(BaseSettings):
    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/postgres"
    host: str = "127.0.0.1"
    port: int = 8100
    pool_size: int = 16
    snapshot_every: int = 100
    # concurrent appends share one round trip (parley_eventstore's group commit)
    group_commit: bool = True
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    # signs the X-Consistency-Token of every command response (parley_http.consistency); the
    # same secret in every command service and the query gateway. Empty: no tokens handed out
    consistency_secret: str = ""


class CommandSettings(AuthnSettings, PrivacySettings, BaseCommandSettings):
    # access tokens are verified locally against the auth service's keys (libs/authn)
    jwks_url: str = "http://127.0.0.1:8102/.well-known/jwks.json"
