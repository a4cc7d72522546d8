"""The key client of every service that is not the key owner: the owner's internal endpoint
(`<base>/internal/v1/keys/{subject}` on auth-api's internal port, `Authorization: Bearer
<this caller's credential>` (`<name>.<secret>`, as every internal endpoint of auth-api:
GET needs the scope keys:read, POST keys:create, DELETE keys:destroy) behind a short TTL
cache.

- `GET` answers 200 `{subject, kid, key}` (key: base64url), 404 (no key yet) or 410
  (forgotten). `POST` is get-or-create: 200, or 410 once forgotten.
- Keys are cached for `ttl_s` (a forgotten subject's key thus outlives its destruction in a
  consumer by at most that long; UserForgotten consumers call `evict`); "no key" answers for
  `negative_ttl_s`; "forgotten" for good (it is permanent).
- Anything else (connection error, timeout, 5xx, 401/403, 429) is `KeyUnavailable`: retry,
  never redact on it. Concurrent misses for one subject share one request.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx

from parley_privacy.keys import Key, KeyUnavailable, SubjectForgotten

PATH = "/internal/v1/keys/"


class KeyClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        ttl_s: float = 10.0,
        negative_ttl_s: float = 5.0,
        timeout_s: float = 5.0,
        max_entries: int = 100_000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
        )
        # subject -> (expires at (monotonic), key or None, forgotten)
        self._cache: dict[str, tuple[float, Key | None, bool]] = {}
        self._inflight: dict[tuple[str, bool], asyncio.Future[tuple[Key | None, bool]]] = {}

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> KeyClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def evict(self, subject: str) -> None:
        """Drop the subject's cached key; "forgotten" is permanent and stays known."""
        cached = self._cache.get(subject)
        if cached is not None and not cached[2]:
            del self._cache[subject]

    def clear(self) -> None:
        """Drop every cached key (what is known to be forgotten stays: it is permanent)."""
        self._cache = {s: entry for s, entry in self._cache.items() if entry[2]}

    async def key(self, subject: str, max_age_s: float | None = None) -> Key | None:
        """The subject's key (None: none, or forgotten). `max_age_s`: a cached key fetched
        longer ago than that is asked for again (history reads: a key destroyed a moment ago
        must not keep decrypting from the cache)."""
        if max_age_s is not None:
            cached = self._cache.get(subject)
            if cached is not None and not cached[2]:
                fetched = cached[0] - (self.ttl_s if cached[1] is not None else self.negative_ttl_s)
                if time.monotonic() - fetched > max_age_s:
                    self.evict(subject)
        key, _ = await self._lookup(subject, create=False)
        return key

    async def key_for_writing(self, subject: str) -> Key:
        key, _ = await self._lookup(subject, create=True)
        if key is None:
            raise SubjectForgotten(subject)
        return key

    async def _lookup(self, subject: str, create: bool) -> tuple[Key | None, bool]:
        cached = self._cache.get(subject)
        if cached is not None:
            expires, known, forgotten = cached
            if forgotten:
                return None, True
            if expires > time.monotonic() and (known is not None or not create):
                return known, False
        flight = self._inflight.get((subject, create))
        if flight is not None:
            return await asyncio.shield(flight)
        future: asyncio.Future[tuple[Key | None, bool]] = asyncio.get_running_loop().create_future()
        self._inflight[(subject, create)] = future
        try:
            found = await self._fetch(subject, create)
            future.set_result(found)
            return found
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._inflight[(subject, create)]

    async def _fetch(self, subject: str, create: bool) -> tuple[Key | None, bool]:
        try:
            if create:
                response = await self._http.post(PATH + subject)
            else:
                response = await self._http.get(PATH + subject)
        except httpx.HTTPError as error:
            raise KeyUnavailable(f"key owner unreachable: {error!r}") from error
        now = time.monotonic()
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            raw = str(body["key"])
            secret = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            key = Key(subject, str(body["kid"]), secret)
            self._remember(subject, (now + self.ttl_s, key, False))
            return key, False
        if response.status_code == 410:
            self._remember(subject, (now, None, True))
            return None, True
        if response.status_code == 404 and not create:
            self._remember(subject, (now + self.negative_ttl_s, None, False))
            return None, False
        raise KeyUnavailable(f"key owner answered {response.status_code}")

    async def forget(
        self, subject: str, *, actor: str | None = None, correlation_id: str | None = None
    ) -> None:
        """Ask the key owner to forget the subject (destroy the key, close the account);
        idempotent. Only the users service's `DELETE /v1/users/{id}` does this (the only
        caller with keys:destroy; auth limits how fast: 429 is KeyUnavailable too)."""
        headers = {}
        if actor:
            headers["X-Parley-Actor"] = actor
        if correlation_id:
            headers["X-Correlation-Id"] = correlation_id
        try:
            response = await self._http.delete(PATH + subject, headers=headers)
        except httpx.HTTPError as error:
            raise KeyUnavailable(f"key owner unreachable: {error!r}") from error
        if response.status_code != 204:
            raise KeyUnavailable(f"key owner answered {response.status_code} to forget")
        self._remember(subject, (time.monotonic(), None, True))

    def _remember(self, subject: str, entry: tuple[float, Key | None, bool]) -> None:
        if len(self._cache) >= self.max_entries:
            self._cache.clear()  # crude bound; a refill costs one request per subject
        self._cache[subject] = entry


def key_body(key: Key) -> dict[str, str]:
    """The endpoint's answer for a key (what `KeyClient` reads)."""
    return {
        "subject": key.subject,
        "kid": key.kid,
        "key": base64.urlsafe_b64encode(key.secret).rstrip(b"=").decode(),
    }
