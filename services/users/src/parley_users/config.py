"""Settings from the environment (pydantic-settings, `USERS_*`): the kit's shared fields
(parley_commandkit.CommandSettings) and this service's own."""

from __future__ import annotations

from parley_commandkit import CommandSettings
from pydantic_settings import SettingsConfigDict


class Settings(CommandSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_", extra="ignore")

    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/users"
    port: int = 8101
    # consume Kafka: role/address mirror from auth.events and the registration saga's commands
    # on users.commands (off in tests that drive commands directly)
    consume_registrations: bool = True
