"""The resume cursor: where a client's stream stands in the Kafka topics it is fed from.

A cursor is the vector of next offsets, one per partition of the pushed topics, in a fixed
topic order. It says "every event for this person at an offset below these has been written
to the stream". Any replica can honour it, because every replica reads the same partitions
(no consumer group: offsets are the topics' own, not a replica's), and it survives any crash,
because it lives in the client (the SSE `id:` / Last-Event-ID) and in Kafka's log.

Text form (safe in an HTTP header and an SSE `id:` line): `1~` then one group per topic,
separated by `~`, each the partitions' offsets in base 36 separated by `.`:
`1~0.1z.4~a.0.0`. A topic that gained partitions since a cursor was written has offset 0 for
the new ones (which is exact: everything in a new partition came after the cursor).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

VERSION = "1"
MAX_TEXT = 2000  # a cursor longer than this is not one of ours
_GROUP = re.compile(r"^[0-9a-z]{1,13}(\.[0-9a-z]{1,13})*$")

TopicPartition = tuple[str, int]


class MalformedCursor(ValueError):
    """Text that is not a cursor of this format (a 400 for the client)."""


@dataclass(frozen=True)
class Cursor:
    """Next offset per (topic, partition)."""

    offsets: Mapping[TopicPartition, int]

    def get(self, tp: TopicPartition) -> int:
        return self.offsets.get(tp, 0)

    def encode(self, topics: Sequence[str]) -> str:
        return encode(self.offsets, topics)


def _b36(value: int) -> str:
    if value == 0:
        return "0"
    digits = []
    while value:
        value, rest = divmod(value, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[rest])
    return "".join(reversed(digits))


def encode(offsets: Mapping[TopicPartition, int], topics: Sequence[str]) -> str:
    groups = []
    for topic in topics:
        count = 1 + max((p for t, p in offsets if t == topic), default=-1)
        groups.append(".".join(_b36(offsets.get((topic, p), 0)) for p in range(count)))
    return "~".join([VERSION, *groups])


def decode(text: str, topics: Sequence[str]) -> Cursor:
    """Parse a cursor; raises MalformedCursor for anything else (wrong version, topic count,
    characters, absurd sizes)."""
    if not text or len(text) > MAX_TEXT:
        raise MalformedCursor("a cursor is 1..2000 characters")
    version, *groups = text.split("~")
    if version != VERSION:
        raise MalformedCursor(f"unknown cursor version {version[:10]!r}")
    if len(groups) != len(topics):
        raise MalformedCursor("the cursor does not match the pushed topics")
    offsets: dict[TopicPartition, int] = {}
    for topic, group in zip(topics, groups, strict=True):
        if group == "":
            continue
        if not _GROUP.match(group):
            raise MalformedCursor("a cursor holds base-36 offsets separated by '.'")
        for partition, digits in enumerate(group.split(".")):
            offsets[(topic, partition)] = int(digits, 36)
    return Cursor(offsets)


def furthest(*vectors: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Element-wise maximum: a stream that has seen everything below each of the vectors."""
    merged: dict[TopicPartition, int] = {}
    for vector in vectors:
        for tp, offset in vector.items():
            if offset > merged.get(tp, -1):
                merged[tp] = offset
    return merged
