"""The settings every key consumer shares (mixed into each service's Settings, so the
variables read `<PREFIX>_KEYS_URL`, `<PREFIX>_INTERNAL_TOKEN`, `<PREFIX>_KEYS_CACHE_TTL_S`,
`<PREFIX>_KEYS_FOLLOW_FORGOTTEN`)."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from parley_privacy.client import KeyClient
from parley_privacy.fields import FieldCipher

log = logging.getLogger("parley.privacy")


class PrivacySettings(BaseModel):
    # the key owner's internal port (auth-api's AUTH_INTERNAL_PORT, never behind the gateway);
    # its /internal/v1/keys/ endpoint
    keys_url: str = "http://127.0.0.1:8112"
    # this caller's own credential for it, `<caller name>.<secret>` (auth-api keeps the
    # secret's hash and the caller's scopes in AUTH_INTERNAL_CALLERS)
    internal_token: str = ""  # empty: the owner refuses us (fail closed)
    # how long a fetched key is trusted without asking again: the bound on how long a process
    # may still decrypt with a destroyed key if it did not hear of the forget (issue 19.5)
    keys_cache_ttl_s: float = 10.0
    # follow users.events without a consumer group and drop a forgotten person's cached key at
    # once in this process (parley_messaging.forgetting); off only in tests without Kafka
    keys_follow_forgotten: bool = True

    def key_client(self) -> KeyClient:
        if not self.internal_token:
            log.warning(
                "no internal credential configured (<PREFIX>_INTERNAL_TOKEN): the key owner will "
                "refuse us, so commands with personal data answer 503 and consumers wait"
            )
        return KeyClient(self.keys_url, self.internal_token, ttl_s=self.keys_cache_ttl_s)

    def cipher(self) -> FieldCipher:
        return FieldCipher(self.key_client())
