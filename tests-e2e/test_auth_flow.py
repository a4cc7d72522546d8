"""An account's life through the gateway, as a client and another team see it: register, the
code from the SMTP sink's mail, verify, login, a JWT verified with the published JWKS, refresh
rotation and reuse detection, logout, and the revocation on `auth.events` (what libs/authn
consumes), valid against the committed schemas."""

from __future__ import annotations

import json
import os
import random
import string
import time
from pathlib import Path

import httpx
import jsonschema
import jwt
from parley_testing.accounts import PASSWORD, code_mailed_to, registration_settled
from parley_testing.kafka import consumer_at_end

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "libs" / "contracts" / "schemas"
MAIL = Path(os.environ.get("PARLEY_STATE_DIR", ROOT / ".local")) / "mail"


async def test_account_life_through_the_gateway(gateway_url: str, kafka_bootstrap: str) -> None:
    consumer = await consumer_at_end(kafka_bootstrap, "auth.events")
    # letters only: the address is in the mail, and the code must be its only 6-digit number
    address = "e2e-" + "".join(random.choices(string.ascii_lowercase, k=12)) + "@example.test"
    try:
        async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
            registered = await client.post(
                "/v1/auth/register", json={"email": address, "password": PASSWORD, "name": "E"}
            )
            assert registered.status_code == 202, registered.text
            user_id = registered.json()["user_id"]
            code = await code_mailed_to(address)
            verified = await client.post(
                "/v1/auth/verify-otp", json={"email": address, "code": code}
            )
            assert verified.status_code == 200, verified.text
            # login needs the registration saga's activation too (README: follow the saga)
            token = registered.json()["registration_token"]
            assert await registration_settled(client, user_id, token=token) == "completed"

            login = await client.post(
                "/v1/auth/login", json={"email": address, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            pair = login.json()
            jwks = (await client.get("/.well-known/jwks.json")).json()
            kid = jwt.get_unverified_header(pair["access_token"])["kid"]
            [jwk] = [k for k in jwks["keys"] if k["kid"] == kid]
            claims = jwt.decode(
                pair["access_token"],
                jwt.PyJWK(jwk).key,
                algorithms=["EdDSA"],
                audience="parley",
                issuer="parley-auth",
            )
            assert (claims["sub"], claims["sid"]) == (user_id, pair["session_id"])
            me = await client.get(
                "/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
            )
            assert me.status_code == 200 and me.json()["email"] == address

            rotated = await client.post(
                "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
            )
            assert rotated.status_code == 200, rotated.text
            reused = await client.post(
                "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
            )
            assert reused.status_code == 401

            second = (
                await client.post("/v1/auth/login", json={"email": address, "password": PASSWORD})
            ).json()
            out = await client.post(
                "/v1/auth/logout", headers={"Authorization": f"Bearer {second['access_token']}"}
            )
            assert out.status_code == 200, out.text
            dead = await client.post(
                "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
            )
            assert dead.status_code == 401

        wanted = {"SessionRevoked", "UserLoggedOut"}
        found: dict[str, tuple[dict[str, str], dict[str, object]]] = {}
        deadline = time.monotonic() + 15
        while wanted - set(found) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for record in (r for rs in batch.values() for r in rs):
                if record.key != user_id.encode():
                    continue
                headers = {k: v.decode() for k, v in record.headers}
                name = headers["ce_type"].split(".")[2]
                found[name] = (headers, json.loads(record.value))
    finally:
        await consumer.stop()

    assert wanted <= set(found), f"auth.events carried {sorted(found)}"
    revoked = found["SessionRevoked"][1]
    assert revoked["reason"] == "refresh_token_reuse"
    assert revoked["session_id"] == pair["session_id"]
    logged_out = found["UserLoggedOut"][1]
    assert (logged_out["user_id"], logged_out["session_id"]) == (user_id, second["session_id"])
    for name, (headers, data) in found.items():
        assert headers["ce_source"] == "/parley/auth" and headers["ce_subject"] == user_id
        schema = json.loads((SCHEMAS / f"parley.auth.{name}.v1.json").read_text())
        jsonschema.validate(data, schema)
        assert PASSWORD not in json.dumps(data)
