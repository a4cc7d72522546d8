"""Relay settings from the environment (pydantic-settings)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAY_", extra="ignore")

    name: str = "relay"
    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/users"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    batch_size: int = 1000
    poll_interval_s: float = 0.5  # fallback when a NOTIFY is missed
    standby_retry_s: float = 1.0  # how often a standby tries to become leader
    linger_ms: int = 2
    host: str = "127.0.0.1"
    port: int = 0  # HTTP port for /metrics /healthz /readyz; 0 = none
    log_level: str = "INFO"
    # test-only fault injection (see faults.py); empty in every real deployment
    fault: str = ""
