"""Who may call auth's internal endpoints, and for what (issue 19: a credential per caller
instead of one shared token, each with the least scope it needs).

A caller presents `Authorization: Bearer <name>.<secret>`: its workload name and a random
secret of its own. Auth keeps only the SHA-256 of each secret (a 256-bit random secret needs
no slow hash: nothing to guess) with the caller's scopes, configured from the environment:

    AUTH_INTERNAL_CALLERS={"users-api": {"secret_sha256": "<hex>", "scopes": ["keys:read",
                           "keys:create", "keys:destroy"]}, ...}

or the same JSON in a file, AUTH_INTERNAL_CALLERS_FILE. `python -m parley_auth.credentials`
makes a set of credentials and this JSON.
Scopes: `keys:read` (GET a data key), `keys:create` (POST: a subject's key, made on first
use, so it reads too), `keys:destroy` (DELETE: forget a subject) and `codes:mint` (a
verification code for a registering account). No framework; I/O only to read the configured file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

KEYS_READ = "keys:read"
KEYS_CREATE = "keys:create"
KEYS_DESTROY = "keys:destroy"
CODES_MINT = "codes:mint"
TOKENS_INTROSPECT = "tokens:introspect"  # RFC 7662 introspection (public app, not proxied)
SCOPES = frozenset({KEYS_READ, KEYS_CREATE, KEYS_DESTROY, CODES_MINT, TOKENS_INTROSPECT})

# The deployment's callers and the least each needs (the local cluster, compose and the
# Kubernetes manifests spell this table; deploy/tests check they agree). Who creates keys:
# the command services, which seal personal fields on append (users-api profiles, chat-api
# message texts, notifications-api previews); auth seals its own with its own store. The
# projectors and the realtime gateway only open them. Only users-api forgets a person.
STANDARD_CALLERS: dict[str, tuple[str, ...]] = {
    "users-api": (KEYS_READ, KEYS_CREATE, KEYS_DESTROY),
    "chat-api": (KEYS_READ, KEYS_CREATE),
    "notifications-api": (KEYS_READ, KEYS_CREATE, CODES_MINT),
    "projector-users": (KEYS_READ,),
    "projector-chat": (KEYS_READ,),
    "projector-notifications": (KEYS_READ,),
    "projector-search": (KEYS_READ,),  # names and message texts into the search model
    "realtime-gateway": (KEYS_READ,),
}

# workload names as Kubernetes spells them: no dot, so `<name>.<secret>` splits at the first
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def credential(name: str, secret: str) -> str:
    """What the caller `name` presents (its `<PREFIX>_INTERNAL_TOKEN`)."""
    return f"{name}.{secret}"


def callers_json(secrets: Mapping[str, str], scopes: Mapping[str, tuple[str, ...]]) -> str:
    """AUTH_INTERNAL_CALLERS for callers' secrets (name -> secret) and scopes."""
    entries = {
        name: {"secret_sha256": secret_sha256(secret), "scopes": sorted(scopes[name])}
        for name, secret in secrets.items()
    }
    return json.dumps(entries, sort_keys=True)


@dataclass(frozen=True)
class Caller:
    name: str
    secret_sha256: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class Callers:
    by_name: Mapping[str, Caller] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: str) -> Callers:
        """The callers of AUTH_INTERNAL_CALLERS (empty: nobody). A malformed entry (a name a
        credential cannot carry, a hash that is not 64 hex digits, an unknown scope) is a
        ValueError: auth refuses to start rather than guess what was meant."""
        if not raw.strip():
            return cls()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"AUTH_INTERNAL_CALLERS is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise ValueError("AUTH_INTERNAL_CALLERS must map caller names to their entries")
        callers: dict[str, Caller] = {}
        for name, entry in data.items():
            if not NAME.match(name):
                raise ValueError(f"internal caller {name!r}: not a lowercase workload name")
            if not isinstance(entry, dict):
                raise ValueError(f"internal caller {name!r}: expected an object")
            digest = entry.get("secret_sha256")
            if not isinstance(digest, str) or not SHA256_HEX.match(digest.lower()):
                raise ValueError(f"internal caller {name!r}: secret_sha256 must be 64 hex digits")
            scopes = entry.get("scopes")
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise ValueError(f"internal caller {name!r}: scopes must be a list of names")
            unknown = set(scopes) - SCOPES
            if unknown:
                raise ValueError(f"internal caller {name!r}: unknown scopes {sorted(unknown)}")
            callers[name] = Caller(name, digest.lower(), frozenset(scopes))
        return cls(callers)

    @classmethod
    def from_settings(cls, raw: str, path: str) -> Callers:
        """AUTH_INTERNAL_CALLERS, or the file AUTH_INTERNAL_CALLERS_FILE names (not both:
        which one would win is a guess). Malformed: ValueError, auth does not start."""
        if raw.strip() and path.strip():
            raise ValueError("set AUTH_INTERNAL_CALLERS or AUTH_INTERNAL_CALLERS_FILE, not both")
        return cls.from_json(Path(path).read_text() if path.strip() else raw)

    def authenticate(self, presented: str | None) -> Caller | None:
        """The caller whose credential this is, or None. The secret's hash is compared in
        constant time; a caller's name is not a secret (it is in every manifest)."""
        if not presented:
            return None
        name, dot, secret = presented.partition(".")
        caller = self.by_name.get(name)
        if not dot or not secret or caller is None:
            return None
        if not hmac.compare_digest(secret_sha256(secret), caller.secret_sha256):
            return None
        return caller


@dataclass
class Bucket:
    tokens: float
    at: float


@dataclass
class RateLimit:
    """A token bucket per caller: `rate_per_s` sustained, `burst` at once. In memory: only
    auth-api serves the endpoint, a limit per replica is enough to slow a stolen credential
    down (the audit log is what finds it), and it must not depend on the database whose
    rows it protects. With N replicas the cluster-wide limit is N times this."""

    rate_per_s: float
    burst: int
    buckets: dict[str, Bucket] = field(default_factory=dict)

    def take(self, key: str, now: float) -> float:
        """0 when the call may go ahead (one token taken), else the seconds until it may."""
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate_per_s)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        if self.rate_per_s <= 0:
            return float("inf")
        return (1.0 - bucket.tokens) / self.rate_per_s
