"""Keys and tokens made in tests: an Ed25519 signer playing the auth service (libs/authn and
every service that verifies access tokens use it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import OKPAlgorithm


@dataclass
class Signer:
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def jwk(self) -> dict[str, Any]:
        jwk = OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        return jwt.encode(
            claims(**overrides),
            self.private,
            algorithm="EdDSA",
            headers={"kid": self.kid, **(headers or {})},
        )


def jwks(*signers: Signer) -> dict[str, Any]:
    return {"keys": [s.jwk() for s in signers]}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user-1",
        "role": "user",
        "sid": "session-1",
        "iat": now,
        "exp": now + 900,
        "iss": "parley-auth",
        "aud": "parley",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """header.payload. with an empty signature (alg none)."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."


def hmac_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """A token MAC'ed with ``secret``: the key-confusion attack uses the public key as secret."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"
