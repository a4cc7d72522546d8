"""Settings from the environment (`SEARCH_*`, pydantic-settings)."""

from __future__ import annotations

from parley_privacy.settings import PrivacySettings
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(PrivacySettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEARCH_", extra="ignore")

    name: str = "projector-search"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/search"
    max_records: int = 500
    host: str = "127.0.0.1"
    port: int = 0  # ops endpoint (/metrics /healthz /readyz); 0 = none
    log_level: str = "INFO"
