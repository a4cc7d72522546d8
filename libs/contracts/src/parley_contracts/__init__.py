"""Parley's public event contract: one pydantic model per event type and schema version, and
the decoder of the Kafka records that carry them (distribution `parley-events`).

Services' domains raise these events directly (the package is pure: pydantic only), so the
schema other teams read is generated from the very class the write side appends.

    from parley_contracts import decode
    received = decode(record)   # DecodedEvent: .envelope (CloudEvents attributes), .event
"""

from parley_contracts.base import Event, event_type_of
from parley_contracts.cloudevents import (
    DecodedEvent,
    DecodeError,
    Envelope,
    InvalidEnvelope,
    InvalidEventData,
    UnknownEventType,
    decode,
)
from parley_contracts.registry import all_events, lookup

__all__ = [
    "DecodeError",
    "DecodedEvent",
    "Envelope",
    "Event",
    "InvalidEnvelope",
    "InvalidEventData",
    "UnknownEventType",
    "all_events",
    "decode",
    "event_type_of",
    "lookup",
]
