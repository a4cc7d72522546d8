"""CloudEvents 1.0 over Kafka, binary content mode (the public envelope of every Parley topic).

The Kafka record key is the aggregate id; the value is the JSON event data; every CloudEvents
attribute travels as a header named ``ce_<attribute>``. Parley's extension attributes
(aggregate version, correlation, causation, schema version) follow the same rule, and the W3C
``traceparent`` travels under its own name so OpenTelemetry propagators find it unchanged.

One codec for the write side (building outbox rows), the relay, every consumer and other
teams: it lives in the public contract (`parley_contracts.cloudevents`, distribution
`parley-events`) and is re-exported here under the names the platform has always used.
`decode(headers, value)` is the contract's `decode_envelope`: the envelope only, the data not
validated (the contract's `decode(record)` also validates the event).
"""

from __future__ import annotations

from parley_contracts.cloudevents import (
    CONTENT_TYPE,
    H_AGGREGATE_VERSION,
    H_CAUSATION_ID,
    H_CONTENT_TYPE,
    H_CORRELATION_ID,
    H_ID,
    H_SCHEMA_VERSION,
    H_SOURCE,
    H_SPECVERSION,
    H_SUBJECT,
    H_TIME,
    H_TRACEPARENT,
    H_TYPE,
    KNOWN_HEADERS,
    REQUIRED_HEADERS,
    SPEC_VERSION,
    Envelope,
    InvalidEnvelope,
    ce_type,
    format_time,
    header_map,
    kafka_headers,
    parse_ce_type,
    parse_time,
)
from parley_contracts.cloudevents import decode_envelope as decode

__all__ = [
    "CONTENT_TYPE",
    "H_AGGREGATE_VERSION",
    "H_CAUSATION_ID",
    "H_CONTENT_TYPE",
    "H_CORRELATION_ID",
    "H_ID",
    "H_SCHEMA_VERSION",
    "H_SOURCE",
    "H_SPECVERSION",
    "H_SUBJECT",
    "H_TIME",
    "H_TRACEPARENT",
    "H_TYPE",
    "KNOWN_HEADERS",
    "REQUIRED_HEADERS",
    "SPEC_VERSION",
    "Envelope",
    "InvalidEnvelope",
    "ce_type",
    "decode",
    "format_time",
    "header_map",
    "kafka_headers",
    "parse_ce_type",
    "parse_time",
]
