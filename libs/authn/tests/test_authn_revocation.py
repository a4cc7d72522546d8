"""RevocationList without Kafka: which records revoke what, poison records, the window."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from parley_authn import AuthnSettings, RevocationList
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def auth_record(
    name: str, data: Any, at: float = T0, context: str = "auth"
) -> tuple[list[tuple[str, bytes]], bytes, int]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="/parley/auth",
        type=ce_type(context, name, 1),
        subject="user-1",
        time=datetime.fromtimestamp(at, UTC),
        data=raw,
        aggregate_version=1,
        schema_version=1,
    )
    return kafka_headers(header_map(envelope)), raw, int(at * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def revocations(clock: Clock) -> RevocationList:
    return RevocationList("unused:9092", max_token_ttl_s=900, leeway_s=10, clock=clock)


@pytest.mark.parametrize("name", ["UserLoggedOut", "SessionRevoked"])
def test_session_events_revoke_their_session(revocations: RevocationList, name: str) -> None:
    revoked = revocations.apply_record(
        *auth_record(name, {"user_id": "u1", "session_id": "s1", "expires_at": "whenever"})
    )
    assert revoked == ["s1"]
    assert revocations.is_revoked("s1")
    assert not revocations.is_revoked("s2")


def test_a_password_change_revokes_the_listed_sessions(revocations: RevocationList) -> None:
    revocations.apply_record(
        *auth_record("PasswordChanged", {"user_id": "u1", "revoked_session_ids": ["a", "b"]})
    )
    assert revocations.is_revoked("a") and revocations.is_revoked("b")
    # without the list a password change revokes nothing by itself
    assert revocations.apply_record(*auth_record("PasswordChanged", {"user_id": "u1"})) == []
    assert revocations.skipped == 0


def test_other_events_revoke_nothing(revocations: RevocationList) -> None:
    # a login carries a session id too: it must not be taken for a revocation
    assert revocations.apply_record(*auth_record("UserLoggedIn", {"session_id": "s1"})) == []
    assert (
        revocations.apply_record(
            *auth_record("SessionRevoked", {"session_id": "s2"}, context="users")
        )
        == []
    )
    assert not revocations.is_revoked("s1") and not revocations.is_revoked("s2")
    assert revocations.skipped == 0


@pytest.mark.parametrize(
    "record",
    [
        ([], b"{}", int(T0 * 1000)),  # no CloudEvents headers
        (
            [("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_source", b"s"), ("ce_type", b"odd")],
            b"{}",
            0,
        ),
        ([("ce_type", b"\xff")], b"{}", 0),
        auth_record("SessionRevoked", b"not json"),
        auth_record("SessionRevoked", b"\xff\xfe"),
        auth_record("SessionRevoked", ["a list"]),
        auth_record("SessionRevoked", {"user_id": "u1"}),  # no session id
        auth_record("SessionRevoked", {"session_id": 42}),
        auth_record("PasswordChanged", {"revoked_session_ids": "s1"}),
        auth_record("PasswordChanged", {"revoked_session_ids": [1, 2]}),
    ],
)
def test_poison_records_are_skipped_with_a_warning(
    revocations: RevocationList, record: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="parley.authn.revocation"):
        assert revocations.apply_record(*record) == []
    assert revocations.skipped == 1
    assert len(revocations) == 0
    assert "skipped" in caplog.text
    # and the list goes on
    revocations.apply_record(*auth_record("SessionRevoked", {"session_id": "s9"}))
    assert revocations.is_revoked("s9")


def test_a_revocation_is_forgotten_after_the_window(
    revocations: RevocationList, clock: Clock
) -> None:
    assert revocations.window_s == 920
    revocations.apply_record(*auth_record("SessionRevoked", {"session_id": "s1"}, at=T0))
    clock.now = T0 + 919
    assert revocations.is_revoked("s1")
    assert revocations.evict() == 0
    clock.now = T0 + 921
    assert not revocations.is_revoked("s1")
    assert revocations.evict() == 1
    assert len(revocations) == 0


def test_the_window_counts_from_the_later_of_event_and_publish_time(
    revocations: RevocationList, clock: Clock
) -> None:
    headers, value, _ = auth_record("SessionRevoked", {"session_id": "s1"}, at=T0 - 100)
    revocations.apply_record(headers, value, int((T0 - 10) * 1000))  # relayed 90 s later
    clock.now = T0 - 10 + 919
    assert revocations.is_revoked("s1")
    # a ce_time in the future cannot pin an entry beyond now + window
    revocations.apply_record(*auth_record("SessionRevoked", {"session_id": "s2"}, at=T0 + 10**7))
    clock.now += 921
    assert not revocations.is_revoked("s2")


def test_an_old_revocation_never_shortens_a_newer_one(
    revocations: RevocationList, clock: Clock
) -> None:
    revocations.revoke("s1", T0)
    revocations.revoke("s1", T0 - 500)
    clock.now = T0 + 900
    assert revocations.is_revoked("s1")


def test_built_from_settings() -> None:
    settings = AuthnSettings(
        kafka_bootstrap_servers="k:1", access_token_max_ttl_s=300, token_leeway_s=5
    )
    revocations = RevocationList.from_settings(settings)
    assert revocations.bootstrap_servers == "k:1"
    assert revocations.topic == "auth.events"
    assert revocations.window_s == 310
    assert not revocations.ready


async def test_an_unreachable_kafka_keeps_it_not_ready_and_stop_still_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    revocations = RevocationList("127.0.0.1:1", retry_backoff_s=0.05)
    async with revocations:
        assert not await revocations.wait_ready(1.5)
    assert "failed; restarting" in caplog.text
    assert not revocations.ready
