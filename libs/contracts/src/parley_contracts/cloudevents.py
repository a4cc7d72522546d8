"""CloudEvents 1.0 over Kafka, binary content mode: the envelope of every Parley topic, and the
decoder other teams use to read them.

The Kafka record key is the aggregate id; the value is the JSON event data; every CloudEvents
attribute travels as a header named ``ce_<attribute>``. Parley's extension attributes
(aggregate version, correlation, causation, schema version) follow the same rule, and the W3C
``traceparent`` travels under its own name so OpenTelemetry propagators find it unchanged.

    from parley_contracts.cloudevents import DecodeError, decode

    received = decode(record)       # an aiokafka ConsumerRecord, or anything with .headers/.value
    received.envelope.type          # 'parley.chat.MessageSent.v1'
    received.envelope.subject       # the aggregate id (= the record key)
    received.event                  # parley_contracts.chat.MessageSent, validated
    received.sealed                 # ('content',): personal fields still encrypted (pe1. values)

This module is the one codec of the platform too (`parley_messaging.envelope` re-exports it):
the write side builds its headers with `header_map`, every consumer reads them with
`decode_envelope`. Pure: the standard library and the contract's pydantic models only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from parley_contracts.base import Event
from parley_contracts.registry import all_events

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
KNOWN_HEADERS = frozenset(
    {
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
)

# An encrypted personal-data field on the wire: `pe1.<key id>.<base64url(nonce|ciphertext|tag)>`
SEALED_PREFIX = "pe1."
_SEALED = re.compile(r"^pe1\.[0-9A-Za-z_-]+\.[A-Za-z0-9_-]+$")

_CE_TYPE = re.compile(
    r"^parley\.(?P<context>[a-z][a-z0-9_-]*)\.(?P<name>[A-Za-z][A-Za-z0-9]*)\.v(?P<v>[1-9][0-9]*)$"
)


class DecodeError(ValueError):
    """A Kafka record that cannot be read as a Parley event (the base of the errors below)."""


class InvalidEnvelope(DecodeError):
    """A Kafka record that is not a Parley CloudEvent (missing or malformed headers)."""


class UnknownEventType(DecodeError):
    """A well-formed CloudEvent whose `ce_type` this version of the contract does not know:
    a newer event (or a new `v<N>` of one): upgrade `parley-events`, or skip it."""

    def __init__(self, message: str, envelope: Envelope) -> None:
        super().__init__(message)
        self.envelope = envelope


class InvalidEventData(DecodeError):
    """The record's value is not valid data of its `ce_type` (not JSON, or the model refuses
    it). `errors` holds pydantic's error list when the model refused it."""

    def __init__(
        self, message: str, envelope: Envelope, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.envelope = envelope
        self.errors = errors or []


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
    def context(self) -> str:
        return parse_ce_type(self.type)[0]

    @property
    def event_name(self) -> str:
        return parse_ce_type(self.type)[1]

    @property
    def version(self) -> int:
        """The schema version N of `type` (`...v<N>`)."""
        return parse_ce_type(self.type)[2]


E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class DecodedEvent(Generic[E]):
    """A record read and validated: its CloudEvents attributes and the event model.

    `sealed` names the personal-data fields whose value is an encrypted `pe1.` envelope: the
    model holds that envelope as the field's value (only Parley's own services hold keys)."""

    envelope: Envelope
    event: E
    sealed: tuple[str, ...] = ()
    # fields of the record that this version of the model does not have (a newer producer
    # added optional fields: additive changes keep the `ce_type`); ignored unless `strict`
    unknown_fields: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        return self.envelope.type


class KafkaRecord(Protocol):
    """What `decode` reads: an aiokafka `ConsumerRecord`, or any object with `headers` (a list
    of (name, bytes) pairs) and `value` (bytes); `key` is checked against `ce_subject` when
    present. Methods of those names are called (confluent-kafka's `Message`)."""

    @property
    def headers(self) -> Any: ...

    @property
    def value(self) -> Any: ...


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


def decode_envelope(headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> Envelope:
    """Rebuild an envelope from a consumed Kafka record's headers and value (the event data is
    not looked at); raises InvalidEnvelope on bad input."""
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
        extra={name: val for name, val in text.items() if name not in KNOWN_HEADERS},
    )


def event_class(type_: str) -> type[Event]:
    """The contract's model of a `ce_type`; UnknownEventType (without an envelope) if none."""
    cls = all_events().get(type_)
    if cls is None:
        raise UnknownEventType(_unknown(type_), _no_envelope(type_))
    return cls


def decode(record: KafkaRecord, *, strict: bool = False) -> DecodedEvent[Event]:
    """Read one consumed Kafka record of a Parley event topic: the CloudEvents attributes and
    the event, validated by the contract's model of its `ce_type`.

    Raises InvalidEnvelope (not a Parley CloudEvent, or the key is not `ce_subject`),
    UnknownEventType (a `ce_type` this version of the package does not know) or
    InvalidEventData (the value is not valid data of that type); all are DecodeError.

    Fields the model does not know are ignored and listed in `unknown_fields` (a tolerant
    reader: producers may add optional fields without a new `ce_type`); `strict` refuses them
    instead (InvalidEventData), to check that this package matches the producer exactly."""
    headers = _field(record, "headers")
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    key = _field(record, "key")
    return decode_event(headers or (), _field(record, "value"), key=key, strict=strict)


def decode_event(
    headers: Iterable[tuple[str, bytes | None]],
    value: bytes | None,
    *,
    key: bytes | str | None = None,
    strict: bool = False,
) -> DecodedEvent[Event]:
    """`decode` for a record given as its parts (key optional)."""
    envelope = decode_envelope(headers, value)
    if key is not None:
        key_text = key.decode(errors="replace") if isinstance(key, bytes) else key
        if key_text != envelope.subject:
            raise InvalidEnvelope(
                f"the record key {key_text!r} is not the ce_subject {envelope.subject!r}"
            )
    if envelope.schema_version is not None and envelope.schema_version != envelope.version:
        raise InvalidEnvelope(
            f"ce_schemaversion {envelope.schema_version} does not match ce_type {envelope.type}"
        )
    cls = all_events().get(envelope.type)
    if cls is None:
        raise UnknownEventType(_unknown(envelope.type), envelope)
    try:
        data = json.loads(envelope.data)
    except ValueError as error:
        raise InvalidEventData(
            f"{envelope.type} {envelope.id}: the value is not JSON", envelope
        ) from error
    if not isinstance(data, dict):
        raise InvalidEventData(
            f"{envelope.type} {envelope.id}: the value is not a JSON object", envelope
        )
    unknown = tuple(name for name in data if name not in cls.model_fields)
    if unknown and not strict:
        data = {name: value for name, value in data.items() if name in cls.model_fields}
    event, sealed = validate(cls, data, envelope)
    return DecodedEvent(envelope=envelope, event=event, sealed=sealed, unknown_fields=unknown)


def validate(
    cls: type[E], data: Mapping[str, Any], envelope: Envelope | None = None
) -> tuple[E, tuple[str, ...]]:
    """The model of `data` as it is on the wire, and the names of its sealed fields.

    A personal-data field (`x-parley-encrypted` in the schema) holds a `pe1.` envelope on the
    wire; the model's length constraints describe the plaintext. Such a field is checked to be a
    well-formed envelope, the rest of the event is validated with the field's placeholder in its
    place, and the model returned holds the envelope as the field's value."""
    envelope = envelope or _no_envelope(cls.ce_type())
    stand_in = dict(data)
    sealed: dict[str, str] = {}
    for personal in cls.personal_fields():
        value = data.get(personal.name)
        if isinstance(value, str) and value.startswith(SEALED_PREFIX):
            if not _SEALED.match(value):
                raise InvalidEventData(
                    f"{envelope.type} {envelope.id}: field {personal.name!r} is not a "
                    "well-formed pe1 envelope",
                    envelope,
                )
            sealed[personal.name] = value
            stand_in[personal.name] = personal.placeholder
    try:
        event = cls.model_validate(stand_in)
    except ValidationError as error:
        details = error.errors(include_url=False, include_input=False)
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(event)'}: {e['msg']}" for e in details
        )
        problems: list[dict[str, Any]] = [dict(e) for e in details]
        raise InvalidEventData(
            f"{envelope.type} {envelope.id}: invalid data: {summary}", envelope, problems
        ) from error
    if sealed:
        event = event.model_copy(update=sealed)
    return event, tuple(sealed)


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


def _field(record: object, name: str) -> Any:
    value = getattr(record, name, None)
    return value() if callable(value) else value


def _unknown(type_: str) -> str:
    try:
        context, name, _ = parse_ce_type(type_)
    except InvalidEnvelope:
        return f"{type_!r} is not a Parley ce_type"
    versions = sorted(t for t in all_events() if t.startswith(f"parley.{context}.{name}.v"))
    known = f" (this version knows {', '.join(versions)})" if versions else ""
    return f"unknown ce_type {type_}{known}: a newer parley-events may know it"


def _no_envelope(type_: str) -> Envelope:
    return Envelope(id="", source="", type=type_, subject="", time=datetime.now(UTC), data=b"")
