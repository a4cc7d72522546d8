"""Account status and fresh authentication, end to end through nginx :8080.

- An admin deactivates a person (users-api): auth learns it from users.events, the right
  password gets 403 `/problems/account-disabled`, refresh tokens are dead, every access
  token is refused by every service within the revocation delay and the person's realtime
  stream closes; reactivation restores login.
- Deleting one's own account needs a login under 5 minutes old (`auth_time`): a token
  refreshed from an older login is refused with the step-up challenge; logging in again with
  the password, or a token straight from a login, is accepted.
- Confirming an email change mails the old address and ends the other sessions.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from parley_testing.accounts import MAIL, PASSWORD, Account, code_mailed_to, new_address, sign_up
from parley_testing.plugin import dsn_for_database
from parley_testing.realtime import SseStream

REVOCATION_WAIT_S = 10  # users-api -> relay -> Kafka -> auth -> relay -> Kafka -> every service
CHANGED_SUBJECT = "The email address of your Parley account was changed"


async def log_in(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    response = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused_everywhere(client: httpx.AsyncClient, user_id: str, token: str) -> float:
    """Seconds until `token` is refused (401 problem+json) by the query gateway (a read) and
    users-api (a write); AssertionError after REVOCATION_WAIT_S."""
    started = time.monotonic()
    while True:
        read = await client.get("/v1/users/me", headers=bearer(token))
        write = await client.patch(
            f"/v1/users/{user_id}", json={"bio": "still here?"}, headers=bearer(token)
        )
        if read.status_code == 401 and write.status_code == 401:
            assert read.headers["content-type"] == "application/problem+json"
            return time.monotonic() - started
        waited = time.monotonic() - started
        assert waited < REVOCATION_WAIT_S, (read.status_code, write.status_code)
        await asyncio.sleep(0.05)


async def login_answers(client: httpx.AsyncClient, email: str, status: int) -> httpx.Response:
    """The login's answer once it is `status` (auth follows users.events: bounded wait)."""
    deadline = time.monotonic() + REVOCATION_WAIT_S
    while True:
        response = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.05)


async def test_a_deactivated_person_cannot_log_in_and_their_sessions_are_revoked(
    gateway_url: str, user: Account, admin: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        other = await log_in(client, user.email)  # a second device
        assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200

        off = await client.post(
            f"/v1/users/{user.user_id}/deactivate",
            json={"reason": "e2e: account status"},
            headers=admin.headers,
        )
        assert off.status_code == 200, off.text

        # every session's access token dies everywhere within the revocation delay
        delay = await refused_everywhere(client, user.user_id, user.access_token)
        await refused_everywhere(client, user.user_id, other["access_token"])
        print(f"deactivation -> token refused everywhere in {delay:.2f} s")
        # refresh tokens are dead
        refreshed = await client.post(
            "/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
        )
        assert refreshed.status_code == 401, refreshed.text
        # the right password: 403 account-disabled; a wrong one: the 401 of every failed login
        refused = await login_answers(client, user.email, 403)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/problems/account-disabled"
        wrong = await client.post(
            "/v1/auth/login", json={"email": user.email, "password": "Not-the-password-1"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["type"] == "/problems/unauthorized"


async def test_a_deactivation_closes_the_persons_realtime_stream(
    gateway_url: str, user: Account, admin: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        async with SseStream(client, headers=user.headers) as stream:
            assert stream.status_code == 200, stream.error_body
            ready = await stream.next()
            assert ready.event in ("ready", "reset")
            off = await client.post(
                f"/v1/users/{user.user_id}/deactivate",
                json={"reason": "e2e"},
                headers=admin.headers,
            )
            assert off.status_code == 200, off.text
            started = time.monotonic()
            await asyncio.wait_for(stream.closed.wait(), REVOCATION_WAIT_S)
            print(f"deactivation -> stream closed in {time.monotonic() - started:.2f} s")
        assert (await client.get("/v1/stream", headers=user.headers)).status_code == 401


async def test_reactivation_restores_login(gateway_url: str, user: Account, admin: Account) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        off = await client.post(
            f"/v1/users/{user.user_id}/deactivate", json={"reason": "e2e"}, headers=admin.headers
        )
        assert off.status_code == 200, off.text
        await login_answers(client, user.email, 403)

        on = await client.post(f"/v1/users/{user.user_id}/reactivate", headers=admin.headers)
        assert on.status_code == 200, on.text
        back = await login_answers(client, user.email, 200)
        token = back.json()["access_token"]
        assert (await client.get("/v1/users/me", headers=bearer(token))).status_code == 200
        # the sessions ended by the deactivation stay ended
        assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 401


@pytest.fixture
def auth_dsn(postgres_dsn: str) -> str:
    return dsn_for_database(postgres_dsn, "auth")


async def logged_in_long_ago(auth_dsn: str, session_id: str, minutes: int) -> None:
    """Stand in for time passing: the session's login (its tokens' auth_time) moves back."""
    conn = await asyncpg.connect(auth_dsn)
    try:
        await conn.execute(
            "UPDATE sessions SET auth_time = coalesce(auth_time, created_at)"
            " - make_interval(mins => $2) WHERE session_id = $1",
            session_id,
            minutes,
        )
    finally:
        await conn.close()


async def test_deleting_oneself_needs_a_fresh_authentication(
    gateway_url: str, auth_dsn: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        person = await sign_up(client, "E2E Leaver")
        pair = await log_in(client, person.email)
        await logged_in_long_ago(auth_dsn, pair["session_id"], 10)
        # a refresh gives a new, valid token, but of a login ten minutes old
        rotated = await client.post(
            "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert rotated.status_code == 200, rotated.text
        stale = rotated.json()["access_token"]
        claims = jwt.decode(stale, options={"verify_signature": False})
        assert claims["iat"] - claims["auth_time"] >= 600

        refused = await client.delete(f"/v1/users/{person.user_id}", headers=bearer(stale))
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/problems/fresh-authentication-required"
        challenge = refused.headers["www-authenticate"]
        assert (
            'error="insufficient_user_authentication"' in challenge and "max_age=300" in challenge
        )
        # nothing happened: the person is still there and may still log in
        assert (await client.get("/v1/users/me", headers=bearer(stale))).status_code == 200

        # the password alternative: log in again (the password goes to auth only), then delete
        again = await log_in(client, person.email)
        deleted = await client.delete(
            f"/v1/users/{person.user_id}", headers=bearer(again["access_token"])
        )
        assert deleted.status_code == 200, deleted.text
        gone = await client.post(
            "/v1/auth/login", json={"email": person.email, "password": PASSWORD}
        )
        assert gone.status_code == 401  # the account is closed, its address released


async def test_a_token_fresh_from_a_login_may_delete_its_account(
    gateway_url: str, user: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        deleted = await client.delete(f"/v1/users/{user.user_id}", headers=user.headers)
        assert deleted.status_code == 200, deleted.text


def mail_to(address: str, subject: str) -> str | None:
    for path in sorted(Path(MAIL).glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        raw = path.read_text(errors="replace")
        if f"To: {address}" in raw and f"Subject: {subject}" in raw:
            return raw
    return None


async def mail_arrives(address: str, subject: str, wait_s: float = 10) -> str:
    deadline = time.monotonic() + wait_s
    while (raw := mail_to(address, subject)) is None:
        assert time.monotonic() < deadline, f"no mail {subject!r} to {address}"
        await asyncio.sleep(0.1)
    return raw


async def test_an_email_change_mails_the_old_address_and_revokes_the_other_sessions(
    gateway_url: str, user: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        other = await log_in(client, user.email)  # a second device (or a thief)
        new = new_address("moved")
        asked = await client.post(
            "/v1/auth/change-email",
            json={"new_email": new, "password": PASSWORD},
            headers=user.headers,
        )
        assert asked.status_code == 202, asked.text
        code = await code_mailed_to(new)
        done = await client.post(
            "/v1/auth/change-email/confirm", json={"code": code}, headers=user.headers
        )
        assert done.status_code == 200, done.text

        notice = await mail_arrives(user.email, CHANGED_SUBJECT)
        assert new not in notice  # the old address is told, not where the account went

        delay = await refused_everywhere(client, user.user_id, other["access_token"])
        print(f"email change -> other session refused everywhere in {delay:.2f} s")
        refreshed = await client.post(
            "/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
        )
        assert refreshed.status_code == 401
        # the session that made the change goes on
        assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200
        me = await client.get("/v1/auth/me", headers=user.headers)
        assert me.status_code == 200 and me.json()["email"] == new
