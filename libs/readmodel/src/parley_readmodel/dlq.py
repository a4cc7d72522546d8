"""A projection's dead-letter topic: its declaration and which stream version a parked record
was. Parking and reading parked records back is parley_messaging.dlq, shared with the saga's
consumers; its names are re-exported here for the runtime and the re-drive CLI."""

from __future__ import annotations

from parley_messaging.dlq import (
    H_ATTEMPTS,
    H_ERROR,
    H_ERROR_TYPE,
    H_GROUP,
    H_OFFSET,
    H_PARTITION,
    H_TIME,
    H_TOPIC,
    PREFIX,
    Record,
    headers,
    original,
    publish,
)
from parley_messaging.envelope import H_AGGREGATE_VERSION, H_SUBJECT
from parley_messaging.topics import Topic, dlq_topic

__all__ = [
    "H_ATTEMPTS",
    "H_ERROR",
    "H_ERROR_TYPE",
    "H_GROUP",
    "H_OFFSET",
    "H_PARTITION",
    "H_TIME",
    "H_TOPIC",
    "PREFIX",
    "Record",
    "dlq_declaration",
    "headers",
    "original",
    "publish",
    "stream_and_version",
]


def dlq_declaration(group: str, partitions: int = 1) -> Topic:
    # a working queue (a week to re-drive), not part of the replayable log
    return Topic(dlq_topic(group), partitions, {"retention.ms": str(7 * 86_400_000)})


def stream_and_version(record: Record) -> tuple[str, int] | None:
    """Read leniently from the headers of a record that may not decode: which stream version
    is being parked (None when the headers do not say)."""
    text = {k: v.decode(errors="replace") for k, v in record.headers if v is not None}
    try:
        return text[H_SUBJECT], int(text[H_AGGREGATE_VERSION])
    except (KeyError, ValueError):
        return None
