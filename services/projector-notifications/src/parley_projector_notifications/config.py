"""Settings from the environment (pydantic-settings)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROJECTOR_", extra="ignore")

    name: str = "projector-notifications"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = "parley"
    max_records: int = 500
    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = "INFO"
