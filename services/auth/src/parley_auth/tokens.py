"""Keys and tokens: Ed25519 signing keys, EdDSA access tokens (PyJWT), the JWKS, opaque refresh
tokens and one-time codes (only hashes of the last two are stored)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"
KEY_FILE = "signing-key.pem"
PREVIOUS_KEY_FILE = "previous-key.pem"


class InvalidAccessToken(Exception):
    """Bad signature, unknown key, wrong issuer/audience, expired, malformed."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def public_jwk(key: Ed25519PublicKey) -> dict[str, Any]:
    """The JWK of a public key with `kid` = its RFC 7638 thumbprint."""
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(key))
    required = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}
    thumbprint = hashlib.sha256(
        json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    ).digest()
    return {**required, "kid": _b64(thumbprint), "alg": ALGORITHM, "use": "sig"}


def _load_private(pem: str | bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key")
    return key


def _load_public(pem: str | bytes) -> Ed25519PublicKey:
    raw = pem.encode() if isinstance(pem, str) else pem
    if b"PRIVATE KEY" in raw:
        return _load_private(raw).public_key()
    key = serialization.load_pem_public_key(raw)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the previous key must be an Ed25519 key")
    return key


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_from_dir(directory: Path) -> Ed25519PrivateKey:
    """The development key under `directory`, generated on first use (mode 0600). Replicas
    starting together race safely: the file is created exclusively, the loser reads it."""
    path = directory / KEY_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{KEY_FILE}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private_pem(Ed25519PrivateKey.generate()))
        try:
            os.link(tmp, path)  # fails if another process won: then use its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return _load_private(path.read_bytes())


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    role: str
    sid: str
    iat: int
    exp: int
    # when the holder last gave their password (OpenID Connect `auth_time`): the login, carried
    # unchanged by refreshes; None in tokens issued before the claim existed
    auth_time: int | None = None

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


class KeySet:
    """The current signing key and the public keys still accepted (current + previous)."""

    def __init__(
        self,
        signing_key: Ed25519PrivateKey,
        previous: list[Ed25519PublicKey] | None = None,
        *,
        issuer: str = "parley-auth",
        audience: str = "parley",
    ) -> None:
        self.signing_key = signing_key
        current = public_jwk(signing_key.public_key())
        self.kid: str = current["kid"]
        self.issuer = issuer
        self.audience = audience
        self._public: dict[str, Ed25519PublicKey] = {self.kid: signing_key.public_key()}
        self._jwks = [current]
        for key in previous or []:
            jwk = public_jwk(key)
            if jwk["kid"] not in self._public:
                self._public[jwk["kid"]] = key
                self._jwks.append(jwk)

    @classmethod
    def from_settings(
        cls,
        signing_key_pem: str | None,
        previous_key_pem: str | None,
        key_dir: Path,
        *,
        issuer: str,
        audience: str,
    ) -> KeySet:
        signing = _load_private(signing_key_pem) if signing_key_pem else key_from_dir(key_dir)
        previous = []
        if previous_key_pem:
            previous.append(_load_public(previous_key_pem))
        elif not signing_key_pem and (key_dir / PREVIOUS_KEY_FILE).exists():
            previous.append(_load_public((key_dir / PREVIOUS_KEY_FILE).read_bytes()))
        return cls(signing, previous, issuer=issuer, audience=audience)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(k) for k in self._jwks]}

    def issue(
        self,
        user_id: str,
        role: str,
        session_id: str,
        ttl: timedelta,
        now: datetime,
        auth_time: datetime | None = None,
    ) -> tuple[str, AccessClaims]:
        """An access token; `auth_time` is the session's login (default: now, a login)."""
        iat = int(now.timestamp())
        authenticated = int((auth_time or now).timestamp())
        exp = iat + int(ttl.total_seconds())
        claims = AccessClaims(user_id, role, session_id, iat, exp, authenticated)
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": claims.sub,
            "role": claims.role,
            "sid": claims.sid,
            "iat": claims.iat,
            "exp": claims.exp,
            "auth_time": claims.auth_time,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            payload, self.signing_key, algorithm=ALGORITHM, headers={"kid": self.kid}
        )
        return token, claims

    def verify(self, token: str) -> AccessClaims:
        """Signature (by `kid`), issuer, audience, expiry; raises InvalidAccessToken."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._public.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise InvalidAccessToken("unknown signing key")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "sid", "iss", "aud"]},
            )
            auth_time = claims.get("auth_time")
            return AccessClaims(
                str(claims["sub"]),
                str(claims.get("role", "user")),
                str(claims["sid"]),
                int(claims["iat"]),
                int(claims["exp"]),
                int(auth_time) if isinstance(auth_time, int) else None,
            )
        except jwt.PyJWTError as error:
            raise InvalidAccessToken(str(error)) from error


# -- refresh tokens and one-time codes ---------------------------------------------------------


def new_refresh_token() -> str:
    """256 random bits, URL-safe; the client keeps it, the server keeps only its hash."""
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> bytes:
    """A fast hash suffices: the token has 256 bits of entropy (no dictionary to try)."""
    return hashlib.sha256(token.encode()).digest()


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def new_link_token() -> str:
    """The password-reset secret: 128 random bits (22 URL-safe characters), sent as a link.
    Online guessing is hopeless (2^128 values against a few thousand guesses a day), so it
    needs no guessing budget of its own; the wrong-code limits apply to it all the same."""
    return secrets.token_urlsafe(16)


class CodeHasher:
    """Keyed hash (HMAC-SHA256) of a 6-digit code (or a reset link's token), bound to account
    and purpose: a leaked table cannot be brute-forced offline (10^6 codes) without the
    secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def derived_from(cls, key: Ed25519PrivateKey) -> CodeHasher:
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(hashlib.sha256(b"parley-auth-codes:" + raw).digest())

    def hash(self, account_id: str, purpose: str, code: str) -> bytes:
        message = f"{account_id}:{purpose}:{code}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def matches(self, account_id: str, purpose: str, code: str, stored: bytes) -> bool:
        return hmac.compare_digest(self.hash(account_id, purpose, code), stored)
