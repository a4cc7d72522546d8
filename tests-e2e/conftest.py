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


# -- accounts: registered, verified and signed in through the gateway ----------------------

import asyncio  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
from parley_testing.accounts import Account, login, sign_up  # noqa: E402
from parley_testing.plugin import dsn_for_database  # noqa: E402
from parley_testing.privacy import state_dir  # noqa: E402


@pytest.fixture
async def user(gateway_url: str) -> Account:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        return await sign_up(client)


@pytest.fixture(scope="session")
def _admin_account(gateway_url: str, postgres_dsn: str) -> Account:
    """An account made admin with the operator's CLI (`python -m parley_auth.admin`), pointed
    at this cluster's auth database (ports may be overridden)."""
    env = {**os.environ, "AUTH_POSTGRES_DSN": dsn_for_database(postgres_dsn, "auth")}
    # the CLI opens data keys like auth-api does: with the cluster's master key
    master_key = state_dir() / "auth-master-key"
    if master_key.exists() and "AUTH_MASTER_KEY" not in env:
        env["AUTH_MASTER_KEY"] = master_key.read_text().strip()

    async def make() -> Account:
        async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
            account = await sign_up(client, "E2E Admin")
            grant = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "parley_auth.admin", "grant-admin", account.email, env=env
            )
            assert await grant.wait() == 0
            account.access_token = await login(client, account.email)
            return account

    return asyncio.run(make())


# access tokens live 5 minutes and the e2e tier runs longer: a test gets the admin's token
# fresh once it is older than this, so no test meets an expired one half-way through
_ADMIN_TOKEN_MAX_AGE_S = 120.0
_admin_token_issued = [0.0]


@pytest.fixture
def admin(gateway_url: str, _admin_account: Account) -> Account:
    now = time.monotonic()
    if now - _admin_token_issued[0] > _ADMIN_TOKEN_MAX_AGE_S:
        if _admin_token_issued[0]:

            async def relogin() -> str:
                async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
                    return await login(client, _admin_account.email)

            _admin_account.access_token = asyncio.run(relogin())
        _admin_token_issued[0] = now
    return _admin_account
