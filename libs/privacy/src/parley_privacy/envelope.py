"""The encrypted field envelope: `pe1.<kid>.<base64url(nonce | ciphertext | tag)>`.

AES-256-GCM with a random 96-bit nonce per value. The associated data binds the value to its
subject and field (`<subject>|<field>`), so a ciphertext copied into another person's event or
another field fails authentication instead of decrypting. `kid` names the key (a subject has one
key; the id lets a later rotation keep old values readable). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "pe1."
NONCE_BYTES = 12
KEY_BYTES = 32


class TamperedValue(ValueError):
    """The envelope is malformed or does not authenticate under the key (never plaintext)."""


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def new_kid() -> str:
    return os.urandom(6).hex()


@lru_cache(maxsize=4096)
def _aead(key: bytes) -> AESGCM:
    """One cipher object per key (building it costs more than sealing a short text)."""
    return AESGCM(key)


def _aad(subject: str, field: str) -> bytes:
    return f"{subject}|{field}".encode()


def seal(key: bytes, kid: str, subject: str, field: str, plaintext: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = _aead(key).encrypt(nonce, plaintext.encode(), _aad(subject, field))
    body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
    return f"{PREFIX}{kid}.{body}"


def kid_of(value: str) -> str:
    parts = value.split(".")
    if len(parts) != 3 or parts[0] + "." != PREFIX:
        raise TamperedValue("not a pe1 envelope")
    return parts[1]


def open_sealed(key: bytes, subject: str, field: str, value: str) -> str:
    kid_of(value)
    body = value.rsplit(".", 1)[1]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as error:
        raise TamperedValue("bad base64") from error
    if len(raw) < NONCE_BYTES + 16:
        raise TamperedValue("too short")
    try:
        plain = _aead(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(subject, field))
    except InvalidTag as error:
        raise TamperedValue("does not authenticate") from error
    return plain.decode()
