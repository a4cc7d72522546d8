"""CloudEvents 1.0 over Kafka, binary content mode (the public envelope of every Parley topic).

The Kafka record key is the aggregate id; the value is the JSON event data; every CloudEvents
attribute travels as a header named ``ce_<attribute>``. Parley's extension attributes
(aggregate version, correlation, causation, schema version) follow the same rule, and the W3C
``traceparent`` travels under its own name so OpenTelemetry propagators find it unchanged.

One codec for the write side (building outbox rows), the relay and every consumer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

# Kafka header names (binary binding: "ce_" + attribute name).
H_SPECVERSION = "ce_specversion"
H_ID = "ce_id"
H_SOURCE = "ce_source"
H_TYPE = "ce_type"
H_TIME = "ce_time"
H_SUBJECT = "ce_subject"
H_CONTENT_TYPE = "content-type"
H_AGGREGATE_VERSION = "ce_aggregateversion"
H_SCHEMA_VERSION = "ce_schemaversion"
H_CORRELATION_ID = "ce_correlationid"
H_CAUSATION_ID = "ce_causationid"
H_TRACEPARENT = "traceparent"

REQUIRED_HEADERS = (H_SPECVERSION, H_ID, H_SOURCE, H_TYPE)

_CE_TYPE = re.compile(
    r"^parley\.(?P<context>[a-z][a-z0-9_-]*)\.(?P<name>[A-Za-z][A-Za-z0-9]*)\.v(?P<v>[1-9][0-9]*)$"
)


class InvalidEnvelope(ValueError):
    """A Kafka record that is not a Parley CloudEvent (missing or malformed headers)."""


def ce_type(context: str, event_name: str, schema_version: int) -> str:
    """``parley.<context>.<EventName>.v<N>``: the public name of one version of an event."""
    return f"parley.{context}.{event_name}.v{schema_version}"


def parse_ce_type(value: str) -> tuple[str, str, int]:
    """Split a ``ce_type`` into (context, event name, schema version)."""
    match = _CE_TYPE.match(value)
    if match is None:
        raise InvalidEnvelope(f"ce_type {value!r} is not parley.<context>.<EventName>.v<N>")
    return match["context"], match["name"], int(match["v"])


@dataclass(frozen=True)
class Envelope:
    """One event as it travels on Kafka: CloudEvents attributes plus the JSON data bytes."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    data: bytes
    aggregate_version: int | None = None
    schema_version: int | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """The Kafka key: the aggregate id, so one aggregate's events stay in one partition."""
        return self.subject.encode()

    @property
    def event_name(self) -> str:
        return parse_ce_type(self.type)[1]


def header_map(envelope: Envelope) -> dict[str, str]:
    """The envelope's headers as text, the form stored in an outbox row."""
    headers = {
        H_SPECVERSION: SPEC_VERSION,
        H_ID: envelope.id,
        H_SOURCE: envelope.source,
        H_TYPE: envelope.type,
        H_TIME: format_time(envelope.time),
        H_SUBJECT: envelope.subject,
        H_CONTENT_TYPE: CONTENT_TYPE,
    }
    optional = {
        H_AGGREGATE_VERSION: envelope.aggregate_version,
        H_SCHEMA_VERSION: envelope.schema_version,
        H_CORRELATION_ID: envelope.correlation_id,
        H_CAUSATION_ID: envelope.causation_id,
        H_TRACEPARENT: envelope.traceparent,
    }
    headers.update({name: str(value) for name, value in optional.items() if value is not None})
    headers.update(envelope.extra)
    return headers


def kafka_headers(headers: Mapping[str, str]) -> list[tuple[str, bytes]]:
    """Header map -> the list of (name, bytes) pairs Kafka clients take."""
    return [(name, value.encode()) for name, value in headers.items()]


def decode(headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> Envelope:
    """Rebuild an envelope from a consumed Kafka record; raises InvalidEnvelope on bad input."""
    text: dict[str, str] = {}
    for name, raw in headers:
        if raw is None:
            continue
        try:
            text[name] = raw.decode()
        except UnicodeDecodeError as error:
            raise InvalidEnvelope(f"header {name!r} is not UTF-8") from error
    missing = [name for name in REQUIRED_HEADERS if name not in text]
    if missing:
        raise InvalidEnvelope(f"missing CloudEvents headers: {', '.join(missing)}")
    if text[H_SPECVERSION] != SPEC_VERSION:
        raise InvalidEnvelope(f"unsupported specversion {text[H_SPECVERSION]!r}")
    if value is None:
        raise InvalidEnvelope("record has no value (tombstones carry no event)")
    parse_ce_type(text[H_TYPE])
    known = {
        H_SPECVERSION,
        H_ID,
        H_SOURCE,
        H_TYPE,
        H_TIME,
        H_SUBJECT,
        H_CONTENT_TYPE,
        H_AGGREGATE_VERSION,
        H_SCHEMA_VERSION,
        H_CORRELATION_ID,
        H_CAUSATION_ID,
        H_TRACEPARENT,
    }
    return Envelope(
        id=text[H_ID],
        source=text[H_SOURCE],
        type=text[H_TYPE],
        subject=text.get(H_SUBJECT, ""),
        time=parse_time(text[H_TIME]) if H_TIME in text else datetime.now(UTC),
        data=value,
        aggregate_version=_int_or_none(text, H_AGGREGATE_VERSION),
        schema_version=_int_or_none(text, H_SCHEMA_VERSION),
        correlation_id=text.get(H_CORRELATION_ID),
        causation_id=text.get(H_CAUSATION_ID),
        traceparent=text.get(H_TRACEPARENT),
        extra={name: val for name, val in text.items() if name not in known},
    )


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a trailing Z, as CloudEvents requires."""
    if moment.tzinfo is None:
        raise ValueError("CloudEvents time must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidEnvelope(f"ce_time {value!r} is not RFC 3339") from error


def _int_or_none(text: Mapping[str, str], name: str) -> int | None:
    if name not in text:
        return None
    try:
        return int(text[name])
    except ValueError as error:
        raise InvalidEnvelope(f"header {name!r} is not an integer") from error
