"""Settings from the environment (pydantic-settings)."""

from __future__ import annotations

from parley_authn import AuthnSettings
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(AuthnSettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUERY_", extra="ignore")

    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = "parley"
    # the search model (services/projector-search): user and message search, conversation
    # lists' order, unread totals
    search_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/search"
    search_pool_size: int = 10
    # how long a GET with X-Consistency-Token waits for the read model to reach that write
    consistency_wait_s: float = 2.0
    # verifies X-Consistency-Token (the command services' signing secret); empty: every
    # token is ignored (reads answer as without one)
    consistency_secret: str = ""
    # single documents read without a consistency token may be this old (0 turns it off)
    cache_ttl_s: float = 1.0
    # list pages (conversations, messages, search) read without a token: shorter, since a
    # new message should reach the other side's conversation list within half a second (a
    # page may be up to this plus one read old; a client polling faster than this costs the
    # store at most 1/ttl reads a second)
    list_cache_ttl_s: float = 0.1
    host: str = "127.0.0.1"
    port: int = 8100
    log_level: str = "INFO"
    # access tokens are verified locally against the auth service's keys (libs/authn)
    jwks_url: str = "http://127.0.0.1:8102/.well-known/jwks.json"
