"""Access tokens at the edges of every service that checks them (the query gateway and the
users service, through nginx): a token after logout stops working everywhere within the
revocation list's delay; a token signed by a key the auth service never published, and a
garbage token, are refused with 401 problem+json; so is an expired one signed by the real key."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
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


async def test_an_expired_token_signed_by_the_real_key_is_refused(
    gateway_url: str, user: Account
) -> None:
    """The local cluster's development signing key (AUTH_KEY_DIR) signs a token that is well
    formed in every way but expired: only the expiry can refuse it."""
    key_file = Path(os.environ.get("PARLEY_STATE_DIR", ".local")) / "auth" / "signing-key.pem"
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        published = (await client.get("/.well-known/jwks.json")).json()["keys"]
        now = int(time.time())
        claims = {
            "sub": user.user_id,
            "role": "user",
            "sid": str(uuid.uuid4()),
            "iat": now - 400,
            "exp": now - 100,  # past the 10 s leeway
            "iss": "parley-auth",
            "aud": "parley",
        }
        expired = jwt.encode(
            claims, private, algorithm="EdDSA", headers={"kid": published[0]["kid"]}
        )
        fresh = jwt.encode(
            {**claims, "iat": now, "exp": now + 60},
            private,
            algorithm="EdDSA",
            headers={"kid": published[0]["kid"]},
        )
        assert (await client.get("/v1/users/me", headers=bearer(fresh))).status_code == 200
        read = await client.get("/v1/users/me", headers=bearer(expired))
        write = await client.patch(
            f"/v1/users/{user.user_id}", json={"bio": "x"}, headers=bearer(expired)
        )
        assert (read.status_code, write.status_code) == (401, 401)
        assert "expired" in read.json()["detail"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
