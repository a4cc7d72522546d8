"""Keys in a dict: the key owner for unit tests, benchmarks and integration tests of a service
whose key owner (auth) is not running (`bootstrap(settings, keys=MemoryKeys())`)."""

from __future__ import annotations

from parley_privacy.envelope import new_key, new_kid
from parley_privacy.keys import Key, SubjectForgotten


class MemoryKeys:
    def __init__(self) -> None:
        self.keys: dict[str, Key | None] = {}  # None: forgotten

    async def key(self, subject: str, max_age_s: float | None = None) -> Key | None:
        return self.keys.get(subject)

    async def key_for_writing(self, subject: str) -> Key:
        if subject not in self.keys:
            self.keys[subject] = Key(subject, new_kid(), new_key())
        key = self.keys[subject]
        if key is None:
            raise SubjectForgotten(subject)
        return key

    async def forget(
        self, subject: str, *, actor: str | None = None, correlation_id: str | None = None
    ) -> None:
        self.keys[subject] = None

    def evict(self, subject: str) -> None:
        return None

    def clear(self) -> None:
        return None

    async def close(self) -> None:
        return None
