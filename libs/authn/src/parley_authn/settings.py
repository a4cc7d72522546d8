"""Settings every service that authenticates requests shares, under the service's own prefix.

A service inherits the fields so they read as ``<PREFIX>_JWKS_URL`` and so on::

    class Settings(AuthnSettings, BaseSettings):
        model_config = SettingsConfigDict(env_prefix="QUERY_", extra="ignore")
        mongo_url: str = ...

=========================================== ========== ==========================================
variable                                    default    meaning
=========================================== ========== ==========================================
``<PREFIX>_JWKS_URL``                       (none)     the auth service's ``/.well-known/jwks.json``
``<PREFIX>_JWKS``                           (none)     a static JWKS document (JSON), instead or
                                                       as the initial keys
``<PREFIX>_ACCESS_TOKEN_MAX_TTL_S``         900        the longest access-token lifetime accepted,
                                                       and the revocation list's memory
``<PREFIX>_TOKEN_LEEWAY_S``                 10         clock skew allowed on ``exp``/``iat``
``<PREFIX>_TOKEN_ISSUER``                   parley-auth  expected ``iss``
``<PREFIX>_TOKEN_AUDIENCE``                 parley     expected ``aud``
``<PREFIX>_JWKS_MIN_REFRESH_INTERVAL_S``    10         at most one JWKS reload per this long
``<PREFIX>_JWKS_MAX_AGE_S``                 3600       reload the JWKS when older than this
``<PREFIX>_KAFKA_BOOTSTRAP_SERVERS``        127.0.0.1:9092  where ``auth.events`` is read
``<PREFIX>_REVOCATION_TOPIC``               auth.events  the auth service's event topic
=========================================== ========== ==========================================
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuthnSettings(BaseModel):
    jwks_url: str = ""
    jwks: str = ""
    access_token_max_ttl_s: float = Field(default=900.0, gt=0)
    token_leeway_s: float = Field(default=10.0, ge=0)
    token_issuer: str = "parley-auth"  # noqa: S105 (a name, not a secret)
    token_audience: str = "parley"  # noqa: S105
    jwks_min_refresh_interval_s: float = Field(default=10.0, ge=0)
    jwks_max_age_s: float = Field(default=3600.0, gt=0)
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    revocation_topic: str = "auth.events"
