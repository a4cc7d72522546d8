"""docs/asyncapi.json against what the platform really writes: one message per ce_type with its
headers as constants, a correlation id that names a real header, every declared topic (event,
command, reply, dead-letter) with its settings, and record shapes that the platform's own codecs
(parley_messaging.saga, .dlq) produce. The generator cannot import those (parley-events depends
on pydantic only), so this test is where the two meet."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any

import jsonschema
import pytest
from aiokafka.structs import ConsumerRecord
from parley_contracts import asyncapi
from parley_contracts.generate import ASYNCAPI
from parley_contracts.registry import all_events
from parley_messaging import dlq, saga, topics
from parley_messaging.envelope import Envelope, ce_type, header_map

DOC: dict[str, Any] = json.loads(ASYNCAPI.read_text())
MESSAGES: dict[str, Any] = DOC["components"]["messages"]


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = DOC
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def check(instance: Any, schema: dict[str, Any]) -> None:
    """Validate with the document's components in reach of `#/components/...` refs."""
    jsonschema.validate(instance, {**schema, "components": DOC["components"]})


def header_names(message: dict[str, Any]) -> set[str]:
    headers = message["headers"]
    names = set(headers.get("properties", {}))
    for part in headers.get("allOf", []):
        names |= set(resolve(part["$ref"])["properties"])
    return names


def test_every_reference_resolves() -> None:
    for ref in refs(DOC):
        resolve(ref)


@pytest.mark.parametrize("type_", sorted(all_events()))
def test_one_message_per_ce_type_with_its_headers_as_constants(type_: str) -> None:
    cls = all_events()[type_]
    channel = DOC["channels"][f"{cls.context}.events"]
    assert resolve(channel["messages"][type_]["$ref"]) is MESSAGES[type_]
    headers = MESSAGES[type_]["headers"]["properties"]
    assert headers["ce_type"]["const"] == type_
    assert headers["ce_source"]["const"] == f"/parley/{cls.context}"
    assert headers["ce_schemaversion"]["const"] == str(cls.schema_version)
    payload = resolve(MESSAGES[type_]["payload"]["$ref"])
    # the payload is the event's schema, its nested definitions inlined (the document's own
    # references must resolve within it)
    expected = cls.json_schema()
    expected.pop("$schema")
    definitions = expected.pop("$defs", {})
    assert payload == _inline(expected, definitions)
    assert "$defs" not in json.dumps(payload)


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node and node["$ref"].startswith("#/$defs/"):
            return _inline(definitions[node["$ref"].split("/")[-1]], definitions)
        return {k: _inline(v, definitions) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, definitions) for v in node]
    return node


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_correlation_ids_name_a_header_the_message_has(name: str) -> None:
    message = MESSAGES[name]
    if "correlationId" not in message:
        return
    location = message["correlationId"]["location"]
    assert location == "$message.header#/ce_correlationid"
    assert location.rpartition("/")[2] in header_names(message)


def test_every_declared_topic_is_a_channel_with_its_settings() -> None:
    for topic in topics.declared_topics():
        channel = DOC["channels"][topic.name]
        assert channel["address"] == topic.name
        kafka = channel["bindings"]["kafka"]
        assert kafka["partitions"] == topic.partitions
        assert kafka["topicConfiguration"] == {k: int(v) for k, v in topic.config.items()}


def test_every_projection_dead_letter_topic_is_a_channel() -> None:
    from parley_readmodel.projection import ENTRY_POINT_GROUP, load_projection

    names = [point.name for point in entry_points(group=ENTRY_POINT_GROUP)]
    assert names
    for name in names:
        projection = load_projection(name)
        channel = DOC["channels"][topics.dlq_topic(projection.group)]
        assert sorted(channel["x-parley-dlq-sources"]) == sorted(projection.topics)


def test_no_channel_that_the_platform_does_not_declare() -> None:
    from parley_readmodel.projection import ENTRY_POINT_GROUP, load_projection

    declared = {t.name for t in topics.declared_topics()}
    declared |= {
        topics.dlq_topic(load_projection(p.name).group)
        for p in entry_points(group=ENTRY_POINT_GROUP)
    }
    assert set(DOC["channels"]) == declared


def test_saga_names_are_the_platforms() -> None:
    from parley_registration_saga.domain import COMPENSATIONS, FORWARD

    assert asyncapi.SAGA_REPLIES == topics.SAGA_REPLIES
    assert asyncapi.SAGA == topics.SAGA_GROUP
    assert asyncapi.SAGA_PARTICIPANTS == topics.SAGA_PARTICIPANTS
    assert (asyncapi.H_REPLY_TO, asyncapi.H_SAGA_STEP) == (saga.H_REPLY_TO, saga.H_SAGA_STEP)
    assert (asyncapi.REPLY_NAME, asyncapi.DECOY_NAME) == (saga.REPLY_NAME, saga.DECOY_NAME)
    assert asyncapi.OUTCOMES == saga.OUTCOMES
    actions = {(a.context, a.command, a.name) for a in (*FORWARD, *COMPENSATIONS.values())}
    described = {
        (context, command, step)
        for context, commands in asyncapi.SAGA_COMMANDS.items()
        for command, step, _ in commands
    }
    assert described == actions
    assert set(asyncapi.SAGA_COMMANDS) == set(topics.CONTEXTS)


def command() -> saga.SagaCommand:
    return saga.SagaCommand(
        id="u-1/create_profile",
        context="users",
        name="CreateProfile",
        subject="u-1",
        saga_id="u-1",
        reply_to=topics.SAGA_REPLIES,
        step="create_profile",
        data={"user_id": "u-1", "email": "pe1.a1.AAAA", "name": "pe1.a1.BBBB"},
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


def test_a_saga_command_record_matches_its_message() -> None:
    key, headers, value = saga.command_record(command(), "/parley/registration-saga")
    message = MESSAGES["parley.users.CreateProfile.v1"]
    assert "parley.users.CreateProfile.v1" in DOC["channels"]["users.commands"]["messages"]
    check(headers, message["headers"])
    check(json.loads(value), resolve(message["payload"]["$ref"]))
    assert key == headers["ce_subject"]


@pytest.mark.parametrize("outcome", saga.OUTCOMES)
def test_a_saga_reply_record_matches_its_message(outcome: saga.Outcome) -> None:
    reply = saga.SagaReply("u-1/create_profile", "users", "u-1", "u-1", outcome, "why", {"a": 1})
    _, headers, value = saga.reply_record(reply, "/parley/users")
    message = MESSAGES["parley.users.CommandReplied.v1"]
    assert "parley.users.CommandReplied.v1" in DOC["channels"][topics.SAGA_REPLIES]["messages"]
    check({k: v.decode() for k, v in headers}, message["headers"])
    check(json.loads(value), resolve(message["payload"]["$ref"]))


def test_a_decoy_notice_matches_its_message() -> None:
    _, headers, value = saga.decoy_record("decoy-1", "/parley/auth")
    message = MESSAGES["parley.auth.DecoyRegistered.v1"]
    check(headers, message["headers"])
    check(json.loads(value), message["payload"])


def test_a_parked_record_matches_the_dead_letter_message() -> None:
    envelope = Envelope(
        id="e-1",
        source="/parley/users",
        type=ce_type("users", "UserCreated", 1),
        subject="u-1",
        time=datetime.now(UTC),
        data=b"{}",
        aggregate_version=1,
        schema_version=1,
    )
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        topic="users.events",
        partition=3,
        offset=42,
        timestamp=0,
        timestamp_type=0,
        key=b"u-1",
        value=b"{}",
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=2,
        headers=[(k, v.encode()) for k, v in header_map(envelope).items()],
    )
    parked = dlq.headers(record, "projector-users", ValueError("bad"), attempts=5)
    text = {k: v.decode() for k, v in parked}
    message = MESSAGES["DeadLetter"]
    check(text, message["headers"])
    assert {k for k in text if k.startswith(dlq.PREFIX)} == set(asyncapi.DLQ_HEADERS)
    assert "DeadLetter" in DOC["channels"]["projector-users.dlq"]["messages"]
