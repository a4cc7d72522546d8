"""Forged cursors are a 400, never a store error: their strings are checked for text no store
takes (the edge sees only base64), their times for the range a driver can convert."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from parley_http.problems import Problem
from parley_query_gateway.chat import after_conversation, after_seq, conversation_cursor
from parley_query_gateway.notifications import before
from parley_query_gateway.pages import decode_cursor, encode_cursor


def forged(value: Any) -> str:
    raw = json.dumps(value).encode()  # ASCII JSON: a NUL or a surrogate travels escaped
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def refused(call: Any, *args: Any) -> None:
    with pytest.raises(Problem) as caught:
        call(*args)
    assert caught.value.status == 400


@pytest.mark.parametrize("text", ["a\x00", "\ud800", "x\udfffy"])
def test_flawed_strings_are_refused(text: str) -> None:
    refused(decode_cursor, encode_cursor(text, "id"), 2)
    refused(decode_cursor, encode_cursor("name", text), 2)
    refused(before, encode_cursor("2026-11-24T10:00:00", text))
    refused(after_conversation, forged({"t": 1, "c": text}))
    refused(after_seq, forged({"s": 1, "x": text}))


@pytest.mark.parametrize("t", [10**20, -(10**20)])
def test_conversation_times_beyond_any_date_are_refused(t: int) -> None:
    refused(after_conversation, forged({"t": t, "c": "c1"}))


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_notification_times_beyond_utc_are_refused(created: str) -> None:
    refused(before, encode_cursor(created, "n1"))


def test_issued_cursors_still_work() -> None:
    assert decode_cursor(encode_cursor("ada", "u1"), 2) == ["ada", "u1"]
    assert "$or" in before(encode_cursor("2026-11-24T10:00:00", "n1"))
    assert "$or" in before(encode_cursor("2026-11-24T10:00:00+01:00", "n1"))
    cursor = conversation_cursor(
        {"last_activity_at": datetime(2026, 11, 24), "conversation_id": "c1"}
    )
    assert after_conversation(cursor) == (datetime(2026, 11, 24, tzinfo=UTC), "c1")
    assert after_seq(forged({"s": 7})) == 7
