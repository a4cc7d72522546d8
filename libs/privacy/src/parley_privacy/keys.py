"""Data keys and where they come from.

A `KeyProvider` answers "the key of this subject": the key owner's table (`KeyStore`, the auth
service) or the owner's internal endpoint through a short cache (`KeyClient`, everyone else).
`None` means the subject has no key: never had one, or was forgotten (shredded). Failing to
reach the owner is `KeyUnavailable`, never `None`: a consumer must retry then, not redact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Key:
    subject: str
    kid: str
    secret: bytes

    def __repr__(self) -> str:  # never print key material
        return f"Key(subject={self.subject!r}, kid={self.kid!r})"


class SubjectForgotten(Exception):
    """The subject was forgotten: nothing new may be encrypted for them."""


class KeyUnavailable(Exception):
    """The key owner could not be asked (down, timeout, refused our credentials)."""


class KeyProvider(Protocol):
    async def key(self, subject: str, max_age_s: float | None = None) -> Key | None:
        """The subject's key, or None when it has none (never created, or forgotten).
        `max_age_s`: a cached copy older than that is not trusted (stores ignore it)."""
        ...

    async def key_for_writing(self, subject: str) -> Key:
        """The subject's key, created when missing; SubjectForgotten once forgotten."""
        ...

    def evict(self, subject: str) -> None:
        """Drop a cached key (e.g. on UserForgotten): the next use asks the owner again."""
        ...

    def clear(self) -> None:
        """Drop every cached key (a gap in what this process heard of forgotten persons)."""
        ...


class KeyOwner(KeyProvider, Protocol):
    """A provider that can also forget a subject (the owner itself, or its client) and is
    closed with the service."""

    async def forget(
        self, subject: str, *, actor: str | None = None, correlation_id: str | None = None
    ) -> None: ...

    async def close(self) -> None: ...
