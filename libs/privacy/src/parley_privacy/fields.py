"""Field-level encryption of event data, driven by the public contract: the fields declared
with `parley_contracts.base.personal(subject, placeholder)` are encrypted with the data key of
the person named in field `subject` of the same event (or, for a field with a `scope`, with the
key `<scope>:<subject value>` of a thing: a conversation's title).

    cipher = FieldCipher(KeyClient(url, token))          # or FieldCipher(KeyStore(pool))
    data = await cipher.decrypt("UserRegistered", data)  # plaintext, or placeholders
    sealed = await cipher.encrypt("MessageSent", data)   # before the append

Decrypting never fails for a missing key: a field whose key is gone (the person was
forgotten) becomes the contract's placeholder, and `decrypt` lists it under the key
`_redacted` (consumers: show the placeholder, drop the copy). A value that is not an envelope
passes `decrypt` unchanged (the event store's own rows, events written before encryption),
but a consumer of a topic never takes one as plaintext: `consume` (and `require_sealed`) raise
`TamperedValue` for it, since every producer seals them (the event store's cipher) and a
plaintext one was forged or written around the cipher. A tampered envelope raises
`TamperedValue`; the owner being unreachable raises `KeyUnavailable` (retry).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from parley_contracts.base import PersonalField
from parley_contracts.registry import all_events

from parley_privacy.envelope import TamperedValue, is_sealed, kid_of, open_sealed, seal
from parley_privacy.keys import KeyProvider

REDACTED = "_redacted"


@cache
def contract_fields() -> dict[str, tuple[PersonalField, ...]]:
    """event name -> its personal fields, for every public event that has some."""
    found: dict[str, tuple[PersonalField, ...]] = {}
    for cls in all_events().values():
        fields = cls.personal_fields()
        if fields:
            found[cls.event_name()] = fields
    return found


FRESH_S = 1.0  # how old a cached key may be for a `fresh` decrypt (history reads)


class FieldCipher:
    def __init__(
        self, keys: KeyProvider, fields: Mapping[str, tuple[PersonalField, ...]] | None = None
    ) -> None:
        self.keys = keys
        self.fields = contract_fields() if fields is None else fields

    def personal(self, event_name: str) -> tuple[PersonalField, ...]:
        return self.fields.get(event_name, ())

    async def encrypt(self, event_name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """`data` with its personal fields sealed (creating the subject's key when it has
        none; SubjectForgotten when the subject was forgotten)."""
        out = dict(data)
        for field in self.personal(event_name):
            value = out.get(field.name)
            if not isinstance(value, str) or is_sealed(value):
                continue  # absent/None, or sealed already
            subject = field.key_subject(out)
            key = await self.keys.key_for_writing(subject)
            out[field.name] = seal(key.secret, key.kid, subject, field.name, value)
        return out

    async def decrypt(
        self, event_name: str, data: Mapping[str, Any], *, mark: bool = True, fresh: bool = False
    ) -> dict[str, Any]:
        """`data` with its personal fields in plaintext, or their placeholders where the key
        is gone (listed under `_redacted` when `mark`). `fresh`: a key cached more than a second
        ago is asked for again (one request per subject for a page of history)."""
        out = dict(data)
        redacted: list[str] = []
        for field in self.personal(event_name):
            value = out.get(field.name)
            if not is_sealed(value):
                continue
            assert isinstance(value, str)
            subject = field.key_subject(out)
            key = await self.keys.key(subject, max_age_s=FRESH_S if fresh else None)
            if key is None or key.kid != kid_of(value):
                out[field.name] = field.placeholder
                redacted.append(field.name)
            else:
                out[field.name] = open_sealed(key.secret, subject, field.name, value)
        if redacted and mark:
            out[REDACTED] = redacted
        return out

    def require_sealed(self, event_name: str, data: Mapping[str, Any]) -> None:
        """A consumer's check of a record from a topic: every personal field present is an
        envelope, else TamperedValue (the record is poison, never read as plaintext)."""
        for field in self.personal(event_name):
            value = data.get(field.name)
            if value is not None and not is_sealed(value):
                raise TamperedValue(f"{event_name}.{field.name} arrived unencrypted")

    async def consume(self, event_name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """What a consumer of a public topic calls for every event: `require_sealed`, then
        `decrypt` (placeholders and `_redacted` where the key is gone); on `UserForgotten` the
        person's cached key is dropped first, so nothing after it in this process decrypts
        with it."""
        self.require_sealed(event_name, data)
        if event_name == "UserForgotten" and "user_id" in data:
            self.keys.evict(str(data["user_id"]))
        return await self.decrypt(event_name, data)

    # the event store's DataCipher protocol (parley_eventstore.aggregate): no markers, so the
    # domain's models validate the data as they always did
    async def seal(self, event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        return await self.encrypt(event_type, data)

    async def open(
        self, event_type: str, data: Mapping[str, Any], *, fresh: bool = False
    ) -> dict[str, Any]:
        return await self.decrypt(event_type, data, mark=False, fresh=fresh)
