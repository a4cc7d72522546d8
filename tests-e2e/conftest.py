"""The end-to-end tier drives the running local cluster (`make up`) only through public
interfaces: HTTP through the gateway and Kafka topics as an outside consumer would."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def gateway_url() -> str:
    host = os.environ.get("PARLEY_HOST", "127.0.0.1")
    return os.environ.get(
        "PARLEY_GATEWAY_URL", f"http://{host}:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"
    )


# -- accounts: registered, verified and signed in through the gateway -----------------------

import asyncio  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import string  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAIL = Path(os.environ.get("PARLEY_STATE_DIR", ROOT / ".local")) / "mail"
SIX_DIGITS = re.compile(r"(?<![0-9])[0-9]{6}(?![0-9])")
PASSWORD = "correct-horse-42"


async def code_mailed_to(address: str, timeout: float = 10) -> str:
    """The one-time code of the newest mail to `address` in the SMTP sink."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(MAIL.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            raw = path.read_text(errors="replace")
            if f"To: {address}" in raw:
                [code] = SIX_DIGITS.findall(raw)  # the only 6-digit number of the mail
                return code
        await asyncio.sleep(0.1)
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


async def sign_up(client: httpx.AsyncClient, name: str = "E2E") -> Account:
    """register -> code from the mail -> verify -> login; then wait (bounded) until the
    profile exists, as a client that just signed up would."""
    email = new_address()
    registered = await client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert registered.status_code == 202, registered.text
    user_id = registered.json()["user_id"]
    code = await code_mailed_to(email)
    verified = await client.post("/v1/auth/verify-otp", json={"email": email, "code": code})
    assert verified.status_code == 200, verified.text
    account = Account(user_id, email, await login(client, email))
    deadline = time.monotonic() + 15
    while (await client.get("/v1/users/me", headers=account.headers)).status_code != 200:
        assert time.monotonic() < deadline, "the profile of a new account never appeared"
        await asyncio.sleep(0.1)
    return account


@pytest.fixture
async def user(gateway_url: str) -> Account:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        return await sign_up(client)


@pytest.fixture(scope="session")
def admin(gateway_url: str) -> Account:
    """An account made admin with the operator's CLI (`python -m parley_auth.admin`)."""

    async def make() -> Account:
        async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
            account = await sign_up(client, "Admin")
            grant = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "parley_auth.admin", "grant-admin", account.email
            )
            assert await grant.wait() == 0
            account.access_token = await login(client, account.email)
            return account

    return asyncio.run(make())
