"""The decoder other teams use: a Kafka record in, CloudEvents attributes and the validated event
out, or one clear error. Records are built the way the platform builds them (header_map ->
kafka_headers) and handed over as a client would: an object with headers, key and value."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from parley_contracts import (
    DecodeError,
    InvalidEnvelope,
    InvalidEventData,
    UnknownEventType,
    decode,
)
from parley_contracts.base import ENCRYPTED
from parley_contracts.chat import MessageSent
from parley_contracts.cloudevents import (
    Envelope,
    decode_envelope,
    decode_event,
    event_class,
    header_map,
    kafka_headers,
)
from parley_contracts.registry import all_events

SEALED = "pe1.3f2a9c1b7d4e.q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJ"


@dataclass
class Record:
    """What aiokafka's ConsumerRecord offers a decoder: headers, key, value."""

    headers: list[tuple[str, bytes | None]]
    key: bytes | None
    value: bytes | None


def record(type_: str, data: Any, *, subject: str = "agg-1", **headers: str | None) -> Record:
    context = type_.split(".")[1]
    version = int(type_.rpartition(".v")[2])
    envelope = Envelope(
        id="5f0c6f0e-1b8e-4d0e-9d51-2b1a7d4f0001",
        source=f"/parley/{context}",
        type=type_,
        subject=subject,
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        data=b"",
        aggregate_version=3,
        schema_version=version,
        correlation_id="corr-1",
        causation_id="cause-1",
    )
    text = header_map(envelope)
    for name, value in headers.items():
        if value is None:
            text.pop(name, None)
        else:
            text[name] = value
    value = data if isinstance(data, bytes) else json.dumps(data).encode()
    return Record(kafka_headers(text), subject.encode(), value)


def sample(schema: dict[str, Any]) -> dict[str, Any]:
    """The smallest data the committed schema accepts; personal fields sealed as on the wire."""

    def value(prop: dict[str, Any]) -> Any:
        if ENCRYPTED in prop:
            return SEALED
        if "const" in prop:
            return prop["const"]
        if "enum" in prop:
            return prop["enum"][0]
        if "anyOf" in prop:
            return value(next(p for p in prop["anyOf"] if p.get("type") != "null"))
        kind = prop.get("type")
        if kind == "integer":
            return prop.get("minimum", 1)
        if kind == "boolean":
            return True
        if kind == "array":
            return []
        if prop.get("format") == "date-time":
            return "2026-01-02T03:04:05Z"
        return "x"

    return {name: value(schema["properties"][name]) for name in schema.get("required", [])}


@pytest.mark.parametrize("type_", sorted(all_events()))
def test_every_event_type_decodes_to_its_model(type_: str) -> None:
    cls = all_events()[type_]
    data = sample(cls.json_schema())
    received = decode(record(type_, data))
    assert type(received.event) is cls
    assert received.envelope.type == type_
    assert received.envelope.subject == "agg-1"
    assert received.envelope.aggregate_version == 3
    assert received.envelope.correlation_id == "corr-1"
    assert received.envelope.time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert received.sealed == tuple(f.name for f in cls.personal_fields() if f.name in data)
    assert received.event.model_dump(mode="json", exclude_unset=True) == data
    assert decode(record(type_, data), strict=True) == received


def test_a_sealed_field_is_checked_as_an_envelope_not_against_the_plaintext_limits() -> None:
    long_sealed = "pe1.3f2a9c1b7d4e." + "A" * 6000  # a 4,000-character text, sealed
    data = {
        "conversation_id": "c-1",
        "message_id": "m-1",
        "seq": 1,
        "sender_id": "u-1",
        "content": long_sealed,
        "recipient_ids": ["u-2"],
    }
    received = decode(record("parley.chat.MessageSent.v1", data, subject="c-1"))
    assert isinstance(received.event, MessageSent)
    assert received.event.content == long_sealed
    assert received.sealed == ("content",)
    assert received.event.recipient_ids == ["u-2"]


def test_a_plaintext_personal_field_is_validated_as_plaintext() -> None:
    data = {"conversation_id": "c", "message_id": "m", "seq": 1, "sender_id": "u"}
    with pytest.raises(InvalidEventData, match="content"):
        decode(record("parley.chat.MessageSent.v1", {**data, "content": "x" * 4001}))
    plain = decode(record("parley.chat.MessageSent.v1", {**data, "content": "hello"}))
    assert plain.sealed == ()


def test_a_malformed_envelope_in_a_personal_field_is_invalid() -> None:
    data = {"user_id": "u", "email": "pe1.no-body", "name": SEALED}
    with pytest.raises(InvalidEventData, match="'email' is not a well-formed pe1 envelope"):
        decode(record("parley.auth.UserRegistered.v1", data))


def test_invalid_data_says_which_field_and_why() -> None:
    with pytest.raises(InvalidEventData) as caught:
        decode(record("parley.chat.MessagesRead.v1", {"conversation_id": "c", "user_id": "u"}))
    assert "up_to_seq" in str(caught.value)
    assert {e["loc"][0] for e in caught.value.errors} == {"up_to_seq", "unread_after"}
    assert caught.value.envelope.type == "parley.chat.MessagesRead.v1"


@pytest.mark.parametrize("value", [b"not json", b"[1, 2]", b'"text"'])
def test_a_value_that_is_not_a_json_object_is_invalid_data(value: bytes) -> None:
    with pytest.raises(InvalidEventData, match="JSON"):
        decode(record("parley.users.UserForgotten.v1", value))


def test_unknown_fields_are_ignored_unless_strict() -> None:
    data = {"user_id": "u-1", "forgotten_by": None, "added_later": 1}
    received = decode(record("parley.users.UserForgotten.v1", data))
    assert received.unknown_fields == ("added_later",)
    assert received.event.model_dump() == {"user_id": "u-1", "forgotten_by": None}
    with pytest.raises(InvalidEventData, match="added_later"):
        decode(record("parley.users.UserForgotten.v1", data), strict=True)


def test_an_unknown_type_names_the_versions_this_package_knows() -> None:
    with pytest.raises(
        UnknownEventType, match=re.escape("knows parley.chat.MessageSent.v1")
    ) as caught:
        decode(record("parley.chat.MessageSent.v9", {}))
    assert caught.value.envelope.type == "parley.chat.MessageSent.v9"
    with pytest.raises(UnknownEventType, match=re.escape("parley.chat.Sneezed.v1")):
        decode(record("parley.chat.Sneezed.v1", {}))
    with pytest.raises(UnknownEventType):
        event_class("parley.chat.Sneezed.v1")
    assert event_class("parley.chat.MessageSent.v1") is MessageSent


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ce_type": None}, "missing CloudEvents headers: ce_type"),
        ({"ce_specversion": "0.3"}, "specversion"),
        ({"ce_type": "users.UserCreated"}, "is not parley.<context>.<EventName>.v<N>"),
        ({"ce_time": "yesterday"}, "RFC 3339"),
        ({"ce_aggregateversion": "three"}, "not an integer"),
        ({"ce_schemaversion": "2"}, "does not match ce_type"),
    ],
)
def test_bad_headers_are_an_invalid_envelope(change: dict[str, str | None], message: str) -> None:
    data = {"user_id": "u-1"}
    with pytest.raises(InvalidEnvelope, match=message):
        decode(record("parley.users.UserForgotten.v1", data, **change))


def test_the_key_must_be_the_subject() -> None:
    rec = record("parley.users.UserForgotten.v1", {"user_id": "u-1"}, subject="u-1")
    rec.key = b"u-2"
    with pytest.raises(InvalidEnvelope, match="key"):
        decode(rec)
    rec.key = None  # a client that does not hand the key over: nothing to compare
    assert decode(rec).envelope.subject == "u-1"


def test_a_tombstone_is_an_invalid_envelope() -> None:
    rec = record("parley.users.UserForgotten.v1", {"user_id": "u-1"})
    rec.value = None
    with pytest.raises(InvalidEnvelope, match="no value"):
        decode(rec)


def test_every_error_is_a_decode_error_and_a_value_error() -> None:
    for error in (InvalidEnvelope, UnknownEventType, InvalidEventData):
        assert issubclass(error, DecodeError)
    assert issubclass(DecodeError, ValueError)


def test_clients_with_methods_or_header_maps_are_read_too() -> None:
    """confluent-kafka's Message has headers(), key(), value(); some clients give a dict."""
    rec = record("parley.users.UserForgotten.v1", {"user_id": "u-1"}, subject="u-1")

    class Message:
        def headers(self) -> list[tuple[str, bytes | None]]:
            return rec.headers

        def key(self) -> bytes | None:
            return rec.key

        def value(self) -> bytes | None:
            return rec.value

    assert decode(Message()).envelope.subject == "u-1"
    as_map = Record(dict(rec.headers), rec.key, rec.value)  # type: ignore[arg-type]
    assert decode(as_map).event.model_dump()["user_id"] == "u-1"


def test_the_parts_form_and_the_envelope_only_form() -> None:
    rec = record("parley.users.UserForgotten.v1", {"user_id": "u-1"})
    assert decode_event(rec.headers, rec.value, key=rec.key) == decode(rec)
    envelope = decode_envelope(rec.headers, rec.value)
    assert envelope.data == rec.value
    assert (envelope.context, envelope.event_name, envelope.version) == (
        "users",
        "UserForgotten",
        1,
    )


def test_the_platform_codec_is_this_one() -> None:
    from parley_messaging import envelope as platform

    assert platform.decode is decode_envelope
    assert platform.InvalidEnvelope is InvalidEnvelope
    assert platform.Envelope is Envelope
