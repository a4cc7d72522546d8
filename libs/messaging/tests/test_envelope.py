"""The CloudEvents binary binding as other teams will read it."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from parley_messaging.envelope import (
    Envelope,
    InvalidEnvelope,
    ce_type,
    decode,
    header_map,
    kafka_headers,
    parse_ce_type,
)


def sample(**overrides: object) -> Envelope:
    fields: dict[str, object] = {
        "id": "5f0c6f0e-1b8e-4d0e-9d51-2b1a7d4f0001",
        "source": "/parley/users",
        "type": ce_type("users", "ProfileCreated", 2),
        "subject": "user-42",
        "time": datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC),
        "data": b'{"name":"Ada"}',
        "aggregate_version": 7,
        "schema_version": 2,
        "correlation_id": "corr-1",
        "causation_id": "cmd-1",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    fields.update(overrides)
    return Envelope(**fields)  # type: ignore[arg-type]


def test_headers_follow_the_binary_binding() -> None:
    headers = header_map(sample())
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "parley.users.ProfileCreated.v2"
    assert headers["ce_subject"] == "user-42"
    assert headers["ce_time"] == "2026-11-22T12:00:00.123456Z"
    assert headers["content-type"] == "application/json"
    assert headers["ce_aggregateversion"] == "7"
    assert headers["traceparent"].startswith("00-")


def test_round_trip_through_kafka_headers() -> None:
    original = sample()
    decoded = decode(kafka_headers(header_map(original)), original.data)
    assert decoded == original
    assert decoded.key == b"user-42"
    assert decoded.event_name == "ProfileCreated"


def test_optional_attributes_are_omitted_not_empty() -> None:
    headers = header_map(sample(correlation_id=None, causation_id=None, traceparent=None))
    assert "ce_correlationid" not in headers
    assert "traceparent" not in headers


def test_time_is_normalised_to_utc() -> None:
    plus_two = datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert header_map(sample(time=plus_two))["ce_time"] == "2026-01-01T12:00:00Z"


@pytest.mark.parametrize(
    ("headers", "value", "message"),
    [
        ([], b"{}", "missing CloudEvents headers"),
        (
            [
                ("ce_specversion", b"0.3"),
                ("ce_id", b"1"),
                ("ce_source", b"s"),
                ("ce_type", b"parley.users.X.v1"),
            ],
            b"{}",
            "specversion",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"s"),
                ("ce_type", b"something.else"),
            ],
            b"{}",
            "ce_type",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"s"),
                ("ce_type", b"parley.users.X.v1"),
            ],
            None,
            "no value",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"\xff"),
                ("ce_source", b"s"),
                ("ce_type", b"parley.users.X.v1"),
            ],
            b"{}",
            "UTF-8",
        ),
    ],
)
def test_poison_records_raise_invalid_envelope(
    headers: list[tuple[str, bytes]], value: bytes | None, message: str
) -> None:
    with pytest.raises(InvalidEnvelope, match=message):
        decode(headers, value)


def test_ce_type_parsing() -> None:
    assert parse_ce_type("parley.chat.MessageSent.v3") == ("chat", "MessageSent", 3)
    with pytest.raises(InvalidEnvelope):
        parse_ce_type("parley.chat.MessageSent.v0")
