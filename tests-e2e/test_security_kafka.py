"""Kafka identities and ACLs (issue 19.1) against the running cluster's broker: nobody
connects without credentials, and with them each principal writes only what
parley_messaging.access grants it. A projector's or another team's credentials write nowhere;
a relay writes its own context's events and nothing else; a forged saga command
(`CancelRegistration`) or chat event (`ParticipantAdded`) from any principal but their one
writer never reaches its topic, and so never takes effect.

The writers themselves are exercised by every other e2e test: the cluster's relays, saga and
participants run as their own principals with exactly these ACLs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from parley_messaging.access import OTHER_TEAMS, principals
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_messaging.saga import SagaCommand, command_record
from parley_messaging.security import as_principal
from parley_messaging.topics import CONTEXTS, SAGA_REPLIES, commands_topic, events_topic
from parley_testing.accounts import Account, login, sign_up
from parley_testing.kafka_access import principal

pytestmark = pytest.mark.e2e

EVENT_TOPICS = [events_topic(c) for c in CONTEXTS]
COMMAND_TOPICS = [commands_topic(c) for c in CONTEXTS]
READERS = [
    "projector-users",
    "projector-chat",
    "projector-notifications",
    "projector-search",
    OTHER_TEAMS,
]


def producer(bootstrap: str, who: str) -> AIOKafkaProducer:
    # not idempotent: a principal without WRITE anywhere would be refused already at
    # InitProducerId; here every refusal is the topic's own
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000, **principal(who)
    )


async def refused(
    bootstrap: str,
    who: str,
    topic: str,
    key: bytes,
    value: bytes,
    headers: Sequence[tuple[str, bytes]] = (),
) -> None:
    """Assert that `who` cannot write the record to `topic`."""
    client = producer(bootstrap, who)
    await client.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await client.send_and_wait(topic, value, key=key, headers=list(headers))
    finally:
        await client.stop()


async def test_no_connection_without_valid_credentials(kafka_bootstrap: str) -> None:
    for options in ({}, as_principal(OTHER_TEAMS, "not-the-password")):
        client = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, request_timeout_ms=5000, **options
        )
        with pytest.raises(KafkaError):
            await client.start()
        await client.stop()


async def test_readers_write_no_event_command_or_reply_topic(kafka_bootstrap: str) -> None:
    for who in READERS:
        client = producer(kafka_bootstrap, who)
        await client.start()
        try:
            for topic in [*EVENT_TOPICS, *COMMAND_TOPICS, SAGA_REPLIES]:
                with pytest.raises(TopicAuthorizationFailedError):
                    await client.send_and_wait(topic, b"forged", key=b"k")
        finally:
            await client.stop()


async def test_a_relay_writes_its_own_context_only(kafka_bootstrap: str) -> None:
    client = producer(kafka_bootstrap, "relay-users")
    await client.start()
    try:
        for topic in [*EVENT_TOPICS, *COMMAND_TOPICS, SAGA_REPLIES]:
            if topic == "users.events":
                continue  # its own: written by the cluster's relay-users in every sign-up
            with pytest.raises(TopicAuthorizationFailedError):
                await client.send_and_wait(topic, b"forged", key=b"k")
    finally:
        await client.stop()


async def test_other_teams_read_events_in_ext_groups_only(kafka_bootstrap: str) -> None:
    options = principal(OTHER_TEAMS)
    ours = AIOKafkaConsumer(
        "users.events",
        bootstrap_servers=kafka_bootstrap,
        group_id=f"ext-e2e-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        **options,
    )
    await ours.start()
    try:
        batch = await ours.getmany(timeout_ms=10_000, max_records=1)
        assert sum(len(records) for records in batch.values()) == 1
    finally:
        await ours.stop()
    theirs = AIOKafkaConsumer(
        "users.events",
        bootstrap_servers=kafka_bootstrap,
        group_id="projector-users",  # a Parley group: joining it would steal its partitions
        **options,
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await theirs.start()  # joining the group is refused
    finally:
        await theirs.stop()


def everyone_but(*owners: str) -> list[str]:
    return [p.name for p in principals() if p.name not in owners]


async def test_a_forged_cancel_registration_never_takes_effect(
    gateway_url: str, kafka_bootstrap: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        victim = await sign_up(client, "Victim")
        command = SagaCommand(
            id=str(uuid.uuid4()),
            context="auth",
            name="CancelRegistration",
            subject=victim.user_id,
            saga_id=victim.user_id,
            reply_to=SAGA_REPLIES,
            step="cancel_registration",
            data={"reason": "forged"},
        )
        key, headers, value = command_record(command, "/parley/registration-saga")
        record = (key.encode(), value, [(k, v.encode()) for k, v in headers.items()])
        for who in everyone_but("relay-saga"):  # the orchestrator itself writes no command
            await refused(kafka_bootstrap, who, command.topic, *record)
        await asyncio.sleep(3)  # what a participant would need to act on it
        await assert_active(client, victim)


async def assert_active(client: httpx.AsyncClient, account: Account) -> None:
    assert await login(client, account.email)  # a cancelled registration cannot log in
    me = await client.get("/v1/users/me", headers=account.headers)
    assert me.status_code == 200, me.text


async def test_a_forged_participant_added_never_takes_effect(
    gateway_url: str, kafka_bootstrap: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada = await sign_up(client, "Ada")
        bob = await sign_up(client, "Bob")
        eve = await sign_up(client, "Eve")
        created = await client.post(
            "/v1/conversations", json={"participant_ids": [bob.user_id]}, headers=ada.headers
        )
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        forged = Envelope(
            id=str(uuid.uuid4()),
            source="/parley/chat",
            type=ce_type("chat", "ParticipantAdded", 1),
            subject=cid,
            time=datetime.now(UTC),
            data=json.dumps(
                {
                    "conversation_id": cid,
                    "user_id": eve.user_id,
                    "added_by": ada.user_id,
                    "participant_ids": [ada.user_id, bob.user_id, eve.user_id],
                    "kind": "group",
                }
            ).encode(),
            aggregate_version=1000,
        )
        record = (cid.encode(), forged.data, kafka_headers(header_map(forged)))
        for who in everyone_but("relay-chat"):
            await refused(kafka_bootstrap, who, "chat.events", *record)
        await asyncio.sleep(3)  # what projector-chat would need to apply it
        listed = await client.get("/v1/conversations", headers=eve.headers)
        assert listed.status_code == 200, listed.text
        assert cid not in [c["id"] for c in listed.json()["items"]]
        history = await client.get(f"/v1/conversations/{cid}/messages", headers=eve.headers)
        assert history.status_code == 404, history.text


def test_each_projector_may_read_every_topic_its_projection_follows() -> None:
    """The ACL matrix keeps up with the read models: a projection that starts following a
    topic its principal may not read would stop its projector at start."""
    from parley_readmodel.projection import load_projection

    grants = {p.name: p.grants for p in principals()}
    for context in ("users", "chat", "notifications"):
        readable = {g.name for g in grants[f"projector-{context}"] if g.operation == "READ"}
        topics = set(load_projection(context).topics)
        assert topics <= readable, f"projector-{context} may not read {topics - readable}"
