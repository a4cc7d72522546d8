"""Crypto-shredding: personal data in events is encrypted per person; forgetting a person
destroys their key. See docs/decisions.md, "Crypto-shredding (issue 10, second half)".

Consumers of public topics decrypt an event's data with one call:

    from parley_privacy import FieldCipher, KeyClient
    cipher = FieldCipher(KeyClient(keys_url, credential))  # this caller's own
    data = await cipher.decrypt(envelope.event_name, json.loads(envelope.data))

Pure parts (`envelope`, `fields`' spec) import no driver; `KeyStore` (asyncpg) is the key
owner's, `KeyClient` (httpx) everyone else's. Names are exported lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley_privacy.client import KeyClient
    from parley_privacy.envelope import TamperedValue
    from parley_privacy.fields import REDACTED, FieldCipher
    from parley_privacy.keys import Key, KeyOwner, KeyProvider, KeyUnavailable, SubjectForgotten
    from parley_privacy.memory import MemoryKeys
    from parley_privacy.settings import PrivacySettings
    from parley_privacy.store import KeyStore

_EXPORTS = {
    "KeyClient": "client",
    "TamperedValue": "envelope",
    "REDACTED": "fields",
    "FieldCipher": "fields",
    "Key": "keys",
    "KeyProvider": "keys",
    "KeyOwner": "keys",
    "MemoryKeys": "memory",
    "KeyUnavailable": "keys",
    "SubjectForgotten": "keys",
    "PrivacySettings": "settings",
    "KeyStore": "store",
}
__all__ = [
    "REDACTED",
    "FieldCipher",
    "Key",
    "KeyClient",
    "KeyOwner",
    "KeyProvider",
    "KeyStore",
    "KeyUnavailable",
    "MemoryKeys",
    "PrivacySettings",
    "SubjectForgotten",
    "TamperedValue",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'parley_privacy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"parley_privacy.{module}"), name)
