"""The AsyncAPI 3.0 document of every Kafka topic Parley owns, built from the contract models
(pure: no AsyncAPI library, nothing beyond pydantic). Committed as docs/asyncapi.json; a test
checks it is fresh (`uv run python -m parley_contracts.generate` rewrites it).

- `<context>.events`: the public log other teams read, one message per `ce_type` (its
  `ce_type`, `ce_source` and `ce_schemaversion` headers as `const`s, its payload the
  committed JSON Schema of that version).
- `<context>.commands`, `registration-saga.replies`, `<group>.dlq`: the platform's working
  queues (the registration saga's commands and replies, parked records). Described so
  operators and tools can read them; they are not a public contract (`x-parley-visibility`:
  `internal`) and change without a new version. Their names and shapes mirror
  `parley_messaging.topics`, `.saga` and `.dlq` and the registration saga's steps, which this
  package cannot import (it depends on pydantic only); libs/contracts/tests/test_asyncapi.py
  checks that they agree.
"""

from __future__ import annotations

import copy
from typing import Any

from parley_contracts.base import Event
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
    SPEC_VERSION,
    ce_type,
)
from parley_contracts.registry import all_events

CONTEXTS = ("auth", "users", "chat", "notifications")
PARTITIONS = 6  # the default of every topic but the DLQs (PARLEY_TOPIC_PARTITIONS)
DLQ_PARTITIONS = 1
FOREVER = {"retention.ms": -1, "retention.bytes": -1}
ONE_WEEK = {"retention.ms": 7 * 24 * 3600 * 1000}
BINDING_VERSION = "0.5.0"

# the registration saga (parley_messaging.saga, services/registration-saga domain.py)
SAGA = "registration-saga"
SAGA_SOURCE = "/parley/registration-saga"
SAGA_REPLIES = "registration-saga.replies"
H_REPLY_TO = "ce_replyto"
H_SAGA_STEP = "ce_sagastep"
REPLY_NAME = "CommandReplied"
DECOY_NAME = "DecoyRegistered"
OUTCOMES = ("succeeded", "rejected", "failed")
# participant -> (command, the saga step that sends it, what it does)
SAGA_COMMANDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "users": (
        ("CreateProfile", "create_profile", "create the new account's profile"),
        ("AssignDefaultRole", "assign_role", "give the profile the role `user`"),
        ("RemoveProfile", "remove_profile", "compensation: remove the profile again"),
    ),
    "notifications": (
        (
            "PrepareNotifications",
            "prepare_notifications",
            "default preferences and the verification-code mail",
        ),
        (
            "NotifyRegistrationFailed",
            "notify_failure",
            "compensation: tell the registrant the registration failed",
        ),
    ),
    "auth": (
        ("ActivateAccount", "activate_account", "the account may log in"),
        (
            "CancelRegistration",
            "cancel_registration",
            "compensation: close the account, free its address",
        ),
    ),
    "chat": (),
}
SAGA_PARTICIPANTS = ("users", "notifications", "auth")

# dead-letter topics (parley_messaging.dlq): consumer group -> the topics it parks records of
DLQ_GROUPS: dict[str, tuple[str, ...]] = {
    "auth-saga-participant": ("auth.commands",),
    "notifications-saga-participant": ("notifications.commands",),
    "users-saga-participant": ("users.commands",),
    SAGA: ("auth.events", SAGA_REPLIES),
    "projector-chat": ("chat.events", "users.events"),
    "projector-notifications": ("notifications.events", "users.events"),
    "projector-users": ("users.events", "auth.events"),
}
DLQ_PREFIX = "dlq_"
DLQ_HEADERS: dict[str, dict[str, Any]] = {
    "dlq_error": {
        "type": "string",
        "maxLength": 4000,
        "description": "why it was parked: the exception, `<Type>: <message>`",
        "examples": ["InvalidEnvelope: missing CloudEvents headers: ce_type"],
    },
    "dlq_error_type": {"type": "string", "description": "the exception's class name"},
    "dlq_topic": {"type": "string", "description": "the topic the record was consumed from"},
    "dlq_partition": {"type": "string", "pattern": "^[0-9]+$", "description": "its partition"},
    "dlq_offset": {"type": "string", "pattern": "^[0-9]+$", "description": "its offset"},
    "dlq_group": {"type": "string", "description": "the consumer group that parked it"},
    "dlq_attempts": {
        "type": "string",
        "pattern": "^[1-9][0-9]*$",
        "description": "how often the group tried it before parking it",
    },
    "dlq_time": {
        "type": "string",
        "pattern": r"^[0-9]+\.[0-9]{3}$",
        "description": "when it was parked: Unix time in seconds, three decimals",
    },
}

TRACEPARENT = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
CORRELATION_LOCATION = f"$message.header#/{H_CORRELATION_ID}"

DESCRIPTION = """\
Every Kafka topic of Parley. The `<context>.events` topics are the public contract other teams \
read: install `parley-events` (libs/contracts, README.md there) to decode and validate them.

- Envelope: CloudEvents 1.0, Kafka binary content mode. Every attribute is a header \
`ce_<attribute>` (UTF-8), `content-type` is `application/json`, the W3C `traceparent` travels \
under its own name. The record key is the aggregate id, equal to `ce_subject`: one \
aggregate's events are in one partition, in order.
- `ce_type` is `parley.<context>.<EventName>.v<N>`; the payload is the JSON Schema of exactly \
that version (committed at libs/contracts/schemas/<ce_type>.json).
- Personal data (fields marked `x-parley-encrypted`) is sealed per person with AES-256-GCM: \
on the wire the value is `pe1.<key id>.<base64url>`; `x-parley-plaintext` holds the \
constraints of the plaintext. Consumers outside the platform cannot read these values. \
The key is the person's named by the field `subject`; with a `scope` it is the key \
`<scope>:<subject value>` of a thing (a conversation's title), which forgetting a person \
never destroys.
- Delivery is at least once: deduplicate by (`ce_subject`, `ce_aggregateversion`) or `ce_id`.
- Versioning: a published `ce_type` only ever gains optional fields; anything else is a new \
`v<N+1>`, published as a new message type.
- `<context>.commands`, `registration-saga.replies` and `<group>.dlq` are the platform's \
working queues (`x-parley-visibility: internal`): described here, not a contract.
"""


def _string(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **more}


def _const(value: str, description: str) -> dict[str, Any]:
    return {"type": "string", "const": value, "description": description}


HEADERS_SCHEMA = "CloudEventsHeaders"
BASE_REQUIRED = [H_SPECVERSION, H_ID, H_SOURCE, H_TYPE, H_TIME, H_SUBJECT, H_CONTENT_TYPE]


def cloudevents_headers_schema() -> dict[str, Any]:
    """The headers every Parley record of the binary binding has (components/schemas)."""
    return {
        "type": "object",
        "title": HEADERS_SCHEMA,
        "description": "CloudEvents 1.0, Kafka binary content mode (headers are UTF-8 text)",
        "properties": {
            H_SPECVERSION: _const(SPEC_VERSION, "CloudEvents spec version"),
            H_ID: _string("the event id (a UUID): the deduplication key of this record"),
            H_SOURCE: _string("the context that wrote it, `/parley/<context>`"),
            H_TYPE: _string(
                "`parley.<context>.<Name>.v<N>`: the type and schema version of the payload",
                pattern=r"^parley\.[a-z][a-z0-9_-]*\.[A-Za-z][A-Za-z0-9]*\.v[1-9][0-9]*$",
            ),
            H_TIME: _string("when it was recorded (RFC 3339, UTC, `Z`)", format="date-time"),
            H_SUBJECT: _string("the aggregate id; equal to the record key"),
            H_CONTENT_TYPE: _const(CONTENT_TYPE, "the value is JSON"),
            H_AGGREGATE_VERSION: _string(
                "the aggregate's version after this event (1, 2, 3... per `ce_subject`, no "
                "gaps): order and deduplicate by it",
                pattern="^[1-9][0-9]*$",
            ),
            H_SCHEMA_VERSION: _string("N of `ce_type`'s `v<N>`", pattern="^[1-9][0-9]*$"),
            H_CORRELATION_ID: _string(
                "what everything one request caused shares (the request's id, or the saga id)"
            ),
            H_CAUSATION_ID: _string("the id of the command or event that caused this one"),
            H_TRACEPARENT: _string("W3C trace context", pattern=TRACEPARENT),
        },
        "required": list(BASE_REQUIRED),
    }


def cloudevents_headers(
    type_: str,
    source: str,
    *,
    schema_version: int | None = None,
    extra: dict[str, Any] | None = None,
    required: list[str] | None = None,
) -> dict[str, Any]:
    """The header schema of one message type: the common CloudEvents headers, with the values
    that identify the type (`ce_type`, `ce_source`, `ce_schemaversion`) as `const`s."""
    properties: dict[str, Any] = {
        H_TYPE: _const(type_, "the type and schema version of the payload"),
        H_SOURCE: _const(source, "the context that wrote it"),
    }
    needed = list(BASE_REQUIRED)
    if schema_version is not None:
        properties[H_SCHEMA_VERSION] = _const(str(schema_version), "N of `ce_type`'s `v<N>`")
        needed += [H_AGGREGATE_VERSION, H_SCHEMA_VERSION]
    properties.update(extra or {})
    needed += [name for name in required or () if name not in needed]
    return {
        "type": "object",
        "allOf": [{"$ref": f"#/components/schemas/{HEADERS_SCHEMA}"}],
        "properties": properties,
        "required": needed,
    }


def _key(description: str) -> dict[str, Any]:
    return {
        "key": {"type": "string", "description": description},
        "bindingVersion": BINDING_VERSION,
    }


def _channel(
    address: str,
    description: str,
    messages: list[str],
    *,
    partitions: int,
    config: dict[str, int],
    visibility: str,
    ce_types: list[str] | None = None,
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address,
        "title": address,
        "description": description,
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        "bindings": {
            "kafka": {
                "topic": address,
                "partitions": partitions,
                "topicConfiguration": dict(config),
                "bindingVersion": BINDING_VERSION,
            }
        },
        "x-parley-visibility": visibility,
    }
    if ce_types is not None:
        channel["x-parley-ce-types"] = ce_types
    return channel


def _operation(
    action: str, channel: str, messages: list[str], summary: str, group: str | None = None
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in messages],
    }
    if group is not None:
        operation["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [group]},
                "bindingVersion": BINDING_VERSION,
            }
        }
    return operation


def _correlation(description: str) -> dict[str, str]:
    return {"location": CORRELATION_LOCATION, "description": description}


def _payload_schema(cls: type[Event]) -> dict[str, Any]:
    schema = copy.deepcopy(cls.json_schema())
    schema.pop("$schema", None)  # the document's schemas are AsyncAPI (JSON Schema) schemas
    definitions = schema.pop("$defs", {})
    return _inlined(schema, definitions) if definitions else schema


def _inlined(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with each local `$ref` to a nested definition replaced by the definition (a
    message's payload stands alone in the document: its own `#/$defs/...` would not
    resolve there). The contract has no recursive models."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {key: _inlined(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(item, definitions) for item in node]
    return node


def _event_message(cls: type[Event]) -> dict[str, Any]:
    doc = (cls.__doc__ or "").strip()
    type_ = cls.ce_type()
    return {
        "name": type_,
        "title": cls.event_name(),
        "summary": doc.split("\n\n")[0].replace("\n", " ") if doc else type_,
        "description": f"{doc}\n\nSchema: libs/contracts/schemas/{type_}.json".strip(),
        "contentType": CONTENT_TYPE,
        "headers": cloudevents_headers(
            type_, f"/parley/{cls.context}", schema_version=cls.schema_version
        ),
        "payload": {"$ref": f"#/components/schemas/{type_}"},
        "correlationId": _correlation("the request (or saga) this event belongs to"),
        "bindings": {"kafka": _key("the aggregate id (= `ce_subject`)")},
    }


def _command_message(context: str, name: str, step: str, what: str) -> dict[str, Any]:
    type_ = ce_type(context, name, 1)
    extra = {
        H_CORRELATION_ID: _string("the saga id (the registering account's id)"),
        H_REPLY_TO: _const(SAGA_REPLIES, "the topic the participant replies on"),
        H_SAGA_STEP: _const(step, "the saga step that sent it (for logs and traces)"),
        H_ID: _string(
            "the command id, `<saga id>/<step>`: the same on every retry, so the participant "
            "applies it once"
        ),
    }
    return {
        "name": type_,
        "title": name,
        "summary": f"Registration saga -> {context}: {what}.",
        "contentType": CONTENT_TYPE,
        "headers": cloudevents_headers(
            type_, SAGA_SOURCE, extra=extra, required=[H_CORRELATION_ID, H_REPLY_TO, H_SAGA_STEP]
        ),
        "payload": {"$ref": "#/components/schemas/RegistrationCommandData"},
        "correlationId": _correlation("the saga id"),
        "bindings": {"kafka": _key("the registering account's id (= `ce_subject`)")},
    }


def _reply_message(context: str) -> dict[str, Any]:
    type_ = ce_type(context, REPLY_NAME, 1)
    extra = {
        H_CORRELATION_ID: _string("the saga id"),
        H_CAUSATION_ID: _string("the id of the command answered"),
    }
    return {
        "name": type_,
        "title": f"{context} {REPLY_NAME}",
        "summary": f"{context} answers a saga command (every command gets one reply).",
        "contentType": CONTENT_TYPE,
        "headers": cloudevents_headers(
            type_, f"/parley/{context}", extra=extra, required=[H_CORRELATION_ID, H_CAUSATION_ID]
        ),
        "payload": {"$ref": "#/components/schemas/CommandReply"},
        "correlationId": _correlation("the saga id"),
        "bindings": {"kafka": _key("the registering account's id (= `ce_subject`)")},
    }


def _decoy_message() -> dict[str, Any]:
    type_ = ce_type("auth", DECOY_NAME, 1)
    extra = {H_CORRELATION_ID: _string("the decoy id (= `ce_subject`)")}
    return {
        "name": type_,
        "title": DECOY_NAME,
        "summary": "auth answered a registration with a taken address with a made-up id.",
        "description": (
            "The orchestrator shows that id a registration like any other, so the status "
            "endpoint cannot tell taken addresses from free ones. The value is `{}`."
        ),
        "contentType": CONTENT_TYPE,
        "headers": cloudevents_headers(
            type_, "/parley/auth", extra=extra, required=[H_CORRELATION_ID]
        ),
        "payload": {"type": "object", "maxProperties": 0},
        "correlationId": _correlation("the decoy id"),
        "bindings": {"kafka": _key("the decoy id")},
    }


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": "DeadLetter",
        "title": "Parked record",
        "summary": "A record a consumer group could not process, parked with the reason.",
        "description": (
            "Key, value and headers are the original record's, unchanged (a re-drive puts it "
            "back as it was); the `dlq_*` headers say why and where from. A projector parks a "
            "record after bounded retries (poison data, not an unavailable store); saga "
            "participants and the orchestrator park what they cannot decode."
        ),
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "description": (
                "the original record's headers (its CloudEvents headers, when it had them), "
                "then the `dlq_*` headers"
            ),
            "properties": DLQ_HEADERS,
            "required": list(DLQ_HEADERS),
            "additionalProperties": {"type": "string"},
        },
        "payload": {"description": "the original record's value, unchanged (bytes)"},
        "bindings": {"kafka": _key("the original record's key")},
    }


def _command_data_schema() -> dict[str, Any]:
    sealed = {
        "type": "string",
        "description": "sealed as in `parley.auth.UserRegistered.v1` (a `pe1.` envelope)",
        "x-parley-encrypted": {"subject": "user_id"},
    }
    return {
        "type": "object",
        "title": "RegistrationCommandData",
        "description": "What every registration saga command carries: the registration.",
        "properties": {"user_id": {"type": "string"}, "email": sealed, "name": sealed},
        "required": ["user_id", "email", "name"],
    }


def _reply_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "title": "CommandReply",
        "properties": {
            "command_id": {"type": "string", "description": "the command answered"},
            "outcome": {
                "type": "string",
                "enum": list(OUTCOMES),
                "description": (
                    "`rejected`: refused for good (the saga compensates); `failed`: could "
                    "not do it now (the saga retries with backoff)"
                ),
            },
            "reason": {"type": "string"},
            "result": {"type": "object"},
        },
        "required": ["command_id", "outcome", "reason", "result"],
    }


def asyncapi_document() -> dict[str, Any]:
    events = all_events()
    by_context: dict[str, list[type[Event]]] = {c: [] for c in CONTEXTS}
    for cls in events.values():
        by_context.setdefault(cls.context, []).append(cls)

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        HEADERS_SCHEMA: cloudevents_headers_schema(),
        "RegistrationCommandData": _command_data_schema(),
        "CommandReply": _reply_schema(),
    }

    for context, classes in by_context.items():
        topic = f"{context}.events"
        names = sorted(cls.ce_type() for cls in classes)
        for cls in classes:
            messages[cls.ce_type()] = _event_message(cls)
            schemas[cls.ce_type()] = _payload_schema(cls)
        channels[topic] = _channel(
            topic,
            f"Domain events of the {context} context, retained forever (the public log).",
            names,
            partitions=PARTITIONS,
            config=FOREVER,
            visibility="public",
            ce_types=names,
        )
        operations[f"{topic}.publish"] = _operation(
            "send", topic, names, f"relay-{context} publishes the {context} outbox"
        )

    for context, commands in SAGA_COMMANDS.items():
        topic = f"{context}.commands"
        names = sorted(ce_type(context, name, 1) for name, _, _ in commands)
        for name, step, what in commands:
            messages[ce_type(context, name, 1)] = _command_message(context, name, step, what)
        used = "" if names else " Declared, no command is sent on it today."
        channels[topic] = _channel(
            topic,
            f"Commands to the {context} context (the registration saga's), kept a week.{used}",
            names,
            partitions=PARTITIONS,
            config=ONE_WEEK,
            visibility="internal",
            ce_types=names,
        )
        if names:
            operations[f"{topic}.send"] = _operation(
                "send", topic, names, "the registration saga sends (through relay-saga)"
            )
            operations[f"{topic}.receive"] = _operation(
                "receive",
                topic,
                names,
                f"the {context} saga participant answers each",
                group=f"{context}-saga-participant",
            )

    replies = [ce_type(c, REPLY_NAME, 1) for c in SAGA_PARTICIPANTS]
    for context in SAGA_PARTICIPANTS:
        messages[ce_type(context, REPLY_NAME, 1)] = _reply_message(context)
    decoy = ce_type("auth", DECOY_NAME, 1)
    messages[decoy] = _decoy_message()
    reply_names = sorted([*replies, decoy])
    channels[SAGA_REPLIES] = _channel(
        SAGA_REPLIES,
        "The saga participants' replies and auth's decoy notices, read by the registration "
        "saga; kept a week.",
        reply_names,
        partitions=PARTITIONS,
        config=ONE_WEEK,
        visibility="internal",
        ce_types=reply_names,
    )
    operations[f"{SAGA_REPLIES}.send"] = _operation(
        "send", SAGA_REPLIES, reply_names, "participants reply; auth sends decoy notices"
    )
    operations[f"{SAGA_REPLIES}.receive"] = _operation(
        "receive", SAGA_REPLIES, reply_names, "the registration saga", group=SAGA
    )

    messages["DeadLetter"] = _dead_letter_message()
    for group, sources in DLQ_GROUPS.items():
        topic = f"{group}.dlq"
        channels[topic] = _channel(
            topic,
            f"Records of {', '.join(sources)} that consumer group {group} parked; kept a week.",
            ["DeadLetter"],
            partitions=DLQ_PARTITIONS,
            config=ONE_WEEK,
            visibility="internal",
        )
        channels[topic]["x-parley-dlq-sources"] = list(sources)
        operations[f"{topic}.park"] = _operation(
            "send", topic, ["DeadLetter"], f"{group} parks what it cannot process"
        )

    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Parley Kafka topics", "version": "1.0.0", "description": DESCRIPTION},
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "development": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "docker compose and Kubernetes; the local cluster: 127.0.0.1:9092",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
