"""Who may do what on Kafka: every Parley principal and its ACLs, declared once, and the
provisioning that makes a cluster match (SCRAM users and ACLs, idempotent).

    python -m parley_messaging.access --bootstrap-servers kafka:9092 --passwords-dir DIR

runs as the `admin` principal (PARLEY_KAFKA_USERNAME/PASSWORD, a super user) after the
topics exist; DIR holds one file per principal named after it, containing its password
(a Kubernetes Secret mounted as a volume; `.local/kafka/users` locally), or the variable
PARLEY_KAFKA_PASSWORDS holds them as a JSON object (docker-compose's development secrets).
The local cluster calls `provision` directly from `make up`.

Least privilege (docs/security.md "Kafka identities and ACLs"): each relay writes its own
`<context>.events` only; only the saga's relay writes `<participant>.commands`; participants
read their commands topic and write only the reply topic (and their own dead-letter topic);
projectors, policies, gateways and other teams only read. Consumer groups are granted by exact
name to the process that owns them; other teams get the groups prefixed `ext-`. The brokers
run with the StandardAuthorizer and `allow.everyone.if.no.acl.found=false`: what is not
granted here is refused. `broker` and `admin` are the brokers' super users.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from parley_messaging.topics import (
    CONTEXTS,
    SAGA_GROUP,
    SAGA_PARTICIPANTS,
    SAGA_REPLIES,
    commands_topic,
    dlq_topic,
    events_topic,
)

Resource = Literal["topic", "group"]
Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE"]
Pattern = Literal["literal", "prefixed"]

BROKER = "broker"  # the brokers' own principal (inter-broker and controller listeners)
ADMIN = "admin"  # topic creation, provisioning, operators' tools and the test suites
SUPER_USERS = (BROKER, ADMIN)
OTHER_TEAMS = "other-teams"  # the documented read-only principal for consumers outside Parley
EXTERNAL_GROUP_PREFIX = "ext-"


@dataclass(frozen=True, order=True)
class Grant:
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = "literal"


@dataclass(frozen=True)
class Principal:
    name: str
    purpose: str
    grants: tuple[Grant, ...] = field(default=())


def reads(*topics: str) -> list[Grant]:
    return [Grant("topic", t, "READ") for t in topics]


def writes(*topics: str) -> list[Grant]:
    return [Grant("topic", t, "WRITE") for t in topics]


def group(name: str, pattern: Pattern = "literal") -> Grant:
    return Grant("group", name, "READ", pattern)


def parks(dlq_group: str) -> list[Grant]:
    """A consumer that parks poison records on its own `<group>.dlq` (and may create it)."""
    topic = dlq_topic(dlq_group)
    return [Grant("topic", topic, "WRITE"), Grant("topic", topic, "CREATE")]


def participant(context: str) -> list[Grant]:
    """A saga participant: its commands in, replies out, its own dead letters."""
    name = f"{context}-saga-participant"
    return [*reads(commands_topic(context)), group(name), *writes(SAGA_REPLIES), *parks(name)]


# parley_authn: every token-verifying process. Every key-caching process (command services,
# projectors, the realtime gateway) also reads users.events (parley_messaging.forgetting).
REVOCATIONS = reads(events_topic("auth"))


def principals() -> list[Principal]:
    """Every Parley principal but the super users, with its grants."""
    relays = [
        Principal(f"relay-{ctx}", f"publishes {ctx}'s outbox", tuple(writes(events_topic(ctx))))
        for ctx in CONTEXTS
        if ctx != "auth"
    ]
    # auth's outbox also holds the saga's decoy replies (a taken address answers like a free
    # one: parley_auth.registration), so relay-auth writes the reply topic too
    relays.insert(
        0,
        Principal(
            "relay-auth",
            "publishes auth's outbox: its events and the saga's decoy replies",
            tuple(writes(events_topic("auth"), SAGA_REPLIES)),
        ),
    )
    relay_saga = Principal(
        "relay-saga",
        "publishes the registration saga's outbox: commands to its participants",
        tuple(writes(*(commands_topic(ctx) for ctx in SAGA_PARTICIPANTS))),
    )
    projectors = [
        Principal(
            f"projector-{ctx}",
            f"builds {ctx}'s read models",
            (*reads(*topics), group(f"projector-{ctx}"), *parks(f"projector-{ctx}")),
        )
        for ctx, topics in (
            ("users", ("users.events", "auth.events")),
            ("chat", ("chat.events", "users.events")),
            ("notifications", ("notifications.events", "users.events")),
        )
    ]
    # the search model (PostgreSQL): one consumer group per generation, projector-search.g<N>
    projectors.append(
        Principal(
            "projector-search",
            "builds the search model (users, messages, conversation lists)",
            (
                *reads("users.events", "auth.events", "chat.events"),
                group("projector-search.", "prefixed"),
                *parks("projector-search"),
            ),
        )
    )
    services = [
        Principal(
            "users-api",
            "users' saga participant; registrations and report resolutions; revocations;"
            " forgotten persons' keys",
            (
                *participant("users"),
                *reads("auth.events", "chat.events", "users.events"),
                group("users-registrations"),
            ),
        ),
        Principal(
            "auth-api",
            "auth's saga participant; follows account status",
            (
                *participant("auth"),
                *REVOCATIONS,
                *reads("users.events"),
                group("auth-user-status"),
            ),
        ),
        Principal(
            "chat-api",
            "revocations; the block list and the attachments janitor follow users.events",
            (
                *REVOCATIONS,
                *reads("users.events"),
                group("chat-blocks"),
                group("chat-attachments"),
            ),
        ),
        Principal(
            "notifications-api",
            "notifications' saga participant; the notification policy; revocations",
            (
                *participant("notifications"),
                *REVOCATIONS,
                *reads("chat.events", "users.events"),
                group("notifications-policy"),
            ),
        ),
        Principal(
            "registration-saga",
            "the orchestrator: auth's sign-ups and the participants' replies in",
            (
                *reads(events_topic("auth"), SAGA_REPLIES),
                group(SAGA_GROUP),
                *parks(SAGA_GROUP),
            ),
        ),
        Principal(
            "query-gateway",
            "revocations; the projections' lag (describe only)",
            (
                *REVOCATIONS,
                *(
                    Grant("topic", events_topic(ctx), "DESCRIBE")
                    for ctx in ("users", "chat", "notifications")
                ),
                Grant("group", "projector-", "DESCRIBE", "prefixed"),
            ),
        ),
        Principal(
            "realtime-gateway",
            "revocations; pushes chat and notifications events; forgotten persons' keys"
            " (no consumer group)",
            (*REVOCATIONS, *reads("chat.events", "notifications.events", "users.events")),
        ),
    ]
    other_teams = Principal(
        OTHER_TEAMS,
        "read-only: every public event topic, consumer groups prefixed ext-",
        (
            *reads(*(events_topic(ctx) for ctx in CONTEXTS)),
            group(EXTERNAL_GROUP_PREFIX, "prefixed"),
        ),
    )
    return [*relays, relay_saga, *projectors, *services, other_teams]


def principal_names() -> list[str]:
    return [*SUPER_USERS, *(p.name for p in principals())]


# -- passwords: one file per principal ------------------------------------------------------


def ensure_passwords(directory: Path, names: Iterable[str]) -> dict[str, str]:
    """The password of each principal, generated once into `directory/<name>` (0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    passwords = {}
    for name in names:
        path = directory / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        passwords[name] = path.read_text().strip()
    return passwords


def read_passwords(directory: Path) -> dict[str, str]:
    """Every password file in `directory` (a mounted Secret: dotfiles are its internals)."""
    return {
        p.name: p.read_text().strip()
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


# -- the admin protocol: SCRAM credentials and ACLs -----------------------------------------
# aiokafka's admin client has neither call, so the requests are declared here with its protocol
# types (AlterUserScramCredentials v0 is a flexible version; the ACL calls are v1).

SCRAM_SHA_512 = 2
SCRAM_ITERATIONS = 8192
RESOURCE_TYPES = {"any": 1, "topic": 2, "group": 3}
PATTERN_TYPES = {"any": 1, "literal": 3, "prefixed": 4}
OPERATIONS = {"ANY": 1, "READ": 3, "WRITE": 4, "CREATE": 5, "DESCRIBE": 8}
ALLOW = 3


def _protocol() -> dict[str, Any]:
    from aiokafka.protocol.api import Request, RequestStruct, Response
    from aiokafka.protocol.types import (
        Array,
        CompactArray,
        CompactBytes,
        CompactString,
        Int8,
        Int16,
        Int32,
        Schema,
        String,
        TaggedFields,
    )

    class AlterScramResponse(Response):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 51
        API_VERSION = 0
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            (
                "results",
                CompactArray(
                    ("user_name", CompactString("utf-8")),
                    ("error_code", Int16),
                    ("error_message", CompactString("utf-8")),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        )

    class AlterScramStruct(RequestStruct):  # type: ignore[misc]  # aiokafka.protocol is untyped
        FLEXIBLE_VERSION = True
        API_KEY = 51
        API_VERSION = 0
        RESPONSE_TYPE = AlterScramResponse
        SCHEMA = Schema(
            (
                "deletions",
                CompactArray(
                    ("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)
                ),
            ),
            (
                "upsertions",
                CompactArray(
                    ("name", CompactString("utf-8")),
                    ("mechanism", Int8),
                    ("iterations", Int32),
                    ("salt", CompactBytes),
                    ("salted_password", CompactBytes),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        )

    acl = (
        ("resource_type", Int8),
        ("resource_name", String("utf-8")),
        ("pattern_type", Int8),
        ("principal", String("utf-8")),
        ("host", String("utf-8")),
        ("operation", Int8),
        ("permission_type", Int8),
    )

    class DescribeAclsResponse(Response):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 29
        API_VERSION = 1
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            ("error_code", Int16),
            ("error_message", String("utf-8")),
            (
                "resources",
                Array(
                    ("resource_type", Int8),
                    ("resource_name", String("utf-8")),
                    ("pattern_type", Int8),
                    (
                        "acls",
                        Array(
                            ("principal", String("utf-8")),
                            ("host", String("utf-8")),
                            ("operation", Int8),
                            ("permission_type", Int8),
                        ),
                    ),
                ),
            ),
        )

    class DescribeAclsStruct(RequestStruct):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 29
        API_VERSION = 1
        RESPONSE_TYPE = DescribeAclsResponse
        SCHEMA = Schema(*acl)

    class CreateAclsResponse(Response):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 30
        API_VERSION = 1
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            ("results", Array(("error_code", Int16), ("error_message", String("utf-8")))),
        )

    class CreateAclsStruct(RequestStruct):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 30
        API_VERSION = 1
        RESPONSE_TYPE = CreateAclsResponse
        SCHEMA = Schema(("creations", Array(*acl)))

    class DeleteAclsResponse(Response):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 31
        API_VERSION = 1
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            (
                "results",
                Array(
                    ("error_code", Int16),
                    ("error_message", String("utf-8")),
                    (
                        "matching",
                        Array(
                            ("error_code", Int16),
                            ("error_message", String("utf-8")),
                            *acl,
                        ),
                    ),
                ),
            ),
        )

    class DeleteAclsStruct(RequestStruct):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 31
        API_VERSION = 1
        RESPONSE_TYPE = DeleteAclsResponse
        SCHEMA = Schema(("filters", Array(*acl)))

    class AlterScram(Request[AlterScramStruct]):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 51

        def __init__(self, upsertions: list[tuple[Any, ...]]) -> None:
            self.upsertions = upsertions

        def build(self, request_struct_class: type[AlterScramStruct]) -> AlterScramStruct:
            return request_struct_class([], self.upsertions, {})

    class DescribeAcls(Request[DescribeAclsStruct]):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 29

        def build(self, request_struct_class: type[DescribeAclsStruct]) -> DescribeAclsStruct:
            any_ = (RESOURCE_TYPES["any"], None, PATTERN_TYPES["any"], None, None)
            return request_struct_class(*any_, OPERATIONS["ANY"], 1)

    class CreateAcls(Request[CreateAclsStruct]):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 30

        def __init__(self, creations: list[tuple[Any, ...]]) -> None:
            self.creations = creations

        def build(self, request_struct_class: type[CreateAclsStruct]) -> CreateAclsStruct:
            return request_struct_class(self.creations)

    class DeleteAcls(Request[DeleteAclsStruct]):  # type: ignore[misc]  # aiokafka.protocol is untyped
        API_KEY = 31

        def __init__(self, filters: list[tuple[Any, ...]]) -> None:
            self.filters = filters

        def build(self, request_struct_class: type[DeleteAclsStruct]) -> DeleteAclsStruct:
            return request_struct_class(self.filters)

    return {
        "AlterScram": AlterScram,
        "DescribeAcls": DescribeAcls,
        "CreateAcls": CreateAcls,
        "DeleteAcls": DeleteAcls,
    }


def salted_password(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> bytes:
    """SCRAM's Hi(password, salt, i) (RFC 5802): what the broker derives its keys from."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


Binding = tuple[int, str, int, str, str, int, int]


def binding(principal: str, grant: Grant) -> Binding:
    return (
        RESOURCE_TYPES[grant.resource],
        grant.name,
        PATTERN_TYPES[grant.pattern],
        f"User:{principal}",
        "*",
        OPERATIONS[grant.operation],
        ALLOW,
    )


def desired_bindings(declared: Iterable[Principal]) -> set[Binding]:
    return {binding(p.name, g) for p in declared for g in p.grants}


async def _set_scram(admin: Any, passwords: Mapping[str, str]) -> int:
    api = _protocol()
    upserts: list[tuple[Any, ...]] = []
    for name, password in sorted(passwords.items()):
        salt = secrets.token_bytes(32)
        upserts.append(
            (name, SCRAM_SHA_512, SCRAM_ITERATIONS, salt, salted_password(password, salt), {})
        )
    if upserts:
        response = await admin._send_request(api["AlterScram"](upserts))
        _check([(r[1], r[0], r[2]) for r in response.results], "SCRAM credentials")
    return len(upserts)


class ProvisioningError(RuntimeError):
    pass


def _check(errors: Iterable[tuple[Any, ...]], what: str) -> None:
    failed = [e for e in errors if e[0] != 0]
    if failed:
        raise ProvisioningError(f"{what}: {failed}")


async def provision(
    bootstrap_servers: str,
    passwords: Mapping[str, str],
    declared: list[Principal] | None = None,
    *,
    acls: bool = True,
    **security: Any,
) -> dict[str, int]:
    """Make the cluster's SCRAM users and ACLs match: every principal in `passwords` gets its
    credential (set again each time: a changed password takes effect), every declared grant
    exists, and an ACL of a declared principal that the declaration no longer has is removed.
    Must run as a super user. `acls=False`: the credentials only (a broker without an
    authorizer, before it is switched to authentication). Returns counts of what it did."""
    from aiokafka.admin import AIOKafkaAdminClient

    api = _protocol()
    declared = principals() if declared is None else declared
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **security)
    await admin.start()
    try:
        upserts = await _set_scram(admin, passwords)
        if not acls:
            return {"users": upserts}

        response = await admin._send_request(api["DescribeAcls"]())
        _check([(response.error_code, response.error_message)], "describe ACLs")
        existing = {
            (rtype, rname, ptype, principal, host, operation, permission)
            for rtype, rname, ptype, acls in response.resources
            for principal, host, operation, permission in acls
        }
        wanted = desired_bindings(declared)
        managed = {f"User:{p.name}" for p in declared}
        missing = sorted(wanted - existing)
        stale = sorted(b for b in existing - wanted if b[3] in managed)
        if missing:
            response = await admin._send_request(api["CreateAcls"](missing))
            _check(response.results, "create ACLs")
        if stale:
            response = await admin._send_request(api["DeleteAcls"](stale))
            _check([r[:2] for r in response.results], "delete ACLs")
        return {"users": upserts, "created": len(missing), "deleted": len(stale)}
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    from parley_messaging.security import kafka_security

    parser = argparse.ArgumentParser(description="Create Parley's Kafka users and ACLs.")
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument(
        "--passwords-dir",
        type=Path,
        default=Path(os.environ.get("PARLEY_KAFKA_PASSWORDS_DIR", "/etc/parley/kafka-users")),
        help="one file per principal, named after it, holding its password",
    )
    args = parser.parse_args(argv)
    inline = os.environ.get("PARLEY_KAFKA_PASSWORDS")  # docker-compose: a JSON object
    passwords = json.loads(inline) if inline else read_passwords(args.passwords_dir)
    unknown = sorted(set(passwords) - set(principal_names()))
    if unknown:
        print(f"ignoring password files of unknown principals: {unknown}", file=sys.stderr)
    known = {k: v for k, v in passwords.items() if k not in unknown}
    done = asyncio.run(provision(args.bootstrap_servers, known, **kafka_security()))
    print(f"kafka access: {done}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
