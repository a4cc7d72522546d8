"""A small sample projection for the tests and the benchmark: conversations with a message
counter, and per-user unread counters kept as one sub-document per (user, conversation), so
each document has one source stream (the conversation) and one writer."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_readmodel.projection import Projection, Write

BROKEN: set[str] = {"Boom"}  # event names whose handler raises (tests "fix" it by clearing)
KNOWN_LATE: set[str] = set()  # event names that get a handler only once "fixed"
CALLS: dict[str, int] = defaultdict(int)


def started(env: Envelope, data: dict[str, Any]) -> list[Write]:
    writes = [Write("conversations", env.subject, {"$set": {"title": data["title"]}})]
    for user in data["members"]:
        writes.append(
            Write("unread", f"{user}:{env.subject}", {"$set": {"user": user, "conv": env.subject}})
        )
    return writes


def posted(env: Envelope, data: dict[str, Any]) -> list[Write]:
    writes = [
        Write(
            "conversations",
            env.subject,
            {"$inc": {"messages": 1}, "$set": {"last": data["text"], "last_by": data["sender"]}},
        )
    ]
    for user in data["recipients"]:
        writes.append(Write("unread", f"{user}:{env.subject}", {"$inc": {"count": 1}}))
    return writes


def read(env: Envelope, data: dict[str, Any]) -> list[Write]:
    return [Write("unread", f"{data['user']}:{env.subject}", {"$set": {"count": 0}})]


def boom(env: Envelope, data: dict[str, Any]) -> list[Write]:
    CALLS["Boom"] += 1
    if "Boom" in BROKEN:
        raise RuntimeError("the Boom handler has a bug")
    return [Write("conversations", env.subject, {"$inc": {"booms": 1}})]


def renamed(env: Envelope, data: dict[str, Any]) -> list[Write]:
    return [Write("conversations", env.subject, {"$set": {"renamed": data["title"]}})]


def conversations(name: str = "conversations") -> Projection:
    handlers = {"ConversationStarted": started, "MessagePosted": posted, "Read": read, "Boom": boom}
    if "Renamed" in KNOWN_LATE:
        handlers["Renamed"] = renamed
    return Projection(
        name=name,
        topics=(TOPIC[0],) if TOPIC else (),
        collections=("conversations", "unread"),
        handlers=handlers,
        strict=True,
    )


TOPIC: list[str] = []  # set by a test before loading the projection through the CLI


def event(
    conv: str, version: int, name: str, data: dict[str, Any] | None = None, raw: bytes | None = None
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    import json

    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="/parley/chat",
        type=ce_type("chat", name, 1),
        subject=conv,
        time=datetime.now(UTC),
        data=raw if raw is not None else json.dumps(data or {}).encode(),
        aggregate_version=version,
        schema_version=1,
    )
    return envelope.key, envelope.data, kafka_headers(header_map(envelope))


def conversation_events(
    conv: str, members: list[str], messages: int, start_version: int = 1
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    out = []
    v = start_version
    if v == 1:
        out.append(event(conv, 1, "ConversationStarted", {"title": conv, "members": members}))
        v = 2
    for i in range(messages):
        sender = members[i % len(members)]
        data = {
            "sender": sender,
            "text": f"m{v}",
            "recipients": [m for m in members if m != sender],
        }
        out.append(event(conv, v, "MessagePosted", data))
        v += 1
    return out


def expected(
    conversations_members: dict[str, list[str]], messages: dict[str, int]
) -> dict[str, Any]:
    """The read model the events of `conversation_events` must produce (counters only)."""
    convs = {}
    unread: dict[str, int] = defaultdict(int)
    for conv, members in conversations_members.items():
        n = messages[conv]
        convs[conv] = n
        for i in range(n):
            sender = members[i % len(members)]
            for m in members:
                if m != sender:
                    unread[f"{m}:{conv}"] += 1
        for m in members:
            unread.setdefault(f"{m}:{conv}", 0)
    return {"conversations": convs, "unread": dict(unread)}
