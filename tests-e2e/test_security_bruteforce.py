"""Brute force and enumeration (issue 19, item 4), end to end through nginx :8080.

- Guessing a verification code stops: five wrong codes per address and window, then 429 with
  Retry-After even for the right code; an unknown address gets the very same answers.
- Logins: growing delays per address instead of a lock (429 + Retry-After of 1, 2, 4 s ...),
  the same for unknown addresses; the owner's right password after the delay works, so a
  stranger guessing cannot lock them out.
- The password reset mails a 128-bit link token (no 6-digit code left to guess).
- nginx limits the request rate on /v1/auth/ per client address and does not route
  introspection.
- A fresh registration's profile answers like the decoy id of a taken address (404 to anyone
  else) until its address is verified.

The local cluster's nginx does not rate-limit 127.0.0.1 (its tests and benches), and the
service's per-client limits would add up across runs there: these tests come from other
loopback addresses (127.x.y.z, chosen at random per test), which Linux routes to the
gateway's 127.0.0.1 as they are.
"""

from __future__ import annotations

import asyncio
import email
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from parley_testing.accounts import (
    MAIL,
    PASSWORD,
    code_mailed_to,
    new_address,
    registration_settled,
    sign_up,
)

SIX_DIGITS = re.compile(r"(?<![0-9])[0-9]{6}(?![0-9])")
LINK_TOKEN = re.compile(r"token=([A-Za-z0-9_-]{22})\b")


def elsewhere() -> str:
    """A loopback address other than 127.0.0.1 (a client of its own for nginx and auth)."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


@pytest.fixture
def gateway_host(gateway_url: str) -> str:
    host = urlsplit(gateway_url).hostname or ""
    if host not in ("127.0.0.1", "localhost"):
        pytest.skip("needs the local cluster's gateway on loopback (other source addresses)")
    return host


async def client_from(gateway_url: str, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=gateway_url, transport=transport, timeout=10)


@pytest.fixture
async def stranger(gateway_url: str, gateway_host: str) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_from(gateway_url, elsewhere()) as client:
        yield client


@pytest.fixture
async def local(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        yield client


def answer(response: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    """What a client sees of a refusal: status, type and body, minus the request's path."""
    assert response.headers["content-type"] == "application/problem+json", response.text
    body = {k: v for k, v in response.json().items() if k != "instance"}
    return response.status_code, response.headers.get("Retry-After", ""), body


async def test_code_guessing_stops_and_unknown_addresses_answer_alike(
    local: httpx.AsyncClient, gateway_url: str, gateway_host: str
) -> None:
    """A registration waiting for its code: five wrong guesses, then even the right code is
    refused (429, Retry-After) for the rest of the window. An address nobody registered gets
    exactly the same six answers (before the fix the sixth was 429 for the known address
    and 400 for the unknown one)."""
    known, unknown = new_address("guess"), new_address("nobody")
    registered = await local.post(
        "/v1/auth/register", json={"email": known, "password": PASSWORD, "name": "Guess"}
    )
    assert registered.status_code == 202, registered.text
    code = await code_mailed_to(known)
    wrong = "000000" if code != "000000" else "111111"
    seen: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for address in (known, unknown):
        async with await client_from(gateway_url, elsewhere()) as client:
            for guess in [wrong] * 5 + [code]:
                response = await client.post(
                    "/v1/auth/verify-otp", json={"email": address, "code": guess}
                )
                seen.setdefault(address, []).append(answer(response))
    assert [status for status, _, _ in seen[known]] == [400] * 5 + [429]
    _, retry_after, body = seen[known][-1]
    assert 0 < int(retry_after) <= 900 and body["retry_after"] == int(retry_after)
    # unknown: the same statuses and bodies (Retry-After may differ by the second it ticked)
    assert [(s, b) for s, _, b in seen[known]] == [(s, b) for s, _, b in seen[unknown]]
    # the right code is still refused: the account stays unverified
    refused = await local.post("/v1/auth/login", json={"email": known, "password": PASSWORD})
    assert refused.status_code == 403, refused.text


async def test_login_delays_grow_and_a_stranger_cannot_lock_the_owner_out(
    local: httpx.AsyncClient, stranger: httpx.AsyncClient
) -> None:
    """A stranger guessing an account's password meets growing delays (3 free, then 1, 2, 4 s
    ...), exactly as for an address without an account; the owner, after the delay, logs in
    with the right password (before the fix: 5 wrong guesses locked the account for 15
    minutes, the right password included)."""
    owner = await sign_up(local, "Owner")
    nobody = new_address("nobody")
    refusals: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for address in (owner.email, nobody):
        wrong = {"email": address, "password": "not-the-password-1"}
        for _ in range(3):
            failed = await stranger.post("/v1/auth/login", json=wrong)
            assert failed.status_code == 401, failed.text
        waits = []
        for _ in range(3):
            delayed = await stranger.post("/v1/auth/login", json=wrong)
            refusals.setdefault(address, []).append(answer(delayed))
            assert delayed.status_code == 429, delayed.text
            waits.append(int(delayed.headers["Retry-After"]))
            await asyncio.sleep(waits[-1])
            failed = await stranger.post("/v1/auth/login", json=wrong)
            assert failed.status_code == 401, failed.text
        assert waits == [1, 2, 4], waits
    assert refusals[owner.email] == refusals[nobody]

    # the owner now: refused while the delay runs (8 s after the sixth failure), then in
    right = {"email": owner.email, "password": PASSWORD}
    started = time.monotonic()
    delayed = await local.post("/v1/auth/login", json=right)
    assert delayed.status_code == 429, delayed.text
    retry_after = int(delayed.headers["Retry-After"])
    assert retry_after <= 8
    await asyncio.sleep(retry_after)
    logged_in = await local.post("/v1/auth/login", json=right)
    assert logged_in.status_code == 200, logged_in.text
    assert time.monotonic() - started < 10  # seconds, not the old 15-minute lock


def reset_link_token(address: str) -> str | None:
    for path in sorted(MAIL.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        raw = path.read_bytes()
        if f"To: {address}".encode() not in raw or b"Reset your Parley password" not in raw:
            continue
        assert SIX_DIGITS.findall(raw.decode(errors="replace")) == []  # a link, no code
        text = email.message_from_bytes(raw).get_payload(decode=True)
        assert isinstance(text, bytes)
        [token] = LINK_TOKEN.findall(text.decode())
        return str(token)
    return None


async def test_password_reset_by_a_128_bit_link(local: httpx.AsyncClient) -> None:
    account = await sign_up(local, "Resetter")
    asked = await local.post("/v1/auth/password-reset", json={"email": account.email})
    assert asked.status_code == 202
    deadline = time.monotonic() + 10
    while (token := reset_link_token(account.email)) is None:
        assert time.monotonic() < deadline, "no reset mail"
        await asyncio.sleep(0.1)
    six_digits = await local.post(
        "/v1/auth/password-reset/confirm",
        json={"email": account.email, "code": "123456", "new_password": "brand-new-pass-7"},
    )
    assert six_digits.status_code == 422  # no code any more
    confirmed = await local.post(
        "/v1/auth/password-reset/confirm",
        json={"email": account.email, "token": token, "new_password": "brand-new-pass-7"},
    )
    assert confirmed.status_code == 200, confirmed.text
    new = {"email": account.email, "password": "brand-new-pass-7"}
    assert (await local.post("/v1/auth/login", json=new)).status_code == 200


async def test_the_gateway_limits_auth_requests_per_client_address(
    stranger: httpx.AsyncClient, local: httpx.AsyncClient
) -> None:
    """Password-reset requests (cheap for the service, a mail each) from one address: nginx
    serves a burst, then answers 429 problem+json with Retry-After; another address is not
    affected."""
    body = {"email": new_address("flood")}
    answers = await asyncio.gather(
        *(stranger.post("/v1/auth/password-reset", json=body) for _ in range(30))
    )
    statuses = [r.status_code for r in answers]
    assert statuses.count(202) >= 10 and statuses.count(429) >= 10, statuses
    limited = next(r for r in answers if r.status_code == 429)
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await local.post("/v1/auth/password-reset", json=body)).status_code == 202


async def test_introspection_is_not_routed(local: httpx.AsyncClient) -> None:
    account = await sign_up(local, "Introspected")
    response = await local.post("/v1/auth/introspect", data={"token": account.access_token})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_fresh_registration_and_a_decoy_answer_alike(local: httpx.AsyncClient) -> None:
    """Registering someone's address and asking for the profile of the id it answers must not
    tell whether the address has an account: the fresh registration's profile (the saga made
    it) answers the decoy id's 404 to anyone else until the address is verified; then 200."""
    viewer = await sign_up(local, "Viewer")
    taken = viewer.email
    fresh = new_address("fresh")
    ids, tokens = {}, {}
    for address in (fresh, taken):
        registered = await local.post(
            "/v1/auth/register", json={"email": address, "password": PASSWORD, "name": "Probe"}
        )
        assert registered.status_code == 202, registered.text
        ids[address] = registered.json()["user_id"]
        tokens[address] = registered.json()["registration_token"]
    for address, user_id in ids.items():  # both look completed (the decoy's is a shadow)
        token = tokens[address]
        assert await registration_settled(local, user_id, token=token) == "completed"
    answers = []
    for user_id in ids.values():
        response = await local.get(f"/v1/users/{user_id}", headers=viewer.headers)
        answers.append((response.status_code, response.text.replace(user_id, "<id>")))
    assert answers[0] == answers[1] and answers[0][0] == 404, answers
    # nor do the routes that take a user id: a contact, a direct conversation
    contacts = f"/v1/users/{viewer.user_id}/contacts"
    for user_id in ids.values():
        added = await local.post(contacts, json={"contact_id": user_id}, headers=viewer.headers)
        assert added.status_code == 200, added.text
        direct = await local.post(
            "/v1/conversations", json={"participant_ids": [user_id]}, headers=viewer.headers
        )
        assert direct.status_code == 201, direct.text
    consistent = {**viewer.headers, "X-Consistency-Token": added.headers["X-Consistency-Token"]}
    listed = (await local.get(contacts, headers=consistent)).json()["items"]
    assert sorted((c["contact_id"], c["name"]) for c in listed) == sorted(
        (user_id, None) for user_id in ids.values()
    )

    code = await code_mailed_to(fresh)
    verified = await local.post("/v1/auth/verify-otp", json={"email": fresh, "code": code})
    assert verified.status_code == 200, verified.text
    deadline = time.monotonic() + 15
    path = f"/v1/users/{ids[fresh]}"
    while (await local.get(path, headers=viewer.headers)).status_code != 200:
        assert time.monotonic() < deadline, "the verified profile never became visible"
        await asyncio.sleep(0.1)
