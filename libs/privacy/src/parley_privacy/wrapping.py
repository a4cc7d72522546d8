"""Data keys at rest are wrapped by a master key held outside the database.

The key table (`subject_keys`, in the key owner's database) never holds a data key in the
clear: each `secret` is `nonce | AES-256-GCM(master, data key) | tag`, with the associated
data `"<subject>|<kid>"` (a wrapped key copied to another row does not unwrap), and the row's
`wrap_kid` names the master key that wrapped it. A dump of the database (a backup, a replica,
a stolen disk) is thus useless without the master key, which lives in the environment (the
owner's `AUTH_MASTER_KEY`: a Kubernetes Secret, a compose variable, `.local` in the local
cluster) and, later, in a KMS.

Rotation: configure the new master key as the current one (`AUTH_MASTER_KEY` with a new
`AUTH_MASTER_KEY_ID`) and the old one under `AUTH_PREVIOUS_MASTER_KEYS` (`id:base64,...`);
rows wrapped by an old id keep unwrapping, and the owner re-wraps them under the current id at
its next start (`store.rewrap`). Once none is left under an old id, drop it from the list.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parley_privacy.envelope import KEY_BYTES, NONCE_BYTES


class MasterKeyError(ValueError):
    """A master key is malformed, unknown, or does not unwrap a row (never a data key)."""


def decode_key(text: str) -> bytes:
    """A master key from its base64 (standard or url-safe, padding optional): 32 bytes."""
    raw = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as error:
        raise MasterKeyError("a master key is base64 of 32 bytes") from error
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"a master key is {KEY_BYTES} bytes, not {len(key)}")
    return key


def new_master_key() -> str:
    """A fresh master key, base64 (what deployments generate once)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


@dataclass(frozen=True)
class MasterKeys:
    """The current master key (wraps new keys) and the previous ones (only unwrap)."""

    current_id: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.current_id not in self.keys:
            raise MasterKeyError("the current master key id has no key")
        if any(not k or ":" in k or "," in k for k in self.keys):
            raise MasterKeyError("a master key id is a non-empty name without ':' or ','")

    @classmethod
    def parse(cls, current: str, current_id: str, previous: str = "") -> MasterKeys:
        """From settings: the current key (base64) and its id, and `id:base64,...` of the
        keys before it."""
        keys = {current_id: decode_key(current)}
        for item in filter(None, (p.strip() for p in previous.split(","))):
            kid, sep, text = item.partition(":")
            if not sep:
                raise MasterKeyError("previous master keys are `id:base64,...`")
            keys.setdefault(kid.strip(), decode_key(text))
        return cls(current_id, keys)

    def wrap(self, subject: str, kid: str, secret: bytes) -> tuple[str, bytes]:
        """(master key id, wrapped data key) for a row of `subject` with data key id `kid`."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current_id]).encrypt(nonce, secret, _aad(subject, kid))
        return self.current_id, nonce + sealed

    def unwrap(self, wrap_kid: str, subject: str, kid: str, wrapped: bytes) -> bytes:
        master = self.keys.get(wrap_kid)
        if master is None:
            raise MasterKeyError(f"no master key {wrap_kid!r} configured to unwrap {subject!r}")
        try:
            return AESGCM(master).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad(subject, kid)
            )
        except InvalidTag as error:
            raise MasterKeyError(f"the key of {subject!r} does not unwrap") from error


def _aad(subject: str, kid: str) -> bytes:
    return f"{subject}|{kid}".encode()
