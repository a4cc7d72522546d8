"""Test-only fault injection: `RELAY_FAULT=crash_after_ack:<n>` makes the process die with
os._exit right after Kafka acknowledged its n-th batch and before the rows are deleted, the
window where a crash must cause duplicates, never loss. `crash_before_send:<n>` dies before
sending the n-th batch. Empty (the default) in every real deployment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Faults:
    point: str = ""
    at_batch: int = 0
    batches: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Faults:
        if not spec:
            return cls()
        point, _, count = spec.partition(":")
        return cls(point, int(count or "1"))

    def hit(self, point: str) -> None:
        if point != self.point:
            return
        self.batches[point] = self.batches.get(point, 0) + 1
        if self.batches[point] >= self.at_batch:
            os._exit(137)  # like SIGKILL: no cleanup, no flush
