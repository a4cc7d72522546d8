"""Settings from the environment (pydantic-settings)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUERY_", extra="ignore")

    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = "parley"
    # how long a GET with X-Consistency-Token waits for the read model to reach that write
    consistency_wait_s: float = 2.0
    # single documents read without a consistency token may be this old (0 turns it off)
    cache_ttl_s: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8100
    log_level: str = "INFO"
