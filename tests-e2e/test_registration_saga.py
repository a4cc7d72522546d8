"""The registration saga on the running cluster (issue 6): the happy path, a participant that
rejects, a participant that is down (too long, and briefly), and the orchestrator SIGKILLed with
50 registrations in flight. Effects are counted where they live: the events in each service's
PostgreSQL and the mails in the SMTP sink, so "exactly once in effect" is checked, not assumed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest
from parley_testing import cluster
from parley_testing.accounts import (
    MAIL,
    PASSWORD,
    code_mailed_to,
    login,
    new_address,
    registration_headers,
    registration_reaching,
    registration_settled,
)
from parley_testing.plugin import dsn_for_database

pytestmark = pytest.mark.e2e


async def register(client: httpx.AsyncClient, email: str, name: str = "Saga") -> str:
    response = await client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert response.status_code == 202, response.text
    user_id = str(response.json()["user_id"])
    TOKENS[user_id] = response.json()["registration_token"]
    return user_id


# each registration's token, as register answered it (GET /v1/registrations/{id} needs it)
TOKENS: dict[str, str] = {}


async def registration(client: httpx.AsyncClient, user_id: str) -> dict[str, Any]:
    response = await client.get(
        f"/v1/registrations/{user_id}", headers=registration_headers(user_id, TOKENS[user_id])
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_for_status(
    client: httpx.AsyncClient, user_id: str, wanted: str, wait_s: float
) -> dict[str, Any]:
    return await registration_reaching(
        client, user_id, (wanted,), wait_s, poll_s=0.2, token=TOKENS.get(user_id)
    )


async def settled(client: httpx.AsyncClient, user_id: str, wait_s: float = 30) -> str:
    """`registration_settled` with the token register answered (registered elsewhere: the
    one auth answers for that id, registration_headers)."""
    return await registration_settled(client, user_id, wait_s, token=TOKENS.get(user_id))


async def event_types(postgres_dsn: str, database: str, stream_id: str) -> list[str]:
    conn = await asyncpg.connect(dsn_for_database(postgres_dsn, database))
    try:
        rows = await conn.fetch(
            "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY version", stream_id
        )
    finally:
        await conn.close()
    return [r["event_type"] for r in rows]


def mails_to(address: str) -> list[str]:
    texts = [p.read_text(errors="replace") for p in MAIL.glob("*.eml")]
    return [t for t in texts if f"To: {address}" in t]


def steps(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["step"], h["event"]) for h in body["history"]]


async def test_happy_path_completes_then_the_account_verifies_and_logs_in(
    gateway_url: str, postgres_dsn: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        email = new_address("saga")
        user_id = await register(client, email)
        code = await code_mailed_to(email)
        assert await settled(client, user_id) == "completed"
        body = await registration(client, user_id)
        succeeded = [s for s, e in steps(body) if e == "succeeded"]
        assert succeeded == [
            "create_profile",
            "prepare_notifications",
            "assign_role",
            "activate_account",
        ]
        assert body["step"] is None and set(body) == {
            "id",
            "status",
            "step",
            "started_at",
            "updated_at",
            "history",
        }
        assert email not in str(body)  # status, step names and times only
        verified = await client.post("/v1/auth/verify-otp", json={"email": email, "code": code})
        assert verified.status_code == 200, verified.text
        token = await login(client, email)
        me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + 10
        while me.status_code != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["role"] == "user"
    assert Counter(await event_types(postgres_dsn, "users", user_id)) == {
        "UserCreated": 1,
        "UserRoleAssigned": 1,
    }
    assert await event_types(postgres_dsn, "notifications", user_id) == [
        "NotificationPreferencesUpdated"
    ]
    assert len(mails_to(email)) == 1


async def test_a_rejection_compensates_and_frees_the_address(
    gateway_url: str, postgres_dsn: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        email = new_address("saga")
        refused = await register(client, email, name="Parley")  # a reserved display name
        assert await settled(client, refused) == "compensated"
        body = await registration(client, refused)
        assert ("create_profile", "rejected") in steps(body)
        assert ("cancel_registration", "succeeded") in steps(body)
        assert ("remove_profile", "sent") not in steps(body)  # nothing was created to undo
        assert await event_types(postgres_dsn, "users", refused) == []
        auth_events = await event_types(postgres_dsn, "auth", refused)
        assert auth_events == ["UserRegistered", "RegistrationCancelled"]
        login_attempt = await client.post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert login_attempt.status_code == 401
        # the address is free again: a new registration with it completes
        again = await register(client, email, name="Ada")
        assert again != refused
        assert await settled(client, again) == "completed"
        code = await code_mailed_to(email)
        verified = await client.post("/v1/auth/verify-otp", json={"email": email, "code": code})
        assert verified.status_code == 200, verified.text
        assert await login(client, email)


async def test_a_participant_down_too_long_is_retried_then_compensated(
    gateway_url: str, postgres_dsn: str
) -> None:
    """notifications-api stopped: its step times out on every attempt, the saga compensates;
    its compensations (the failure notice first) wait for it to come back."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        with cluster.stopped("notifications-api"):  # every replica: the participant is down
            email = new_address("saga")
            user_id = await register(client, email)
            body = await wait_for_status(client, user_id, "compensating", wait_s=60)
        timeouts = [s for s, e in steps(body) if e == "timed_out"]
        assert timeouts.count("prepare_notifications") >= 2  # retried before giving up
        body = await wait_for_status(client, user_id, "compensated", wait_s=90)
        done = [s for s, e in steps(body) if e == "succeeded"]
        assert done == ["create_profile", "notify_failure", "remove_profile", "cancel_registration"]
        users = await event_types(postgres_dsn, "users", user_id)
        assert users == ["UserCreated", "UserStatusChanged"]  # created, then deactivated
        assert await settled(client, await register(client, email)) == "completed"


async def test_a_participant_back_within_the_retry_window_completes(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        with cluster.stopped("notifications-api"):
            user_id = await register(client, new_address("saga"))
            body = await wait_for_status(client, user_id, "running", wait_s=10)
            deadline = time.monotonic() + 15
            while ("prepare_notifications", "timed_out") not in steps(body):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
                body = await registration(client, user_id)
        assert await settled(client, user_id, wait_s=60) == "completed"


async def test_orchestrator_killed_with_50_in_flight_finishes_each_exactly_once(
    gateway_url: str, postgres_dsn: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        emails = [new_address("saga") for _ in range(50)]
        registering = [asyncio.create_task(register(client, e)) for e in emails]
        # kill as soon as some sagas are in flight (the rest arrive while it is down)
        while sum(t.done() for t in registering) < 10:
            await asyncio.sleep(0.01)
        pid = cluster.kill("registration-saga")
        user_ids = await asyncio.gather(*registering)
        await asyncio.to_thread(cluster.wait_restarted, "registration-saga", pid)
        statuses = await asyncio.gather(*(settled(client, u, wait_s=90) for u in user_ids))
    assert Counter(statuses) == {"completed": 50}
    for user_id, email in zip(user_ids, emails, strict=True):
        users = Counter(await event_types(postgres_dsn, "users", user_id))
        assert users == {"UserCreated": 1, "UserRoleAssigned": 1}, user_id
        prefs = await event_types(postgres_dsn, "notifications", user_id)
        assert prefs == ["NotificationPreferencesUpdated"], user_id
        auth = Counter(await event_types(postgres_dsn, "auth", user_id))
        assert auth["AccountActivated"] == 1, user_id
        assert len(mails_to(email)) == 1, email


async def test_a_taken_address_is_not_told_apart_by_the_status_endpoint(gateway_url: str) -> None:
    """Registering a taken address answers a decoy id (enumeration safety); the status
    endpoint must then show it a registration like any other, not a 404."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        email = new_address("saga")
        real = await register(client, email)
        assert await settled(client, real) == "completed"
        decoy = await register(client, email)
        assert decoy != real
        assert await settled(client, decoy) == "completed"
        shown_real, shown_decoy = (
            await registration(client, real),
            await registration(client, decoy),
        )
        assert set(shown_decoy) == set(shown_real)
        assert [(h["step"], h["event"]) for h in shown_decoy["history"]] == [
            (h["step"], h["event"]) for h in shown_real["history"]
        ]
