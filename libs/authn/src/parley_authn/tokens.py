"""Access-token verification without a call to the auth service per request.

The auth service signs short-lived access tokens with Ed25519 (JWS ``alg`` = ``EdDSA``) and
publishes its public keys as a JWKS. A :class:`Verifier` checks a token against those keys
held in memory (:class:`KeySet`) and returns a :class:`Principal`. Only two things reach the
network, both throttled: the first key-set load, and a reload when a token names a key id the
set does not know (a key rotation) or the set is older than ``max_age_s``.

Revocation (logout, revoked sessions) is not visible in a token: pair the verifier with
:class:`parley_authn.revocation.RevocationList`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import jwt
from cachetools import TTLCache
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from parley_authn.settings import AuthnSettings

log = logging.getLogger("parley.authn")

ALGORITHM = "EdDSA"
ISSUER = "parley-auth"
AUDIENCE = "parley"
ROLES = ("user", "admin")
Role = Literal["user", "admin"]
MAX_JWKS_BYTES = 64 * 1024


class InvalidToken(Exception):
    """The bearer token is missing, malformed, not signed by a known key, expired or revoked.

    ``reason`` is short, fixed text that is safe to show a client (never token contents).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who made the request, as the auth service vouched for it in the access token."""

    user_id: str
    role: Role
    session_id: str
    expires_at: datetime
    # when the person last gave their password (the OpenID Connect `auth_time` claim: the
    # session's login, unchanged by refreshes); None when the token does not say
    auth_time: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def authenticated_within(self, seconds: float, now: datetime | None = None) -> bool:
        """True if the password was given less than `seconds` ago (a token without
        `auth_time` never is: it cannot prove a fresh authentication)."""
        if self.auth_time is None:
            return False
        age = ((now or datetime.now(UTC)) - self.auth_time).total_seconds()
        return age < seconds


def parse_jwks(document: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The usable keys of a JWKS by ``kid``: Ed25519 (``OKP``) signing keys only.

    Keys of other types, encryption keys and malformed entries are skipped (logged), so one
    odd entry cannot take the whole set down.
    """
    keys: dict[str, Ed25519PublicKey] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("a JWKS has a 'keys' list")
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        kid = entry.get("kid")
        if (
            not isinstance(kid, str)
            or not kid
            or entry.get("kty") != "OKP"
            or entry.get("crv") != "Ed25519"
            or entry.get("use", "sig") != "sig"
            or entry.get("alg", ALGORITHM) != ALGORITHM
        ):
            log.info("JWKS entry skipped (not an Ed25519 signing key with a kid): %s", kid)
            continue
        try:
            key = jwt.PyJWK(dict(entry), algorithm=ALGORITHM).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
            log.warning("JWKS entry %s skipped: %s", kid, error)
            continue
        if isinstance(key, Ed25519PublicKey):
            keys[kid] = key
    return keys


class KeySet:
    """The auth service's public keys, by ``kid``, cached in memory.

    Either a ``url`` (the auth service's ``/.well-known/jwks.json``), fetched lazily and
    reloaded when a token names an unknown kid, or a fixed ``jwks`` document (tests, a key
    pinned in settings), or both (the document is the initial content).

    Reloads happen at most once per ``min_refresh_interval_s``, whatever triggers them, so
    tokens with made-up kids cannot turn into a flood of requests to the auth service; while a
    reload runs, concurrent requests wait for it instead of starting their own. A failed reload
    keeps the keys already known. The set is also reloaded when older than ``max_age_s``, so a
    key the auth service withdrew stops being accepted after at most that long.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        jwks: Mapping[str, Any] | None = None,
        min_refresh_interval_s: float = 10.0,
        max_age_s: float = 3600.0,
        timeout_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if url is None and jwks is None:
            raise ValueError("a KeySet needs a JWKS url or a JWKS document")
        self.url = url
        self.min_refresh_interval_s = min_refresh_interval_s
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self._transport = transport
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = parse_jwks(jwks) if jwks is not None else {}
        self._loaded_at: float | None = clock() if jwks is not None else None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # reload attempts against the url (for metrics and tests)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        """The key named ``kid``, reloading the set first if needed and allowed."""
        key = self._keys.get(kid)
        if self.url is None or (key is not None and not self._stale()):
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is not None and not self._stale():
                return key  # another request reloaded while this one waited
            if self._may_fetch():
                await self._fetch()
            return self._keys.get(kid)

    async def refresh(self) -> bool:
        """Reload now (at start-up, say), bypassing the throttle; False if it failed."""
        if self.url is None:
            return True
        async with self._lock:
            return await self._fetch()

    def _stale(self) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at > self.max_age_s

    def _may_fetch(self) -> bool:
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at >= self.min_refresh_interval_s
        )

    async def _fetch(self) -> bool:
        assert self.url is not None
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout_s, transport=self._transport
            ) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
            keys = parse_jwks(json.loads(response.content))
        except (httpx.HTTPError, ValueError) as error:
            log.warning(
                "JWKS reload from %s failed, keeping %d keys: %s", self.url, len(self._keys), error
            )
            return False
        if not keys:
            log.warning("JWKS at %s holds no Ed25519 signing key; keeping the old set", self.url)
            return False
        self._keys = keys
        self._loaded_at = self._clock()
        log.info("JWKS loaded from %s: kids %s", self.url, sorted(keys))
        return True


VERIFIED_TTL_S = 60.0


class Verifier:
    """Checks a bearer access token and returns its :class:`Principal`.

    Accepted: a JWS with ``alg`` = ``EdDSA`` exactly (``none``, HS* and every other algorithm
    are refused before any key is touched), a ``kid`` the key set knows, a valid signature,
    ``iss`` and ``aud`` as configured, ``exp`` in the future and ``iat`` not in the future
    (both with ``leeway_s``), a lifetime ``exp - iat`` of at most ``max_ttl_s`` (the revocation
    list only remembers that long, so a longer-lived token could outlive its revocation), and
    the claims ``sub``, ``sid`` and ``role`` (``user`` or ``admin``).
    """

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        leeway_s: float = 10.0,
        max_ttl_s: float = 900.0,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self.max_ttl_s = max_ttl_s
        # token -> (principal, the key that verified it) for tokens verified within the last
        # `VERIFIED_TTL_S`: a client sends the same token for minutes, and the signature check
        # is most of the cost of a cheap read. A hit still asks the key set for that key (a dict
        # lookup, or the reload that max age asks for), so a key withdrawn from the JWKS stops
        # its cached tokens too; expiry is checked on every use, revocation by the caller.
        self._verified: TTLCache[str, tuple[Principal, str, Ed25519PublicKey]] = TTLCache(
            maxsize=100_000, ttl=VERIFIED_TTL_S
        )

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; raises :class:`InvalidToken` otherwise."""
        known = self._verified.get(token)
        if known is not None:
            principal, kid, key = known
            if await self.keys.get(kid) != key:  # withdrawn, or the kid now names another key
                del self._verified[token]
                raise InvalidToken("token signed by an unknown key")
            if principal.expires_at.timestamp() + self.leeway_s < time.time():
                raise InvalidToken("token expired")
            return principal
        principal, kid, key = await self._verify(token)
        self._verified[token] = (principal, kid, key)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, str, Ed25519PublicKey]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unsupported token algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token names no signing key")
        key = await self.keys.get(kid)
        if key is None:
            raise InvalidToken("token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "sid", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.PyJWTError as error:
            log.debug("token refused: %s", error)
            raise InvalidToken("token invalid") from None
        return self._principal(claims), kid, key

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        sub, sid, role = claims["sub"], claims["sid"], claims["role"]
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(sub, str) or not sub or not isinstance(sid, str) or not sid:
            raise InvalidToken("token invalid")
        if role not in ROLES:
            raise InvalidToken("token invalid")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat)):
            raise InvalidToken("token invalid")
        if exp - iat > self.max_ttl_s:
            raise InvalidToken("token lifetime too long")
        auth_time = claims.get("auth_time")
        if auth_time is not None and (
            not isinstance(auth_time, int | float)
            or isinstance(auth_time, bool)
            or auth_time > iat + self.leeway_s  # a login after the token was issued
        ):
            raise InvalidToken("token invalid")
        return Principal(
            user_id=sub,
            role=role,
            session_id=sid,
            expires_at=datetime.fromtimestamp(exp, UTC),
            auth_time=datetime.fromtimestamp(auth_time, UTC) if auth_time is not None else None,
        )

    @classmethod
    def from_settings(cls, settings: AuthnSettings) -> Verifier:
        """From :class:`AuthnSettings` (or a service's settings class that inherits them).
        No I/O: the keys are fetched on first use or by ``await verifier.keys.refresh()``."""
        if not settings.jwks_url and not settings.jwks:
            raise ValueError("set <PREFIX>_JWKS_URL (or a static <PREFIX>_JWKS document)")
        document = json.loads(settings.jwks) if settings.jwks else None
        keys = KeySet(
            settings.jwks_url or None,
            jwks=document,
            min_refresh_interval_s=settings.jwks_min_refresh_interval_s,
            max_age_s=settings.jwks_max_age_s,
        )
        return cls(
            keys,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            leeway_s=settings.token_leeway_s,
            max_ttl_s=settings.access_token_max_ttl_s,
        )
