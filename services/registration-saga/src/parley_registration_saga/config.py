"""Settings from the environment (pydantic-settings); the same names in every deployment."""

from __future__ import annotations

from datetime import timedelta

from pydantic_settings import BaseSettings, SettingsConfigDict

from parley_registration_saga.domain import Policy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAGA_", extra="ignore")

    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/saga"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 8105
    pool_size: int = 8
    log_level: str = "INFO"
    # per attempt: how long a participant may take to reply; then retries with backoff
    step_timeout_s: float = 4.0
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 4.0
    compensation_attempts: int = 8
    timer_tick_s: float = 0.1
    # consume triggers and replies (off in tests that drive the orchestrator directly)
    consume: bool = True
    # checks the X-Registration-Token GET /v1/registrations/{id} requires (auth-api's
    # AUTH_REGISTRATION_SECRET, parley_http.registration); empty: every such GET answers 404
    registration_secret: str = ""

    def policy(self) -> Policy:
        return Policy(
            step_timeout=timedelta(seconds=self.step_timeout_s),
            max_attempts=self.max_attempts,
            backoff_base=timedelta(seconds=self.backoff_base_s),
            backoff_max=timedelta(seconds=self.backoff_max_s),
            compensation_attempts=self.compensation_attempts,
        )
