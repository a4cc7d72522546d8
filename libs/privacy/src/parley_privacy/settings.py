"""The settings every key consumer shares (mixed into each service's Settings, so the
variables read `<PREFIX>_KEYS_URL`, `<PREFIX>_INTERNAL_TOKEN`, `<PREFIX>_KEYS_CACHE_TTL_S`)."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from parley_privacy.client import KeyClient
from parley_privacy.fields import FieldCipher

log = logging.getLogger("parley.privacy")


class PrivacySettings(BaseModel):
    # the key owner (auth service) base URL; its /internal/v1/keys/ endpoint
    keys_url: str = "http://127.0.0.1:8102"
    # the shared service-to-service secret of the internal endpoint (AUTH_INTERNAL_TOKEN)
    internal_token: str = ""  # empty: the owner refuses us (fail closed)
    keys_cache_ttl_s: float = 60.0

    def key_client(self) -> KeyClient:
        if not self.internal_token:
            log.warning(
                "no internal token configured (<PREFIX>_INTERNAL_TOKEN): the key owner will "
                "refuse us, so commands with personal data answer 503 and consumers wait"
            )
        return KeyClient(self.keys_url, self.internal_token, ttl_s=self.keys_cache_ttl_s)

    def cipher(self) -> FieldCipher:
        return FieldCipher(self.key_client())
