"""Settings from the environment (pydantic-settings), variables `REALTIME_*`."""

from __future__ import annotations

import secrets
import socket

from parley_authn import AuthnSettings
from parley_privacy import PrivacySettings
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(AuthnSettings, PrivacySettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REALTIME_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8106
    log_level: str = "INFO"
    jwks_url: str = "http://127.0.0.1:8102/.well-known/jwks.json"
    # the gateway's own database: tickets and presence (not an event store)
    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/realtime"
    # the chat read model: who is in a conversation (typing) and who shares one (presence)
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = "parley"
    # this process among the replicas (presence rows); unique per start unless set
    replica_id: str = ""
    heartbeat_s: float = 15.0
    max_streams_per_person: int = 10
    # frames queued for one stream before its client counts as too slow and is disconnected
    max_pending_frames: int = 1000
    # a resume further behind than this many records gets `reset` instead of a replay
    max_replay_records: int = 200_000
    typing_ttl_s: float = 5.0
    typing_interval_s: float = 1.0
    # short: a pushed text must not outlive its author's forgetting by long (this process does
    # not read users.events, so it drops a forgotten person's key only when the TTL ends)
    keys_cache_ttl_s: float = 10.0

    def replica(self) -> str:
        return self.replica_id or f"{socket.gethostname()}-{self.port}-{secrets.token_hex(3)}"
