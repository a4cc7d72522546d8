"""Saga commands and replies on Kafka: the orchestrator's private protocol with its participants.

A command travels on `<context>.commands` as a CloudEvent (the same binary binding as events):
`ce_type` = `parley.<context>.<CommandName>.v1`, `ce_id` = the command id (stable across the
orchestrator's retries, so a participant can tell a retry from a new command), `ce_subject` =
the subject (the user id: key and partition), `ce_correlationid` = the saga id, and two
extensions: `ce_replyto` (the topic the reply goes to) and `ce_sagastep` (for logs and
traces). A reply travels on that topic as `parley.<context>.CommandReplied.v1` with
`ce_causationid` = the command id and a JSON body: the outcome (`succeeded`, `rejected` = the
participant refuses for good, `failed` = could not do it now, worth retrying), a reason and an
optional result.

These topics are working queues, not the public log (see parley_messaging.topics). Pure: no
Kafka client here, only the codec, so the orchestrator's domain and unit tests can use it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from parley_messaging.envelope import (
    Envelope,
    InvalidEnvelope,
    ce_type,
    decode,
    header_map,
    parse_ce_type,
)

H_REPLY_TO = "ce_replyto"
DECOY_NAME = "DecoyRegistered"
H_SAGA_STEP = "ce_sagastep"
REPLY_NAME = "CommandReplied"
Outcome = Literal["succeeded", "rejected", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("succeeded", "rejected", "failed")


@dataclass(frozen=True)
class SagaCommand:
    id: str
    context: str  # the participant: users, notifications, auth
    name: str  # e.g. CreateProfile
    subject: str
    saga_id: str
    reply_to: str
    step: str
    data: Mapping[str, Any] = field(default_factory=dict)
    traceparent: str | None = None

    @property
    def topic(self) -> str:
        return f"{self.context}.commands"


@dataclass(frozen=True)
class SagaReply:
    command_id: str
    context: str
    subject: str
    saga_id: str
    outcome: Outcome
    reason: str = ""
    result: Mapping[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"


class Rejected(Exception):
    """Raised by a participant's handler: the command is refused for good (a business rule),
    so retrying is pointless and the orchestrator compensates at once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def command_record(command: SagaCommand, source: str) -> tuple[str, dict[str, str], bytes]:
    """(key, headers, value) of the command's Kafka record, as an outbox row stores them."""
    envelope = Envelope(
        id=command.id,
        source=source,
        type=ce_type(command.context, command.name, 1),
        subject=command.subject,
        time=datetime.now(UTC),
        data=json.dumps(dict(command.data), separators=(",", ":")).encode(),
        correlation_id=command.saga_id,
        traceparent=command.traceparent,
        extra={H_REPLY_TO: command.reply_to, H_SAGA_STEP: command.step},
    )
    return command.subject, header_map(envelope), envelope.data


def decode_command(headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> SagaCommand:
    envelope = decode(headers, value)
    context, name, _ = parse_ce_type(envelope.type)
    reply_to = envelope.extra.get(H_REPLY_TO)
    if not reply_to or not envelope.correlation_id:
        raise InvalidEnvelope("a saga command needs ce_replyto and ce_correlationid")
    data = _json_object(envelope.data)
    return SagaCommand(
        id=envelope.id,
        context=context,
        name=name,
        subject=envelope.subject,
        saga_id=envelope.correlation_id,
        reply_to=reply_to,
        step=envelope.extra.get(H_SAGA_STEP, ""),
        data=data,
        traceparent=envelope.traceparent,
    )


def reply_record(reply: SagaReply, source: str) -> tuple[bytes, list[tuple[str, bytes]], bytes]:
    """(key, Kafka headers, value) of a reply record."""
    body = {
        "command_id": reply.command_id,
        "outcome": reply.outcome,
        "reason": reply.reason,
        "result": dict(reply.result),
    }
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source=source,
        type=ce_type(reply.context, REPLY_NAME, 1),
        subject=reply.subject,
        time=datetime.now(UTC),
        data=json.dumps(body, separators=(",", ":")).encode(),
        correlation_id=reply.saga_id,
        causation_id=reply.command_id,
    )
    headers = [(k, v.encode()) for k, v in header_map(envelope).items()]
    return reply.subject.encode(), headers, envelope.data


def decode_reply(headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> SagaReply:
    return reply_of(decode(headers, value))


def reply_of(envelope: Envelope) -> SagaReply:
    """The saga reply a decoded record holds (InvalidEnvelope if it is not one)."""
    context, name, _ = parse_ce_type(envelope.type)
    if name != REPLY_NAME or not envelope.correlation_id:
        raise InvalidEnvelope(f"{envelope.type} is not a saga reply")
    body = _json_object(envelope.data)
    outcome = body.get("outcome")
    if outcome not in OUTCOMES:
        raise InvalidEnvelope(f"unknown reply outcome {outcome!r}")
    result = body.get("result") or {}
    return SagaReply(
        command_id=str(body.get("command_id") or envelope.causation_id or ""),
        context=context,
        subject=envelope.subject,
        saga_id=envelope.correlation_id,
        outcome=outcome,
        reason=str(body.get("reason") or ""),
        result=result if isinstance(result, dict) else {},
    )


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as error:
        raise InvalidEnvelope("the value is not JSON") from error
    if not isinstance(value, dict):
        raise InvalidEnvelope("the value is not a JSON object")
    return value


def decoy_record(decoy_id: str, source: str) -> tuple[str, dict[str, str], bytes]:
    """(key, headers, value) of auth's private notice that a registration with a taken address
    was answered with the decoy id `decoy_id`: the orchestrator shows that id a registration
    like any other, so its status endpoint cannot tell taken addresses from free ones."""
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source=source,
        type=ce_type("auth", DECOY_NAME, 1),
        subject=decoy_id,
        time=datetime.now(UTC),
        data=b"{}",
        correlation_id=decoy_id,
    )
    return decoy_id, header_map(envelope), envelope.data
