"""Accounts for end-to-end tests and benchmarks: registered, verified and signed in through
the gateway of the running local cluster, the way a client does it."""

from __future__ import annotations

import asyncio
import os
import random
import re
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

MAIL = Path(os.environ.get("PARLEY_STATE_DIR", ".local")) / "mail"  # the SMTP sink's files
SIX_DIGITS = re.compile(r"(?<![0-9])[0-9]{6}(?![0-9])")
PASSWORD = "correct-horse-42"  # noqa: S105 (throwaway test accounts)


async def code_mailed_to(address: str, wait_s: float = 10, poll_s: float = 0.1) -> str:
    """The one-time code of the newest mail to `address` in the SMTP sink."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for path in sorted(MAIL.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            raw = path.read_text(errors="replace")
            if f"To: {address}" in raw:
                [code] = SIX_DIGITS.findall(raw)  # the only 6-digit number of the mail
                assert isinstance(code, str)
                return code
        await asyncio.sleep(poll_s)
    raise AssertionError(f"no mail to {address} in {MAIL}")


def new_address(prefix: str = "e2e") -> str:
    # letters only: the address is in the mail, and the code must be its only 6-digit number
    return f"{prefix}-{''.join(random.choices(string.ascii_lowercase, k=12))}@example.test"


@dataclass
class Account:
    user_id: str
    email: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def login(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


FINISHED = ("completed", "compensated", "failed")
STATE = Path(os.environ.get("PARLEY_STATE_DIR", ".local"))


def local_secret(name: str) -> str:
    """A secret the local cluster generated into its state directory (`.local/<name>`:
    `consistency-secret`, `registration-secret`), for tests that must mint what a service
    would (a token of a version never written, say)."""
    return (STATE / name).read_text().strip()


def registration_headers(user_id: str, token: str | None = None) -> dict[str, str]:
    """The header `GET /v1/registrations/{id}` requires (issue 19): `token`, the
    `registration_token` register answered; None: the one auth answered (or would have) for
    this id, from the local cluster's secret (`.local/registration-secret`), for registrations
    a test or bench holds only the id of (written to auth's database directly, say)."""
    if token is None:
        from parley_http.registration import registration_token

        token = registration_token(local_secret("registration-secret"), user_id)
    return {"X-Registration-Token": token}


async def registration_reaching(
    client: httpx.AsyncClient,
    user_id: str,
    statuses: tuple[str, ...],
    wait_s: float = 30,
    poll_s: float = 0.05,
    token: str | None = None,
) -> dict[str, Any]:
    """`GET /v1/registrations/{id}` (with the registration token, `registration_headers`) once
    its status is one of `statuses`, polled through the gateway; AssertionError after
    `wait_s`."""
    deadline = time.monotonic() + wait_s
    status = "unknown"
    headers = registration_headers(user_id, token)
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/registrations/{user_id}", headers=headers)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            status = body["status"]
            if status in statuses:
                return body
        await asyncio.sleep(poll_s)
    raise AssertionError(f"registration {user_id} still {status} after {wait_s} s")


async def registration_settled(
    client: httpx.AsyncClient,
    user_id: str,
    wait_s: float = 30,
    poll_s: float = 0.05,
    token: str | None = None,
) -> str:
    """The status a registration saga ended in (completed, compensated, failed)."""
    body = await registration_reaching(client, user_id, FINISHED, wait_s, poll_s, token)
    return str(body["status"])


async def sign_up(client: httpx.AsyncClient, name: str = "E2E", poll_s: float = 0.1) -> Account:
    """register -> code from the mail -> verify -> the registration saga completed -> login;
    then wait (bounded) until the profile is readable, as a client that just signed up would."""
    email = new_address()
    registered = await client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert registered.status_code == 202, registered.text
    user_id = registered.json()["user_id"]
    code = await code_mailed_to(email, poll_s=poll_s)
    verified = await client.post("/v1/auth/verify-otp", json={"email": email, "code": code})
    assert verified.status_code == 200, verified.text
    token = registered.json()["registration_token"]
    status = await registration_settled(client, user_id, poll_s=poll_s, token=token)
    assert status == "completed", f"the registration of {user_id} ended {status}"
    account = Account(user_id, email, await login(client, email))
    deadline = time.monotonic() + 15
    while (await client.get("/v1/users/me", headers=account.headers)).status_code != 200:
        assert time.monotonic() < deadline, "the profile of a new account never appeared"
        await asyncio.sleep(poll_s)
    return account
