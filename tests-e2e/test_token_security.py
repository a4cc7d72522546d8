"""Access tokens at the edges of every service that checks them (the query gateway and the
users service, through nginx): a token after logout stops working everywhere within the
revocation list's delay; a token signed by a key the auth service never published, and a
garbage token, are refused with 401 problem+json."""

from __future__ import annotations

import asyncio
import time

import httpx
from parley_testing.accounts import Account
from parley_testing.tokens import Signer


async def test_a_logged_out_token_is_refused_by_every_service(
    gateway_url: str, user: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200
        out = await client.post("/v1/auth/logout", headers=user.headers)
        assert out.status_code == 200, out.text
        deadline = time.monotonic() + 5  # relay + Kafka + the services' revocation lists
        while True:
            read = await client.get("/v1/users/me", headers=user.headers)
            write = await client.patch(
                f"/v1/users/{user.user_id}", json={"bio": "after logout"}, headers=user.headers
            )
            if read.status_code == 401 and write.status_code == 401:
                break
            assert time.monotonic() < deadline, (read.status_code, write.status_code)
            await asyncio.sleep(0.05)
        assert read.headers["content-type"] == "application/problem+json"


async def test_forged_and_garbage_tokens_are_refused(gateway_url: str, user: Account) -> None:
    forged = Signer().token(sub=user.user_id, role="admin")
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        for token in (forged, "garbage", user.access_token + "x"):
            headers = {"Authorization": f"Bearer {token}"}
            read = await client.get("/v1/users/me", headers=headers)
            write = await client.patch(
                f"/v1/users/{user.user_id}", json={"bio": "x"}, headers=headers
            )
            assert (read.status_code, write.status_code) == (401, 401), token[:20]
            assert "invalid_token" in read.headers["www-authenticate"]
