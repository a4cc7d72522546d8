"""Aggregates kept warm between commands of one process (Repository's `keep_warm`).

A command on a busy stream loads a snapshot and up to `snapshot_every` events, decodes and
decrypts them, and folds them: most of its cost, to rebuild the state the previous command on
the same stream left in memory a moment ago. Kept here, that state is reused as long as it is
safe:
- only under the repository's per-stream queue (`serialize`): one command at a time touches
  a kept aggregate;
- an entry is taken out while its command runs, and put back only after a save that wrote (or
  had nothing to write), so a command that raised halfway never leaves a half-changed state;
- a kept state may be behind the stream (another replica or writer appended since), so a
  decision on it counts only when the store confirms it: events appended at the kept version.
  A refusal (the domain raised), a command with nothing to write (a no-op decided on an old
  state, e.g. "already a participant"), or a ConcurrencyError on the kept version: the
  repository loads afresh and decides once more, exactly as it would have without the entry
  (so the entry never turns into a wrong 404, 409 or no-op, and never costs a retry);
- an entry lives `ttl_s` from the load it came from, not from its last use: a busy stream is
  still reloaded that often, which bounds how long a key destroyed since (crypto-shredding)
  or a state that only a fresh load reduces can outlive the store's view;
- at most `size` entries, least recently used out first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

A = TypeVar("A")


class WarmAggregates(Generic[A]):
    def __init__(
        self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if size < 1 or ttl_s <= 0:
            raise ValueError("a warm cache needs size >= 1 and ttl_s > 0")
        self.size = size
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, A]] = OrderedDict()

    def take(self, stream_id: str) -> tuple[float, A] | None:
        """The stream's kept aggregate with the time it was loaded, removed from the cache
        (None: none, or too old)."""
        entry = self._entries.pop(stream_id, None)
        if entry is None or self.clock() - entry[0] >= self.ttl_s:
            return None
        return entry

    def keep(self, stream_id: str, loaded_at: float, aggregate: A) -> None:
        self._entries[stream_id] = (loaded_at, aggregate)
        self._entries.move_to_end(stream_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
