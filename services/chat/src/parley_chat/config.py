"""Settings from the environment (pydantic-settings); the same names in every deployment."""

from __future__ import annotations

from parley_authn import AuthnSettings
from parley_privacy.settings import PrivacySettings
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(AuthnSettings, PrivacySettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHAT_", extra="ignore")

    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/chat"
    host: str = "127.0.0.1"
    port: int = 8103
    pool_size: int = 16
    # a conversation's snapshot is bounded (participants + a window of recent messages), so
    # snapshotting often keeps the tail folded on every command short (<= 50 events)
    snapshot_every: int = 50
    group_commit: bool = True
    # commands on one conversation queue per process; a race with another replica re-runs the
    # command on a fresh load up to this many times (appends to a conversation commute)
    command_retries: int = 20
    serialize_per_conversation: bool = True
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    # access tokens are verified locally against the auth service's keys (libs/authn)
    jwks_url: str = "http://127.0.0.1:8102/.well-known/jwks.json"
