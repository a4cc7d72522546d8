"""The Kafka ACL matrix keeps least privilege (issue 19.1): who may write which topic."""

from __future__ import annotations

from parley_messaging.access import (
    OTHER_TEAMS,
    SUPER_USERS,
    desired_bindings,
    principal_names,
    principals,
    salted_password,
)
from parley_messaging.security import as_principal, kafka_security
from parley_messaging.topics import CONTEXTS, SAGA_PARTICIPANTS, SAGA_REPLIES, declared_topics


def writers(topic: str) -> set[str]:
    return {
        p.name
        for p in principals()
        for g in p.grants
        if g.resource == "topic" and g.name == topic and g.operation == "WRITE"
    }


def test_each_event_topic_has_one_writer_its_relay() -> None:
    for context in CONTEXTS:
        assert writers(f"{context}.events") == {f"relay-{context}"}


def test_only_the_sagas_relay_writes_commands() -> None:
    for context in SAGA_PARTICIPANTS:
        assert writers(f"{context}.commands") == {"relay-saga"}
    assert writers("chat.commands") == set()  # no participant: nobody


def test_replies_come_from_participants_and_auths_decoys_only() -> None:
    participants = {f"{c}-api" for c in SAGA_PARTICIPANTS}
    assert writers(SAGA_REPLIES) == participants | {"relay-auth"}


def test_readers_write_nothing_public() -> None:
    public = {t.name for t in declared_topics() if not t.name.endswith(".dlq")}
    readers = [OTHER_TEAMS, "chat-api", "query-gateway", "realtime-gateway"]
    readers += [f"projector-{c}" for c in ("users", "chat", "notifications")]
    for who in readers:
        assert not any(who in writers(topic) for topic in public), who


def test_other_teams_read_events_in_ext_groups_only() -> None:
    (team,) = [p for p in principals() if p.name == OTHER_TEAMS]
    topics = {g.name for g in team.grants if g.resource == "topic"}
    assert topics == {f"{c}.events" for c in CONTEXTS}
    assert {g.operation for g in team.grants} == {"READ"}
    groups = [(g.name, g.pattern) for g in team.grants if g.resource == "group"]
    assert groups == [("ext-", "prefixed")]


def test_no_principal_is_granted_everything() -> None:
    for binding in desired_bindings(principals()):
        resource_name, pattern = binding[1], binding[2]
        assert resource_name not in ("*", "") and not (pattern == 4 and resource_name == "")
    assert set(SUPER_USERS) <= set(principal_names())
    assert not set(SUPER_USERS) & {p.name for p in principals()}


def test_client_options_come_from_the_environment() -> None:
    assert kafka_security({}) == {}
    options = as_principal("relay-users", "secret")
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "relay-users",
        "secret",
    )


def test_scram_salted_password_is_rfc5802_hi() -> None:
    # Hi(password, salt, 1) = HMAC(password, salt || INT(1))
    import hashlib
    import hmac

    expected = hmac.new(b"pw", b"salt" + b"\0\0\0\1", hashlib.sha512).digest()
    assert salted_password("pw", b"salt", 1) == expected
